"""One export run: read pages after the cursor, write them, then move the cursor past them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from .config import Config, ConfigError
from .credentials import CachedCredentials, LookerCredentials
from .logs import mask_secret
from .looker_source import LookerSource
from .mapping import (
    SHRUNK_ENTRY_BYTES,
    EntryContext,
    LookerEvent,
    LookerUser,
    event_id,
    parse_looker_time,
    placeholder,
    shrink,
    to_log_entry,
)
from .sink import CloudLoggingSink, Sink, WriteStats, logging_client
from .state import Cursor, MemoryStateStore, StateStore, state_store

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one run did; logged as one structured line at its end."""

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
    duration_seconds: float = 0.0
    caught_up: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExportError(RuntimeError):
    """A run left events unwritten; the cursor stays before them so the next delivery retries."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


#: A row time further than this after the settle point cannot be true (the query asked for rows before now).
IMPLAUSIBLE_FUTURE = timedelta(days=1)


def settled_prefix(rows: list[dict[str, Any]], until: datetime) -> int:
    """How many leading rows (in id order) were created before ``until`` and may be exported now.

    Rows without a readable time, or with a time implausibly far in the future, count as settled, or
    they would block the cursor for ever.
    """
    horizon = until + IMPLAUSIBLE_FUTURE
    for index, row in enumerate(rows):
        created = parse_looker_time(row.get("event.created_time"))
        if created is not None and until <= created < horizon:
            return index
    return len(rows)


def unique_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a repeated numeric ``event.id`` removed; the first one is kept."""
    seen: set[int] = set()
    kept: list[dict[str, Any]] = []
    for row in rows:
        number = event_id(row)
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
            number = event_id({"event.id": row.get(key)})
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


class Exporter:
    """Runs exports for one configuration; keeps its clients (and the Looker session) between runs."""

    def __init__(self, config: Config, source: LookerSource, sink: Sink, store: StateStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.source = source
        self.sink = sink
        self.store = store
        self.clock = clock

    def run(self) -> RunSummary:
        """Export what is settled after the cursor, within the time budget; raise ExportError on failure."""
        started = time.monotonic()
        deadline = started + self.config.run_budget_seconds
        summary = RunSummary()
        self.sink.stats = WriteStats()
        self.source.query_calls = 0
        try:
            self._run(summary, deadline)
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
        return summary

    def _run(self, summary: RunSummary, deadline: float) -> None:
        config = self.config
        host = config.looker_host
        stored, token = self.store.load(deadline=deadline)
        cursor = Cursor.from_json(stored, self.store.uri, host) if stored else Cursor(host)
        summary.cursor_before = summary.cursor_after = cursor.last_event_id
        now = self.clock().replace(microsecond=0)
        until = now - timedelta(seconds=config.settle_seconds)
        since = None
        if cursor.last_event_id is None:
            since = parse_looker_time(cursor.not_before) or now - timedelta(minutes=config.initial_lookback_minutes)
        users: dict[int, LookerUser] = {}
        context = EntryContext(config.log_resource_name, host, users, fallback_time=now)

        while True:
            page_started = time.monotonic()
            rows = self.source.events(after_id=cursor.last_event_id, since=since, until=now,
                                      limit=config.page_size, deadline=deadline)
            summary.pages += 1
            summary.events_read += len(rows)
            ready = settled_prefix(rows, until)
            summary.held_back_unsettled += len(rows) - ready
            page = unique_rows(rows[:ready])
            summary.duplicate_rows += ready - len(page)
            ids = [number for number in map(event_id, page) if number is not None]
            if page:
                self._write(page, ids, context, users, now, deadline)
            if ids:
                cursor.last_event_id = max(ids)
                cursor.not_before = None
            elif cursor.last_event_id is None:
                cursor.not_before = (since if since and since > until else until).strftime("%Y-%m-%d %H:%M:%S")
            if ids or cursor.last_event_id is None:
                cursor.updated_at = now.isoformat()
                token = self.store.save(cursor.to_json(), token, deadline=deadline)
                summary.cursor_after = cursor.last_event_id
            if len(rows) < config.page_size or ready < len(rows) or not ids:
                summary.caught_up = len(rows) < config.page_size or ready < len(rows)
                return
            page_seconds = time.monotonic() - page_started
            if deadline - time.monotonic() < 2 * page_seconds + 5:
                log.info("Time budget nearly spent after %d pages; the next run continues from event %s",
                         summary.pages, cursor.last_event_id)
                return

    def _write(self, page: list[dict[str, Any]], ids: list[int], context: EntryContext,
               users: dict[int, LookerUser], now: datetime, deadline: float) -> None:
        attributes = self.source.attributes(min(ids), max(ids), until=now, deadline=deadline) if ids else {}
        missing = _user_ids(page) - users.keys()
        if missing:
            users.update(self.source.users(missing, until=now, deadline=deadline))
        times = [parse_looker_time(row.get("event.created_time")) for row in page]
        entries = []
        for index, row in enumerate(page):
            row_context = context
            if times[index] is None:  # no readable time: take a neighbour's, the same again on a redo
                row_context = replace(context, fallback_time=_neighbour_time(times, index) or context.fallback_time)
            entries.append(to_log_entry(LookerEvent(row, attributes.get(event_id(row) or -1, ())), row_context))

        def smaller(entry: Message, reason: str) -> Message:
            return shrink(entry, SHRUNK_ENTRY_BYTES)

        def stand_in(entry: Message, reason: str) -> Message:
            return placeholder(entry, context, reason)

        self.sink.write(entries, deadline=deadline, shrink=smaller, placeholder=stand_in)


def build_exporter(config: Config, *, sink: Sink | None = None, credentials: LookerCredentials | None = None,
                   read_only_state: bool = False, credentials_source: str | None = None) -> Exporter:
    """Wire the real clients for ``config``: Secret Manager, Looker, Cloud Logging and the cursor store.

    ``credentials`` given (the CLI's credentials file, named by ``credentials_source``) replace the secret.
    """
    if credentials is not None:
        given = credentials
        source = LookerSource(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                              lambda: given, credentials_source=credentials_source or "the credentials file",
                              backoff_seconds=config.retry_initial_seconds)
    elif config.credentials_secret is not None:
        cached = CachedCredentials(config.credentials_secret, config.secret_manager_emulator_host,
                                   on_fetch=lambda found: mask_secret(found.client_secret))
        source = LookerSource(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                              cached, cached.forget, credentials_source=f"secret {config.credentials_secret}",
                              backoff_seconds=config.retry_initial_seconds)
    else:
        raise ConfigError("LOOKER_CREDENTIALS_SECRET is not set: it must be a secret version like "
                          "projects/P/secrets/S/versions/latest")
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
    return Exporter(config, source, sink, store)

