"""Strict emulator of the Looker API 4.0 subset used to read System Activity.

Serves ``/api/4.0/login``, ``/logout``, ``/user`` (me), ``/queries`` and the run-query endpoints
over real HTTP for the ``system__activity`` model's ``event``,
``event_attribute``, ``user`` and ``history`` (query history) explores, plus ``GET /setting`` (the time
zone settings) and ``GET /lookml_models/system__activity/explores/<explore>`` (its fields).  It mirrors
Looker's documented behaviour, including the unfriendly parts: 404 on bad credentials, a silent
5000-row default limit, end-exclusive date ranges, results in the query's
time zone (in the instance's zone, ``query_timezone`` ignored, when user time zones are off; see
``set_time_zones``), 403 or 404 on the settings for a non-admin (``forbid_settings``), fields an instance
may lack (``lack_field``), nested ``fields`` selections on metadata, and System Activity's forced result
caching. Where no document settles a behaviour, each plausible reading is a switch: System Activity's times
unconverted in a system zone while filters stay in the query's zone (``show_unconverted``), queries running
in another zone than the settings report (``set_time_zones(runs_in=...)``). Like Looker, it keeps every
query it runs in the History explore, with the API user's id, its start and its filters
(``record_queries``; shown only after ``history_delay_seconds``, as with Elite System Activity), which the
exporter measures the zone of its times from.

Run standalone with ``python -m emulators.looker --events 10000 --history 5000
--client-id ID --client-secret S``; it prints ``{"base_url": ...}`` and serves until killed.
"""

from __future__ import annotations

import argparse
import json
import operator
import re
import secrets
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from itertools import islice
from math import inf
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from emulators._lifecycle import HttpServed, QuietHandler
from emulators.looker_data import (
    API_USER_ID,
    HISTORY_RESULT_SOURCES,
    HISTORY_STATUSES,
    NO_ID,
    NO_TIME,
    SystemActivity,
    to_micros,
)

DOC_URL = "https://cloud.google.com/looker/docs/"
MODEL = "system__activity"
DEFAULT_LIMIT = 5000
CACHE_TTL_SECONDS = {"event": 3600, "event_attribute": 12 * 3600, "user": 12 * 3600, "history": 12 * 3600}
EMULATED_FORMATS = {"json"}
OTHER_FORMATS = {"json_bi", "json_detail", "csv", "txt", "html", "md", "xlsx", "sql", "png", "jpg"}

Getter = Callable[[Any], Any]
Test = Callable[[Any], bool]
Fault = int | str


class ApiError(Exception):
    """An error answered as Looker does: a status and a JSON message."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        doc: dict[str, Any] = {"message": self.message, "documentation_url": DOC_URL}
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


def _bad_filter(field: str, expr: str) -> ApiError:
    return ApiError(400, f"Invalid filter expression {expr!r} for field {field!r}")


# ------------------------------------------------------------------ filters
@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled filter: a test on raw values, the hull of accepted values and a cache token."""

    test: Test
    lo: float = -inf
    hi: float = inf
    token: str = ""


def _combine(positives: list[Test], negatives: list[Test]) -> Test:
    """Looker semantics: any positive clause matches and every negative clause holds."""
    if not positives and len(negatives) == 1:
        return negatives[0]
    if len(positives) == 1 and not negatives:
        return positives[0]
    return lambda v: (not positives or any(p(v) for p in positives)) and all(n(v) for n in negatives)


def _negate(test: Test) -> Test:
    return lambda v: not test(v)


def _any_of(alternatives: list[list[Test]]) -> Test:
    """Non-null and, for some alternative, every test holds."""
    if len(alternatives) == 1 and len(alternatives[0]) == 1:  # the usual ``>5``: no generators per row
        (only,) = alternatives[0]
        return lambda v: v is not None and only(v)
    return lambda v: v is not None and any(all(t(v) for t in tests) for tests in alternatives)


def _like(pattern: re.Pattern[str]) -> Test:
    return lambda v: v is not None and pattern.fullmatch(v) is not None


def _equals(text: str) -> Test:
    return lambda v: v == text


_NUM = r"-?\d+(?:\.\d+)?"
_COMPARISON = re.compile(rf"(>=|<=|!=|<>|>|<|=)?\s*({_NUM})")
_INTERVAL = re.compile(rf"([\[(])\s*(-inf|{_NUM})\s*,\s*(inf|{_NUM})\s*([\])])", re.IGNORECASE)
_RANGE = re.compile(rf"({_NUM})?\s*\bto\b\s*({_NUM})?", re.IGNORECASE)
_OPS: dict[str, tuple[Callable[[Any, Any], bool], bool, bool]] = {
    # operator, bounded below, bounded above
    "=": (operator.eq, True, True),
    ">": (operator.gt, True, False),
    ">=": (operator.ge, True, False),
    "<": (operator.lt, False, True),
    "<=": (operator.le, False, True),
    "!=": (operator.ne, False, False),
    "<>": (operator.ne, False, False),
}


def _number_atom(text: str) -> tuple[Test, float, float] | None:
    """``>5``, ``5``, ``[1,10)``, ``1 to 10``... as (test, lo, hi); None if unparseable."""
    if m := _COMPARISON.fullmatch(text):
        op, below, above = _OPS[m[1] or "="]
        x = float(m[2])
        return (lambda v: op(v, x)), (x if below else -inf), (x if above else inf)
    if m := _INTERVAL.fullmatch(text):
        lo, hi, lo_closed, hi_closed = float(m[2]), float(m[3]), m[1] == "[", m[4] == "]"
        return (
            (lambda v: (v >= lo if lo_closed else v > lo) and (v <= hi if hi_closed else v < hi)),
            lo,
            hi,
        )
    if (m := _RANGE.fullmatch(text)) and (m[1] or m[2]):
        lo = float(m[1]) if m[1] else -inf
        hi = float(m[2]) if m[2] else inf
        return (lambda v: lo <= v <= hi), lo, hi
    return None


def _split_top_level(expr: str) -> list[str]:
    """Split on commas outside brackets (``[1,5],7`` -> ``[1,5]``, ``7``)."""
    parts, depth, current = [], 0, ""
    for char in expr:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def number_filter(field: str, expr: str) -> Filter:
    """Compile a Looker number filter expression."""
    positives: list[Test] = []
    negatives: list[Test] = []
    lo, hi = inf, -inf
    negate_bare = False  # "NOT 66, 99, 4" excludes all three
    for raw in _split_top_level(expr):
        item = " ".join(raw.split())
        upper = item.upper()
        if upper in ("NULL", "NOT NULL"):
            (negatives if upper == "NOT NULL" else positives).append(
                (lambda v: v is not None) if upper == "NOT NULL" else (lambda v: v is None)
            )
            continue
        negated = upper.startswith("NOT ")
        if negated:
            item, negate_bare = item[4:], True
        elif negate_bare and _COMPARISON.fullmatch(item):
            negated = True
        alternatives: list[list[tuple[Test, float, float]]] = []
        for alt in re.split(r"\s+OR\s+", item, flags=re.IGNORECASE):
            atoms = []
            for text in re.split(r"\s+AND\s+", alt, flags=re.IGNORECASE):
                atom = _number_atom(text.strip())
                if atom is None:
                    raise _bad_filter(field, expr)
                atoms.append(atom)
            alternatives.append(atoms)
        matches = _any_of([[t for t, _, _ in atoms] for atoms in alternatives])
        if negated:
            negatives.append(_negate(matches))
        else:
            positives.append(matches)
            for atoms in alternatives:
                lo = min(lo, max(a[1] for a in atoms))
                hi = max(hi, min(a[2] for a in atoms))
    if not positives:
        lo, hi = -inf, inf
    return Filter(_combine(positives, negatives), lo, hi, expr)


def string_filter(field: str, expr: str) -> Filter:
    """Compile a Looker string filter: ``FOO,BAR``, ``-FOO``, ``%FOO%``, ``EMPTY``, ``NULL``."""
    items: list[list[tuple[str, bool]]] = [[]]  # (char, escaped)
    i = 0
    while i < len(expr):
        char = expr[i]
        if (char == "^" or (char == "\\" and expr[i + 1 : i + 2] == ",")) and i + 1 < len(expr):
            items[-1].append((expr[i + 1], True))
            i += 2
            continue
        if char == ",":
            items.append([])
        else:
            items[-1].append((char, False))
        i += 1
    positives: list[Test] = []
    negatives: list[Test] = []
    for item in items:
        while item and item[0] == (" ", False):
            item.pop(0)
        while item and item[-1] == (" ", False):
            item.pop()
        negated = bool(item) and item[0] == ("-", False)
        body = item[1:] if negated else item
        plain = "".join(c for c, _ in body)
        test: Test
        if not any(esc for _, esc in body) and plain.upper() in ("NULL", "EMPTY"):
            test = (lambda v: v is None) if plain.upper() == "NULL" else (lambda v: not v)
        elif any(c in "%_" and not esc for c, esc in body):
            pattern = re.compile(
                "".join((".*" if c == "%" else ".") if c in "%_" and not esc else re.escape(c) for c, esc in body),
                re.DOTALL,
            )
            test = _like(pattern)
        else:
            test = _equals(plain)
        if negated:
            negatives.append(_negate(test))
        else:
            positives.append(test)
    return Filter(_combine(positives, negatives), token=expr)


def yesno_filter(field: str, expr: str) -> Filter:
    """Compile a yes/no filter (``Yes`` or ``No``)."""
    value = expr.strip().lower()
    if value not in ("yes", "no"):
        raise _bad_filter(field, expr)
    wanted = value == "yes"
    return Filter(lambda v: v is wanted, token=value)


_UNIT = r"(second|minute|hour|day|week|month|quarter|year)s?"
_ABSOLUTE = re.compile(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?")
_N_UNITS = re.compile(rf"(\d+) {_UNIT}")
_N_AGO = re.compile(rf"(\d+) {_UNIT} ago(?: for (\d+) {_UNIT})?")
_N_FROM_NOW = re.compile(rf"(\d+) {_UNIT} from now")
_THIS = re.compile(rf"(this|last|next) {_UNIT}")


def _floor(moment: datetime, unit: str) -> datetime:
    if unit == "second":
        return moment.replace(microsecond=0)
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":  # Looker's default week starts on Monday
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


class _DateParser:
    """Resolves Looker date filter expressions to local ``[start, end)`` ranges.

    Times are naive wall-clock times in ``tz`` (``fold`` set for repeated hours).
    """

    def __init__(self, now: datetime, tz: ZoneInfo):
        self.tz = tz
        self.now = now.astimezone(tz).replace(tzinfo=None)

    def _shift(self, moment: datetime, unit: str, n: int) -> datetime:
        """Move by ``n`` units: real elapsed time below a day, calendar units above."""
        if unit in ("second", "minute", "hour"):
            utc = moment.replace(tzinfo=self.tz).astimezone(UTC) + timedelta(**{unit + "s": n})
            return utc.astimezone(self.tz).replace(tzinfo=None)
        if unit in ("day", "week"):
            return moment + timedelta(**{unit + "s": n})
        months = n * {"month": 1, "quarter": 3, "year": 12}[unit]
        index = moment.year * 12 + moment.month - 1 + months
        return moment.replace(year=index // 12, month=index % 12 + 1)

    def span(self, text: str) -> tuple[datetime, datetime] | None:
        """A range expression (``today``, ``3 days``, ``2 hours ago``, ``2024/01/02``...)."""
        now = self.now
        named = {"today": 0, "yesterday": -1, "tomorrow": 1}
        if text in named:
            start = self._shift(_floor(now, "day"), "day", named[text])
            return start, self._shift(start, "day", 1)
        if m := _THIS.fullmatch(text):
            start = self._shift(_floor(now, m[2]), m[2], {"this": 0, "last": -1, "next": 1}[m[1]])
            return start, self._shift(start, m[2], 1)
        if m := _N_UNITS.fullmatch(text):
            current = _floor(now, m[2])
            return self._shift(current, m[2], 1 - int(m[1])), self._shift(current, m[2], 1)
        if m := _N_AGO.fullmatch(text):
            start = self._shift(_floor(now, m[2]), m[2], -int(m[1]))
            if m[3]:
                return start, self._shift(start, m[4], int(m[3]))
            return start, self._shift(start, m[2], 1)
        if m := _N_FROM_NOW.fullmatch(text):
            start = self._shift(_floor(now, m[2]), m[2], int(m[1]))
            return start, self._shift(start, m[2], 1)
        if m := _ABSOLUTE.fullmatch(text):
            parts = [int(p) if p else None for p in m.groups()]
            year, month, day, hour, minute, second = parts
            try:
                start = datetime(year or 1, month or 1, day or 1, hour or 0, minute or 0, second or 0)
            except ValueError:
                return None
            unit = ("year", "month", "day", "minute", "minute", "second")[sum(p is not None for p in parts) - 1]
            return start, self._shift(start, unit, 1)
        return None

    def point(self, text: str) -> datetime | None:
        """A point in time: ``now`` or the start of a range expression."""
        if text == "now":
            return self.now.replace(microsecond=0)
        span = self.span(text)
        return span[0] if span else None


def date_filter(field: str, expr: str, tz: ZoneInfo, now: datetime) -> Filter:
    """Compile a Looker date/time filter evaluated in ``tz`` at ``now``."""
    text = " ".join(expr.strip().lower().split())
    if text == "null":
        return Filter(lambda v: v is None, token="null")
    if text == "not null":
        return Filter(lambda v: v is not None, token="not null")
    parser = _DateParser(now, tz)
    start: datetime | None
    end: datetime | None
    if text.startswith("before "):
        start, end = None, parser.point(text[7:])
        valid = end is not None
    elif text.startswith("after "):
        start, end = parser.point(text[6:]), None
        valid = start is not None
    elif " to " in text:
        left, right = text.split(" to ", 1)
        start, end = parser.point(left), parser.point(right)
        valid = start is not None and end is not None
    else:
        span = parser.span(text)
        start, end = span or (None, None)
        valid = span is not None
    if not valid:
        raise _bad_filter(field, expr)
    lo = to_micros(start.replace(tzinfo=tz)) if start else -inf
    hi = to_micros(end.replace(tzinfo=tz)) if end else inf
    return Filter(lambda v: v is not None and lo <= v < hi, lo, hi - 1, f"[{lo},{hi})")


# ------------------------------------------------------------------- fields
@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field of an explore: its Looker type and how to read it from a row."""

    type: str  # number | string | time | date | yesno
    get: Getter


def _through(first: Getter, then: Getter) -> Getter:
    return lambda row: then(first(row))


def _nulls_first(get: Getter) -> Callable[[Any], tuple[bool, Any]]:
    """Sort key putting NULLs first when ascending, as MySQL does."""

    def key(row: Any) -> tuple[bool, Any]:
        value = get(row)
        return value is not None, value

    return key


def _opt(value: int) -> int | None:
    return None if value == NO_ID else value


def _event_fields(d: SystemActivity) -> dict[str, FieldSpec]:
    """Fields of the Event view and its joined User, read from an event index."""

    def user(i: int) -> Any:
        return d.users.get(d.user_id[i])

    def user_attr(name: str) -> Getter:
        return lambda i: getattr(u, name) if (u := user(i)) else None

    return {
        "event.id": FieldSpec("number", d.ids.__getitem__),
        "event.name": FieldSpec("string", lambda i: d.kinds[d.kind[i]][0]),
        "event.category": FieldSpec("string", lambda i: d.kinds[d.kind[i]][1]),
        "event.created_time": FieldSpec("time", d.created.__getitem__),
        "event.created_date": FieldSpec("date", d.created.__getitem__),
        "event.user_id": FieldSpec("number", lambda i: _opt(d.user_id[i])),
        "event.sudo_user_id": FieldSpec("number", lambda i: _opt(d.sudo_user_id[i])),
        "event.is_api_call": FieldSpec("yesno", lambda i: bool(d.is_api[i])),
        "event.attribute_count": FieldSpec("number", lambda i: d.attr_start[i + 1] - d.attr_start[i]),
        "user.id": FieldSpec("number", user_attr("id")),
        "user.email": FieldSpec("string", user_attr("email")),
        "user.name": FieldSpec("string", user_attr("name")),
    }


def _attribute_fields(d: SystemActivity) -> dict[str, FieldSpec]:
    """Fields of the Event Attribute explore, read from an attribute index."""
    of_event = d.attr_event.__getitem__
    fields = {name: FieldSpec(spec.type, _through(of_event, spec.get)) for name, spec in _event_fields(d).items()}
    fields.update(
        {
            "event_attribute.id": FieldSpec("number", d.attr_ids.__getitem__),
            "event_attribute.name": FieldSpec("string", lambda j: d.attr_names[d.attr_name[j]]),
            "event_attribute.value": FieldSpec("string", d.attr_values.__getitem__),
            "event_attribute.event_id": FieldSpec("number", lambda j: d.ids[of_event(j)]),
        }
    )
    return fields


def _history_fields(d: SystemActivity) -> dict[str, FieldSpec]:
    """Fields of the History explore (with its Query and User joins), read from a row position."""
    h = d.history

    def user_attr(name: str) -> Getter:
        return lambda i: getattr(u, name) if (u := d.users.get(h.user_id[i])) else None

    def user_id(i: int) -> int | None:  # the API user is a Looker user even when the data leaves it out
        number = h.user_id[i]
        return number if number in d.users or number in h.account_ids else None

    def runtime(i: int) -> float | None:
        value = h.runtime[i]
        return None if value != value else value  # NaN: still running

    def result_source(i: int) -> str | None:
        index = h.result_source[i]
        return None if index < 0 else HISTORY_RESULT_SOURCES[index]

    def completed(i: int) -> int | None:
        value = h.completed[i]
        return None if value == NO_TIME else value

    return {
        "history.id": FieldSpec("number", h.ids.__getitem__),
        "history.created_time": FieldSpec("time", h.created.__getitem__),
        "history.completed_time": FieldSpec("time", completed),
        "history.status": FieldSpec("string", lambda i: HISTORY_STATUSES[h.status[i]]),
        "history.source": FieldSpec("string", lambda i: h.sources[h.source[i]]),
        "history.runtime": FieldSpec("number", runtime),
        "history.result_source": FieldSpec("string", result_source),
        "history.message": FieldSpec("string", h.messages.get),
        "history.dashboard_id": FieldSpec("number", lambda i: _opt(h.dashboard_id[i])),
        "history.look_id": FieldSpec("number", lambda i: _opt(h.look_id[i])),
        "query.id": FieldSpec("number", h.query_id.__getitem__),
        "query.model": FieldSpec("string", lambda i: h.query_kinds[h.query_kind[i]][0]),
        "query.view": FieldSpec("string", lambda i: h.query_kinds[h.query_kind[i]][1]),
        "query.formatted_filters": FieldSpec("string", h.filters.get),
        "user.id": FieldSpec("number", user_id),
        "user.email": FieldSpec("string", user_attr("email")),
        "user.name": FieldSpec("string", user_attr("name")),
    }


USER_FIELDS = {
    "user.id": FieldSpec("number", lambda r: r[0].id),
    "user.email": FieldSpec("string", lambda r: r[0].email),
    "user.name": FieldSpec("string", lambda r: r[0].name),
    "user.created_time": FieldSpec("time", lambda r: to_micros(r[0].created)),
    "permission_set.name": FieldSpec("string", lambda r: r[1]),
    "permission_set.permissions": FieldSpec("string", lambda r: r[2]),
}


def _formatter(kind: str, tz: ZoneInfo) -> Callable[[Any], Any] | None:
    """Convert a raw value to Looker's JSON representation (None: as is)."""
    if kind == "time":
        seconds: dict[int, str] = {}  # rows often share a second; a formatter lives for one query

        def time_text(us: int) -> str:
            second = us // 1_000_000
            text = seconds.get(second)
            if text is None:
                text = seconds[second] = datetime.fromtimestamp(second, tz).strftime("%Y-%m-%d %H:%M:%S")
            return text

        return time_text
    if kind == "date":
        return lambda us: datetime.fromtimestamp(us // 1_000_000, tz).strftime("%Y-%m-%d")
    if kind == "yesno":
        return lambda v: "Yes" if v else "No"
    return None


# ------------------------------------------------------------ query engine
@dataclass(slots=True)
class _Plan:
    view: str
    fields: list[str]
    specs: dict[str, FieldSpec]
    filters: list[tuple[str, Filter]]
    sorts: list[tuple[str, bool]]  # (field, descending)
    limit: int | None
    #: The zone filters are read in (the query's zone).
    tz: ZoneInfo
    #: The zone datetimes are shown in: the query's zone, or the system zone when System Activity shows its
    #: times unconverted (``LookerEmulator.show_unconverted``).
    display_tz: ZoneInfo

    def cache_key(self) -> str:
        return json.dumps(
            [
                self.view,
                self.fields,
                sorted((f, x.token) for f, x in self.filters),
                self.sorts,
                self.limit,
                str(self.tz),
                str(self.display_tz),
            ]
        )


class QueryEngine:
    """Evaluates WriteQuery documents against a :class:`SystemActivity` store."""

    def __init__(self, data: SystemActivity, default_timezone: str):
        self.data = data
        self.default_tz = ZoneInfo(default_timezone)
        #: The instance zone every query runs in while user time zones are off (``query_timezone`` ignored).
        self.forced_tz: ZoneInfo | None = None
        #: The system time zone System Activity's times are shown in, unconverted, whatever the query's zone
        #: (None: converted to the query's zone).
        self.system_tz: ZoneInfo | None = None
        self.views = {
            "event": _event_fields(data),
            "event_attribute": _attribute_fields(data),
            "user": dict(USER_FIELDS),
            "history": _history_fields(data),
        }

    def plan(self, query: dict[str, Any], limit: Any, now: datetime) -> _Plan:
        """Validate a query (with the URL ``limit`` override) into a plan."""
        if query.get("model") != MODEL or query.get("view") not in self.views:
            raise ApiError(404, "Not found")
        view = query["view"]
        specs = self.views[view]
        for unsupported in ("pivots", "dynamic_fields", "filter_expression", "subtotals"):
            if query.get(unsupported):
                raise ApiError(400, f"{unsupported} is not supported by the emulator")
        fields = query.get("fields") or []
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
            raise ApiError(400, "Must query at least one dimension or measure")
        unknown = [f for f in fields if f not in specs]
        if unknown:
            raise ApiError(400, f"Unknown field(s) for explore {view!r}: {', '.join(map(str, unknown))}")
        tz_name = query.get("query_timezone") or None
        try:
            tz = ZoneInfo(tz_name) if tz_name else self.default_tz
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ApiError(400, f"Unknown query_timezone {tz_name!r}") from exc
        if self.forced_tz is not None:  # user time zones off: filters and results in the instance zone
            tz = self.forced_tz
        raw_filters = query.get("filters") or {}
        if not isinstance(raw_filters, dict):
            raise ApiError(400, "filters must be an object of field name to filter expression")
        filters = []
        for name, expr in raw_filters.items():
            if name not in specs:
                raise ApiError(400, f"Unknown filter field {name!r} for explore {view!r}")
            if not isinstance(expr, str):
                raise _bad_filter(name, str(expr))
            if expr.strip():  # an empty expression means "is any value"
                filters.append((name, self._filter(name, specs[name].type, expr, tz, now)))
        return _Plan(
            view,
            fields,
            specs,
            filters,
            self._sorts(query, fields, specs),
            self._limit(limit if limit is not None else query.get("limit")),
            tz,
            self.system_tz or tz,
        )

    @staticmethod
    def _filter(name: str, kind: str, expr: str, tz: ZoneInfo, now: datetime) -> Filter:
        if kind in ("time", "date"):
            return date_filter(name, expr, tz, now)
        if kind == "number":
            return number_filter(name, expr)
        if kind == "yesno":
            return yesno_filter(name, expr)
        return string_filter(name, expr)

    @staticmethod
    def _sorts(query: dict[str, Any], fields: list[str], specs: dict[str, FieldSpec]) -> list[tuple[str, bool]]:
        sorts = []
        for raw in query.get("sorts") or []:
            parts = str(raw).split()
            if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise ApiError(400, f"Invalid sort {raw!r}")
            if parts[0] not in specs:
                raise ApiError(400, f"Unknown sort field {parts[0]!r}")
            if parts[0] in fields:  # Looker ignores sorts on fields that are not selected
                sorts.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
        if sorts:
            return sorts
        # Looker's default: newest first on the first time field, else first field ascending
        timed = next((f for f in fields if specs[f].type in ("time", "date")), None)
        return [(timed, True)] if timed else [(fields[0], False)]

    @staticmethod
    def _limit(raw: Any) -> int | None:
        if raw is None or raw == "":
            return DEFAULT_LIMIT
        try:
            limit = int(str(raw).strip())
        except ValueError as exc:
            raise ApiError(400, f"Invalid limit {raw!r}") from exc
        if limit == -1:
            return None
        if limit < 1:
            raise ApiError(400, f"Invalid limit {raw!r}")
        return limit

    # -------------------------------------------------------------- running
    def run(self, plan: _Plan) -> list[dict[str, Any]]:
        """Evaluate a plan into JSON-ready rows."""
        specs = plan.specs
        tests = [(specs[name].get, f.test) for name, f in plan.filters]
        candidates, natural = self.candidates(plan)
        if plan.view in ("event", "event_attribute") and self.data.has_hidden_ids:
            event_of = self.data.attr_event.__getitem__ if plan.view == "event_attribute" else None
            tests.append((event_of or (lambda i: i), self.data.is_visible))

        def keep(row: Any) -> bool:
            return all(test(get(row)) for get, test in tests)

        if len(tests) == 1:  # the same tests without a generator per row (the usual one or two filters)
            ((get0, test0),) = tests
            keep = lambda row: test0(get0(row))  # noqa: E731
        elif len(tests) == 2:
            (get0, test0), (get1, test1) = tests
            keep = lambda row: test0(get0(row)) and test1(get1(row))  # noqa: E731

        streamed = self._streaming_direction(plan, natural)
        if streamed is not None:
            ordered: Iterable[Any] = reversed(candidates) if streamed else candidates
            rows: list[Any] = list(islice(filter(keep, ordered), plan.limit))  # stops at the limit
        else:
            rows = [row for row in candidates if keep(row)]
            for name, descending in reversed(plan.sorts):
                rows.sort(key=_nulls_first(specs[name].get), reverse=descending)
            rows = rows[: plan.limit]
        # column by column, then one dict per row (the same rows, in the same field order)
        values = []
        for name in plan.fields:
            column = list(map(specs[name].get, rows))
            fmt = _formatter(specs[name].type, plan.display_tz)
            if fmt is not None:
                column = [None if value is None else fmt(value) for value in column]
            values.append(column)
        fields = plan.fields
        return [dict(zip(fields, record, strict=True)) for record in zip(*values, strict=True)]

    def candidates(self, plan: _Plan) -> tuple[Any, dict[str, bool]]:
        """Rows to scan, narrowed by id/time ranges, and their natural sort keys.

        The natural keys map each field the candidates are already sorted by
        (ascending) to whether it is unique.
        """
        d = self.data
        if plan.view == "user":  # users LEFT JOIN permission sets
            return [
                (user, name, None if name is None else ",".join(perms))
                for user in sorted(d.users.values(), key=lambda u: u.id)
                for name, perms in (user.permission_sets or ((None, ()),))
            ], {}
        with_filters = dict(plan.filters)
        if plan.view == "history":
            return self._history_candidates(with_filters)
        lo, hi = 0, d.visible_count()
        natural = {"event.id": plan.view == "event"}
        for name in ("event.id", "event_attribute.event_id"):
            if f := with_filters.get(name):
                lo, hi = max(lo, bisect_left(d.ids, f.lo)), min(hi, bisect_right(d.ids, f.hi))
        if d.created_sorted:
            natural.update({"event.created_time": False, "event.created_date": False})
            for name in ("event.created_time", "event.created_date"):
                if f := with_filters.get(name):
                    lo = max(lo, bisect_left(d.created, f.lo))
                    hi = min(hi, bisect_right(d.created, f.hi))
        if plan.view == "event":
            return range(lo, max(lo, hi)), natural
        natural.update({"event_attribute.id": True, "event_attribute.event_id": False})
        start, stop = d.attr_start[lo], d.attr_start[max(lo, hi)]
        if f := with_filters.get("event_attribute.id"):
            start = max(start, bisect_left(d.attr_ids, f.lo))
            stop = min(stop, bisect_right(d.attr_ids, f.hi))
        return range(start, max(start, stop)), natural

    def _history_candidates(self, with_filters: dict[str, Filter]) -> tuple[range, dict[str, bool]]:
        """History row positions narrowed by the id and created-time hulls (bisect)."""
        h = self.data.history
        lo, hi = 0, len(h.ids)
        natural = {"history.id": True}
        if f := with_filters.get("history.id"):
            lo, hi = max(lo, bisect_left(h.ids, f.lo)), min(hi, bisect_right(h.ids, f.hi))
        if h.created_sorted:
            natural["history.created_time"] = False
            if f := with_filters.get("history.created_time"):
                lo, hi = max(lo, bisect_left(h.created, f.lo)), min(hi, bisect_right(h.created, f.hi))
        return range(lo, max(lo, hi)), natural

    @staticmethod
    def _streaming_direction(plan: _Plan, natural: dict[str, bool]) -> bool | None:
        """Descending flag if the sorts follow the candidates' natural order, else None."""
        direction = plan.sorts[0][1]
        for name, descending in plan.sorts:
            if name not in natural or descending != direction:
                return None
            if natural[name]:
                break
        return direction


# ------------------------------------------------------------------- server
def _utc_now() -> datetime:
    return datetime.now(UTC)


#: The Looker release the emulator says it is (``GET /versions``).
RELEASE = "25.14.30"


class LookerEmulator(HttpServed):
    """A Looker API 4.0 server for System Activity, running in a daemon thread."""

    def __init__(
        self,
        data: SystemActivity,
        *,
        client_id: str,
        client_secret: str,
        api_user_timezone: str = "America/Los_Angeles",
        token_ttl_seconds: int = 3600,
        query_latency_seconds: float = 0.0,
        per_row_latency_seconds: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = _utc_now,
        api_user_id: int = API_USER_ID,
        allow_user_timezones: bool = True,
        instance_timezone: str = "UTC",
        record_queries: bool = True,
    ):
        self.data = data
        #: The Looker user the client_id / client_secret pair belongs to (what ``GET /api/4.0/user`` answers).
        self.api_user_id = api_user_id
        self._sql_errors: list[list[Any]] = []  # [message, view or None, remaining, after_rows]
        self.engine = QueryEngine(data, api_user_timezone)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.query_latency_seconds = query_latency_seconds
        self.per_row_latency_seconds = per_row_latency_seconds
        self.clock = clock
        self._address = (host, port)
        self._lock = threading.Lock()
        self._tokens: dict[str, datetime] = {}
        self._queries: dict[str, dict[str, Any]] = {}
        self._cache: dict[str, tuple[datetime, bytes, int]] = {}
        self._faults: list[list[Any]] = []  # [fault, path_contains, remaining]
        self._tampered: dict[int, dict[str, Any]] = {}
        self._duplicated: set[int] = set()
        self._stats = {"logins": 0, "query_calls": 0, "rows_returned": 0, "cache_hits": 0}
        self._settings_forbidden = False
        self._settings_status = 403
        #: Record every query run in the History explore, with the API user's id, as Looker does.
        self.record_queries = record_queries
        #: How long a recorded query takes to show in History: 0, or minutes as with Elite System Activity,
        #: which "refreshes every 10 minutes" (https://cloud.google.com/looker/docs/elite-system-activity).
        self.history_delay_seconds = 0.0
        self._unseen: list[tuple[datetime, dict[str, Any]]] = []
        data.history.account_ids.add(api_user_id)
        self.set_time_zones(allow_user_timezones, instance_timezone)

    # ------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def versions(self) -> dict[str, Any]:
        """``GET /versions`` (ApiVersion in spec/Looker.4.0.oas.json of looker-open-source/sdk-codegen): answered
        without a login (``x-looker-activity-type: none``, like ``/login``), at the root and under /api/4.0."""
        current = {"version": "4.0", "full_version": f"4.0.{RELEASE}", "status": "current",
                   "swagger_url": f"{self.base_url}/api/4.0/swagger.json"}
        return {"looker_release_version": RELEASE, "current_version": current, "supported_versions": [current],
                "api_server_url": self.base_url, "web_server_url": self.base_url}

    def start(self) -> str:
        """Start serving in a daemon thread; returns the base URL."""
        server = _Server(self._address, _Handler)
        server.emulator = self
        self._serve(server, "looker-emulator")
        return self.base_url


    # ------------------------------------------------------------- controls
    def inject(self, fault: Fault, *, path_contains: str = "queries", times: int = 1) -> None:
        """Queue a fault for the next ``times`` requests whose path contains ``path_contains``.

        ``fault`` is an HTTP status (429 comes with ``Retry-After: 1``),
        ``"slow:<seconds>"``, ``"truncate"``, ``"not_json"`` or ``"expire_tokens"``.
        """
        valid = (
            isinstance(fault, int)
            or fault in ("truncate", "not_json", "expire_tokens")
            or (fault.startswith("slow:") and fault[5:].replace(".", "", 1).isdigit())
        )
        if not valid or times < 1:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults.append([fault, path_contains, times])

    def inject_sql_error(self, message: str, *, view: str | None = None, times: int = 1,
                         after_rows: bool = False) -> None:
        """Answer the next ``times`` queries of ``view`` (any explore when None) as Looker does when a query
        fails inside it or its database: HTTP 200 with ``[{"looker_error": message}]``.

        ``after_rows`` serves the query's real rows first, then the error row (a result cut off mid-way).
        Public clients check for this row: https://github.com/spectacles-ci/spectacles/issues/67.
        """
        if times < 1 or (view is not None and view not in self.engine.views):
            raise ValueError(f"cannot inject a SQL error for view {view!r} {times} times")
        with self._lock:
            self._sql_errors.append([message, view, times, after_rows])

    def _take_sql_error(self, view: str) -> tuple[str, bool] | None:
        with self._lock:
            for entry in self._sql_errors:
                if entry[1] in (None, view):
                    entry[2] -= 1
                    if entry[2] == 0:
                        self._sql_errors.remove(entry)
                    self._stats["query_calls"] += 1
                    self._stats["sql_errors"] = self._stats.get("sql_errors", 0) + 1
                    return entry[0], entry[3]
        return None

    def me(self, fields: str | None) -> dict[str, Any]:
        """``GET /api/4.0/user``: the API user (API 4.0 ids are strings), cut to ``fields`` when given."""
        with self._lock:
            self._stats["me_calls"] = self._stats.get("me_calls", 0) + 1
        user = self.data.users.get(self.api_user_id)
        found: dict[str, Any] = {"id": str(self.api_user_id)}
        if user is not None:
            first, _, last = user.name.partition(" ")
            found.update({"email": user.email, "display_name": user.name, "first_name": first, "last_name": last})
        wanted = {name.strip() for name in (fields or "").split(",") if name.strip()}
        return {key: value for key, value in found.items() if not wanted or key in wanted}

    def tamper(self, event_id: int, values: dict[str, Any] | None = None, *, duplicate: bool = False) -> None:
        """Test hook: serve the ``event`` row of ``event_id`` malformed, as a broken instance might.

        ``values`` replaces raw JSON values of that row's fields (any JSON value, or ``OMIT`` to leave the
        field out); ``duplicate`` serves the row twice in a row.  Filters, sorts and limits still see the
        true data.  Nothing is tampered with unless a test asks for it.
        """
        with self._lock:
            if values:
                self._tampered.setdefault(event_id, {}).update(values)
            if duplicate:
                self._duplicated.add(event_id)
            self._cache.clear()

    def set_time_zones(self, allow_user_timezones: bool, instance_timezone: str, *,
                       runs_in: str | None = None) -> None:
        """The admin's time zone settings (``Setting.allow_user_timezones``, ``Setting.timezone``).

        With user time zones off every query runs in ``instance_timezone``, its ``query_timezone`` ignored
        (https://cloud.google.com/looker/docs/using-time-zone-settings). ``runs_in`` models the reading no
        document rules out: queries really run in another zone than the one ``GET /setting`` reports.
        """
        zone = ZoneInfo(runs_in or instance_timezone)
        with self._lock:
            self.allow_user_timezones, self.instance_timezone = allow_user_timezones, instance_timezone
            self.engine.forced_tz = None if allow_user_timezones else zone
            self._cache.clear()

    def show_unconverted(self, system_timezone: str | None) -> None:
        """System Activity's times shown unconverted, in the instance's system time zone (None: converted to
        the query's zone, as by default), while filters are still read in the query's zone.

        A plain reading of "Using time zone settings": System Activity is stored in the system time zone and
        adjusted with ``add_hours`` table calculations; ``convert_tz: no`` fields are "displayed in the database
        time zone but filtered in the query time zone" (param-field-convert-tz).
        """
        with self._lock:
            self.engine.system_tz = None if system_timezone is None else ZoneInfo(system_timezone)
            self._cache.clear()

    def forbid_settings(self, forbidden: bool = True, *, status: int = 403) -> None:
        """Answer ``GET /api/4.0/setting`` with ``status`` (403, or 404 as Looker answers in several places
        where it refuses access), as for an API user without admin rights."""
        self._settings_forbidden = forbidden
        self._settings_status = status

    def lack_field(self, name: str, explore: str | None = None) -> None:
        """Serve the model without field ``name`` (in every explore, or one): metadata and queries alike."""
        with self._lock:
            for view, specs in self.engine.views.items():
                if explore in (None, view):
                    specs.pop(name, None)
            self._cache.clear()

    def settings(self, fields: str | None) -> dict[str, Any]:
        """``GET /api/4.0/setting``: the time zone settings (only those asked for by ``fields``)."""
        if self._settings_forbidden:
            raise ApiError(self._settings_status, HTTPStatus(self._settings_status).phrase)
        doc = {"allow_user_timezones": self.allow_user_timezones, "timezone": self.instance_timezone}
        wanted = [name.strip() for name in fields.split(",")] if fields else list(doc)
        return {name: doc[name] for name in wanted if name in doc}

    def explore(self, model: str, name: str, fields: str | None) -> dict[str, Any]:
        """``GET /api/4.0/lookml_models/{model}/explores/{explore}``: its fields, as ``LookmlModelExplore``."""
        specs = self.engine.views.get(name) if model == MODEL else None
        if specs is None:
            raise ApiError(404, "Not found")
        with self._lock:
            dimensions = [{"name": field, "type": _METADATA_TYPES[spec.type], "category": "dimension",
                           "view": field.split(".", 1)[0], "label_short": field.split(".", 1)[1]}
                          for field, spec in specs.items()]
        doc = {"id": f"{MODEL}::{name}", "name": name, "model_name": MODEL,
               "fields": {"dimensions": dimensions, "measures": [], "filters": [], "parameters": []}}
        return select(doc, fields)

    def stats(self) -> dict[str, int]:
        """Counters: logins, query_calls, rows_returned, cache_hits; sql_errors and me_calls once there are any."""
        with self._lock:
            return dict(self._stats)

    def clear_cache(self) -> None:
        """Drop cached query results (as an admin's "clear cache" would)."""
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------ internals
    def take_fault(self, path: str) -> Fault | None:
        """Consume the first queued fault matching ``path``."""
        with self._lock:
            for entry in self._faults:
                if entry[1] in path:
                    entry[2] -= 1
                    if entry[2] == 0:
                        self._faults.remove(entry)
                    return entry[0]  # type: ignore[no-any-return]
        return None

    def expire_tokens(self) -> None:
        """Invalidate every access token."""
        with self._lock:
            self._tokens.clear()

    def login(self, params: dict[str, str]) -> dict[str, Any]:
        """Exchange API3 credentials for an access token."""
        if not (
            secrets.compare_digest(params.get("client_id", ""), self.client_id)
            and secrets.compare_digest(params.get("client_secret", ""), self.client_secret)
        ):
            raise ApiError(404, "Not found")
        token = secrets.token_urlsafe(30)
        with self._lock:
            self._tokens[token] = self.clock() + timedelta(seconds=self.token_ttl_seconds)
            self._stats["logins"] += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_seconds}

    def authenticate(self, header: str | None) -> str:
        """Return the valid token of an ``Authorization`` header or raise 401."""
        scheme, _, token = (header or "").partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
            if expiry is not None and expiry <= self.clock():
                del self._tokens[token.strip()]
                expiry = None
        if expiry is None:
            raise ApiError(401, "Requires authentication.")
        return token.strip()

    def logout(self, token: str) -> None:
        """Invalidate one token."""
        with self._lock:
            self._tokens.pop(token, None)

    def create_query(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store a query and return it as Looker's Query object."""
        if body.get("model") != MODEL or body.get("view") not in self.engine.views:
            raise ApiError(404, "Not found")
        with self._lock:
            query_id = str(1000 + len(self._queries))
            slug = secrets.token_urlsafe(16)[:22]
            query = {
                "id": query_id,
                "model": body["model"],
                "view": body["view"],
                "fields": body.get("fields"),
                "pivots": body.get("pivots"),
                "fill_fields": body.get("fill_fields"),
                "filters": body.get("filters"),
                "filter_expression": body.get("filter_expression"),
                "sorts": body.get("sorts"),
                "limit": None if body.get("limit") is None else str(body["limit"]),
                "column_limit": body.get("column_limit"),
                "total": body.get("total"),
                "row_total": body.get("row_total"),
                "subtotals": body.get("subtotals"),
                "vis_config": body.get("vis_config"),
                "filter_config": body.get("filter_config"),
                "visible_ui_sections": body.get("visible_ui_sections"),
                "slug": slug,
                "dynamic_fields": body.get("dynamic_fields"),
                "client_id": slug,
                "share_url": f"{self.base_url}/x/{slug}",
                "expanded_share_url": f"{self.base_url}/explore/{MODEL}/{body['view']}",
                "url": f"/explore/{MODEL}/{body['view']}",
                "query_timezone": body.get("query_timezone"),
                "has_table_calculations": False,
                "can": {"run": True, "see_results": True},
            }
            self._queries[query_id] = query
        return query

    def get_query(self, query_id: str) -> dict[str, Any]:
        """A stored query, or 404."""
        with self._lock:
            query = self._queries.get(query_id)
        if query is None:
            raise ApiError(404, "Not found")
        return query

    def run(self, query: dict[str, Any], result_format: str, limit: str | None) -> bytes:
        """Run a query (with System Activity's forced caching); returns the JSON body."""
        if result_format not in EMULATED_FORMATS:
            if result_format in OTHER_FORMATS:
                raise ApiError(400, f"Result format {result_format!r} is not supported by the emulator")
            raise ApiError(404, "Not found")
        now = self.clock()
        self._show_history(now)
        plan = self.engine.plan(query, limit, now)
        failure = self._take_sql_error(plan.view)
        if failure is not None:  # never cached: the next run of the query may succeed
            message, after_rows = failure
            self._record(query, plan.view, now, "error", None, message)
            return _json_bytes([*(self.engine.run(plan) if after_rows else ()), {"looker_error": message}])
        key = plan.cache_key()
        ttl = timedelta(seconds=CACHE_TTL_SECONDS[plan.view])
        with self._lock:
            cached = self._cache.get(key)
            hit = cached is not None and now - cached[0] < ttl
            self._stats["query_calls"] += 1
            self._stats["cache_hits"] += hit
        if cached is not None and hit:
            body, count = cached[1], cached[2]
        else:
            rows = self.engine.run(plan)
            tampered = plan.view == "event" and bool(self._tampered or self._duplicated)
            if tampered:
                rows = self._tamper_rows(rows)
            body, count = _json_bytes(rows, tampered), len(rows)
            with self._lock:
                self._cache[key] = (now, body, count)
        with self._lock:
            self._stats["rows_returned"] += count
        delay = self.query_latency_seconds + self.per_row_latency_seconds * count
        if delay > 0:
            time.sleep(delay)
        self._record(query, plan.view, now, "complete", "cache" if hit else "query", None)
        return body

    def _record(self, query: dict[str, Any], view: str, started: datetime, status: str, result: str | None,
                message: str | None) -> None:
        """The query's row in the History explore, as Looker keeps one for every query run: the API user's
        id, its start (in UTC, shown in the zone the switches imply, like every System Activity time), and
        its filters as ``query.formatted_filters`` shows them."""
        if not self.record_queries:
            return
        filters = query.get("filters") or {}
        text = json.dumps(filters, ensure_ascii=False).replace(",", ", ") if filters else None
        row = {"created": started, "completed": max(started, self.clock()), "source": "api", "status": status,
               "user_id": self.api_user_id, "result_source": result, "message": message, "model": MODEL,
               "view": view, "filters": text}
        with self._lock:
            self._unseen.append((started + timedelta(seconds=self.history_delay_seconds), row))
        self._show_history(self.clock())

    def _show_history(self, now: datetime) -> None:
        """Add the recorded queries whose delay has passed to the History explore, in the order they ran."""
        with self._lock:
            due = [row for visible, row in self._unseen if visible <= now]
            self._unseen = [(visible, row) for visible, row in self._unseen if visible > now]
        for row in due:
            self.data.add_history(**row)


    def _tamper_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            tampered, duplicated = dict(self._tampered), set(self._duplicated)
        out = []
        for row in rows:
            number = row.get("event.id")
            if number in tampered:
                row = {**row, **{k: v for k, v in tampered[number].items() if k in row}}
                row = {k: v for k, v in row.items() if v is not OMIT}
            out.append(row)
            if number in duplicated:
                out.append(dict(row))
        return out


def parse_fields(text: str) -> dict[str, Any]:
    """A ``fields`` parameter as a tree: ``a,b(c,d(e))`` -> ``{"a": {}, "b": {"c": {}, "d": {"e": {}}}}``.

    Looker answers only the named attributes, nested ones in parentheses (public clients ask for
    ``fields(dimensions(name,type))``: googleapis/genai-toolbox ``internal/tools/looker/lookercommon``).
    """
    stack: list[dict[str, Any]] = [{}]
    name = ""
    for char in text + ",":
        if char in ",()":
            if name.strip():
                stack[-1][name.strip()] = stack[-1].get(name.strip(), {})
            if char == "(":
                if not name.strip():
                    raise ApiError(400, f"Invalid fields parameter {text!r}")
                stack.append(stack[-1][name.strip()])
            elif char == ")":
                if len(stack) == 1:
                    raise ApiError(400, f"Invalid fields parameter {text!r}")
                stack.pop()
            name = ""
        else:
            name += char
    if len(stack) != 1:
        raise ApiError(400, f"Invalid fields parameter {text!r}")
    return stack[0]


def select(doc: Any, fields: str | dict[str, Any] | None) -> Any:
    """``doc`` cut to a ``fields`` selection (a list: each item cut); no selection: all of it."""
    tree = parse_fields(fields) if isinstance(fields, str) else fields
    if not tree:
        return doc
    if isinstance(doc, list):
        return [select(item, tree) for item in doc]
    if not isinstance(doc, dict):
        return doc
    return {key: select(doc[key], sub) for key, sub in tree.items() if key in doc}


#: Looker's metadata type of each emulated field type (``LookmlModelExploreField.type``).
_METADATA_TYPES = {"number": "number", "string": "string", "time": "date_time", "date": "date_date",
                   "yesno": "yesno"}

#: ``LookerEmulator.tamper`` value that leaves a field out of the row.
OMIT: Any = object()


def _json_bytes(rows: list[dict[str, Any]], tampered: bool = False) -> bytes:
    """The JSON body: UTF-8 text, with lone surrogates (from tampered rows) escaped as JSON allows.

    orjson writes the usual rows several times faster. Tampered rows may hold what it refuses or writes
    differently (lone surrogates, NaN): the standard library writes those.
    """
    if not tampered:
        try:
            return orjson.dumps(rows)
        except orjson.JSONEncodeError:  # not a plain JSON value after all
            pass
    text = json.dumps(rows, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(rows).encode()


_QUERY_RUN = re.compile(r"/api/4\.0/queries/([^/]+)/run/([^/]+)")
_INLINE_RUN = re.compile(r"/api/4\.0/queries/run/([^/]+)")
_QUERY = re.compile(r"/api/4\.0/queries/([^/]+)")
_EXPLORE = re.compile(r"/api/4\.0/lookml_models/([^/]+)/explores/([^/]+)")


class _Server(ThreadingHTTPServer):
    emulator: LookerEmulator


class _Handler(QuietHandler):
    server: _Server
    server_version = "LookerEmulator/4.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def emulator(self) -> LookerEmulator:
        return self.server.emulator

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = url.path.rstrip("/")
        if path.startswith("/_emulator/"):
            self._emulator_endpoint(method, path)
            return
        fault = self.emulator.take_fault(path)
        truncate = fault == "truncate"
        if isinstance(fault, int):
            self._send_error(
                ApiError(fault, HTTPStatus(fault).phrase),
                {"Retry-After": "1"} if fault == 429 else {},
            )
            return
        if fault == "not_json":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self._send(200, page, "text/html; charset=utf-8")
            return
        if fault == "expire_tokens":
            self.emulator.expire_tokens()
        elif isinstance(fault, str) and fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
        try:
            status, payload = self._route(method, path, params, body)
        except ApiError as error:
            self._send_error(error)
            return
        except Exception as exc:  # a malformed request must not kill the connection silently
            self._send_error(ApiError(500, f"Internal server error: {exc!r}"))
            return
        if status == 204:
            self.send_response(204)
            self.end_headers()
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._send(status, data, "application/json; charset=utf-8", truncate=truncate)

    def _route(self, method: str, path: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        emulator = self.emulator
        if path in ("/versions", "/api/4.0/versions") and method == "GET":  # no login, as Looker's spec says
            return 200, emulator.versions()
        if path == "/api/4.0/login":
            if method != "POST":
                raise ApiError(404, "Not found")
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            return 200, emulator.login({**params, **form})
        if path in ("/api/4.0/logout", "/api/logout"):
            if method != "DELETE":
                raise ApiError(404, "Not found")
            emulator.logout(emulator.authenticate(self.headers.get("Authorization")))
            return 204, None
        if path == "/api/4.0/user":  # me()
            if method != "GET":
                raise ApiError(404, "Not found")
            emulator.authenticate(self.headers.get("Authorization"))
            return 200, emulator.me(params.get("fields"))
        if method == "GET" and (path == "/api/4.0/setting" or _EXPLORE.fullmatch(path)):
            emulator.authenticate(self.headers.get("Authorization"))
            if path == "/api/4.0/setting":
                return 200, emulator.settings(params.get("fields"))
            model, explore = _EXPLORE.fullmatch(path).groups()  # type: ignore[union-attr]
            return 200, emulator.explore(model, explore, params.get("fields"))
        inline, saved, single = (
            _INLINE_RUN.fullmatch(path),
            _QUERY_RUN.fullmatch(path),
            _QUERY.fullmatch(path),
        )
        route = (
            "inline"
            if inline and method == "POST"
            else "saved"
            if saved and method == "GET"
            else "create"
            if path == "/api/4.0/queries" and method == "POST"
            else "get"
            if single and method == "GET"
            else None
        )
        if route is None:
            raise ApiError(404, "Not found")
        emulator.authenticate(self.headers.get("Authorization"))
        if route == "saved" and saved:
            query = emulator.get_query(saved[1])
            return 200, emulator.run(query, saved[2], params.get("limit"))
        if route == "get" and single:
            return 200, emulator.get_query(single[1])
        query = self._json_body(body)
        if route == "inline" and inline:
            return 200, emulator.run(query, inline[1], params.get("limit"))
        return 200, emulator.create_query(query)

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            query = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, "Invalid JSON in request body") from exc
        if not isinstance(query, dict):
            raise ApiError(400, "Request body must be a JSON object")
        missing = [name for name in ("model", "view") if not query.get(name)]
        if missing:
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "field": name,
                        "code": "missing_field",
                        "message": "This field is required.",
                        "documentation_url": DOC_URL,
                    }
                    for name in missing
                ],
            )
        return query

    def _emulator_endpoint(self, method: str, path: str) -> None:
        if method == "GET" and path == "/_emulator/stats":
            self._send(200, json.dumps(self.emulator.stats()).encode(), "application/json")
        elif method == "GET" and path == "/_emulator/healthz":
            self._send(200, b'{"status": "ok"}', "application/json")
        else:
            self._send_error(ApiError(404, "Not found"))

    def _send_error(self, error: ApiError, headers: dict[str, str] | None = None) -> None:
        self._send(
            error.status,
            json.dumps(error.body()).encode(),
            "application/json; charset=utf-8",
            headers=headers,
        )

    def _send(
        self,
        status: int,
        data: bytes,
        content_type: str,
        *,
        truncate: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if truncate else data)


def main(argv: list[str] | None = None) -> None:
    """Serve synthetic System Activity until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=0, help="synthetic query history rows")
    parser.add_argument("--span-days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--timezone", default="America/Los_Angeles")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    data = SystemActivity.synthetic(
        args.events, end=_utc_now(), span=timedelta(days=args.span_days), seed=args.seed, n_history=args.history,
        api_user_id=API_USER_ID,
    )
    emulator = LookerEmulator(
        data,
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_user_timezone=args.timezone,
        host=args.host,
        port=args.port,
    )
    print(json.dumps({"base_url": emulator.start()}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
