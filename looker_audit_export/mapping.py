"""Pure mapping from a Looker System Activity event to a Cloud Logging ``LogEntry``.

Every function here is free of I/O. ``to_log_entry`` never raises on bad data: an
event that cannot be mapped faithfully becomes a placeholder entry that says why.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from google.cloud.audit.audit_log_pb2 import AuditLog
from google.cloud.logging_v2.types import LogEntry
from google.logging.type.log_severity_pb2 import ERROR, INFO, NOTICE, WARNING
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc.status_pb2 import Status

from . import catalogue, protowire

LogEntryPb = LogEntry.pb()
_AUDIT_LOG_TYPE_URL = "type.googleapis.com/google.cloud.audit.AuditLog"

SERVICE_NAME = "looker.googleapis.com"
RESOURCE_TYPE = "audited_resource"
# Cloud Logging refuses entries over 256 KB, a limit it measures, approximately, on its internal form
# (https://cloud.google.com/logging/quotas); keep a margin.
MAX_ENTRY_BYTES = 250_000
#: What an entry that Cloud Logging still refused is shrunk to before it is written again.
SHRUNK_ENTRY_BYTES = 100_000
#: Free text outside ``response`` (labels, names, status) is capped; ``response`` keeps it whole.
MAX_FIELD_CHARS = 1024
MAX_TOKEN_CHARS = 128

#: Attribute names that identify the event's subject, and the resource path they map to.
SUBJECT_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("dashboard_id", "dashboards"), ("look_id", "looks"), ("scheduled_plan_id", "scheduled_plans"),
    ("query_id", "queries"), ("role_id", "roles"), ("permission_set_id", "permission_sets"),
    ("model_set_id", "model_sets"), ("group_id", "groups"), ("user_attribute_id", "user_attributes"),
    ("folder_id", "folders"), ("space_id", "folders"), ("board_id", "boards"),
    ("connection_name", "connections"), ("model_name", "lookml_models"), ("project_id", "projects"),
    ("user_id", "users"),
)
_SUCCESS_STATUSES = frozenset({"success", "succeeded", "successful", "ok", "complete", "completed"})
_UNKNOWN_CODE = 2
_TOKEN = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class LookerUser:
    """A Looker user as System Activity describes it."""

    id: int
    email: str | None = None
    name: str | None = None
    permissions: tuple[str, ...] = ()


@dataclass(slots=True)
class LookerEvent:
    """One ``event`` row, the raw Looker fields by name, and its attributes in id order."""

    row: Mapping[str, Any]
    attributes: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class EntryContext:
    """What every entry of a run shares."""

    log_name: str
    looker_host: str
    users: Mapping[int, LookerUser]
    fallback_time: datetime
    #: The Looker user id of the exporter's own API credentials: its entries carry ``labels.looker_exporter``.
    exporter_user_id: int | None = None


def whole_number(value: Any) -> int | None:
    """A Looker id as an int, or None when it is missing or not a whole number."""
    if type(value) is int:  # the common case, first
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def event_id(row: Mapping[str, Any]) -> int | None:
    """The numeric ``event.id`` of a row, or None when it is missing or not a whole number."""
    return whole_number(row.get("event.id"))


def insert_id(host: str, row: Mapping[str, Any]) -> str:
    """Deterministic ``insertId``: ``looker-<host>-event-<id>``, so a retried write never duplicates."""
    number = event_id(row)
    if number is not None:
        return f"looker-{host}-event-{number}"
    return f"looker-{host}-event-{_digest(row.get('event.id'), row)}"


def _digest(raw_id: Any, row: Mapping[str, Any]) -> str:
    """A stable stand-in for an id that is not a whole number: ``x`` and a hash of the id, or of the row."""
    key = clean_text(str(raw_id)) if raw_id not in (None, "") else repr(sorted(row.items(), key=str))
    return f"x{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()[:24]}"


def parse_looker_time(value: Any) -> datetime | None:
    """Parse a Looker datetime (``YYYY-MM-DD HH:MM:SS`` in UTC, or ISO 8601 with an offset)."""
    if type(value) is str:
        return _parse_time_text(value)  # rows of a page share seconds: cached
    if not isinstance(value, str):
        return None
    return _parse_time_text.__wrapped__(value)


@lru_cache(maxsize=4096)
def _parse_time_text(value: str) -> datetime | None:
    if not value.strip():
        return None
    text = value.strip().replace("/", "-")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def severity(name: str, category: str) -> int:
    """Severity by the documented table (``catalogue``): failures WARNING, changes of who may do what
    NOTICE, else INFO. An event done under sudo is at least NOTICE (``log_entry_bytes``)."""
    if catalogue.is_failure(name):
        return WARNING
    if catalogue.is_access_change(name, category):
        return NOTICE
    return INFO


def clean_text(value: str) -> str:
    """Make a string valid UTF-8 for protobuf: a lone surrogate becomes U+FFFD, a split pair is joined."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _json_value(value: Any) -> Any:
    """A value a ``Struct`` can hold, with strings cleaned."""
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return str(value) if abs(value) >= 2**53 else value
    if kind is float:
        return value if math.isfinite(value) else None  # NaN and infinity are not JSON
    if isinstance(value, bool | int | float):  # subclasses of the JSON types
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
            return str(value)
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return clean_text(str(value))


def _set_value(target: Any, value: Any) -> None:
    """``Struct.update``'s conversion of one value (from ``_json_value``), without its pure-Python layer."""
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif value is None:
        target.null_value = 0
    elif kind is bool:
        target.bool_value = value
    elif kind is int or kind is float:
        target.number_value = value
    elif kind is dict:
        _set_struct(target.struct_value, value)
        if not value:
            target.struct_value.Clear()  # an empty struct is still set
    elif kind is list:
        values = target.list_value.values
        if not value:
            target.list_value.Clear()  # an empty list is still set
        for item in value:
            _set_value(values.add(), item)
    else:  # a subclass of a JSON type: let protobuf convert it as Struct.update does
        wrapper = Struct()
        wrapper.update({"v": value})
        target.CopyFrom(wrapper.fields["v"])


def _value_bytes(value: Any) -> bytes:
    """The serialised ``Value`` that ``_set_value(target, _json_value(value))`` sets, common types first."""
    kind = type(value)
    if kind is str:
        return protowire.string_value(clean_text(value))
    if value is None:
        return protowire.NULL_VALUE
    if (kind is int and -2**53 < value < 2**53) or (kind is float and math.isfinite(value)):
        return protowire.number_value(value)
    if kind is bool:
        return protowire.TRUE_VALUE if value else protowire.FALSE_VALUE
    target = Value()
    _set_value(target, _json_value(value))
    return target.SerializeToString()


#: Serialised ``Struct`` items by key and value: most of a row's fields repeat from row to row.
_ITEM_CACHE: dict[tuple[str, type, Any], bytes] = {}
_ITEM_CACHE_SIZE = 8192
_CACHED_TYPES = (str, int, type(None), bool)  # not float: 0.0 and -0.0 are equal keys


def _struct(values: Mapping[Any, Any]) -> bytes:
    """A serialised ``Struct`` of ``values``, keys as strings and values converted as ``_value_bytes`` does."""
    cached = _ITEM_CACHE.get
    try:  # the cache first, without a call per item
        return b"".join([cached((key, type(value), value)) or _struct_item(str(key), value)
                         for key, value in values.items()])
    except TypeError:  # an unhashable value (a JSON list or object)
        return b"".join([_struct_item(str(key), value) for key, value in values.items()])


def _struct_item(key: str, value: Any) -> bytes:
    """One serialised ``Struct`` field, ``key`` cleaned and ``value`` converted as ``_value_bytes`` does."""
    found = protowire.struct_entry(_struct_key(key), _value_bytes(_exact_id(value) if _is_id(key) else value))
    kind = type(value)
    if kind in _CACHED_TYPES:
        if len(_ITEM_CACHE) >= _ITEM_CACHE_SIZE:
            _ITEM_CACHE.clear()
        _ITEM_CACHE[key, kind, value] = found
    return found


@lru_cache(maxsize=1024)
def _struct_key(key: str) -> bytes:
    return protowire.struct_key(clean_text(key))


def _is_id(name: str) -> bool:
    """Whether a field or attribute ``name`` holds a Looker id (``id``, ``user_id``, ...)."""
    return name == "id" or name.endswith("_id")


def _exact_id(value: Any) -> Any:
    """An id that is a whole number as its decimal string, exact at any size (a ``Struct`` number is a double);
    anything else (a string id, a fraction, a list of ids) as it is, a list item by item."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = whole_number(value)
        return value if number is None else str(number)
    if isinstance(value, list | tuple):
        return [_exact_id(item) for item in value]
    return value


def _split(key: str) -> tuple[str, str] | None:
    """``view.field`` as ``(view, field)``; None for a name that does not split (no dot, or an empty part)."""
    view, _, field = key.partition(".")
    return (view, field) if view and field else None


def nest_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Looker's ``view.field`` row as ``{view: {field: value}}``, ids exact (see ``_exact_id``), values for a
    ``Struct`` (``_json_value``). A name that does not split stays at the top as sent; so do the ``view.field``
    names of a view that is also a name of its own, so that nothing is lost."""
    plain = {clean_text(str(key)) for key in row if _split(clean_text(str(key))) is None}
    nested: dict[str, Any] = {}
    for raw_key, value in row.items():
        key = clean_text(str(raw_key))
        parts = _split(key)
        if parts is None or parts[0] in plain:
            nested[key] = _json_value(_exact_id(value) if _is_id(key.rpartition(".")[2]) else value)
        else:
            view, field = parts
            nested.setdefault(view, {})[field] = _json_value(_exact_id(value) if _is_id(field) else value)
    return nested


#: How the rows with these names nest (see ``_looker_plan``); rows of a query share their names.
_LOOKER_PLANS: dict[tuple[Any, ...], tuple[tuple[bytes, int, int], ...] | None] = {}
#: The serialised ``field`` items of the ``looker`` struct, by raw ``view.field`` name and value.
_LOOKER_ITEMS: dict[tuple[str, type, Any], bytes] = {}


def _looker(row: Mapping[Any, Any]) -> bytes:
    """The serialised ``looker`` ``Struct`` of a row, as ``nest_row`` builds it, common rows from cached parts."""
    names = tuple(row)
    try:
        plan = _LOOKER_PLANS[names]
    except KeyError:
        plan = _looker_plan(names)
    if plan is None:
        return _struct(nest_row(row))
    cached = _LOOKER_ITEMS.get
    try:  # the cache first, without a call per item
        items = [cached((key, type(value), value)) or _looker_item(key, value) for key, value in row.items()]
    except TypeError:  # an unhashable value (a JSON list or object)
        items = [_looker_item(key, value) for key, value in row.items()]
    nested = protowire.struct_entry_of_struct
    return b"".join([nested(view, b"".join(items[start:end])) for view, start, end in plan])


def _looker_plan(names: tuple[Any, ...]) -> tuple[tuple[bytes, int, int], ...] | None:
    """Each view's key and the slice of the row's items it holds, when every name splits and each view's
    names are together (as Looker sends them); else None, and the row takes ``nest_row``."""
    plan: list[tuple[bytes, int, int]] = []
    views: list[str] = []
    for index, name in enumerate(names):
        parts = _split(name) if type(name) is str else None
        if parts is None or (parts[0] in views and parts[0] != views[-1]):
            plan = []
            break
        if not views or parts[0] != views[-1]:
            views.append(parts[0])
            plan.append((_struct_key(parts[0]), index, index))
        plan[-1] = (plan[-1][0], plan[-1][1], index + 1)
    found = tuple(plan) if plan or not names else None
    if len(_LOOKER_PLANS) >= 256:
        _LOOKER_PLANS.clear()
    _LOOKER_PLANS[names] = found
    return found


def _looker_item(key: str, value: Any) -> bytes:
    """One ``field`` item of a ``view.field`` name that splits, the id exact."""
    field, is_id, unique = _field_of(key)
    kind = type(value)
    exact = (str(value) if kind is int else _exact_id(value)) if is_id else value
    found = protowire.struct_entry(field, _value_bytes(exact))
    if kind in _CACHED_TYPES and not unique:
        if len(_LOOKER_ITEMS) >= _ITEM_CACHE_SIZE:
            _LOOKER_ITEMS.clear()
        _LOOKER_ITEMS[key, kind, value] = found
    return found


@lru_cache(maxsize=1024)
def _field_of(key: str) -> tuple[bytes, bool, bool]:
    """The ``struct_key`` of the field part of a ``view.field`` name, whether it holds an id, and whether
    that is the view's own id (``event.id``), new in every row: not worth a place in the cache."""
    field = key.partition(".")[2]
    return _struct_key(field), _is_id(field), field == "id"


def _set_struct(struct: Any, values: Mapping[str, Any]) -> None:
    fields = struct.fields
    for key, value in values.items():
        _set_value(fields[key], value)


def _token(value: Any, default: str) -> str:
    text = _TOKEN.sub("_", str(value)[:MAX_TOKEN_CHARS].lower()).strip("_") if value not in (None, "") else ""
    return text or default


def _name(value: Any) -> Any:
    """A user's name for the principal: capped like other free text outside ``response`` (which keeps it
    whole under ``looker.user.name``); None when there is none."""
    return None if value is None else _capped(value) if isinstance(value, str) else _json_value(value)


def _capped(value: Any) -> str:
    if type(value) is str and len(value) <= MAX_FIELD_CHARS and value.isascii():
        return value
    return clean_text(str(value))[:MAX_FIELD_CHARS]


@dataclass(frozen=True, slots=True, eq=False)  # one per name and category (``_kind`` caches): hashed by identity
class _Kind:
    """What an event's name and category decide: tokens, method, severity, labels."""

    name: str
    category: str
    method: str
    severity: int
    name_label: str
    category_label: str
    #: The serialised ``AuditLog`` fields that follow from the method.
    audit_head: bytes


@lru_cache(maxsize=4096, typed=True)
def _kind(raw_name: Any, raw_category: Any) -> _Kind:
    name = _token(raw_name, "unknown")
    category = _token(raw_category, "uncategorized")
    method = f"lookerapp.event.{category}.{name}"
    return _Kind(name, category, method, severity(name, category), _capped(name), _capped(category),
                 AuditLog(service_name=SERVICE_NAME, method_name=method).SerializeToString())


def _kind_of(raw_name: Any, raw_category: Any) -> _Kind:
    try:
        return _kind(raw_name, raw_category)
    except TypeError:  # an unhashable value (a JSON list or object): not cached
        return _kind.__wrapped__(raw_name, raw_category)


@lru_cache(maxsize=4096)
def _cached_seconds(text: str) -> tuple[int, int] | None:
    parsed = _parse_time_text(text)
    return None if parsed is None else _seconds(parsed)


def _seconds(moment: datetime) -> tuple[int, int]:
    """``Timestamp.FromDatetime``'s seconds and nanos."""
    return calendar.timegm(moment.utctimetuple()), moment.microsecond * 1000


def _created_seconds(value: Any) -> tuple[int, int] | None:
    if type(value) is str:
        return _cached_seconds(value)
    parsed = parse_looker_time(value)
    return None if parsed is None else _seconds(parsed)


def _attributes(attributes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Attributes by name; a name that repeats keeps every value, in order, as a list."""
    values: dict[str, Any] = {}
    repeated: dict[str, list[Any]] = {}
    for name, value in attributes:
        key = _capped(name)
        if key in values:
            found = repeated.get(key)
            if found is None:
                found = repeated[key] = [values[key]]
                values[key] = found
            found.append(_json_value(value))
        else:
            values[key] = _json_value(value)
    return values


#: Subject attributes by name: their rank in ``SUBJECT_ATTRIBUTES`` and their collection.
_SUBJECTS = {attribute: (rank, collection) for rank, (attribute, collection) in enumerate(SUBJECT_ATTRIBUTES)}


def _resource_name(host: str, attributes: Mapping[str, Any]) -> str:
    """``host/<collection>/<id>`` of the first subject attribute (in ``SUBJECT_ATTRIBUTES`` order) with a value."""
    best: tuple[int, str] | None = None
    subject: Any = None
    for attribute, value in attributes.items():
        found = _SUBJECTS.get(attribute)
        if found is None or (best is not None and found > best):
            continue
        if isinstance(value, list):
            value = value[0] if value else None
        if value not in (None, ""):
            best, subject = found, value
    return host if best is None else f"{host}/{best[1]}/{_capped(subject)}"


def _user(users: Mapping[int, LookerUser], value: Any) -> tuple[int | None, LookerUser | None]:
    number = whole_number(value)
    return number, (users.get(number) if number is not None else None)


def _who(host: str, user_id: int | None, user: LookerUser | None, sudo_id: int | None,
         sudo_user: LookerUser | None, row_email: Any, row_name: Any) -> bytes:
    """The serialised ``authentication_info`` and ``authorization_info`` of an ``AuditLog``."""
    audit = AuditLog()
    email = row_email or (user.email if user else None)
    auth = audit.authentication_info
    if email:
        auth.principal_email = _capped(email)
        auth.principal_subject = f"user:{auth.principal_email}"
    principal: dict[str, Any] = {"looker_user_id": _exact_id(user_id),
                                 "looker_user_name": _name(row_name or (user and user.name))}
    if sudo_id is not None:
        principal["looker_sudo_user_id"] = _exact_id(sudo_id)
        delegation = auth.service_account_delegation_info.add()
        delegation.first_party_principal.service_metadata.update({"looker_user_id": _exact_id(sudo_id)})
        if sudo_user and sudo_user.email:
            delegation.first_party_principal.principal_email = _capped(sudo_user.email)
            delegation.principal_subject = f"user:{_capped(sudo_user.email)}"
    auth.third_party_principal.update(principal)
    if user:
        for permission in user.permissions:
            audit.authorization_info.add(resource=host, permission=f"looker.{_capped(permission)}", granted=True)
    return audit.SerializeToString()


#: ``_who`` answers by the values that decide them; a run sees a few hundred users at most.
_WHO_CACHE: dict[tuple[Any, ...], bytes] = {}
_WHO_CACHE_SIZE = 4096


def _who_cached(host: str, row: Mapping[str, Any], users: Mapping[int, LookerUser]) -> bytes:
    user_id, user = _user(users, row.get("event.user_id"))
    sudo_id, sudo_user = _user(users, row.get("event.sudo_user_id"))
    row_email, row_name = row.get("user.email"), row.get("user.name")
    key = (host, user_id, user, sudo_id, sudo_user, type(row_email), row_email, type(row_name), row_name)
    try:
        found = _WHO_CACHE.get(key)
    except TypeError:  # an unhashable value (a JSON list or object): not cached
        return _who(host, user_id, user, sudo_id, sudo_user, row_email, row_name)
    if found is None:
        if len(_WHO_CACHE) >= _WHO_CACHE_SIZE:
            _WHO_CACHE.clear()
        found = _WHO_CACHE[key] = _who(host, user_id, user, sudo_id, sudo_user, row_email, row_name)
    return found


#: The label of the entries of the exporter's own activity (its API user's queries and logins).
EXPORTER_LABEL = ("looker_exporter", "self")


def is_exporter(user_id: Any, ctx: EntryContext) -> bool:
    """Whether a row's user is the exporter's own API user."""
    return ctx.exporter_user_id is not None and whole_number(user_id) == ctx.exporter_user_id


@lru_cache(maxsize=4096)
def _entry_head(log_name: str, host: str, kind: _Kind, level: int, own: bool = False) -> bytes:
    """The serialised ``LogEntry`` fields that follow from the log, the host, the method, the severity and
    whether the exporter's own API user acted."""
    entry = LogEntryPb(log_name=log_name, severity=level)
    entry.resource.type = RESOURCE_TYPE
    entry.resource.labels.update({"service": SERVICE_NAME, "method": kind.method})
    entry.labels.update({"looker_host": host, "event_category": kind.category_label, "event_name": kind.name_label})
    if own:
        entry.labels[EXPORTER_LABEL[0]] = EXPORTER_LABEL[1]
    return entry.SerializeToString()


@lru_cache(maxsize=4096)
def _timestamp_field(seconds: int, nanos: int) -> bytes:
    return protowire.field(_TIMESTAMP, Timestamp(seconds=seconds, nanos=nanos).SerializeToString())


@lru_cache(maxsize=1024)
def _status_field(status: str) -> bytes:
    code = 0 if status.lower() in _SUCCESS_STATUSES else _UNKNOWN_CODE
    return AuditLog(status=Status(code=code, message=_capped(status))).SerializeToString()


_TIMESTAMP, _INSERT_ID, _PROTO_PAYLOAD = protowire.tag(9), protowire.tag(4), protowire.tag(2)
_RESOURCE_NAME, _RESPONSE, _ANY_VALUE = protowire.tag(11), protowire.tag(17), protowire.tag(2)
_ANY_HEAD = protowire.field(protowire.tag(1), _AUDIT_LOG_TYPE_URL.encode()) + _ANY_VALUE
_ATTRIBUTES, _LOOKER, _EXPORT_PROBLEMS = map(protowire.struct_key, ("attributes", "looker", "export_problems"))


def _level(kind: _Kind, row: Mapping[str, Any]) -> int:
    """The event's severity, at least NOTICE when it was done under sudo (``event.sudo_user_id`` set).

    ``sudo_user_id`` is the admin impersonating ``user_id`` (https://cloud.google.com/looker/docs/events);
    Looker documents no event that starts or ends a sudo session.
    """
    if kind.severity < NOTICE and whole_number(row.get("event.sudo_user_id")) is not None:
        return NOTICE
    return kind.severity


def log_entry_bytes(event: LookerEvent, ctx: EntryContext) -> bytes:
    """Map one event to a serialised LogEntry shaped like a GCP audit log entry; never raises on bad data.

    The parts that rows share (decided by the event's name and category, its time, its users, and most
    field values) are serialised once and cached; a row joins them with the few bytes of its own.
    """
    row = event.row
    raw_name = row.get("event.name")
    kind = _kind_of(raw_name, row.get("event.category"))
    attributes = _attributes(event.attributes)
    raw_created = row.get("event.created_time")
    created = _created_seconds(raw_created)
    number = event_id(row)
    problems = []
    if number is None:
        problems.append(f"event.id {row.get('event.id')!r} is not a whole number")
    if created is None:
        problems.append(f"event.created_time {raw_created!r} is missing or not a datetime")
    if raw_name in (None, ""):
        problems.append("event.name is missing")

    host = ctx.looker_host
    attributes_item = protowire.struct_entry_of_struct(_ATTRIBUTES, _struct(attributes))
    looker_item = protowire.struct_entry_of_struct(_LOOKER, _looker(row))
    problems_item = protowire.struct_entry(_EXPORT_PROBLEMS, _value_bytes(problems)) if problems else b""
    status = attributes.get("status")
    audit = b"".join((
        kind.audit_head,
        protowire.field(_RESOURCE_NAME, _resource_name(host, attributes).encode()),
        _status_field(status) if isinstance(status, str) and status else b"",
        _RESPONSE, protowire.varint(len(attributes_item) + len(looker_item) + len(problems_item)),
        attributes_item, looker_item, problems_item,
        _who_cached(host, row, ctx.users),
    ))
    ident = f"looker-{host}-event-{number}" if number is not None else insert_id(host, row)
    audit_length = protowire.varint(len(audit))
    entry = b"".join((
        _entry_head(ctx.log_name, host, kind, WARNING if problems else _level(kind, row),
                    ctx.exporter_user_id is not None and is_exporter(row.get("event.user_id"), ctx)),
        protowire.field(_INSERT_ID, ident.encode()),
        _timestamp_field(*(created or _seconds(ctx.fallback_time))),
        _PROTO_PAYLOAD, protowire.varint(len(_ANY_HEAD) + len(audit_length) + len(audit)),
        _ANY_HEAD, audit_length, audit,  # the Any: its type URL, then the AuditLog
    ))
    if len(entry) > MAX_ENTRY_BYTES:
        smaller = shrink(LogEntryPb.FromString(entry), MAX_ENTRY_BYTES)
        if smaller.ByteSize() > MAX_ENTRY_BYTES:
            smaller = placeholder(event, ctx, f"the event does not fit in {MAX_ENTRY_BYTES} bytes even when shrunk")
        return smaller.SerializeToString()
    return entry


def to_log_entry(event: LookerEvent, ctx: EntryContext) -> Message:
    """``log_entry_bytes`` as a ``LogEntry`` message."""
    return LogEntryPb.FromString(log_entry_bytes(event, ctx))


#: Query history: ``history.status`` to the ``google.rpc.Code`` and severity of the entry.
HISTORY_STATUS: dict[str, tuple[int, int]] = {
    "complete": (0, INFO), "cache_only_miss": (5, INFO), "killed": (1, WARNING), "error": (_UNKNOWN_CODE, ERROR),
    "running": (_UNKNOWN_CODE, WARNING),
}
_HISTORY_RESPONSE = (
    ("query.model", "model"), ("query.view", "view"), ("history.runtime", "runtime_seconds"),
    ("history.result_source", "result_source"), ("history.dashboard_id", "dashboard_id"),
    ("history.look_id", "look_id"), ("query.id", "query_id"), ("history.completed_time", "completed_time"),
    ("history.message", "message"),
)


def to_history_entry(row: Mapping[str, Any], ctx: EntryContext) -> Message:
    """Map one query history row to an audit-log-shaped LogEntry; never raises on bad data.

    ``methodName`` is ``lookerapp.query.<source>``, the principal is the user's email, ``status``
    follows ``history.status`` (errors at severity ERROR), ``response`` holds the query's model, view,
    runtime, result source, dashboard and look ids, and the raw row under ``looker`` (nested as ``nest_row`` does).
    """
    host = ctx.looker_host
    number = whole_number(row.get("history.id"))
    created = _created_seconds(row.get("history.created_time"))
    source = _token(row.get("history.source"), "unknown")
    status_text = _capped(row.get("history.status") or "unknown")
    code, level = HISTORY_STATUS.get(status_text, (_UNKNOWN_CODE, WARNING))
    problems = []
    if number is None:
        problems.append(f"history.id {row.get('history.id')!r} is not a whole number")
    if created is None:
        problems.append(f"history.created_time {row.get('history.created_time')!r} is missing or not a datetime")
    method = f"lookerapp.query.{source}"
    subject = next((f"{collection}/{_capped(row[field])}" for field, collection in
                    (("history.dashboard_id", "dashboards"), ("history.look_id", "looks"), ("query.id", "queries"))
                    if row.get(field) not in (None, "")), "")
    audit = AuditLog(service_name=SERVICE_NAME, method_name=method,
                     resource_name=f"{host}/{subject}" if subject else host)
    audit.status.code = code
    audit.status.message = _capped(row.get("history.message") or status_text) if code else status_text
    email = row.get("user.email")
    if email:
        audit.authentication_info.principal_email = _capped(email)
        audit.authentication_info.principal_subject = f"user:{_capped(email)}"
    principal = {"looker_user_id": _exact_id(whole_number(row.get("user.id"))),
                 "looker_user_name": _name(row.get("user.name"))}
    _set_struct(audit.authentication_info.third_party_principal, principal)
    response = {name: _json_value(_exact_id(row[field]) if _is_id(name) else row[field])
                for field, name in _HISTORY_RESPONSE if row.get(field) is not None}
    response["status"] = status_text
    response["looker"] = nest_row(row)
    if problems:
        response["export_problems"] = problems
    _set_struct(audit.response, response)

    raw_id = row.get("history.id")
    ident = f"looker-{host}-history-{number if number is not None else _digest(raw_id, row)}"
    entry = LogEntryPb(log_name=ctx.log_name, insert_id=ident, severity=WARNING if problems and level < WARNING
                       else level)
    entry.resource.type = RESOURCE_TYPE
    entry.resource.labels["service"] = SERVICE_NAME
    entry.resource.labels["method"] = method
    entry.labels["looker_host"] = host
    entry.labels["query_source"] = source
    entry.labels["query_status"] = status_text
    if is_exporter(row.get("user.id"), ctx):
        entry.labels[EXPORTER_LABEL[0]] = EXPORTER_LABEL[1]
    seconds, nanos = created or _seconds(ctx.fallback_time)
    entry.timestamp.seconds, entry.timestamp.nanos = seconds, nanos
    entry.proto_payload.Pack(audit)
    if entry.ByteSize() > MAX_ENTRY_BYTES:
        entry = shrink(entry, MAX_ENTRY_BYTES)
        if entry.ByteSize() > MAX_ENTRY_BYTES:
            return placeholder(entry, ctx, f"the query history row does not fit in {MAX_ENTRY_BYTES} bytes")
    return entry


#: What a cut value ends with, after the start it keeps.
TRUNCATION_MARK = "…[truncated]"
#: A cut value keeps at least this many characters of its start (unless even that cannot fit, see ``shrink``).
MIN_KEPT_CHARS = 256
_MARK_BYTES = len(TRUNCATION_MARK.encode())
#: What ``response.truncated`` costs before its first item: its key, and room for its lengths to grow.
_TRUNCATED_BYTES = len(protowire.struct_entry_of_struct(protowire.struct_key("truncated"), b"")) + 8


@dataclass(slots=True)
class _Cut:
    """A string of ``response`` that ``shrink`` may cut: where it is, and what cutting it costs and frees."""

    value: Any  # the ``Value`` message holding it
    name: str  # its path, for ``response.truncated``
    length: int  # its length in characters, recorded when it is cut
    start: bytes  # what it may keep a start of (a value cut before: what it kept)
    floor: int  # the bytes of its first ``MIN_KEPT_CHARS`` characters
    cost: int  # the bytes cutting it adds: the mark and its record (nothing for a value cut before)

    def freed(self, level: int, floors: bool) -> int:
        """The bytes cutting it to ``level`` bytes (its floor at least, with ``floors``) frees, or 0."""
        kept = max(level, self.floor) if floors else level
        return max(0, len(self.start) - kept - self.cost)


def shrink(entry: Message, limit: int) -> Message:
    """A copy of ``entry`` whose longest ``response`` strings are cut to one common length, so that it fits.

    Water-filling: the strings longer than the level are cut to it (at a UTF-8 character boundary, since the
    limit is in bytes), the shorter ones stay whole; the level is the highest at which the entry fits. Every
    cut string keeps its start, at least ``MIN_KEPT_CHARS`` characters of it unless the entry has so many long
    strings that even that does not fit (then they share the room equally, with no floor), and ends with
    ``TRUNCATION_MARK``; ``response.truncated`` records its original length in characters by its path (a
    second shrink keeps the first record). Returns the copy even if it still does not fit; the caller then
    writes a placeholder.
    """
    audit = AuditLog()
    entry.proto_payload.Unpack(audit)
    response = audit.response
    recorded = response.fields["truncated"].struct_value.fields if "truncated" in response.fields else {}
    cuts = [_cut(path, value, recorded) for path, value in _strings(response) if path[0] != "truncated"]
    over = entry.ByteSize() - limit
    need = over + (0 if recorded else _TRUNCATED_BYTES)
    smaller = LogEntryPb()
    smaller.CopyFrom(entry)
    for _ in range(4 if over > 0 else 0):  # sizes are estimates: while still over, free what is missing too
        if need <= 0 or not cuts:
            break
        level, floors = _water_level(cuts, need)
        records: dict[str, float] = {}
        for cut in cuts:
            kept = max(level, cut.floor) if floors else level
            if cut.freed(level, floors):
                cut.value.string_value = cut.start[:kept].decode("utf-8", "ignore") + TRUNCATION_MARK
                if cut.cost:
                    records[cut.name] = cut.length
        if records:
            response.get_or_create_struct("truncated").update(records)
        smaller.proto_payload.Pack(audit)
        over = smaller.ByteSize() - limit
        if over <= 0:
            break
        need += over
    return smaller


def _cut(path: tuple[str, ...], value: Any, recorded: Any) -> _Cut:
    name = ".".join(path)
    text = value.string_value
    if name in recorded and text.endswith(TRUNCATION_MARK):  # cut before: it keeps its start and its record
        start = text[:-len(TRUNCATION_MARK)]
        return _Cut(value, name, len(text), start.encode(), len(start[:MIN_KEPT_CHARS].encode()), 0)
    record = len(protowire.struct_entry(protowire.struct_key(name), protowire.number_value(0.0)))
    return _Cut(value, name, len(text), text.encode(), len(text[:MIN_KEPT_CHARS].encode()), _MARK_BYTES + record)


def _water_level(cuts: Sequence[_Cut], need: int) -> tuple[int, bool]:
    """The highest level (in bytes) at which cutting frees ``need`` bytes, and whether the floors hold."""
    for floors in (True, False):
        if sum(cut.freed(0, floors) for cut in cuts) >= need:
            low, high = 0, max(len(cut.start) for cut in cuts)
            while low < high:  # what is freed shrinks as the level rises: find the highest that frees enough
                middle = (low + high + 1) // 2
                if sum(cut.freed(middle, floors) for cut in cuts) >= need:
                    low = middle
                else:
                    high = middle - 1
            return low, floors
    return 0, False  # even cut to nothing it does not fit: as small as it goes


def _strings(struct: Struct, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every string in ``struct``, at any depth (in lists too), with its path and the ``Value`` holding it."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in struct.fields.items():
        found.extend(_value_strings(value, (*prefix, key)))
    return found


def _value_strings(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return [(path, value)]
    if kind == "struct_value":
        return _strings(value.struct_value, path)
    if kind == "list_value":
        return [found for index, item in enumerate(value.list_value.values)
                for found in _value_strings(item, (*path, str(index)))]
    return []


def placeholder(entry_or_event: LookerEvent | Message, ctx: EntryContext, reason: str) -> Message:
    """A small entry with the same insertId and time that records what was lost and why."""
    if isinstance(entry_or_event, LookerEvent):
        row = entry_or_event.row
        ident = insert_id(ctx.looker_host, row)
        created = parse_looker_time(row.get("event.created_time")) or ctx.fallback_time
        method = f"lookerapp.event.{_token(row.get('event.category'), 'uncategorized')}." \
                 f"{_token(row.get('event.name'), 'unknown')}"
        looker_id: Any = _json_value(_exact_id(row.get("event.id")))
    else:
        ident = entry_or_event.insert_id
        created = entry_or_event.timestamp.ToDatetime(tzinfo=UTC)
        method = entry_or_event.resource.labels.get("method", "lookerapp.event.unknown")
        looker_id = ident.rsplit("-", 1)[-1]
    audit = AuditLog(service_name=SERVICE_NAME, method_name=method, resource_name=ctx.looker_host)
    audit.status.code = _UNKNOWN_CODE
    audit.status.message = f"Looker event not exported in full: {reason}"[:2000]
    audit.response.update({"export_placeholder": True, "looker_event_id": looker_id, "reason": reason[:2000]})
    entry = LogEntryPb(log_name=ctx.log_name, insert_id=ident, severity=WARNING)
    entry.resource.type = RESOURCE_TYPE
    entry.resource.labels["service"] = SERVICE_NAME
    entry.resource.labels["method"] = method
    entry.labels["looker_host"] = ctx.looker_host
    entry.labels["export_placeholder"] = "true"
    entry.timestamp.FromDatetime(created)
    entry.proto_payload.Pack(audit)
    return entry
