"""The cursor-commit window: one stream's entries go to the writer thread in chunks, and the cursor moves
behind the chunks Cloud Logging accepted, never more than ``MAX_UNCOMMITTED_ENTRIES`` ahead of what is stored.

Owns what it writes to (the sink and the cursor store); knows nothing of Looker or of how entries are built.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from ..entries.repair import Repair
from ..sink import Sink, WriteStats
from ..state import Cursor, Position, StateError, StateStore
from .summary import StreamSummary

log = logging.getLogger("looker_audit_export.pipeline")  # the name its lines carried before the split


#: Entries mapped before they are handed to the writer thread (whole write batches, at most this many).
WRITE_CHUNK_ENTRIES = 1000

#: At most this many entries are sent beyond the stored cursor (two chunks in flight): all that any single
#: failure (a write stored but answered too late, a lost cursor write, a killed process) sends again.
MAX_UNCOMMITTED_ENTRIES = 2 * WRITE_CHUNK_ENTRIES


def chunk_entries(batch_entries: int) -> int:
    """Entries per chunk: whole write batches (``WRITE_BATCH_ENTRIES`` is at most ``WRITE_CHUNK_ENTRIES``)."""
    return max(1, WRITE_CHUNK_ENTRIES // batch_entries) * batch_entries


class _Cancelled(Exception):
    """A write chunk not sent because an earlier one failed."""


@dataclass
class _Chunk:
    """Entries handed to the writer thread: their write, how many, and the last numeric id among them."""

    done: Future[None]
    entries: int
    last_id: int | None


@dataclass
class RunState:
    """What one run keeps while it runs: its own counters (runs may overlap in one process) and the cursor."""

    cursor: Cursor
    token: int
    deadline: float
    now: datetime
    stats: WriteStats = field(default_factory=WriteStats)
    resent_after_earlier_run: int = 0
    cursor_writes: int = 0
    saved_at: float | None = None

    def pace(self, store: StateStore) -> None:
        """Wait until the store allows this run's next cursor write (GCS: a second after the last one)."""
        if self.saved_at is not None:
            wait_for = self.saved_at + store.min_save_interval - time.monotonic()
            if wait_for > 0:
                time.sleep(min(wait_for, max(0.0, self.deadline - time.monotonic())))

    def save(self, store: StateStore) -> None:
        """Store the cursor (with the precondition), no sooner after this run's last write than the store allows."""
        self.pace(store)
        self.cursor.updated_at = self.now.isoformat()
        self.token = store.save(self.cursor.to_json(), self.token, deadline=self.deadline)
        self.saved_at = time.monotonic()
        self.cursor_writes += store.persistent  # a dry run's memory store keeps nothing: 0 writes


class CommitWindow:
    """Hands one stream's entries to the writer thread in chunks and moves its cursor behind them.

    At most ``MAX_UNCOMMITTED_ENTRIES`` entries are ever sent beyond the stored cursor: before a chunk
    would pass that, the oldest chunks must be accepted by Cloud Logging and the cursor stored past the
    last id of the accepted ones (events come in id order). After a failure no further chunk starts, the
    writes under way end, and the cursor stays before the first chunk not accepted (so before any entry
    refused even as a placeholder).
    """

    def __init__(self, sink: Sink, store: StateStore, run: RunState, repair: Repair, position: Position,
                 result: StreamSummary, writer: ThreadPoolExecutor, batch_entries: int) -> None:
        self.sink, self.store, self.run, self.repair = sink, store, run, repair
        self.position, self.result, self.writer = position, result, writer
        self.chunk_size = chunk_entries(batch_entries)
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
            self.sink.write(chunk, self.run.stats, deadline=self.run.deadline, repair=self.repair)
        except BaseException:
            self.failed.set()
            raise

    def _settle(self, room: int) -> None:
        """Wait for the oldest chunks until ``room`` more entries fit, and store the cursor past them."""
        while self.in_flight and self.unsettled + room > MAX_UNCOMMITTED_ENTRIES:
            self.in_flight[0].done.result()  # raises that chunk's error
            self.run.pace(self.store)  # meanwhile the next chunks may be accepted too: one write for all
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
        self.run.save(self.store)
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
