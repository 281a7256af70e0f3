"""One export run: read pages after the cursor, write them, then move the cursor past them."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config, ConfigError
from .credentials import CachedCredentials, LookerCredentials
from .entries.events import event_entry
from .entries.head import EntryContext, is_exporter
from .entries.history import history_entry
from .entries.repair import Repair
from .logs import mask_secret
from .looker_source import EVENTS, HISTORY, MODEL, Explore, LookerSource
from .sink import CloudLoggingSink, Sink, WriteStats, logging_client
from .state import Cursor, MemoryStateStore, Position, StateError, StateStore, state_store
from .values import LookerEvent, LookerUser, event_id, parse_looker_time, whole_number

log = logging.getLogger(__name__)


@dataclass
class StreamSummary:
    """What one run did for one stream."""

    read: int = 0
    written: int = 0
    held_back: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    newest_time: str | None = None
    lag_seconds: float | None = None
    caught_up: bool = False


@dataclass
class RunSummary:
    """What one run did; logged as one structured line at its end.

    The top-level counts cover every stream; ``cursor_*``, ``newest_event_time`` and ``lag_seconds``
    are the events stream's. ``lag_seconds`` is 0 when caught up, else how far behind the newest
    exported event is. ``entries_resent``: entries this run sent that may already have been stored, so
    Cloud Logging may hold them twice: those of a request sent again after an error that does not rule
    out that it was stored, and those up to the id an earlier run had sent when it last stored the cursor
    (``sent_through``). It cannot count what a killed run sent after its last cursor write (at most
    ``MAX_UNCOMMITTED_ENTRIES``). ``cursor_writes``: how many times the run stored the cursor.
    """

    events_read: int = 0
    events_written: int = 0
    entries_resent: int = 0
    rewritten_after_shrinking: int = 0
    placeholders: int = 0
    duplicate_rows: int = 0
    held_back_unsettled: int = 0
    query_calls: int = 0
    write_calls: int = 0
    bytes_sent: int = 0
    pages: int = 0
    cursor_writes: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    newest_event_time: str | None = None
    lag_seconds: float | None = None
    duration_seconds: float = 0.0
    caught_up: bool = False
    error: str | None = None
    streams: dict[str, StreamSummary] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExportError(RuntimeError):
    """A run left events unwritten; the cursor stays before them so the next delivery retries."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class Window:
    """A fixed range to export (a backfill) instead of "from the cursor to now"."""

    since: datetime
    until: datetime


#: Entries mapped before they are handed to the writer thread (whole write batches, at most this many).
WRITE_CHUNK_ENTRIES = 1000
#: At most this many entries are sent beyond the stored cursor (two chunks in flight): all that any single
#: failure (a write stored but answered too late, a lost cursor write, a killed process) sends again.
MAX_UNCOMMITTED_ENTRIES = 2 * WRITE_CHUNK_ENTRIES


def chunk_entries(batch_entries: int) -> int:
    """Entries per chunk: whole write batches (``WRITE_BATCH_ENTRIES`` is at most ``WRITE_CHUNK_ENTRIES``)."""
    return max(1, WRITE_CHUNK_ENTRIES // batch_entries) * batch_entries


#: A row time further than this after the settle point cannot be true (the query asked for rows before now).
IMPLAUSIBLE_FUTURE = timedelta(days=1)


def settled_prefix(rows: list[dict[str, Any]], until: datetime, time_field: str = "event.created_time") -> int:
    """How many leading rows (in id order) were created before ``until`` and may be exported now.

    Rows without a readable time, or with a time implausibly far in the future, count as settled, or
    they would block the cursor for ever.
    """
    horizon = until + IMPLAUSIBLE_FUTURE
    for index, row in enumerate(rows):
        created = parse_looker_time(row.get(time_field))
        if created is not None and until <= created < horizon:
            return index
    return len(rows)


def finished_prefix(rows: list[dict[str, Any]], now: datetime, max_running: timedelta) -> int:
    """How many leading history rows have finished; a query running past ``max_running`` counts as finished.

    A running query's row changes when it ends, so the cursor must not pass it while it may still end.
    """
    for index, row in enumerate(rows):
        running = row.get("history.completed_time") in (None, "") or row.get("history.status") == "running"
        started = parse_looker_time(row.get("history.created_time"))
        if running and started is not None and now - started < max_running:
            return index
    return len(rows)


def unique_rows(rows: Iterable[dict[str, Any]], id_field: str = "event.id") -> list[dict[str, Any]]:
    """Rows with a repeated numeric id removed; the first one is kept."""
    seen: set[int] = set()
    kept: list[dict[str, Any]] = []
    for row in rows:
        number = whole_number(row.get(id_field))
        if number is not None:
            if number in seen:
                continue
            seen.add(number)
        kept.append(row)
    return kept


def _user_ids(rows: Iterable[Mapping[str, Any]]) -> set[int]:
    found: set[int] = set()
    for row in rows:
        for key in ("event.user_id", "event.sudo_user_id"):
            number = whole_number(row.get(key))
            if number is not None:
                found.add(number)
    return found


def _neighbour_time(times: list[datetime | None], index: int) -> datetime | None:
    """The readable time of the nearest earlier row, else of the nearest later one (ids follow time)."""
    for step in (-1, 1):
        position = index + step
        while 0 <= position < len(times):
            if times[position] is not None:
                return times[position]
            position += step
    return None


@dataclass
class _Read:
    """One page as the reader thread fetched it: the rows, what may be exported now, and its lookups."""

    rows: list[dict[str, Any]]
    ready: int
    page: list[dict[str, Any]]
    row_ids: list[int | None]
    attributes: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    new_users: dict[int, LookerUser] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        """The page's numeric ids, in page (id) order."""
        return [number for number in self.row_ids if number is not None]


class _Cancelled(Exception):
    """A write chunk not sent because an earlier one failed."""


@dataclass
class _Chunk:
    """Entries handed to the writer thread: their write, how many, and the last numeric id among them."""

    done: Future[None]
    entries: int
    last_id: int | None


@dataclass
class _RunState:
    """What one run keeps while it runs: its own counters (runs may overlap in one process) and the cursor."""

    cursor: Cursor
    token: int
    deadline: float
    now: datetime
    stats: WriteStats = field(default_factory=WriteStats)
    resent_after_earlier_run: int = 0
    cursor_writes: int = 0
    saved_at: float | None = None


class _Stream:
    """How one System Activity explore becomes log entries; the run loop is shared."""

    name = ""
    explore: Explore
    context: EntryContext
    #: Users known so far (the events stream looks up the new ones of each page).
    users: dict[int, LookerUser]

    def ready(self, rows: list[dict[str, Any]], until: datetime, now: datetime) -> int:
        """How many leading rows may be exported now (the rest wait for a later run)."""
        return settled_prefix(rows, until, self.explore.time_field)

    def lookups(self, read: _Read, known_users: frozenset[int], now: datetime, deadline: float) -> None:
        """Fetch what mapping ``read.page`` needs besides its rows (runs in the reader thread)."""

    def entries(self, read: _Read) -> Iterator[bytes | None]:
        """The page's serialised log entries, one per row of ``read.page``; None for a row left out."""
        raise NotImplementedError


class _EventsStream(_Stream):
    name = "events"
    explore = EVENTS

    def __init__(self, source: LookerSource, context: EntryContext, users: dict[int, LookerUser]) -> None:
        self.source, self.context, self.users = source, context, users

    def lookups(self, read: _Read, known_users: frozenset[int], now: datetime, deadline: float) -> None:
        if read.ids:
            read.attributes = self.source.attributes(min(read.ids), max(read.ids), until=now, deadline=deadline)
        missing = _user_ids(read.page) - known_users
        if missing:  # a user Looker no longer knows (deleted) is remembered too, so it is asked for once
            found = self.source.users(missing, until=now, deadline=deadline)
            read.new_users = {number: found.get(number, LookerUser(number)) for number in missing}

    def entries(self, read: _Read) -> Iterator[bytes]:
        page, attributes = read.page, read.attributes
        times = [parse_looker_time(row.get("event.created_time")) for row in page]
        for index, row in enumerate(page):
            row_context = self.context
            if times[index] is None:  # no readable time: take a neighbour's, the same again on a redo
                fallback = _neighbour_time(times, index) or self.context.fallback_time
                row_context = replace(self.context, fallback_time=fallback)
            yield event_entry(LookerEvent(row, attributes.get(event_id(row) or -1, ())), row_context)


class _HistoryStream(_Stream):
    name = "history"
    explore = HISTORY

    def __init__(self, context: EntryContext, max_running: timedelta, include_own_queries: bool = False) -> None:
        self.context, self.max_running, self.users = context, max_running, {}
        self.include_own_queries = include_own_queries

    def ready(self, rows: list[dict[str, Any]], until: datetime, now: datetime) -> int:
        return min(super().ready(rows, until, now), finished_prefix(rows, now, self.max_running))

    def entries(self, read: _Read) -> Iterator[bytes | None]:
        return (history_entry(row, self.context)
                if self.include_own_queries or not own_system_activity_query(row, self.context) else None
                for row in read.page)


def own_system_activity_query(row: Mapping[str, Any], context: EntryContext) -> bool:
    """Whether a history row is one of the exporter's own System Activity queries (144 or more a day).

    Left out of the history stream by default (``HISTORY_INCLUDE_OWN_QUERIES`` keeps them); the cursor
    still moves past them.
    """
    return row.get("query.model") == MODEL and is_exporter(row.get("user.id"), context)


class Exporter:
    """Runs exports for one configuration; keeps its clients (and the Looker session) between runs."""

    def __init__(self, config: Config, source: LookerSource, sink: Sink, store: StateStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.source = source
        self.sink = sink
        self.store = store
        self.clock = clock

    def run(self, window: Window | None = None,
            on_page: Callable[[str, StreamSummary, datetime | None], None] | None = None) -> RunSummary:
        """Export what is settled after the cursor (within ``window`` if given) inside the time budget.

        ``on_page(stream, stream_summary, newest_time)`` is called after each page is handed to the writer,
        and once more (``newest_time`` None) when a stream's writes are done and its cursor stored.
        Raises ExportError, with the summary of what was done, when anything was left unwritten.
        """
        started = time.monotonic()
        deadline = started + self.config.run_budget_seconds
        summary = RunSummary()
        runs: list[_RunState] = []
        try:
            self._run(summary, deadline, window, on_page, runs)
        except Exception as exc:  # every failure is reported with what was done so far
            summary.error = str(exc)
            raise ExportError(str(exc), summary) from exc
        finally:
            if runs:
                run, stats = runs[0], runs[0].stats
                summary.events_written = stats.entries_written
                summary.entries_resent = stats.resent + run.resent_after_earlier_run
                summary.rewritten_after_shrinking = stats.shrunk
                summary.placeholders = stats.placeholders
                summary.write_calls = stats.write_calls
                summary.bytes_sent = stats.bytes_sent
                summary.cursor_writes = run.cursor_writes
            summary.duration_seconds = round(time.monotonic() - started, 3)
            events = summary.streams.get("events")
            if events is not None:
                summary.cursor_before, summary.cursor_after = events.cursor_before, events.cursor_after
                summary.newest_event_time, summary.lag_seconds = events.newest_time, events.lag_seconds
            summary.caught_up = bool(summary.streams) and all(s.caught_up for s in summary.streams.values())
        return summary

    def _streams(self, now: datetime, exporter_user_id: int | None = None) -> list[_Stream]:
        config, host = self.config, self.config.looker_host
        streams: list[_Stream] = []
        if "events" in config.streams:
            users: dict[int, LookerUser] = {}
            context = EntryContext(config.log_resource_name, host, users, fallback_time=now,
                                   exporter_user_id=exporter_user_id)
            streams.append(_EventsStream(self.source, context, users))
        if "history" in config.streams:
            context = EntryContext(config.log_resource(config.history_log_name), host, {}, fallback_time=now,
                                   exporter_user_id=exporter_user_id)
            streams.append(_HistoryStream(context, timedelta(minutes=config.history_max_running_minutes),
                                          config.history_include_own_queries))
        return streams

    def _run(self, summary: RunSummary, deadline: float, window: Window | None,
             on_page: Callable[[str, StreamSummary, datetime | None], None] | None, runs: list[_RunState]) -> None:
        host = self.config.looker_host
        stored, token = self.store.load(deadline=deadline)
        cursor = Cursor.from_json(stored, self.store.uri, host) if stored else Cursor(host)
        run = _RunState(cursor, token, deadline, self.clock().replace(microsecond=0))
        runs.append(run)
        # One reader thread makes every Looker call of this run and reads the next page while this one is
        # mapped (runs overlapping in one instance share the SDK session, each from its own reader thread);
        # one writer thread writes entries while the next ones are mapped.
        # Both belong to this run, so what they count (queries, writes) is this run's alone.
        reader = ThreadPoolExecutor(1, thread_name_prefix="looker-read")
        writer = ThreadPoolExecutor(1, thread_name_prefix="logging-write")
        try:
            exporter_user_id = reader.submit(self.source.api_user_id, deadline).result()  # once per instance
            for stream in self._streams(run.now, exporter_user_id):
                stream_summary = summary.streams.setdefault(stream.name, StreamSummary())
                self._run_stream(stream, run, window, summary, stream_summary, on_page, reader, writer)
        finally:
            summary.query_calls = reader.submit(lambda: self.source.query_calls).result()  # the reader's count
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True, cancel_futures=True)

    def _pace(self, run: _RunState) -> None:
        """Wait until the store allows this run's next cursor write (GCS: a second after the last one)."""
        if run.saved_at is not None:
            wait_for = run.saved_at + self.store.min_save_interval - time.monotonic()
            if wait_for > 0:
                time.sleep(min(wait_for, max(0.0, run.deadline - time.monotonic())))

    def _save(self, run: _RunState) -> None:
        """Store the cursor (with the precondition), no sooner after this run's last write than the store allows."""
        self._pace(run)
        run.cursor.updated_at = run.now.isoformat()
        run.token = self.store.save(run.cursor.to_json(), run.token, deadline=run.deadline)
        run.saved_at = time.monotonic()
        run.cursor_writes += 1

    def _run_stream(self, stream: _Stream, run: _RunState, window: Window | None, summary: RunSummary,
                    result: StreamSummary, on_page: Callable[[str, StreamSummary, datetime | None], None] | None,
                    reader: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> None:
        """The page loop of one stream.

        Page k + 1 is read (in ``reader``) while page k is mapped and written. Entries go to the writer in
        chunks; the cursor moves past the chunks Cloud Logging accepted, in id order, whenever more than
        ``MAX_UNCOMMITTED_ENTRIES`` would otherwise be sent beyond it, and at the end.
        """
        config, explore, now, deadline = self.config, stream.explore, run.now, run.deadline
        position = run.cursor.position(stream.name)
        result.cursor_before = result.cursor_after = position.last_id
        upper = min(now, window.until) if window else now
        until = min(now - timedelta(seconds=config.settle_seconds), upper)
        since = None
        if position.last_id is None:
            default_start = window.since if window else now - timedelta(minutes=config.initial_lookback_minutes)
            since = parse_looker_time(position.not_before) or default_start

        def read(after_id: int | None, known_users: frozenset[int]) -> _Read:
            rows = self.source.page(explore, after_id=after_id, since=since, until=upper,
                                    limit=config.page_size, deadline=deadline)
            ready = stream.ready(rows, until, now)
            page = unique_rows(rows[:ready], explore.id_field)
            found = _Read(rows, ready, page, [whole_number(row.get(explore.id_field)) for row in page])
            if page:
                stream.lookups(found, known_users, now, deadline)
            return found

        sender = _Sender(self, run, stream, position, result, writer)
        written_before = run.stats.entries_written
        pending = reader.submit(read, position.last_id, frozenset(stream.users))
        try:
            while True:
                page_started = time.monotonic()
                fetched = pending.result()
                stream.users.update(fetched.new_users)
                rows, ready, page, ids = fetched.rows, fetched.ready, fetched.page, fetched.ids
                done = len(rows) < config.page_size or ready < len(rows)
                if not done and ids:  # the loop goes on: read the next page meanwhile
                    pending = reader.submit(read, max(ids), frozenset(stream.users))
                summary.pages += 1
                summary.events_read += len(rows)
                result.read += len(rows)
                result.held_back += len(rows) - ready
                summary.held_back_unsettled += len(rows) - ready
                summary.duplicate_rows += ready - len(page)
                if page:
                    sender.send(stream.entries(fetched), fetched.row_ids)
                newest = max((t for t in (parse_looker_time(r.get(explore.time_field)) for r in page) if t),
                             default=None)
                if newest is not None:
                    result.newest_time = newest.isoformat()
                if not ids and position.last_id is None and sender.sent_through is None:  # nothing yet, ever
                    position.not_before = (since if since and since > until else until).strftime(
                        "%Y-%m-%d %H:%M:%S")
                    sender.changed = True
                result.written = run.stats.entries_written - written_before
                if on_page is not None:
                    on_page(stream.name, result, newest)
                if done or not ids:
                    result.caught_up = done
                    break
                if deadline - time.monotonic() < 2 * (time.monotonic() - page_started) + 5:
                    log.info("Time budget nearly spent after %d pages; the next run continues %s from id %s",
                             summary.pages, stream.name, sender.sent_through)
                    break
            sender.finish()
            result.written = run.stats.entries_written - written_before
            if on_page is not None:  # what the last chunks added
                on_page(stream.name, result, None)
        except BaseException as exc:
            sender.abandon(exc)
            raise
        finally:
            pending.cancel()  # a read not started yet is not needed any more
            result.written = run.stats.entries_written - written_before
        result.lag_seconds = 0.0 if result.caught_up else (
            round((now - datetime.fromisoformat(result.newest_time)).total_seconds(), 1)
            if result.newest_time else None)


class _Sender:
    """Hands one stream's entries to the writer thread in chunks and moves its cursor behind them.

    At most ``MAX_UNCOMMITTED_ENTRIES`` entries are ever sent beyond the stored cursor: before a chunk
    would pass that, the oldest chunks must be accepted by Cloud Logging and the cursor stored past the
    last id of the accepted ones (events come in id order). After a failure no further chunk starts, the
    writes under way end, and the cursor stays before the first chunk not accepted (so before any entry
    refused even as a placeholder).
    """

    def __init__(self, exporter: Exporter, run: _RunState, stream: _Stream, position: Position,
                 result: StreamSummary, writer: ThreadPoolExecutor) -> None:
        self.exporter, self.run, self.position, self.result, self.writer = exporter, run, position, result, writer
        self.chunk_size = chunk_entries(exporter.config.write_batch_entries)
        self.repair = Repair(stream.context)
        self.failed = threading.Event()
        self.in_flight: deque[_Chunk] = deque()
        self.unsettled = 0
        #: Ids up to this one were sent by an earlier run (as its last cursor write said): sending them again
        #: counts in ``entries_resent``.
        self.earlier_sent = position.sent_through
        self.sent_through = position.last_id
        self.changed = position.last_id is None  # a first run stores where it started even with nothing found

    def send(self, entries: Iterator[bytes | None], row_ids: list[int | None]) -> None:
        """Send one page's entries (one per row, ``row_ids`` their ids in order; None for a row left out)
        in chunks. The cursor passes rows left out too, so a page of them alone does not hold it back."""
        chunk: list[bytes] = []
        last_id = submitted_id = None
        for entry, number in zip(entries, row_ids, strict=True):
            if number is not None:
                last_id = number
            if entry is None:
                continue
            chunk.append(entry)
            if number is not None and self.earlier_sent is not None and number <= self.earlier_sent:
                self.run.resent_after_earlier_run += 1
            if len(chunk) == self.chunk_size:
                self._submit(chunk, last_id)
                chunk, submitted_id = [], last_id
        if chunk or last_id != submitted_id:
            self._submit(chunk, last_id)

    def _submit(self, chunk: list[bytes], last_id: int | None) -> None:
        if last_id is not None:
            self.sent_through = max(self.sent_through or last_id, last_id)
        if self.unsettled + len(chunk) > MAX_UNCOMMITTED_ENTRIES:
            self._settle(len(chunk))
        self.in_flight.append(_Chunk(self.writer.submit(self._write, chunk), len(chunk), last_id))
        self.unsettled += len(chunk)

    def _write(self, chunk: list[bytes]) -> None:  # in the writer thread
        if self.failed.is_set():
            raise _Cancelled
        try:
            self.exporter.sink.write(chunk, self.run.stats, deadline=self.run.deadline, repair=self.repair)
        except BaseException:
            self.failed.set()
            raise

    def _settle(self, room: int) -> None:
        """Wait for the oldest chunks until ``room`` more entries fit, and store the cursor past them."""
        while self.in_flight and self.unsettled + room > MAX_UNCOMMITTED_ENTRIES:
            self.in_flight[0].done.result()  # raises that chunk's error
            self.exporter._pace(self.run)  # meanwhile the next chunks may be accepted too: one write for all
            self._accept_done()
            self._commit()

    def _accept_done(self) -> None:
        """Move the position past the leading chunks Cloud Logging has accepted so far."""
        while self.in_flight and self.in_flight[0].done.done() and self.in_flight[0].done.exception() is None:
            chunk = self.in_flight.popleft()
            self.unsettled -= chunk.entries
            if chunk.last_id is not None:
                self.position.last_id = max(self.position.last_id or chunk.last_id, chunk.last_id)
                self.position.not_before = None
                self.changed = True

    def _commit(self) -> None:
        if not self.changed:
            return
        position = self.position
        position.sent_through = self.sent_through if self.sent_through is not None and (
            position.last_id is None or self.sent_through > position.last_id) else None
        self.exporter._save(self.run)
        self.changed = False
        self.result.cursor_after = position.last_id

    def finish(self) -> None:
        """Wait for every chunk and store the cursor past them."""
        for chunk in list(self.in_flight):
            chunk.done.result()
        self._accept_done()
        self._commit()

    def abandon(self, error: BaseException) -> None:
        """After a failure: start no further chunk, let the writes under way end, and store the cursor past
        the chunks accepted before the first one that was not, if the failure was not the cursor's own."""
        self.failed.set()
        wait([chunk.done for chunk in self.in_flight])
        if isinstance(error, StateError):
            return
        attempted = [chunk.last_id for chunk in self.in_flight
                     if chunk.last_id is not None and not isinstance(chunk.done.exception(), _Cancelled)]
        self.sent_through = max([*attempted, self.position.last_id or 0]) or None
        self.changed = (self.sent_through or 0) > max(self.position.sent_through or 0, self.position.last_id or 0)
        self._accept_done()
        try:
            self._commit()
        except StateError as exc:
            log.warning("The cursor could not be stored after the failure (%s); the next run sends again "
                        "the entries after it", exc)


def build_source(config: Config, *, credentials: LookerCredentials | None = None,
                 credentials_source: str | None = None) -> LookerSource:
    """The Looker reader for ``config``: credentials from the secret, or ``credentials`` (a local file)."""
    if credentials is not None:
        given = credentials
        return LookerSource(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                            lambda: given, credentials_source=credentials_source or "the credentials file",
                            backoff_seconds=config.retry_initial_seconds,
                            declared_timezone=config.looker_query_timezone)
    if config.credentials_secret is not None:
        cached = CachedCredentials(config.credentials_secret, config.secret_manager_emulator_host,
                                   on_fetch=lambda found: mask_secret(found.client_secret))
        return LookerSource(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                            cached, cached.forget, credentials_source=f"secret {config.credentials_secret}",
                            backoff_seconds=config.retry_initial_seconds,
                            declared_timezone=config.looker_query_timezone)
    raise ConfigError("LOOKER_CREDENTIALS_SECRET is not set: it must be a secret version like "
                      "projects/P/secrets/S/versions/latest")


def build_exporter(config: Config, *, sink: Sink | None = None, credentials: LookerCredentials | None = None,
                   read_only_state: bool = False, credentials_source: str | None = None) -> Exporter:
    """Wire the real clients for ``config``: Secret Manager, Looker, Cloud Logging and the cursor store.

    ``credentials`` given (the CLI's credentials file, named by ``credentials_source``) replace the secret.
    """
    source = build_source(config, credentials=credentials, credentials_source=credentials_source)
    if sink is None:
        sink = CloudLoggingSink(logging_client(config.logging_emulator_host),
                                batch_entries=config.write_batch_entries,
                                retry_initial_seconds=config.retry_initial_seconds)
    store: StateStore
    if config.state_uri is None:
        store = MemoryStateStore()
    else:
        store = state_store(config.state_uri, config.project, emulator=bool(os.environ.get("STORAGE_EMULATOR_HOST")),
                            retry_initial_seconds=config.retry_initial_seconds)
        if read_only_state:
            store = MemoryStateStore(store.load()[0], uri=store.uri)
    _tune_interpreter()
    return Exporter(config, source, sink, store)


def _tune_interpreter() -> None:
    """Settings for a process that runs exports (the function's instance, the CLI): measured in benchmarks/."""
    # The modules and clients live as long as the instance: move them out of the collector's reach, which
    # the many rows of a run set off again and again (about 8% of a run's time otherwise).
    gc.freeze()
    # The reader thread makes many short socket reads; each waits for the mapping thread to release the GIL,
    # up to the switch interval (5 ms by default). 1 ms lets the next page arrive in time to be mapped.
    sys.setswitchinterval(0.001)
