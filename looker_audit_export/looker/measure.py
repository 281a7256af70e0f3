"""How System Activity shows time, measured: the offset of the exporter's own queries in the History explore,
decided on once per instance life (``time_truth`` holds the pure part), and measured again, with a refusal if
the zone changed, when a page's rows could have been converted wrongly.

Knows the client, the History fields it reads and the time-zone rules; knows nothing of the settings read (the
instance passes what they lead to expect), entries, streams or the cursor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import time_truth
from ..time_truth import SPREAD, Measurement, Verdict
from ..timezones import TimeReading, TimeZoneError, parse_wall, utc_bound
from ..values import parse_looker_time, whole_number
from .client import LookerClient, LookerError, LookerSetupError
from .explores import Explore

log = logging.getLogger("looker_audit_export.looker_source")  # the name its lines carried before the split

#: The History rows read to measure how System Activity shows time: the API user's own queries since a day
#: before the query measured, newest first (a run makes at most a few a minute).
MEASURE_ROWS = 500

MEASURE_LOOKBACK = timedelta(days=1)

#: A row placed this much before a row of lower id is taken as a sign the zone changed (offsets differ by
#: 15 minutes at least; ids follow time within ``timezones.JITTER``), and the instance measures again.
STEP_BACK = timedelta(minutes=15)

#: The History fields the measurement reads (``time_truth`` says where each is confirmed).
MEASURE_FIELDS = ("history.id", "history.created_time", "query.formatted_filters", "user.id")


@dataclass
class TimeMeasure:
    """The zone System Activity is measured to show times in, for one instance: the measurements so far (the
    DST periods they cover), the verdict on them, and the newest row placed per explore (the step-back sign)."""

    client: LookerClient
    #: ``LOOKER_QUERY_TIMEZONE`` (see ``Instance.declared_timezone``).
    declared_timezone: str | None
    #: The instance's field names of an explore, and its API user's id (each read once per instance life).
    explore_fields: Callable[[str, float], frozenset[str]]
    api_user_id: Callable[[float], int]
    #: The zone times are converted from, once measured.
    reading: TimeReading | None = None
    _verdict: Verdict | None = None
    _measurements: list[Measurement] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: The highest id and latest time placed per explore in this instance's life (the step-back sign).
    _newest: dict[str, tuple[int, datetime]] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.client.host

    def verify(self, expected: TimeReading | None, mark: int, sent: datetime, answered: datetime,
               deadline: float) -> TimeReading:
        """The zone to convert from: measured, once per instance life, from the query ``mark``."""
        with self._lock:
            if self.reading is None:
                self._adopt(expected, self._measure(mark, sent, answered, deadline))
            assert self.reading is not None
            return self.reading

    def cover(self, expected: TimeReading | None, rows: list[dict[str, Any]], explore: Explore, mark: int,
              sent: datetime, answered: datetime, deadline: float) -> None:
        """Measure again (one query) when a conversion could have gone wrong, and refuse if the zone changed:

        - the page holds rows from a later DST period, of the zone converted from or the settings' zone, than
          any measurement of this instance (a zone that agreed before a change may not after); rows from
          earlier periods follow the zone's own rules;
        - a row converted to a time after the query was answered, or one more than ``STEP_BACK`` before a row
          of lower id (ids follow time within minutes): signs that Looker now shows times in another zone.
        Neither costs a call when nothing is amiss.
        """
        verdict = self._verdict
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
            with self._lock:
                log.info("Looker %s: %s; measuring again how System Activity shows time", self.host, why)
                self._adopt(expected, self._measure(mark, sent, answered, deadline))
        if seen_id is not None and newest is not None:
            self._newest[explore.view] = (seen_id, newest)

    def _adopt(self, expected: TimeReading | None, measurement: Measurement) -> None:
        """Decide from a measurement; refuse one that leads to another zone than this instance converted from."""
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
        offsets = {time_truth.measured_offset(shown, start, end)
                   if (shown := parse_wall(row.get("history.created_time"))) else None for row, start, end in spans}
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
