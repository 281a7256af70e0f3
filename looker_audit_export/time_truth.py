"""Which UTC offset System Activity shows its times at, measured from the exporter's own queries.

No document settles the zone System Activity returns its times in: Looker's "Using time zone settings"
page (https://cloud.google.com/looker/docs/using-time-zone-settings) says its data is stored in the
*system* time zone (UTC on Looker-hosted instances) and suggests ``add_hours`` table calculations to adjust
it, which reads as "not converted"; the settings (``GET /api/4.0/setting``) name the query time zone only.
So the exporter measures. Looker records every query, the exporter's own included, in the History explore
with its user (``user.id``) and start (``history.created_time``), and the filters it ran with
(``query.formatted_filters``: looker-open-source/henry ``henry/modules/fetcher.py`` reads it from that
explore; russlooker/custom_system_activity ``query.view.lkml`` shows it is the query's ``FILTERS`` text).
The exporter knows from its own clock the UTC interval ``[sent, answered]`` in which each of its queries
started, and puts a *marker* in each page query's id filter: a number no id reaches, which carries the
second the query was sent and a random salt. History then shows that query's start as a wall time; the
shown time minus the true start is the offset, a whole multiple of 15 minutes in every IANA zone in use.

Everything here is pure: markers, the offset from one History row, the decision between the measured
offset and the expected zone, and which rows a measurement covers (DST periods).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .timezones import TIMEZONE_DOC, VARIABLE, TimeZoneError, zone_info

#: UTC offsets in use run from UTC-12 to UTC+14: a filter bound read in any zone is at most 26 hours off.
#: Time bounds are widened by this (26 hours and a margin), and rows are cut by their true time in code.
SPREAD = timedelta(hours=27)
#: How far the exporter's clock may be from Looker's (Cloud Functions run on Google's NTP-synced hosts).
SKEW = timedelta(minutes=2)
#: Every UTC offset in use is a whole multiple of this.
STEP = timedelta(minutes=15)
#: Markers are ``MARKER_BASE + sent_epoch_second * MARKER_SCALE + salt``: 16 digits, above any event or
#: history id and below 2**53 (exact in any JSON or float parser on the way).
MARKER_BASE = 10**15
MARKER_SCALE = 100_000
_MARKER = re.compile(r"(?<!\d)1\d{15}(?!\d)")
#: Hosts of Looker-hosted instances, whose system time zone is UTC (the page above): Looker (Google Cloud core)
#: instances are ``<id>.looker.app``; instances hosted by Looker before it are ``<name>.looker.com`` or
#: ``<name>.cloud.looker.com``. A custom domain is not recognised: ``LOOKER_QUERY_TIMEZONE=UTC`` then says so.
LOOKER_HOSTED = (".looker.app", ".looker.com")


def marker(sent: datetime, salt: int) -> int:
    """The marker of a query sent at ``sent`` (UTC); ``salt`` in ``[0, MARKER_SCALE)`` makes it unique."""
    if not 0 <= salt < MARKER_SCALE:
        raise ValueError(f"salt {salt} is outside [0, {MARKER_SCALE})")
    return MARKER_BASE + int(sent.timestamp()) * MARKER_SCALE + salt


def marker_time(value: int) -> datetime | None:
    """The UTC second a marker says its query was sent, or None for a number that is not a marker."""
    if not MARKER_BASE < value < 2 * MARKER_BASE:
        return None
    return datetime.fromtimestamp((value - MARKER_BASE) // MARKER_SCALE, UTC)


def markers_in(text: object) -> list[int]:
    """The markers in a query's filter text (``query.formatted_filters``), in order."""
    return [int(found) for found in _MARKER.findall(text)] if isinstance(text, str) else []


def measured_offset(displayed: datetime, sent: datetime, answered: datetime,
                    skew: timedelta = SKEW) -> timedelta | None:
    """The offset at which ``displayed`` (a naive wall time) shows a start between ``sent`` and ``answered``.

    The true start lies in ``[sent - skew, answered + skew]``, so the offset lies in
    ``[displayed - answered - skew, displayed - sent + skew]``; it is returned when exactly one multiple of
    15 minutes lies there, else None (the interval is too wide to tell, or the wall time cannot be one).
    """
    shown = displayed.replace(tzinfo=UTC)
    low = shown - answered.astimezone(UTC) - skew
    high = shown - sent.astimezone(UTC) + skew
    steps = STEP.total_seconds()
    first = -(-low.total_seconds() // steps)  # ceil
    last = high.total_seconds() // steps
    return timedelta(seconds=first * steps) if first == last else None


def offset_text(offset: timedelta) -> str:
    """``UTC+01:00``, ``UTC-05:00``, ``UTC+05:45``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def offset_at(zone: str, instant: datetime) -> timedelta:
    """The UTC offset of ``zone`` at ``instant``."""
    found = instant.astimezone(zone_info(zone)).utcoffset()
    return found if found is not None else timedelta(0)


@dataclass(frozen=True)
class Measurement:
    """The offset System Activity showed one of the exporter's queries at, and when that query ran."""

    offset: timedelta
    at: datetime
    #: What it was measured from, e.g. ``history.id 812 (the exporter's own event query)``.
    source: str


@dataclass(frozen=True)
class Verdict:
    """The zone to convert System Activity's times from, and why."""

    zone: str
    how: str
    #: Set when the measurement disagreed with the settings and one zone explained it.
    warning: str | None = None


def is_looker_hosted(host: str) -> bool:
    """Whether ``host`` (``name[:port]``) is a Looker-hosted instance's, whose system time zone is UTC."""
    name = host.rsplit(":", 1)[0].lower().rstrip(".")
    return name.endswith(LOOKER_HOSTED)


def decide(measurement: Measurement, *, expected: str, expected_how: str, declared: str | None,
           host: str) -> Verdict:
    """Compare the measured offset with the zone the settings (or ``LOOKER_QUERY_TIMEZONE``) lead to expect.

    - They agree: convert by the expected zone (it gives the DST rules and older rows' offsets).
    - ``LOOKER_QUERY_TIMEZONE`` names a zone that explains the measurement: convert by it (a WARNING names
      the settings' reading when they differ); one it does not explain is refused.
    - A Looker-hosted instance measured at UTC+00:00: its system zone, UTC, explains it (WARNING).
    - Anything else: TimeZoneError naming the measured offset, the settings' zone and the variable.
    """
    at, measured = measurement.at, measurement.offset
    shown = f"{offset_text(measured)} (measured from {measurement.source})"
    expected_offset = offset_at(expected, at)
    if declared is not None:
        if offset_at(declared, at) == measured:
            if declared == expected:
                return Verdict(declared, f"{expected_how}; System Activity shows times at {shown}: they agree")
            return Verdict(declared, f"{VARIABLE}={declared} explains the times System Activity shows, at {shown}",
                           f"Looker {host}: System Activity shows times at {shown}, which {VARIABLE}={declared} "
                           f"explains; Looker's settings would have given {expected} ({expected_how}). Converting "
                           f"from {declared}")
        raise TimeZoneError(
            f"{VARIABLE}={declared} disagrees with Looker's settings ({expected_how}) or with what the exporter "
            f"measured: System Activity shows times at {shown}, {declared} is at "
            f"{offset_text(offset_at(declared, at))} then. Unset {VARIABLE}, or set it to the zone System Activity "
            f"shows times in; nothing was exported and the cursor did not move. See {TIMEZONE_DOC}")
    if expected_offset == measured:
        return Verdict(expected, f"{expected_how}; System Activity shows times at {shown}: they agree")
    if measured == timedelta(0) and is_looker_hosted(host):
        return Verdict("UTC", f"Looker-hosted: System Activity shows times unconverted in UTC, at {shown}",
                       f"Looker {host}: System Activity shows times at {shown}, not in {expected} ({expected_how}, "
                       f"{offset_text(expected_offset)}); a Looker-hosted instance stores them in its system time "
                       "zone, UTC, so they are converted from UTC")
    raise TimeZoneError(
        f"System Activity shows times at {shown}, but Looker's settings lead to {expected} ({expected_how}), at "
        f"{offset_text(expected_offset)} then. The exporter does not guess which is right: set {VARIABLE} to the "
        f"zone System Activity shows times in (on a customer-hosted instance, its system time zone; one at "
        f"{offset_text(measured)} now), or change Looker's time zone settings; nothing was exported and the cursor "
        f"did not move. See {TIMEZONE_DOC}")


def changed(before: Verdict, after: Verdict, measurement: Measurement) -> TimeZoneError | None:
    """The refusal when a new measurement leads to another zone than the instance converted from so far."""
    if before.zone == after.zone:
        return None
    return TimeZoneError(
        f"System Activity's times changed zone while this instance ran: they were read in {before.zone}, and now "
        f"show at {offset_text(measurement.offset)} (measured from {measurement.source}), which means {after.zone}. "
        f"The export stops rather than switch zones mid-stream: check Looker's time zone settings and {VARIABLE}, "
        f"then run `python -m looker_audit_export check`; a new function instance measures afresh. "
        f"See {TIMEZONE_DOC}")


def period(zones: Iterable[str], instant: datetime) -> tuple[timedelta, ...]:
    """The offsets of ``zones`` at ``instant``: two instants with the same key lie in one DST period of each
    (offsets change twice a year at most, months apart), so one measurement covers both."""
    return tuple(offset_at(zone, instant) for zone in zones)


def uncovered(zones: Iterable[str], measured_at: datetime, instants: Iterable[datetime]) -> list[datetime]:
    """The instants in another DST period of ``zones`` than ``measured_at``: one per period, the latest."""
    names = tuple(zones)
    covered = period(names, measured_at)
    latest: dict[tuple[timedelta, ...], datetime] = {}
    for instant in instants:
        key = period(names, instant)
        if key != covered and (key not in latest or instant > latest[key]):
            latest[key] = instant
    return sorted(latest.values())


def same_period_span(zones: Iterable[str], instant: datetime, *, limit: timedelta = timedelta(days=366),
                     step: timedelta = timedelta(hours=6)) -> tuple[datetime, datetime]:
    """The UTC span around ``instant`` in which ``zones`` keep the offsets they have at ``instant``.

    Offsets are sampled every ``step`` (DST changes are months apart) and each end found to the minute.
    """
    names = tuple(zones)
    key = period(names, instant)

    def edge(direction: int) -> datetime:
        inside = instant
        while abs(inside - instant) < limit:
            probe = inside + direction * step
            if period(names, probe) != key:
                outside = probe
                while abs(outside - inside) > timedelta(minutes=1):
                    middle = inside + (outside - inside) / 2
                    if period(names, middle) == key:
                        inside = middle
                    else:
                        outside = middle
                return inside
            inside = probe
        return inside

    return edge(-1), edge(1)
