"""One export run: read pages after the cursor, write them, then move the cursor past them."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from .config import Config, ConfigError
from .credentials import CachedCredentials, LookerCredentials
from .logs import mask_secret
from .looker_source import EVENTS, HISTORY, MODEL, Explore, LookerSource
from .mapping import (
    SHRUNK_ENTRY_BYTES,
    EntryContext,
    LookerEvent,
    LookerUser,
    event_id,
    is_exporter,
    log_entry_bytes,
    parse_looker_time,
    placeholder,
    shrink,
    to_history_entry,
    whole_number,
)
from .sink import CloudLoggingSink, Sink, WriteStats, logging_client
from .state import Cursor, MemoryStateStore, StateStore, state_store

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
    exported event is.
    """

    events_read: int = 0
    events_written: int = 0
    rewritten_after_shrinking: int = 0
    placeholders: int = 0
    duplicate_rows: int = 0
    held_back_unsettled: int = 0
    query_calls: int = 0
    write_calls: int = 0
    bytes_sent: int = 0
    pages: int = 0
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


#: Entries mapped before they are handed to the writer thread (rounded up to whole write batches).
WRITE_CHUNK_ENTRIES = 1000

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
    ids: list[int]
    attributes: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    new_users: dict[int, LookerUser] = field(default_factory=dict)


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

    def entries(self, read: _Read) -> Iterator[bytes]:
        """The page's serialised log entries."""
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
            yield log_entry_bytes(LookerEvent(row, attributes.get(event_id(row) or -1, ())), row_context)


class _HistoryStream(_Stream):
    name = "history"
    explore = HISTORY

    def __init__(self, context: EntryContext, max_running: timedelta, include_own_queries: bool = False) -> None:
        self.context, self.max_running, self.users = context, max_running, {}
        self.include_own_queries = include_own_queries

    def ready(self, rows: list[dict[str, Any]], until: datetime, now: datetime) -> int:
        return min(super().ready(rows, until, now), finished_prefix(rows, now, self.max_running))

    def entries(self, read: _Read) -> Iterator[bytes]:
        return (to_history_entry(row, self.context).SerializeToString() for row in read.page
                if self.include_own_queries or not own_system_activity_query(row, self.context))


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

        ``on_page(stream, stream_summary, newest_time)`` is called after each page is committed.
        Raises ExportError, with the summary of what was done, when anything was left unwritten.
        """
        started = time.monotonic()
        deadline = started + self.config.run_budget_seconds
        summary = RunSummary()
        self.sink.stats = WriteStats()
        self.source.query_calls = 0
        try:
            self._run(summary, deadline, window, on_page)
        except Exception as exc:  # every failure is reported with what was done so far
            summary.error = str(exc)
            raise ExportError(str(exc), summary) from exc
        finally:
            stats = self.sink.stats
            summary.events_written = stats.entries_written
            summary.rewritten_after_shrinking = stats.shrunk
            summary.placeholders = stats.placeholders
            summary.write_calls = stats.write_calls
            summary.bytes_sent = stats.bytes_sent
            summary.query_calls = self.source.query_calls
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
             on_page: Callable[[str, StreamSummary, datetime | None], None] | None) -> None:
        host = self.config.looker_host
        stored, token = self.store.load(deadline=deadline)
        cursor = Cursor.from_json(stored, self.store.uri, host) if stored else Cursor(host)
        now = self.clock().replace(microsecond=0)
        # One reader thread makes every Looker call (the SDK session is never shared) and reads the next
        # page while this one is mapped; one writer thread writes entries while the next ones are mapped.
        reader = ThreadPoolExecutor(1, thread_name_prefix="looker-read")
        writer = ThreadPoolExecutor(1, thread_name_prefix="logging-write")
        try:
            exporter_user_id = reader.submit(self.source.api_user_id, deadline).result()  # once per instance
            for stream in self._streams(now, exporter_user_id):
                stream_summary = summary.streams.setdefault(stream.name, StreamSummary())
                token = self._run_stream(stream, cursor, token, now, deadline, window, summary, stream_summary,
                                         on_page, reader, writer)
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True, cancel_futures=True)

    def _run_stream(self, stream: _Stream, cursor: Cursor, token: int, now: datetime, deadline: float,
                    window: Window | None, summary: RunSummary, result: StreamSummary,
                    on_page: Callable[[str, StreamSummary, datetime | None], None] | None,
                    reader: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> int:
        """The page loop of one stream; returns the cursor's new version token.

        Page k + 1 is read (in ``reader``) while page k is mapped and written; the cursor moves past page k
        only once Cloud Logging has accepted all of it.
        """
        config, explore = self.config, stream.explore
        position = cursor.position(stream.name)
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
            ids = [number for number in (whole_number(row.get(explore.id_field)) for row in page)
                   if number is not None]
            found = _Read(rows, ready, page, ids)
            if page:
                stream.lookups(found, known_users, now, deadline)
            return found

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
                written_before = self.sink.stats.entries_written
                if page:
                    self._write(stream.entries(fetched), stream, writer, deadline)
                result.written += self.sink.stats.entries_written - written_before
                newest = max((t for t in (parse_looker_time(r.get(explore.time_field)) for r in page) if t),
                             default=None)
                if newest is not None:
                    result.newest_time = newest.isoformat()
                if ids:
                    position.last_id, position.not_before = max(ids), None
                elif position.last_id is None:
                    position.not_before = (since if since and since > until else until).strftime(
                        "%Y-%m-%d %H:%M:%S")
                if ids or position.last_id is None:
                    cursor.updated_at = now.isoformat()
                    token = self.store.save(cursor.to_json(), token, deadline=deadline)
                    result.cursor_after = position.last_id
                if on_page is not None:
                    on_page(stream.name, result, newest)
                if done or not ids:
                    result.caught_up = done
                    break
                if deadline - time.monotonic() < 2 * (time.monotonic() - page_started) + 5:
                    log.info("Time budget nearly spent after %d pages; the next run continues %s from id %s",
                             summary.pages, stream.name, position.last_id)
                    break
        finally:
            pending.cancel()  # a read not started yet is not needed any more
        result.lag_seconds = 0.0 if result.caught_up else (
            round((now - datetime.fromisoformat(result.newest_time)).total_seconds(), 1)
            if result.newest_time else None)
        return token

    def _write(self, entries: Iterator[bytes], stream: _Stream, writer: ThreadPoolExecutor,
               deadline: float) -> None:
        """Write entries in chunks, each (in ``writer``) while the next is mapped; return once all are written.

        At most two chunks are in flight. After a failure no further chunk starts, and the writes under
        way end before the error is raised, so nothing is written behind the caller's back.
        """
        batch = self.config.write_batch_entries
        chunk_size = batch * -(-WRITE_CHUNK_ENTRIES // batch)
        stand_in = self._placeholder(stream)
        failed = threading.Event()

        def write(chunk: list[bytes]) -> None:
            if failed.is_set():
                return
            try:
                self.sink.write(chunk, deadline=deadline, shrink=self._shrink, placeholder=stand_in)
            except BaseException:
                failed.set()
                raise

        writes: list[Future[None]] = []
        chunk: list[bytes] = []
        try:
            for entry in entries:
                chunk.append(entry)
                if len(chunk) == chunk_size:
                    if len(writes) >= 2:
                        writes[-2].result()
                    writes.append(writer.submit(write, chunk))
                    chunk = []
            if chunk:
                writes.append(writer.submit(write, chunk))
            for done in writes:
                done.result()
        except BaseException:
            failed.set()
            wait(writes)
            raise

    @staticmethod
    def _shrink(entry: Message, reason: str) -> Message:
        return shrink(entry, SHRUNK_ENTRY_BYTES)

    @staticmethod
    def _placeholder(stream: _Stream) -> Callable[[Message, str], Message]:
        context = stream.context

        def stand_in(entry: Message, reason: str) -> Message:
            return placeholder(entry, context, reason)

        return stand_in


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
