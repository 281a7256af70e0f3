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
# Cloud Logging refuses entries over 256 KiB; keep a margin for request framing.
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
    found = protowire.struct_entry(_struct_key(key), _value_bytes(value))
    kind = type(value)
    if kind in _CACHED_TYPES:
        if len(_ITEM_CACHE) >= _ITEM_CACHE_SIZE:
            _ITEM_CACHE.clear()
        _ITEM_CACHE[key, kind, value] = found
    return found


@lru_cache(maxsize=1024)
def _struct_key(key: str) -> bytes:
    return protowire.struct_key(clean_text(key))


def _set_struct(struct: Any, values: Mapping[str, Any]) -> None:
    fields = struct.fields
    for key, value in values.items():
        _set_value(fields[key], value)


def _token(value: Any, default: str) -> str:
    text = _TOKEN.sub("_", str(value)[:MAX_TOKEN_CHARS].lower()).strip("_") if value not in (None, "") else ""
    return text or default


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
    principal: dict[str, Any] = {"looker_user_id": user_id,
                                 "looker_user_name": _json_value(row_name or (user and user.name))}
    if sudo_id is not None:
        principal["looker_sudo_user_id"] = sudo_id
        delegation = auth.service_account_delegation_info.add()
        delegation.first_party_principal.service_metadata.update({"looker_user_id": sudo_id})
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
_ANY_TYPE_URL = protowire.field(protowire.tag(1), _AUDIT_LOG_TYPE_URL.encode())
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
    response = [protowire.struct_entry(_ATTRIBUTES, protowire.field(protowire.STRUCT_VALUE, _struct(attributes))),
                protowire.struct_entry(_LOOKER, protowire.field(protowire.STRUCT_VALUE, _struct(row)))]
    if problems:
        response.append(protowire.struct_entry(_EXPORT_PROBLEMS, _value_bytes(problems)))
    status = attributes.get("status")
    audit = b"".join((
        kind.audit_head,
        protowire.field(_RESOURCE_NAME, _resource_name(host, attributes).encode()),
        _status_field(status) if isinstance(status, str) and status else b"",
        protowire.field(_RESPONSE, b"".join(response)),
        _who_cached(host, row, ctx.users),
    ))
    ident = f"looker-{host}-event-{number}" if number is not None else insert_id(host, row)
    entry = b"".join((
        _entry_head(ctx.log_name, host, kind, WARNING if problems else _level(kind, row),
                    ctx.exporter_user_id is not None and is_exporter(row.get("event.user_id"), ctx)),
        protowire.field(_INSERT_ID, ident.encode()),
        _timestamp_field(*(created or _seconds(ctx.fallback_time))),
        protowire.field(_PROTO_PAYLOAD, _ANY_TYPE_URL + protowire.field(_ANY_VALUE, audit)),
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
    runtime, result source, dashboard and look ids, and the raw row under ``looker``.
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
    principal = {"looker_user_id": whole_number(row.get("user.id")),
                 "looker_user_name": _json_value(row.get("user.name"))}
    _set_struct(audit.authentication_info.third_party_principal, principal)
    response = {name: _json_value(row[field]) for field, name in _HISTORY_RESPONSE if row.get(field) is not None}
    response["status"] = status_text
    response["looker"] = {str(key): _json_value(value) for key, value in row.items()}
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


def shrink(entry: Message, limit: int) -> Message:
    """A copy of ``entry`` whose largest response values are cut until it fits ``limit`` bytes.

    The original length of every value cut is recorded under ``response.truncated``.
    Returns the copy even if it still does not fit; the caller then writes a placeholder.
    """
    audit = AuditLog()
    entry.proto_payload.Unpack(audit)
    response = audit.response
    truncated: dict[str, int] = {}
    overflow = entry.ByteSize() - limit
    for path, text in sorted(_strings(response), key=lambda item: -len(item[1])):
        if overflow <= 0:
            break
        keep = max(0, len(text.encode("utf-8")) - overflow - 256)
        cut = text.encode("utf-8")[:keep].decode("utf-8", "ignore")
        _set_path(response, path, cut + "…[truncated]")
        truncated[".".join(path)] = len(text)
        overflow -= len(text.encode("utf-8")) - len(cut.encode("utf-8")) - 16
    if truncated:
        existing = dict(response.fields["truncated"].struct_value) if "truncated" in response.fields else {}
        response.update({"truncated": {**truncated, **existing}})  # a second cut keeps the original lengths
    smaller = LogEntryPb()
    smaller.CopyFrom(entry)
    smaller.proto_payload.Pack(audit)
    return smaller


def _strings(struct: Struct, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    for key, value in struct.fields.items():
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            found.append(((*prefix, key), value.string_value))
        elif kind == "struct_value":
            found.extend(_strings(value.struct_value, (*prefix, key)))
        elif kind == "list_value":
            for index, item in enumerate(value.list_value.values):
                if item.WhichOneof("kind") == "string_value":
                    found.append(((*prefix, key, str(index)), item.string_value))
    return found


def _set_path(struct: Struct, path: tuple[str, ...], text: str) -> None:
    value = struct.fields[path[0]]
    for step in path[1:]:
        if value.WhichOneof("kind") == "list_value":
            value = value.list_value.values[int(step)]
        else:
            value = value.struct_value.fields[step]
    value.string_value = text


def placeholder(entry_or_event: LookerEvent | Message, ctx: EntryContext, reason: str) -> Message:
    """A small entry with the same insertId and time that records what was lost and why."""
    if isinstance(entry_or_event, LookerEvent):
        row = entry_or_event.row
        ident = insert_id(ctx.looker_host, row)
        created = parse_looker_time(row.get("event.created_time")) or ctx.fallback_time
        method = f"lookerapp.event.{_token(row.get('event.category'), 'uncategorized')}." \
                 f"{_token(row.get('event.name'), 'unknown')}"
        looker_id: Any = _json_value(row.get("event.id"))
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
