"""One export run: read pages after the cursor, write them, then move the cursor past them.

The loop and its threads (two read Looker ahead, one writes Cloud Logging, the commit window's saver stores
the cursor) over the streams the configuration names; returns what it did. Knows the rooms below it; built
by ``wiring``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import Config
from ..entries.repair import Repair
from ..looker.reader import LookerSource
from ..sink import Sink
from ..state import Cursor, Position, StateStore
from ..values import parse_looker_time, whole_number
from .commit import Cancelled, CommitWindow, RunState
from .streams import Read, Stream, build_streams, unique_rows
from .summary import ExportError, RunSummary, StreamSummary

log = logging.getLogger("looker_audit_export.pipeline")  # the name its lines carried before the split

#: Pages read (rows, attributes, users) ahead of the one being mapped: the rows of page k + 2 are read while the
#: lookups of page k + 1 are and page k is mapped. Each waiting page holds its rows and attributes in memory.
READ_AHEAD_PAGES = 2


@dataclass(frozen=True)
class Window:
    """A fixed range to export (a backfill) instead of "from the cursor to now"."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class _Span:
    """What one stream reads in a run: rows up to ``upper``, from ``since`` when it has no cursor yet (else
    after its cursor); those created before ``until`` (the settle point) may be exported now."""

    since: datetime | None
    until: datetime
    upper: datetime

    @classmethod
    def of(cls, config: Config, now: datetime, window: Window | None, position: Position) -> _Span:
        upper = min(now, window.until) if window else now
        until = min(now - timedelta(seconds=config.settle_seconds), upper)
        since = None
        if position.last_id is None:
            default_start = window.since if window else now - timedelta(minutes=config.initial_lookback_minutes)
            since = parse_looker_time(position.not_before) or default_start
        return cls(since, until, upper)


def _from(entries: Iterator[bytes | None], page: list[dict[str, Any]], since: datetime | None,
          time_field: str) -> Iterator[bytes | None]:
    """The page's entries, without those of rows created before ``since`` (the time filters are widened to be
    safe in any zone, so the exact cut is made here, on each row's converted time); the cursor passes them."""
    for entry, row in zip(entries, page, strict=True):
        created = parse_looker_time(row.get(time_field)) if since is not None else None
        yield None if created is not None and since is not None and created < since else entry


class _ReadAhead:
    """One stream's pages, read ahead of the mapping.

    The reader thread reads a page's rows and, as soon as they are in (their last id is the next keyset), the
    next page's rows, while the lookup thread reads the page's attributes and new users: a page of rows and a
    page of lookups are read at once, so at the deployed CPU share a run is bound by the slower of Looker and
    the CPU, not by their sum. At most ``READ_AHEAD_PAGES`` pages wait beside the one being mapped. After a
    failure, or once the loop ends, no further page is read or looked up.
    """

    def __init__(self, read: Callable[[int | None], Read], lookups: Callable[[Read], None],
                 after_id: int | None, reader: ThreadPoolExecutor, lookup: ThreadPoolExecutor) -> None:
        self.read, self.lookups, self.lookup = read, lookups, lookup
        self.ready: queue.Queue[Future[Read]] = queue.Queue()
        self.room = threading.Semaphore(READ_AHEAD_PAGES)
        self.stopped = threading.Event()  # no further page is read
        self.skip_lookups = threading.Event()  # nor looked up (one failed, or the loop ended)
        reader.submit(self._produce, after_id)

    def _produce(self, after_id: int | None) -> None:  # the reader thread
        while True:
            self.room.acquire()
            if self.stopped.is_set():
                return
            try:
                found = self.read(after_id)
            except BaseException as exc:
                failed: Future[Read] = Future()
                failed.set_exception(exc)
                self.ready.put(failed)
                return
            self.ready.put(self.lookup.submit(self._complete, found))
            if found.last:
                return
            after_id = max(found.ids)

    def _complete(self, found: Read) -> Read:  # the lookup thread
        if self.skip_lookups.is_set():
            raise Cancelled
        try:
            self.lookups(found)
        except BaseException:
            self.skip_lookups.set()
            self.stopped.set()
            raise
        return found

    def next(self) -> Read:
        """The next page, with its lookups; raises what reading it raised."""
        found = self.ready.get().result()
        self.room.release()
        return found

    def close(self) -> None:
        """Read and look up no further page (a query under way ends)."""
        self.skip_lookups.set()
        self.stopped.set()
        self.room.release()


def _count(summary: RunSummary, result: StreamSummary, fetched: Read) -> None:
    """Count one page into the run's and the stream's summaries."""
    rows, ready = len(fetched.rows), fetched.ready
    summary.pages += 1
    summary.events_read += rows
    result.read += rows
    result.held_back += rows - ready
    summary.held_back_unsettled += rows - ready
    summary.duplicate_rows += ready - len(fetched.page)


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
        run: RunState | None = None
        try:
            run = self._start(deadline)
            self._run(run, summary, window, on_page)
        except Exception as exc:  # every failure is reported with what was done so far
            summary.error = str(exc)
            raise ExportError(str(exc), summary) from exc
        finally:
            _finish(summary, run, started)
        return summary

    def _start(self, deadline: float) -> RunState:
        """The run's state: the cursor as stored (with the token a later write must match) and the time now."""
        host = self.config.looker_host
        stored, token = self.store.load(deadline=deadline)
        cursor = Cursor.from_json(stored, self.store.uri, host) if stored else Cursor(host)
        # Before anything is sent: prove that the cursor can be saved. A store that cannot be written (read-only,
        # a grant revoked, a bucket deleted) then costs no entry, however many ticks it lasts.
        self.store.probe(deadline=deadline)
        return RunState(cursor, token, deadline, self.clock().replace(microsecond=0))

    def _run(self, run: RunState, summary: RunSummary, window: Window | None,
             on_page: Callable[[str, StreamSummary, datetime | None], None] | None) -> None:
        # Two threads make every Looker call of this run: the reader reads pages of rows, the lookup thread
        # their attributes and users, ahead of the mapping (runs overlapping in one instance share the SDK
        # session, each from threads of its own); one writer thread writes entries while the next ones are
        # mapped. They belong to this run, so what they count (queries, writes) is this run's alone.
        reader = ThreadPoolExecutor(1, thread_name_prefix="looker-read")
        lookup = ThreadPoolExecutor(1, thread_name_prefix="looker-lookup")
        writer = ThreadPoolExecutor(1, thread_name_prefix="logging-write")
        try:
            exporter_user_id = reader.submit(self.source.instance.api_user_id, run.deadline).result()  # once
            for stream in build_streams(self.config, self.source, run.now, exporter_user_id):
                stream_summary = summary.streams.setdefault(stream.name, StreamSummary())
                self._run_stream(stream, run, window, summary, stream_summary, on_page, reader, lookup, writer)
        finally:
            summary.query_calls = sum(thread.submit(lambda: self.source.query_calls).result()  # each one's count
                                      for thread in (reader, lookup))
            summary.time_reading = self.source.reading_summary()
            reader.shutdown(wait=True, cancel_futures=True)
            lookup.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True, cancel_futures=True)

    def _read(self, stream: Stream, span: _Span, run: RunState, after_id: int | None) -> Read:
        """One page after ``after_id`` and what of it may be exported now (in the reader thread)."""
        explore, now, deadline = stream.explore, run.now, run.deadline
        rows = self.source.page(explore, after_id=after_id, since=span.since, until=span.upper,
                                limit=self.config.page_size, deadline=deadline)
        ready = stream.ready(rows, span.until, now)
        page = unique_rows(rows[:ready], explore.id_field)
        found = Read(rows, ready, page, [whole_number(row.get(explore.id_field)) for row in page])
        found.last = len(rows) < self.config.page_size or ready < len(rows) or not found.ids
        return found

    def _run_stream(self, stream: Stream, run: RunState, window: Window | None, summary: RunSummary,
                    result: StreamSummary, on_page: Callable[[str, StreamSummary, datetime | None], None] | None,
                    reader: ThreadPoolExecutor, lookup: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> None:
        """The page loop of one stream (one function over the usual 60 lines on purpose: the loop's three exits,
        caught up, budget spent, failure, and the cleanup each needs, finish or abandon, read best together).

        The next pages are read (``_ReadAhead``) while this one is mapped and written. Entries go to the
        writer in chunks; the commit window's saver stores the cursor past the chunks Cloud Logging accepted,
        in id order, beside the writes, and a chunk waits only when more than ``MAX_UNCOMMITTED_ENTRIES``
        would otherwise be sent beyond the stored cursor.
        """
        position = run.cursor.position(stream.name)
        result.cursor_before = result.cursor_after = position.last_id
        span = _Span.of(self.config, run.now, window, position)
        sender = CommitWindow(self.sink, self.store, run, Repair(stream.context), position, result, writer,
                              self.config.write_batch_entries)
        written_before = run.stats.entries_written

        def lookups(found: Read) -> None:  # in the lookup thread
            if found.page:
                stream.lookups(found, run.now, run.deadline)

        pages = _ReadAhead(lambda after_id: self._read(stream, span, run, after_id), lookups, position.last_id,
                           reader, lookup)
        reached: datetime | None = None  # the newest row time exported
        try:
            while True:
                page_started = time.monotonic()
                fetched = pages.next()
                stream.users.update(fetched.new_users)
                ids = fetched.ids
                done = len(fetched.rows) < self.config.page_size or fetched.ready < len(fetched.rows)
                _count(summary, result, fetched)
                if fetched.page:
                    sender.send(_from(stream.entries(fetched), fetched.page, span.since, stream.explore.time_field),
                                fetched.row_ids)
                newest = max((t for t in (parse_looker_time(r.get(stream.explore.time_field)) for r in fetched.page)
                              if t), default=None)
                if newest is not None:
                    reached, result.newest_time = newest, newest.isoformat()
                if not ids and position.last_id is None and sender.sent_through is None:  # nothing yet, ever
                    start = span.since if span.since and span.since > span.until else span.until
                    sender.start_at(start.strftime("%Y-%m-%d %H:%M:%S"))
                result.written = run.stats.entries_written - written_before
                if on_page is not None:
                    on_page(stream.name, result, newest)
                if fetched.last:
                    result.caught_up = done
                    break
                if run.deadline - time.monotonic() < 2 * (time.monotonic() - page_started) + 5:
                    log.info("Time budget nearly spent after %d pages; the next run continues %s from id %s",
                             summary.pages, stream.name, sender.sent_through)
                    break
            pages.close()  # no page beyond the last one or the budget
            sender.finish()
            result.written = run.stats.entries_written - written_before
            if on_page is not None:  # what the last chunks added
                on_page(stream.name, result, None)
        except BaseException as exc:
            pages.close()
            sender.abandon(exc)
            raise
        finally:
            result.written = run.stats.entries_written - written_before
        result.lag_seconds = 0.0 if result.caught_up else (
            round((run.now - reached).total_seconds(), 1) if reached else None)


def _finish(summary: RunSummary, run: RunState | None, started: float) -> None:
    """Fill in what the run did from its state (if it got as far as reading the cursor), and its totals."""
    if run is not None:
        stats = run.stats
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
