"""One System Activity event as a serialised ``LogEntry`` shaped like a GCP audit log entry.

``event_entry`` is what the export writes: it never raises on bad data (an event that cannot be mapped
faithfully becomes a placeholder that says why), and joins cached serialised parts with the few bytes of
each row. Pure. Knows the entries rooms below it; knows nothing of Looker's API, the streams or the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from google.cloud.audit.audit_log_pb2 import AuditLog
from google.logging.type.log_severity_pb2 import INFO, NOTICE, WARNING
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc.status_pb2 import Status

from .. import catalogue, protowire
from ..values import LookerEvent, LookerUser, event_id, whole_number
from .encode import capped, display_name, exact_id, json_value, looker_struct, struct_bytes, token, value_bytes
from .head import (
    AUDIT_LOG_TYPE_URL,
    MAX_ENTRY_BYTES,
    SERVICE_NAME,
    UNKNOWN_CODE,
    EntryContext,
    LogEntryPb,
    created_seconds,
    entry_head,
    insert_id,
    is_exporter,
    timestamp_parts,
)
from .repair import placeholder, shrink

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


def severity(name: str, category: str) -> int:
    """Severity by the documented table (``catalogue``): failures WARNING, changes of who may do what
    NOTICE, else INFO. An event done under sudo is at least NOTICE (``event_entry``)."""
    if catalogue.is_failure(name):
        return WARNING
    if catalogue.is_access_change(name, category):
        return NOTICE
    return INFO


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
    name = token(raw_name, "unknown")
    category = token(raw_category, "uncategorized")
    method = f"lookerapp.event.{category}.{name}"
    return _Kind(name, category, method, severity(name, category), capped(name), capped(category),
                 AuditLog(service_name=SERVICE_NAME, method_name=method).SerializeToString())


def _kind_of(raw_name: Any, raw_category: Any) -> _Kind:
    try:
        return _kind(raw_name, raw_category)
    except TypeError:  # an unhashable value (a JSON list or object): not cached
        return _kind.__wrapped__(raw_name, raw_category)


def _attributes(attributes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Attributes by name; a name that repeats keeps every value, in order, as a list."""
    values: dict[str, Any] = {}
    repeated: dict[str, list[Any]] = {}
    for name, value in attributes:
        key = capped(name)
        if key in values:
            found = repeated.get(key)
            if found is None:
                found = repeated[key] = [values[key]]
                values[key] = found
            found.append(json_value(value))
        else:
            values[key] = json_value(value)
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
    return host if best is None else f"{host}/{best[1]}/{capped(subject)}"


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
        auth.principal_email = capped(email)
        auth.principal_subject = f"user:{auth.principal_email}"
    principal: dict[str, Any] = {"looker_user_id": exact_id(user_id),
                                 "looker_user_name": display_name(row_name or (user and user.name))}
    if sudo_id is not None:
        principal["looker_sudo_user_id"] = exact_id(sudo_id)
        delegation = auth.service_account_delegation_info.add()
        delegation.first_party_principal.service_metadata.update({"looker_user_id": exact_id(sudo_id)})
        if sudo_user and sudo_user.email:
            delegation.first_party_principal.principal_email = capped(sudo_user.email)
            delegation.principal_subject = f"user:{capped(sudo_user.email)}"
    auth.third_party_principal.update(principal)
    if user:
        for permission in user.permissions:
            audit.authorization_info.add(resource=host, permission=f"looker.{capped(permission)}", granted=True)
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


@lru_cache(maxsize=4096)
def _entry_head(log_name: str, host: str, kind: _Kind, level: int, own: bool = False) -> bytes:
    """The serialised ``LogEntry`` fields that follow from the log, the host, the method, the severity and
    whether the exporter's own API user acted."""
    labels = {"event_category": kind.category_label, "event_name": kind.name_label}
    return entry_head(log_name, host, kind.method, level, labels, own).SerializeToString()  # type: ignore[no-any-return]


@lru_cache(maxsize=4096)
def _timestamp_field(seconds: int, nanos: int) -> bytes:
    return protowire.field(_TIMESTAMP, Timestamp(seconds=seconds, nanos=nanos).SerializeToString())


@lru_cache(maxsize=1024)
def _status_field(status: str) -> bytes:
    code = 0 if status.lower() in _SUCCESS_STATUSES else UNKNOWN_CODE
    return AuditLog(status=Status(code=code, message=capped(status))).SerializeToString()


_TIMESTAMP, _INSERT_ID, _PROTO_PAYLOAD = protowire.tag(9), protowire.tag(4), protowire.tag(2)

_RESOURCE_NAME, _RESPONSE, _ANY_VALUE = protowire.tag(11), protowire.tag(17), protowire.tag(2)

_ANY_HEAD = protowire.field(protowire.tag(1), AUDIT_LOG_TYPE_URL.encode()) + _ANY_VALUE

_ATTRIBUTES, _LOOKER, _EXPORT_PROBLEMS = map(protowire.struct_key, ("attributes", "looker", "export_problems"))


def _level(kind: _Kind, row: Mapping[str, Any]) -> int:
    """The event's severity, at least NOTICE when it was done under sudo (``event.sudo_user_id`` set).

    ``sudo_user_id`` is the admin impersonating ``user_id`` (https://cloud.google.com/looker/docs/events);
    Looker documents no event that starts or ends a sudo session.
    """
    if kind.severity < NOTICE and whole_number(row.get("event.sudo_user_id")) is not None:
        return NOTICE
    return kind.severity


def event_entry(event: LookerEvent, ctx: EntryContext) -> bytes:
    """Map one event to a serialised LogEntry shaped like a GCP audit log entry; never raises on bad data.

    The parts that rows share (decided by the event's name and category, its time, its users, and most
    field values) are serialised once and cached; a row joins them with the few bytes of its own.
    """
    row = event.row
    raw_name = row.get("event.name")
    kind = _kind_of(raw_name, row.get("event.category"))
    attributes = _attributes(event.attributes)
    raw_created = row.get("event.created_time")
    created = created_seconds(raw_created)
    number = event_id(row)
    problems = []
    if number is None:
        problems.append(f"event.id {row.get('event.id')!r} is not a whole number")
    if created is None:
        problems.append(f"event.created_time {raw_created!r} is missing or not a datetime")
    if raw_name in (None, ""):
        problems.append("event.name is missing")

    host = ctx.looker_host
    attributes_item = protowire.struct_entry_of_struct(_ATTRIBUTES, struct_bytes(attributes))
    looker_item = protowire.struct_entry_of_struct(_LOOKER, looker_struct(row))
    problems_item = protowire.struct_entry(_EXPORT_PROBLEMS, value_bytes(problems)) if problems else b""
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
        _timestamp_field(*(created or timestamp_parts(ctx.fallback_time))),
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
    """``event_entry`` parsed into a ``LogEntry`` message, for tests and tools that read an entry's fields;
    the export never parses what ``event_entry`` built."""
    return LogEntryPb.FromString(event_entry(event, ctx))
