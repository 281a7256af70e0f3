"""Each System Activity stream's rules, declared: which rows may be exported now, what else a page needs
(the events' attributes and users), and how its rows become entries.

Knows the Looker reader, the explores and the entries rooms; knows nothing of the cursor or Cloud Logging.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..config import Config
from ..entries.events import event_entry
from ..entries.head import EntryContext, is_exporter
from ..entries.history import history_entry
from ..looker.explores import EVENTS, HISTORY, MODEL, Explore
from ..looker.reader import LookerSource
from ..values import LookerEvent, LookerUser, event_id, parse_looker_time, whole_number

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
class Read:
    """One page as the reader threads fetched it: the rows, what may be exported now, and its lookups."""

    rows: list[dict[str, Any]]
    ready: int
    page: list[dict[str, Any]]
    row_ids: list[int | None]
    attributes: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    new_users: dict[int, LookerUser] = field(default_factory=dict)
    #: No page follows: this one is short, held back in part, or has no numeric id to continue after.
    last: bool = False

    @property
    def ids(self) -> list[int]:
        """The page's numeric ids, in page (id) order."""
        return [number for number in self.row_ids if number is not None]


class Stream:
    """How one System Activity explore becomes log entries; the run loop is shared."""

    name = ""
    explore: Explore
    context: EntryContext
    #: Users known so far (the events stream looks up the new ones of each page).
    users: dict[int, LookerUser]

    def ready(self, rows: list[dict[str, Any]], until: datetime, now: datetime) -> int:
        """How many leading rows may be exported now (the rest wait for a later run)."""
        return settled_prefix(rows, until, self.explore.time_field)

    def lookups(self, read: Read, now: datetime, deadline: float) -> None:
        """Fetch what mapping ``read.page`` needs besides its rows (in the lookup thread, page after page)."""

    def entries(self, read: Read) -> Iterator[bytes | None]:
        """The page's serialised log entries, one per row of ``read.page``; None for a row left out."""
        raise NotImplementedError


class EventsStream(Stream):
    name = "events"
    explore = EVENTS

    def __init__(self, source: LookerSource, context: EntryContext, users: dict[int, LookerUser]) -> None:
        self.source, self.context, self.users = source, context, users
        #: Users asked for so far, by the lookup thread (the mapping merges them into ``users`` page by page).
        self.asked: set[int] = set(users)

    def lookups(self, read: Read, now: datetime, deadline: float) -> None:
        if read.ids:
            read.attributes = self.source.attributes(min(read.ids), max(read.ids), until=now, deadline=deadline)
        missing = _user_ids(read.page) - self.asked
        if missing:  # a user Looker no longer knows (deleted) is remembered too, so it is asked for once
            self.asked |= missing
            found = self.source.users(missing, until=now, deadline=deadline)
            read.new_users = {number: found.get(number, LookerUser(number)) for number in missing}

    def entries(self, read: Read) -> Iterator[bytes]:
        page, attributes = read.page, read.attributes
        times = [parse_looker_time(row.get("event.created_time")) for row in page]
        for index, row in enumerate(page):
            row_context = self.context
            if times[index] is None:  # no readable time: take a neighbour's, the same again on a redo
                fallback = _neighbour_time(times, index) or self.context.fallback_time
                row_context = replace(self.context, fallback_time=fallback)
            yield event_entry(LookerEvent(row, attributes.get(event_id(row) or -1, ())), row_context)


class HistoryStream(Stream):
    name = "history"
    explore = HISTORY

    def __init__(self, context: EntryContext, max_running: timedelta, include_own_queries: bool = False) -> None:
        self.context, self.max_running, self.users = context, max_running, {}
        self.include_own_queries = include_own_queries

    def ready(self, rows: list[dict[str, Any]], until: datetime, now: datetime) -> int:
        return min(super().ready(rows, until, now), finished_prefix(rows, now, self.max_running))

    def entries(self, read: Read) -> Iterator[bytes | None]:
        return (history_entry(row, self.context)
                if self.include_own_queries or not own_system_activity_query(row, self.context) else None
                for row in read.page)


def own_system_activity_query(row: Mapping[str, Any], context: EntryContext) -> bool:
    """Whether a history row is one of the exporter's own System Activity queries (144 or more a day).

    Left out of the history stream by default (``HISTORY_INCLUDE_OWN_QUERIES`` keeps them); the cursor
    still moves past them.
    """
    return row.get("query.model") == MODEL and is_exporter(row.get("user.id"), context)


def build_streams(config: Config, source: LookerSource, now: datetime,
                  exporter_user_id: int | None = None) -> list[Stream]:
    """The streams ``config`` names, in order, for a run at ``now``."""
    host = config.looker_host
    streams: list[Stream] = []
    if "events" in config.streams:
        users: dict[int, LookerUser] = {}
        context = EntryContext(config.log_resource_name, host, users, fallback_time=now,
                               exporter_user_id=exporter_user_id)
        streams.append(EventsStream(source, context, users))
    if "history" in config.streams:
        context = EntryContext(config.log_resource(config.history_log_name), host, {}, fallback_time=now,
                               exporter_user_id=exporter_user_id)
        streams.append(HistoryStream(context, timedelta(minutes=config.history_max_running_minutes),
                                     config.history_include_own_queries))
    return streams
