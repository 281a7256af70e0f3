"""The cursor-commit window: one stream's entries go to the writer thread in chunks, and a saver thread stores
the cursor behind the chunks Cloud Logging accepted, beside the writes; no more than ``MAX_UNCOMMITTED_ENTRIES``
are ever sent beyond what is stored.

Owns what it writes to (the sink and the cursor store); knows nothing of Looker or of how entries are built.
"""

from __future__ import annotations

import itertools
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

#: At most this many entries are sent beyond the stored cursor (ten chunks, being written or accepted but not
#: yet behind a stored cursor): all that any single failure (a write stored but answered too late, a lost
#: cursor write, a killed process) sends again; about 12.5 MB at ~1.25 KB an entry, ingested once more.
MAX_UNCOMMITTED_ENTRIES = 10 * WRITE_CHUNK_ENTRIES

#: While chunks keep coming, the cursor is stored once the oldest accepted chunk not yet behind it has waited
#: this long (and no sooner than the store allows): a failure then re-sends little even below the bound.
SAVE_AFTER_SECONDS = 1.0


def chunk_entries(batch_entries: int) -> int:
    """Entries per chunk: whole write batches (``WRITE_BATCH_ENTRIES`` is at most ``WRITE_CHUNK_ENTRIES``)."""
    return max(1, WRITE_CHUNK_ENTRIES // batch_entries) * batch_entries


class Cancelled(Exception):
    """A write chunk (or a page's lookups) not sent because an earlier one failed."""


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


class CommitWindow:
    """Hands one stream's entries to the writer thread in chunks; a saver thread stores the cursor behind them.

    At most ``MAX_UNCOMMITTED_ENTRIES`` entries are ever sent beyond the stored cursor: a chunk that would
    pass that waits until the saver has stored the cursor past the oldest chunks Cloud Logging accepted
    (events come in id order). The saver runs beside the writes, never more often than the store allows
    (Cloud Storage: once a second): when the sender waits for room and no write is under way, or, while
    chunks keep coming, just after one is handed to the writer once the oldest accepted chunk has waited
    ``SAVE_AFTER_SECONDS`` (so a stored cursor names, in ``sent_through``, what was on its way). After a
    failure no further chunk starts, the writes under way end, and the cursor stays before the first chunk
    not accepted (so before any entry refused even as a placeholder).

    One class over the usual 150 lines on purpose: it is one protocol under one lock (``lock``) between three
    threads, the sender (``send``, ``finish``, ``abandon``), the writer's callbacks (``_written``) and the
    saver (``_save_loop``), and every method reads or moves the same window (``in_flight``, ``accepted``,
    ``snapshot``, ``saving``, ``waiting``). Split, each part would reach into the others' state under a lock
    it does not own; whole, the invariant (at most ``MAX_UNCOMMITTED_ENTRIES`` beyond the stored cursor) is
    checked in one place.
    """

    def __init__(self, sink: Sink, store: StateStore, run: RunState, repair: Repair, position: Position,
                 result: StreamSummary, writer: ThreadPoolExecutor, batch_entries: int) -> None:
        self.sink, self.store, self.run, self.repair = sink, store, run, repair
        self.position, self.result, self.writer = position, result, writer
        self.chunk_size = chunk_entries(batch_entries)
        self.interval = store.min_save_interval
        self.failed = threading.Event()
        self.lock = threading.Condition()
        #: Chunks sent beyond the stored cursor, oldest first; the first ``accepted`` of them Cloud Logging accepted.
        self.in_flight: deque[_Chunk] = deque()
        self.accepted = 0
        self.unsaved = 0  # entries in ``in_flight``
        self.accepted_at: float | None = None  # when the oldest accepted chunk not yet stored was accepted
        self.waiting = False  # the sender waits for room, or for the end
        self.saving = False
        self.closed = False
        self.error: BaseException | None = None  # the first failure of a write or of a cursor write
        self.snapshot: tuple[bytes, int, int | None] | None = None  # taken by the sender, stored by the saver
        #: Ids up to this one were sent by an earlier run (as its last cursor write said): sending them again
        #: counts in ``entries_resent``.
        self.earlier_sent = position.sent_through
        self.sent_through = position.last_id
        self.changed = position.last_id is None  # a first run stores where it started even with nothing found
        self.stored_id = position.last_id  # the last id of the cursor as last stored
        self.saver = threading.Thread(target=self._save_loop, name="cursor-save", daemon=True)
        self.saver.start()

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

    def start_at(self, not_before: str) -> None:
        """Nothing was ever exported: store the time before which all was read."""
        with self.lock:
            self.position.not_before = not_before
            self.changed = True

    def _submit(self, chunk: list[bytes], last_id: int | None) -> None:
        with self.lock:
            self._raise()
            if last_id is not None:
                self.sent_through = max(self.sent_through or last_id, last_id)
            if self.in_flight and self.unsaved + len(chunk) > MAX_UNCOMMITTED_ENTRIES:
                self.waiting = True
                self.lock.notify_all()
                while self.error is None and self.in_flight and self.unsaved + len(chunk) > MAX_UNCOMMITTED_ENTRIES:
                    self.lock.wait()
                self.waiting = False
                self._raise()
            done: Future[None] = self.writer.submit(self._write, chunk)
            self.in_flight.append(_Chunk(done, len(chunk), last_id))
            self.unsaved += len(chunk)
            if self._due(time.monotonic()) == 0 and not self.waiting:
                self.snapshot = self._snapshot()  # the chunk just handed over is named in ``sent_through``
                self.lock.notify_all()
        done.add_done_callback(self._written)

    def _write(self, chunk: list[bytes]) -> None:  # in the writer thread
        if self.failed.is_set():
            raise Cancelled
        try:
            self.sink.write(chunk, self.run.stats, deadline=self.run.deadline, repair=self.repair)
        except BaseException:
            self.failed.set()
            raise

    def _written(self, done: Future[None]) -> None:  # in the writer thread, or the sender's when done already
        with self.lock:
            error = done.exception()
            if error is not None and self.error is None and not isinstance(error, Cancelled):
                self.error = error
            self._accept_done()
            self.lock.notify_all()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _accept_done(self) -> None:
        """Move the position past the leading chunks Cloud Logging has accepted so far (holding the lock)."""
        while self.accepted < len(self.in_flight):
            chunk = self.in_flight[self.accepted]
            if not chunk.done.done() or chunk.done.exception() is not None:
                return
            self.accepted += 1
            if self.accepted_at is None:
                self.accepted_at = time.monotonic()
            if chunk.last_id is not None:
                self.position.last_id = max(self.position.last_id or chunk.last_id, chunk.last_id)
                self.position.not_before = None
                self.changed = True

    def _due(self, now: float) -> float | None:
        """Seconds until the cursor should be stored (0: now), or None until something changes (holding the lock)."""
        if self.saving or self.snapshot is not None or self.error is not None:
            return None
        allowed = 0.0 if self.run.saved_at is None else max(0.0, self.run.saved_at + self.interval - now)
        if self.waiting:  # the sender waits: store what is accepted once the writes under way are done
            drained = self.accepted == len(self.in_flight)
            # (accepted chunks without a numeric id move nothing, but must leave the window all the same)
            return allowed if drained and (self.changed or self.accepted > 0) else None
        if not self.changed:
            return None
        if self.accepted_at is None:  # only the start position changed: the end stores it
            return None
        if self.interval == 0 and sum(c.entries for c in itertools.islice(self.in_flight, self.accepted)) \
                >= MAX_UNCOMMITTED_ENTRIES // 2:
            return 0.0
        return max(allowed, self.accepted_at + SAVE_AFTER_SECONDS - now)

    def _snapshot(self) -> tuple[bytes, int, int | None]:
        """The cursor as it is now, how many leading chunks it covers and its last id (holding the lock)."""
        position = self.position
        position.sent_through = self.sent_through if self.sent_through is not None and (
            position.last_id is None or self.sent_through > position.last_id) else None
        self.run.cursor.updated_at = self.run.now.isoformat()
        self.changed, self.accepted_at = False, None
        return self.run.cursor.to_json(), self.accepted, position.last_id

    def _save_loop(self) -> None:  # the saver thread
        with self.lock:
            while not self.closed:
                if self.snapshot is None:  # else the sender took one just after handing a chunk over
                    due = self._due(time.monotonic()) if self.waiting else None
                    if due is None or due > 0:
                        self.lock.wait(due)
                        continue
                    self.snapshot = self._snapshot()
                data, chunks, last_id = self.snapshot
                self.snapshot, self.saving = None, True
                self.lock.release()
                try:
                    token = self.store.save(data, self.run.token, deadline=self.run.deadline)
                except BaseException as exc:
                    error: BaseException | None = exc
                else:
                    error = None
                finally:
                    self.lock.acquire()
                self.saving = False
                if error is not None:
                    self.error = self.error or error
                    self.failed.set()
                else:
                    self.run.token, self.run.saved_at = token, time.monotonic()
                    self.run.cursor_writes += self.store.persistent  # a dry run's memory store keeps nothing
                    for _ in range(chunks):
                        self.unsaved -= self.in_flight.popleft().entries
                    self.accepted -= chunks
                    self.result.cursor_after = self.stored_id = last_id
                self.lock.notify_all()

    def _stop_saver(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify_all()
        self.saver.join()

    def finish(self) -> None:
        """Wait for every chunk and for the cursor stored past them."""
        with self.lock:
            self.waiting = True
            self.lock.notify_all()
            while self.error is None and (self.changed or self.saving or self.snapshot is not None
                                          or self.accepted < len(self.in_flight)):
                self.lock.wait()
            self.waiting = False
        self._stop_saver()
        self._raise()

    def abandon(self, error: BaseException) -> None:
        """After a failure: start no further chunk, let the writes (and a cursor write) under way end, and store
        the cursor past the chunks accepted before the first one that was not, if the cursor itself did not fail."""
        self.failed.set()
        with self.lock:
            writes = [chunk.done for chunk in self.in_flight]
        wait(writes)
        self._stop_saver()
        if isinstance(error, StateError) or isinstance(self.error, StateError):
            return
        with self.lock:
            attempted = [chunk.last_id for chunk in self.in_flight
                         if chunk.last_id is not None and not isinstance(chunk.done.exception(), Cancelled)]
            self.sent_through = max([*attempted, self.position.last_id or 0]) or None
            self._accept_done()
            stored = max(self.position.sent_through or 0, self.position.last_id or 0)
            self.changed = self.position.last_id != self.stored_id or (self.sent_through or 0) > stored
            if not self.changed:
                return
            data, _, last_id = self._snapshot()
        try:
            self.run.pace(self.store)
            self.run.token = self.store.save(data, self.run.token, deadline=self.run.deadline)
            self.run.saved_at = time.monotonic()
            self.run.cursor_writes += self.store.persistent  # a dry run's memory store keeps nothing
            self.result.cursor_after = last_id
        except StateError as exc:
            log.warning("The cursor could not be stored after the failure (%s); the next run sends again "
                        "the entries after it", exc)
