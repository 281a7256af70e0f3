"""How a Looker instance is expected to return times, and the conversion of its wall times to UTC.

Looker's "Using time zone settings" (https://cloud.google.com/looker/docs/using-time-zone-settings):
System Activity is stored in the system time zone (UTC on Looker-hosted instances). With **User Specific
Time Zones** on (Admin > General > Settings), a query runs in its own ``query_timezone`` (the exporter
sends ``UTC``); with it off, every query runs in the instance's time zone. The API tells which:
``GET /api/4.0/setting?fields=timezone,allow_user_timezones`` (looker_sdk ``Looker40SDK.get_setting``;
``Setting.timezone`` is the "instance-wide default timezone", ``allow_user_timezones`` toggles user time
zones); an API user without admin rights may get 403 or 404 there, and then ``LOOKER_QUERY_TIMEZONE`` must
say. Which zone System Activity's times really come back in is measured (``time_truth``), not taken
from here.

Everything here is pure: the expected zone, filter bounds as UTC text, and rows' wall times back to UTC
text, DST included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIMEZONE_DOC = "https://cloud.google.com/looker/docs/using-time-zone-settings"
#: The admin setting and the variable that decide how times are read; named in every refusal.
ADMIN_SETTING = ("Looker Admin > General > Settings > \"User Specific Time Zones\" "
                 "(with it off, the instance's time zone applies to every query)")
VARIABLE = "LOOKER_QUERY_TIMEZONE"
#: Datetime fields whose values the exporter reads; each is converted to UTC when the zone is not UTC.
TIME_FIELDS = ("event.created_time", "history.created_time", "history.completed_time")
#: Fields that do not follow id order (a query's completion), and the field of the same row they follow:
#: of two readings in a repeated hour, the first that is not before that one is taken.
_FOLLOWS = {"history.completed_time": "history.created_time"}
#: Rows are in id order, and ids follow time only roughly: a step back in time shorter than this is
#: jitter, not the second pass through a repeated (fall-back) hour. An assumption (Looker documents ids
#: as increasing, not how closely they follow time); where it fails, a row is held back, never shifted
#: by a guess the page itself contradicts.
JITTER = timedelta(minutes=5)
_FORMAT = "%Y-%m-%d %H:%M:%S"


class TimeZoneError(ValueError):
    """The zone Looker reads and returns times in cannot be known, or a time cannot be placed."""


@dataclass(frozen=True)
class TimeReading:
    """The zone System Activity's times are read in: expected (from the settings) or measured (``time_truth``)."""

    zone: str
    #: One line for the checklist and the logs, e.g. ``user time zones on: query_timezone UTC applies``.
    how: str
    #: Once measured: the offset System Activity showed the exporter's own query at (``UTC-05:00``), and the
    #: History row it was read from.
    measured_offset: str | None = None
    source: str | None = None
    #: Whether Looker's settings were read (else ``LOOKER_QUERY_TIMEZONE`` stood in for them).
    settings_read: bool = True
    #: The instance's time zone as the settings name it (``Setting.timezone``), also when user time zones
    #: are on: a customer-hosted instance's system zone is often the same.
    settings_zone: str | None = None

    @property
    def converts(self) -> bool:
        """Whether Looker's wall times need converting to UTC."""
        return self.zone != "UTC"


def zone_info(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name, or TimeZoneError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(f"{name!r} is not an IANA time zone name such as America/New_York") from None


def effective_zone(allow_user_timezones: bool | None, instance_timezone: str | None, declared: str | None,
                   *, forbidden: int | None) -> TimeReading:
    """The zone the settings (or, when they cannot be read, ``LOOKER_QUERY_TIMEZONE``) lead to expect.

    ``forbidden``: the HTTP status the settings were refused with (403 or 404 for an API user without admin
    rights), else None. Raises TimeZoneError with one message naming the admin setting and the variable.
    A variable that differs from readable settings is left to the measurement (``time_truth.decide``).
    """
    if forbidden is not None:
        if declared is None:
            raise TimeZoneError(
                f"Looker would not tell this API user its time zone settings (HTTP {forbidden} on GET "
                f"/api/4.0/setting; that needs an admin), so times cannot be read safely. Either set {VARIABLE} to "
                f"the zone Looker runs System Activity queries in: UTC when {ADMIN_SETTING.split(' (')[0]} is on, "
                f"else the instance's time zone (e.g. America/New_York); or give the API user the admin role. "
                f"See {TIMEZONE_DOC}")
        zone_info(declared)
        return TimeReading(declared, f"settings not readable (HTTP {forbidden}): {VARIABLE}={declared} is expected",
                           settings_read=False)
    if allow_user_timezones is None:
        raise TimeZoneError(f"Looker's settings did not say whether user time zones are on "
                            f"(allow_user_timezones); set {VARIABLE} and see {TIMEZONE_DOC}")
    settings_zone = instance_timezone if instance_timezone and _is_zone(instance_timezone) else None
    if allow_user_timezones:
        return TimeReading("UTC", "user time zones on: the query's query_timezone UTC applies",
                           settings_zone=settings_zone)
    if not instance_timezone:
        raise TimeZoneError(f"User time zones are off but Looker did not return its time zone; set "
                            f"{VARIABLE} to the instance's time zone, or turn on {ADMIN_SETTING}")
    zone_info(instance_timezone)
    return TimeReading(instance_timezone, f"user time zones off: every query runs in the instance zone "
                                          f"{instance_timezone}", settings_zone=instance_timezone)


def _is_zone(name: str) -> bool:
    try:
        zone_info(name)
    except TimeZoneError:
        return False
    return True


def utc_bound(moment: datetime) -> str:
    """A UTC instant as Looker's filter text when the query runs in UTC."""
    return moment.astimezone(UTC).strftime(_FORMAT)


@dataclass
class WallClock:
    """Converts one datetime field's wall times to UTC across the rows of one page (and its context rows).

    A repeated hour is resolved in id order: the earlier reading until the times go back by more than
    ``JITTER``, then the later one. ``last`` is the latest instant placed so far in these rows.
    """

    zone: ZoneInfo
    last: datetime | None = None
    problems: list[str] = field(default_factory=list)


def parse_wall(value: Any) -> datetime | None:
    """A Looker time as the naive wall time it shows (None when unreadable or carrying an offset)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("/", "-"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None else None  # a value with an offset is already unambiguous


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _readings(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return (wall.replace(tzinfo=zone, fold=0).astimezone(UTC), wall.replace(tzinfo=zone, fold=1).astimezone(UTC))


def convert_rows(rows: list[dict[str, Any]], fields: Iterable[str], clocks: dict[str, WallClock],
                 now: datetime, *, id_field: str) -> int:
    """Rewrite the wall times of ``fields`` in ``rows`` (id order) as UTC text, in place.

    Returns how many leading rows are ready; the rest are held back: a repeated-hour time that nothing
    yet places (no earlier row in this instance's life, no later step back in this page, and both
    readings already past) waits for a later page. A wall time that does not exist in the zone (inside
    a spring-forward gap) becomes an unreadable time with the reason, so the entry says what was wrong
    instead of carrying a shifted timestamp.
    """
    present = [name for name in fields if name in clocks]
    for index, row in enumerate(rows):
        converted: dict[str, str] = {}
        placed: dict[str, datetime] = {}
        for name in present:
            clock = clocks[name]
            value = row.get(name)
            wall = parse_wall(value)
            if wall is None:
                continue  # missing, empty or already carrying an offset: the mapping reads it as it is
            if not _exists(wall, clock.zone):
                converted[name] = f"{value} (not a time in {clock.zone.key}: inside its daylight-saving gap)"
                continue
            early, late = _readings(wall, clock.zone)
            start = placed.get(_FOLLOWS.get(name, ""))
            if early == late or late > now + JITTER:  # one reading, or the later one has not happened yet
                instant = early
            elif start is not None:  # not in id order: the first reading not before the row's own start
                instant = early if early >= start else late
            elif clock.last is not None:
                instant = late if clock.last - early > JITTER else early
            elif _steps_back_later(rows, index, name, wall, clock.zone):
                instant = early
            else:
                clock.problems.append(f"{id_field} {row.get(id_field)}: {name} {value} is in the repeated hour "
                                      f"of {clock.zone.key} and nothing yet tells which")
                return index  # the row stays as it was: a later page reads it again
            if name not in _FOLLOWS:
                clock.last = instant if clock.last is None else max(clock.last, instant)
            placed[name] = instant
            converted[name] = instant.strftime(_FORMAT)
        row.update(converted)
    return len(rows)


def _steps_back_later(rows: list[dict[str, Any]], index: int, name: str, wall: datetime, zone: ZoneInfo) -> bool:
    """Whether a later row's time in the same repeated hour is earlier by more than JITTER (the 2nd pass)."""
    for row in rows[index + 1:]:
        other = parse_wall(row.get(name))
        if other is None or not _exists(other, zone):
            continue
        early, late = _readings(other, zone)
        if early != late and wall - other > JITTER:
            return True
    return False
