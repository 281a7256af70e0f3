"""What the export reads from System Activity: keyset pages, the events' attributes, the users, and what
the instance is like (its time zone and its explores' fields, read once per instance life), with every
datetime placed in UTC whatever zone the instance reads it in.

Knows the client, the explores and the time-zone rules; knows nothing of entries, streams or the cursor.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .. import time_truth
from ..time_truth import SPREAD, Measurement, Verdict
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
from ..values import LookerUser, parse_looker_time, whole_number
from .client import LookerClient, LookerError, LookerSetupError
from .explores import ATTRIBUTE_FIELDS, MODEL, STREAM_EXPLORES, USER_FIELDS, Explore, refusal, report
from .explores import warning as fields_warning

log = logging.getLogger("looker_audit_export.looker_source")  # the name its lines carried before the split

ATTRIBUTE_PAGE_ROWS = 20_000

#: A new instance that meets a repeated (fall-back) hour first reads the rows before it, from this long
#: before, up to its cursor (ids and times only, at most CONTEXT_ROWS).
CONTEXT_HOURS = timedelta(hours=2)

CONTEXT_ROWS = 50_000

#: The History rows read to measure how System Activity shows time: the API user's own queries since a day
#: before the query measured, newest first (a run makes at most a few a minute).
MEASURE_ROWS = 500

MEASURE_LOOKBACK = timedelta(days=1)

#: A row placed this much before a row of lower id is taken as a sign the zone changed (offsets differ by
#: 15 minutes at least; ids follow time within ``timezones.JITTER``), and the instance measures again.
STEP_BACK = timedelta(minutes=15)

#: The History fields the measurement reads (``time_truth`` says where each is confirmed).
MEASURE_FIELDS = ("history.id", "history.created_time", "query.formatted_filters", "user.id")

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
    #: The zone times are converted from, once measured; and the measurements so far (DST periods covered).
    reading: TimeReading | None = None
    _verdict: Verdict | None = None
    _measurements: list[Measurement] = field(default_factory=list)
    _measure_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: The highest id and latest time placed per explore in this instance's life (the step-back sign).
    _newest: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    _me: int | None = None
    _fields: dict[str, frozenset[str]] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set)

    @property
    def host(self) -> str:
        return self.client.host

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

    # ------------------------------------------------- the measurement (time_truth)
    def verify(self, mark: int, sent: datetime, answered: datetime, deadline: float) -> TimeReading:
        """The zone to convert from: measured, once per instance life, from the query ``mark``."""
        with self._measure_lock:
            if self.reading is None:
                self._adopt(self._measure(mark, sent, answered, deadline))
            assert self.reading is not None
            return self.reading

    def cover(self, rows: list[dict[str, Any]], explore: Explore, mark: int, sent: datetime, answered: datetime,
              deadline: float) -> None:
        """Measure again (one query) when a conversion could have gone wrong, and refuse if the zone changed:

        - the page holds rows from a later DST period, of the zone converted from or the settings' zone, than
          any measurement of this instance (a zone that agreed before a change may not after); rows from
          earlier periods follow the zone's own rules;
        - a row converted to a time after the query was answered, or one more than ``STEP_BACK`` before a row
          of lower id (ids follow time within minutes): signs that Looker now shows times in another zone.
        Neither costs a call when nothing is amiss.
        """
        verdict, expected = self._verdict, self.expected
        if verdict is None or expected is None or not rows:
            return
        placed = [(whole_number(row.get(explore.id_field)), parse_looker_time(row.get(explore.time_field)))
                  for row in rows]
        instants = [moment for _, moment in placed if moment is not None]
        if not instants:
            return
        zones = tuple(dict.fromkeys(z for z in (verdict.zone, expected.zone, expected.settings_zone) if z))
        latest = max(m.at for m in self._measurements)
        seen_id, newest = self._newest.get(explore.view, (None, None))
        why = ""
        if time_truth.uncovered(zones, latest, [moment for moment in instants if moment > latest]):
            why = f"rows after a DST change of {' or '.join(zones)} since the last measurement"
        elif max(instants) > answered + time_truth.SKEW:
            why = f"a row placed at {max(instants):%Y-%m-%d %H:%M:%S} UTC, after the query was answered"
        for number, moment in placed:  # rows read again (a redo, a held-back row) are not compared
            if number is None or moment is None or (seen_id is not None and number <= seen_id):
                continue
            if not why and newest is not None and moment < newest - STEP_BACK:
                why = f"row {number} placed more than {STEP_BACK} before a row of lower id"
            seen_id, newest = number, moment if newest is None else max(newest, moment)
        if why:
            with self._measure_lock:
                log.info("Looker %s: %s; measuring again how System Activity shows time", self.host, why)
                self._adopt(self._measure(mark, sent, answered, deadline))
        if seen_id is not None and newest is not None:
            self._newest[explore.view] = (seen_id, newest)

    def _adopt(self, measurement: Measurement) -> None:
        """Decide from a measurement; refuse one that leads to another zone than this instance converted from."""
        expected = self.expected
        assert expected is not None
        try:
            verdict = time_truth.decide(measurement, expected=expected.zone, expected_how=expected.how,
                                        declared=self.declared_timezone if expected.settings_read else None,
                                        host=self.host)
        except TimeZoneError as exc:  # measured in a zone that neither the settings nor the variable explain
            raise LookerSetupError(f"Looker {self.host}: {exc}") from None
        if self._verdict is not None:
            refusal_ = time_truth.changed(self._verdict, verdict, measurement)
            if refusal_ is not None:
                raise LookerError(f"Looker {self.host}: {refusal_}") from None
        elif verdict.warning:
            log.warning(verdict.warning)
        self._verdict = verdict
        self._measurements.append(measurement)
        self.reading = TimeReading(verdict.zone, verdict.how, time_truth.offset_text(measurement.offset),
                                   measurement.source)
        log.info("Looker %s time zone: %s", self.host, verdict.how)

    def _measure(self, mark: int, sent: datetime, answered: datetime, deadline: float) -> Measurement:
        """The offset System Activity shows the query ``mark`` at, from its History row (one query); else
        from the newest earlier query of the exporter's in History (Elite System Activity may show a query
        only minutes later), which started within ``timeout_seconds`` of the second its marker carries."""
        missing = [name for name in MEASURE_FIELDS if name not in self.explore_fields("history", deadline)]
        if missing:
            raise LookerError(
                f"Looker {self.host}: the History explore has no field {', '.join(missing)}, so the exporter cannot "
                "measure how System Activity shows time, and will not guess; check that the API user's role can see "
                "the whole System Activity model (see_system_activity)")
        rows = self.client.query("history", MEASURE_FIELDS,
                                 {"user.id": str(self.api_user_id(deadline)),
                                  "history.created_time": f"after {utc_bound(sent - MEASURE_LOOKBACK - SPREAD)}"},
                                 ["history.id desc"], MEASURE_ROWS, deadline)
        own = [row for row in rows if mark in time_truth.markers_in(row.get("query.formatted_filters"))]
        spans = [(row, sent, answered) for row in own]
        if not own:
            for row in rows:
                marks = time_truth.markers_in(row.get("query.formatted_filters"))
                started = time_truth.marker_time(marks[-1]) if marks else None
                if started is not None and started <= sent:
                    spans.append((row, started, started + timedelta(seconds=self.client.timeout_seconds + 1)))
                    break
        offsets = {time_truth.measured_offset(shown, start, end) if (shown := _wall(row.get("history.created_time")))
                   else None for row, start, end in spans}
        if len(offsets) != 1 or None in offsets:
            found = ("the History explore shows no query of the exporter's from the day before" if not spans else
                     f"History row {spans[0][0].get('history.id')} does not place its query at exactly one UTC offset")
            raise LookerError(
                f"Looker {self.host}: the exporter could not measure how System Activity shows time: {found} "
                f"(sent {sent:%Y-%m-%d %H:%M:%S} UTC). Nothing was exported and the cursor did not move; the next run "
                "measures again (Elite System Activity may show a query minutes late; with LOOKER_TIMEOUT_SECONDS "
                "above 10 minutes an earlier query is too loosely timed to measure from)")
        row, start, _ = spans[0]
        what = "the query it measured" if own else f"an earlier query of its own, sent {start:%Y-%m-%d %H:%M:%S} UTC"
        offset = offsets.pop()
        assert offset is not None
        return Measurement(offset, start, f"history.id {row.get('history.id')}, {what}")

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
            for row in rows:
                owner = row.get("event.id")  # confirmed by public code; event_attribute.event_id is not
                if type(owner) is not int:  # the usual JSON integer needs no conversion
                    owner = whole_number(owner)
                    if owner is None:
                        continue
                name = row.get("event_attribute.name")
                found.setdefault(owner, []).append((name if type(name) is str else str(name),
                                                    row.get("event_attribute.value")))
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


def _wall(value: Any) -> datetime | None:
    """A History time as the naive wall time Looker shows (None when unreadable or carrying an offset)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("/", "-"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None else None


def _permission_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []
