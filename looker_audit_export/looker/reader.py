"""What the export reads from System Activity: keyset pages, the events' attributes, the users, and what
the instance is like (the zone its settings lead to expect, its explores' fields and API user, read once per
instance life; the zone measured is ``measure.py``'s), with every datetime placed in UTC whatever zone the
instance reads it in.

Knows the client, the explores, the measurement and the time-zone rules; knows nothing of entries, streams
or the cursor.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .. import time_truth
from ..time_truth import SPREAD
from ..timezones import (
    TIME_FIELDS,
    TimeReading,
    TimeZoneError,
    WallClock,
    convert_rows,
    effective_zone,
    utc_bound,
    zone_info,
)
from ..values import LookerUser, whole_number
from .client import LookerClient, LookerError, LookerSetupError
from .explores import ATTRIBUTE_FIELDS, MODEL, STREAM_EXPLORES, USER_FIELDS, Explore, refusal, report
from .explores import warning as fields_warning
from .measure import TimeMeasure

log = logging.getLogger("looker_audit_export.looker_source")  # the name its lines carried before the split

ATTRIBUTE_PAGE_ROWS = 20_000

#: A new instance that meets a repeated (fall-back) hour first reads the rows before it, from this long
#: before, up to its cursor (ids and times only, at most CONTEXT_ROWS).
CONTEXT_HOURS = timedelta(hours=2)

CONTEXT_ROWS = 50_000

#: The explore metadata asked for: only each field's name. The full answer holds every attribute of every
#: field (labels, types, SQL); the nested selection is what public clients send
#: (googleapis/genai-toolbox internal/tools/looker/lookercommon/lookercommon.go).
FIELD_NAMES = "fields(dimensions(name),measures(name),filters(name),parameters(name))"


@dataclass
class Instance:
    """What the instance is like, read once per instance life: the zone its settings lead to expect and the
    one System Activity is measured to show times in, its explores' fields, its API user."""

    client: LookerClient
    #: ``LOOKER_QUERY_TIMEZONE``: the zone System Activity shows times in, for an API user that cannot read
    #: the settings, or the zone that explains a measurement the settings do not.
    declared_timezone: str | None = None
    #: What the settings (or LOOKER_QUERY_TIMEZONE) lead to expect, read once.
    expected: TimeReading | None = None
    #: How System Activity shows time, measured (``measure.py``).
    measure: TimeMeasure = field(init=False, repr=False)
    _me: int | None = None
    _fields: dict[str, frozenset[str]] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.measure = TimeMeasure(self.client, self.declared_timezone, self.explore_fields, self.api_user_id)

    @property
    def host(self) -> str:
        return self.client.host

    @property
    def reading(self) -> TimeReading | None:
        """The zone times are converted from, once measured."""
        return self.measure.reading

    def prepare(self, explores: Iterable[str], deadline: float) -> TimeReading:
        """Read the settings and check the fields of ``explores`` once; raise LookerError naming what is wrong.

        Missing required fields refuse the export (every run, with the same message); missing optional
        ones are left out of the queries, with one WARNING per instance life.
        """
        reading = self.expected_reading(deadline)
        for explore in explores:
            if explore in self._checked:
                continue
            found = report(explore, self.explore_fields(explore, deadline))
            if found.missing_required:
                raise LookerSetupError(refusal(found))
            if found.missing_optional:
                log.warning(fields_warning(found))
            self._checked.add(explore)
        return reading

    def expected_reading(self, deadline: float) -> TimeReading:
        """The zone the settings (``GET /api/4.0/setting``) or ``LOOKER_QUERY_TIMEZONE`` lead to expect, read
        once per instance. A 403 or a 404 there (an API user without admin rights; the spec documents 404,
        and Looker answers 404 in several places where it refuses access) leaves the variable to say."""
        if self.expected is None:
            answer = self.client.call(
                "the time zone settings (GET /api/4.0/setting)", lambda timeout: self.client.sdk().get_setting(
                    fields="timezone,allow_user_timezones", transport_options={"timeout": timeout}), deadline,
                {403, 404})
            try:
                if isinstance(answer, int):
                    reading = effective_zone(None, None, self.declared_timezone, forbidden=answer)
                else:
                    reading = effective_zone(answer.allow_user_timezones, answer.timezone, self.declared_timezone,
                                             forbidden=None)
            except TimeZoneError as exc:  # the settings and LOOKER_QUERY_TIMEZONE disagree, or say too little
                raise LookerSetupError(f"Looker {self.host}: {exc}") from None
            log.info("Looker %s time zone settings: %s", self.host, reading.how)
            self.expected = reading
        return self.expected

    # ------------------------------------------------- the measurement (measure.TimeMeasure)
    def verify(self, mark: int, sent: datetime, answered: datetime, deadline: float) -> TimeReading:
        """The zone to convert from: measured, once per instance life, from the query ``mark``."""
        return self.measure.verify(self.expected, mark, sent, answered, deadline)

    def cover(self, rows: list[dict[str, Any]], explore: Explore, mark: int, sent: datetime, answered: datetime,
              deadline: float) -> None:
        """Measure again when a conversion could have gone wrong (``TimeMeasure.cover``)."""
        self.measure.cover(self.expected, rows, explore, mark, sent, answered, deadline)

    def explore_fields(self, explore: str, deadline: float) -> frozenset[str]:
        """The field names of a System Activity explore (metadata, not a query); empty if there is no such explore."""
        if explore not in self._fields:
            answer = self.client.call(
                f"the fields of explore {explore}", lambda timeout: self.client.sdk().lookml_model_explore(
                    MODEL, explore, fields=FIELD_NAMES, transport_options={"timeout": timeout}), deadline, {404})
            names: set[str] = set()
            if not isinstance(answer, int) and answer.fields is not None:
                groups = answer.fields
                for group in (groups.dimensions, groups.measures, groups.filters, groups.parameters):
                    names.update(item.name for item in group or () if item.name)
            self._fields[explore] = frozenset(names)
        return self._fields[explore]

    def api_user_id(self, deadline: float) -> int:
        """The Looker user id of the API credentials (``GET /api/4.0/user``, ``me``), read once per instance.

        Its own System Activity queries show in the query history, and its logins may show as events.
        """
        if self._me is None:
            user = self.client.call("the API user (GET /api/4.0/user)", lambda timeout: self.client.sdk().me(
                fields="id", transport_options={"timeout": timeout}), deadline, set())
            number = None if isinstance(user, int) else whole_number(user.id)
            if number is None:
                raise LookerError(f"Looker {self.host} answered GET /api/4.0/user without a numeric user id")
            self._me = number
        return self._me

    def have(self, explore: str, fields: Iterable[str]) -> tuple[str, ...]:
        """The fields the instance has (all of them before its explores were read)."""
        known = self._fields.get(explore)
        return tuple(name for name in fields if known is None or name in known)

    @staticmethod
    def bound(moment: datetime, *, widen: str) -> str:
        """A time filter bound that is safe in whatever zone Looker reads it: widened by the spread of UTC
        offsets in use (``SPREAD``); rows are cut at the true bound in code, by their converted time."""
        return utc_bound(moment - SPREAD if widen == "earlier" else moment + SPREAD)


@dataclass
class LookerSource:
    """System Activity reader over one client, shared by the runs of an instance."""

    client: LookerClient
    instance: Instance
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The marker, sent and answered time of ``check``'s probe query.
    _probe: tuple[int, datetime, datetime] | None = None

    @property
    def query_calls(self) -> int:
        """How many queries the calling thread has sent to Looker (retries included)."""
        return self.client.query_calls

    @property
    def host(self) -> str:
        return self.client.host

    def page(self, explore: Explore, *, after_id: int | None, since: datetime | None, until: datetime,
             limit: int, deadline: float) -> list[dict[str, Any]]:
        """One keyset page: rows with an id above ``after_id``, created before ``until``, in id order.

        Datetimes come back as UTC text whatever zone the instance reads them in; a page may end early at a
        time in a repeated (fall-back) hour that cannot be placed yet.
        """
        self.instance.prepare(STREAM_EXPLORES[explore.stream], deadline)
        upper = self.instance.bound(until, widen="later")
        created = f"{self.instance.bound(since, widen='earlier')} to {upper}" if since else f"before {upper}"
        mark = self._marker()
        # The id filter is exact and carries the marker (an upper bound no id reaches): it makes each query's
        # text new without any time in it, and lets the History explore show this query's start.
        ids = f"[{after_id + 1}, {mark}]" if after_id is not None else f"<={mark}"
        filters = {explore.time_field: created, explore.id_field: ids}
        sent = self.clock()
        rows = self.client.query(explore.view, self.instance.have(explore.view, explore.fields), filters,
                                 [explore.id_field], limit, deadline)
        answered = self.clock()
        self.instance.verify(mark, sent, answered, deadline)
        rows = self._to_utc(rows, explore, after_id, deadline)
        self.instance.cover(rows, explore, mark, sent, answered, deadline)
        return rows

    def attributes(self, first_id: int, last_id: int, *, until: datetime,
                   deadline: float) -> dict[int, list[tuple[str, Any]]]:
        """Attributes of the events with ids in ``[first_id, last_id]``, by event id, in attribute id order."""
        found: dict[int, list[tuple[str, Any]]] = {}
        after: int | None = None
        while True:
            mark = self._marker()
            filters = {"event.id": f"[{first_id},{last_id}]",
                       "event.created_time": f"before {self.instance.bound(until, widen='later')}",
                       "event_attribute.id": f"[{after + 1}, {mark}]" if after is not None else f"<={mark}"}
            rows = self.client.query("event_attribute", self.instance.have("event_attribute", ATTRIBUTE_FIELDS),
                                     filters, ["event_attribute.id"], ATTRIBUTE_PAGE_ROWS, deadline)
            _add_attributes(rows, found)
            if len(rows) < ATTRIBUTE_PAGE_ROWS:
                return found
            next_after = whole_number(rows[-1].get("event_attribute.id"))
            if next_after is None or (after is not None and next_after <= after):
                raise LookerError("Looker returned event_attribute rows without increasing numeric ids")
            after = next_after

    def users(self, ids: Iterable[int], *, until: datetime, deadline: float) -> dict[int, LookerUser]:
        """Email, name and permissions of the given users (one query; rows are per permission set)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        filters = {"user.id": ",".join(map(str, wanted))}
        if self.instance.have("user", ("user.created_time",)):  # optional: it only makes each query's text unique
            filters["user.created_time"] = f"before {self.instance.bound(until, widen='later')}"
        rows = self.client.query("user", self.instance.have("user", USER_FIELDS), filters, ["user.id"], -1, deadline)
        return _users(rows)

    def probe(self, deadline: float) -> list[dict[str, Any]]:
        """One row of the event explore (``check``): proves the API user may query System Activity. It is
        marked like a page query, so ``time_reading`` can measure from it."""
        mark = self._marker()
        sent = self.clock()
        rows = self.client.query("event", ("event.id",), {"event.id": f"<={mark}"}, ["event.id"], 1, deadline)
        self._probe = (mark, sent, self.clock())
        return rows

    def time_reading(self, deadline: float) -> TimeReading:
        """How System Activity shows times, measured (``check``): from the probe query, sent if need be."""
        if self.instance.reading is None:
            self.instance.expected_reading(deadline)
            if self._probe is None:
                self.probe(deadline)
            assert self._probe is not None
            return self.instance.verify(*self._probe, deadline)
        return self.instance.reading

    def reading_summary(self) -> dict[str, str | None] | None:
        """``time_reading`` of the run summary: the zone, the measured offset and what it was measured from."""
        reading = self.instance.reading
        if reading is None:
            return None
        return {"zone": reading.zone, "measured_offset": reading.measured_offset, "source": reading.source}

    def _marker(self) -> int:
        return time_truth.marker(self.clock(), random.randrange(time_truth.MARKER_SCALE))

    def _to_utc(self, rows: list[dict[str, Any]], explore: Explore, after_id: int | None,
                deadline: float) -> list[dict[str, Any]]:
        """Rows with their datetimes as UTC text; cut before a repeated-hour time nothing places yet."""
        reading = self.instance.reading
        if reading is None or not reading.converts or not rows:
            return rows
        zone = zone_info(reading.zone)
        now = self.clock()
        # Each page is placed from its own rows (and, when it starts inside a repeated hour, from the rows
        # before it): never from rows converted earlier, which a redo, a held-back row or a read-ahead page
        # may read again.
        clocks = {name: WallClock(zone) for name in TIME_FIELDS}
        ready = convert_rows(rows, TIME_FIELDS, clocks, now, id_field=explore.id_field)
        if ready == 0 and after_id is not None:
            # Nothing in the page places its first time: read the ids and times from before that repeated
            # hour up to the cursor (one query), and place the hour in id order from there.
            clocks = {name: WallClock(zone) for name in TIME_FIELDS}
            context = self._context(explore, rows[0], after_id, zone, deadline)
            ready = max(0, convert_rows(context + rows, TIME_FIELDS, clocks, now,
                                        id_field=explore.id_field) - len(context))
        if ready < len(rows):
            problem = next(clock.problems.pop() for clock in clocks.values() if clock.problems)
            if ready == 0:
                raise LookerError(
                    f"Looker {self.host}: {problem}, so it is not exported with a guessed time. Turn on User "
                    "Specific Time Zones (Looker Admin > General > Settings) so the exporter's query_timezone UTC "
                    "applies; the rows are then read in UTC")
            log.warning("Holding back %d rows from %s: %s; a later run places them", len(rows) - ready,
                        rows[ready].get(explore.id_field), problem)
        return rows[:ready]

    def _context(self, explore: Explore, first: dict[str, Any], after_id: int, zone: ZoneInfo,
                 deadline: float) -> list[dict[str, Any]]:
        """Ids and times of the rows up to ``after_id`` since two hours before ``first``'s earlier reading."""
        try:
            wall = datetime.fromisoformat(str(first.get(explore.time_field)))
        except ValueError:
            return []
        start = wall.replace(tzinfo=zone, fold=0).astimezone(UTC) - CONTEXT_HOURS
        fields = self.instance.have(explore.view, (explore.id_field, *(f for f in TIME_FIELDS if f in explore.fields)))
        filters = {explore.id_field: f"<={after_id}",
                   explore.time_field: f"after {self.instance.bound(start, widen='earlier')}"}
        # newest first, so that a bound widened for any zone that finds more than CONTEXT_ROWS rows still
        # returns those right before the cursor, without a gap
        rows = self.client.query(explore.view, fields, filters, [f"{explore.id_field} desc"], CONTEXT_ROWS,
                                 deadline)
        return rows[::-1]


def _add_attributes(rows: list[dict[str, Any]], found: dict[int, list[tuple[str, Any]]]) -> None:
    """Add a page of event_attribute rows to ``found``: (name, value) pairs by event id, in row order."""
    for row in rows:
        owner = row.get("event.id")  # confirmed by public code; event_attribute.event_id is not
        if type(owner) is not int:  # the usual JSON integer needs no conversion
            owner = whole_number(owner)
            if owner is None:
                continue
        name = row.get("event_attribute.name")
        found.setdefault(owner, []).append((name if type(name) is str else str(name),
                                            row.get("event_attribute.value")))


def _users(rows: list[dict[str, Any]]) -> dict[int, LookerUser]:
    """The users in the user explore's rows (one row per permission set), their permissions merged."""
    permissions: dict[int, set[str]] = {}
    users: dict[int, LookerUser] = {}
    for row in rows:
        number = whole_number(row.get("user.id"))
        if number is None:
            continue
        permissions.setdefault(number, set()).update(_permission_list(row.get("permission_set.permissions")))
        users[number] = LookerUser(number, row.get("user.email"), row.get("user.name"))
    return {number: LookerUser(user.id, user.email, user.name, tuple(sorted(permissions[number])))
            for number, user in users.items()}


def _permission_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []
