"""Pure mapping from a Looker System Activity event to a Cloud Logging ``LogEntry``.

Every function here is free of I/O. ``to_log_entry`` never raises on bad data: an
event that cannot be mapped faithfully becomes a placeholder entry that says why.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud.audit.audit_log_pb2 import AuditLog
from google.cloud.logging_v2.types import LogEntry
from google.logging.type.log_severity_pb2 import INFO, NOTICE, WARNING
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

LogEntryPb = LogEntry.pb()

SERVICE_NAME = "looker.googleapis.com"
RESOURCE_TYPE = "audited_resource"
# Cloud Logging refuses entries over 256 KiB; keep a margin for request framing.
MAX_ENTRY_BYTES = 250_000
#: What an entry that Cloud Logging still refused is shrunk to before it is written again.
SHRUNK_ENTRY_BYTES = 100_000
#: Free text outside ``response`` (labels, names, status) is capped; ``response`` keeps it whole.
MAX_FIELD_CHARS = 1024
MAX_TOKEN_CHARS = 128

#: Events that report a failure: WARNING.
WARNING_EVENTS = frozenset({
    "login_failure", "sudo_login_failure", "api_login_failure", "saml_login_failure",
    "oidc_login_failure", "ldap_login_failure", "two_factor_failure", "scheduled_task_failure",
    "run_scheduled_plan_failure", "query_failure", "alert_failure",
})
#: Categories whose changes alter who may do what: NOTICE.
ADMIN_CATEGORIES = frozenset({
    "user", "role", "permission_set", "model_set", "group", "user_attribute",
    "api3_key", "credentials", "credentials_api3", "auth", "setting", "ldap", "saml", "oidc",
    "embed", "sudo", "admin", "connection", "oauth_client_app", "license",
})
_CHANGE_PREFIXES = ("create_", "update_", "delete_", "add_", "remove_", "set_", "enable_", "disable_",
                    "grant_", "revoke_", "reset_", "accept_", "change_", "sudo")

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


def event_id(row: Mapping[str, Any]) -> int | None:
    """The numeric ``event.id`` of a row, or None when it is missing or not a whole number."""
    value = row.get("event.id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def insert_id(host: str, row: Mapping[str, Any]) -> str:
    """Deterministic ``insertId``: ``looker-<host>-event-<id>``, so a retried write never duplicates."""
    number = event_id(row)
    if number is not None:
        return f"looker-{host}-event-{number}"
    raw = row.get("event.id")
    key = clean_text(str(raw)) if raw not in (None, "") else repr(sorted(row.items(), key=str))
    return f"looker-{host}-event-x{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()[:24]}"


def parse_looker_time(value: Any) -> datetime | None:
    """Parse a Looker datetime (``YYYY-MM-DD HH:MM:SS`` in UTC, or ISO 8601 with an offset)."""
    if not isinstance(value, str) or not value.strip():
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
    """Severity by the documented table: failures WARNING, admin and permission changes NOTICE, else INFO."""
    if name in WARNING_EVENTS or name.endswith(("_failure", "_failed", "_error")):
        return WARNING
    if category in ADMIN_CATEGORIES and (name.startswith(_CHANGE_PREFIXES) or category == "sudo"):
        return NOTICE
    if name.startswith("sudo"):
        return NOTICE
    return INFO


def clean_text(value: str) -> str:
    """Make a string valid UTF-8 for protobuf: a lone surrogate becomes U+FFFD, a split pair is joined."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _json_value(value: Any) -> Any:
    """A value a ``Struct`` can hold, with strings cleaned."""
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, float) and not math.isfinite(value):  # NaN and infinity are not JSON
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


def _token(value: Any, default: str) -> str:
    text = _TOKEN.sub("_", str(value)[:MAX_TOKEN_CHARS].lower()).strip("_") if value not in (None, "") else ""
    return text or default


def _capped(value: Any) -> str:
    return clean_text(str(value))[:MAX_FIELD_CHARS]


def _attributes(attributes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Attributes by name; a name that repeats keeps every value, in order, as a list."""
    values: dict[str, list[Any]] = {}
    for name, value in attributes:
        values.setdefault(_capped(name), []).append(_json_value(value))
    return {name: found[0] if len(found) == 1 else found for name, found in values.items()}


def _resource_name(host: str, attributes: Mapping[str, Any]) -> str:
    for attribute, collection in SUBJECT_ATTRIBUTES:
        value = attributes.get(attribute)
        if isinstance(value, list):
            value = value[0] if value else None
        if value not in (None, ""):
            return f"{host}/{collection}/{_capped(value)}"
    return host


def _user(users: Mapping[int, LookerUser], value: Any) -> tuple[int | None, LookerUser | None]:
    number = event_id({"event.id": value})
    return number, (users.get(number) if number is not None else None)


def to_log_entry(event: LookerEvent, ctx: EntryContext) -> Message:
    """Map one event to a LogEntry shaped like a GCP audit log entry; never raises on bad data."""
    row = event.row
    name = _token(row.get("event.name"), "unknown")
    category = _token(row.get("event.category"), "uncategorized")
    method = f"lookerapp.event.{category}.{name}"
    attributes = _attributes(event.attributes)
    created = parse_looker_time(row.get("event.created_time"))
    problems = []
    if event_id(row) is None:
        problems.append(f"event.id {row.get('event.id')!r} is not a whole number")
    if created is None:
        problems.append(f"event.created_time {row.get('event.created_time')!r} is missing or not a datetime")
    if row.get("event.name") in (None, ""):
        problems.append("event.name is missing")

    audit = AuditLog(service_name=SERVICE_NAME, method_name=method,
                     resource_name=_resource_name(ctx.looker_host, attributes))
    user_id, user = _user(ctx.users, row.get("event.user_id"))
    sudo_id, sudo_user = _user(ctx.users, row.get("event.sudo_user_id"))
    email = row.get("user.email") or (user.email if user else None)
    auth = audit.authentication_info
    if email:
        auth.principal_email = _capped(email)
        auth.principal_subject = f"user:{auth.principal_email}"
    principal: dict[str, Any] = {"looker_user_id": user_id,
                                 "looker_user_name": _json_value(row.get("user.name") or (user and user.name))}
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
            audit.authorization_info.add(resource=ctx.looker_host, permission=f"looker.{_capped(permission)}",
                                         granted=True)
    status = attributes.get("status")
    if isinstance(status, str) and status:
        code = 0 if status.lower() in _SUCCESS_STATUSES else _UNKNOWN_CODE
        audit.status.code = code
        audit.status.message = _capped(status)
    response: dict[str, Any] = {"attributes": attributes,
                                "looker": {str(k): _json_value(v) for k, v in row.items()}}
    if problems:
        response["export_problems"] = problems
    audit.response.update(response)

    entry = LogEntryPb(log_name=ctx.log_name, insert_id=insert_id(ctx.looker_host, row),
                       severity=WARNING if problems else severity(name, category))
    entry.resource.type = RESOURCE_TYPE
    entry.resource.labels["service"] = SERVICE_NAME
    entry.resource.labels["method"] = method
    entry.labels["looker_host"] = ctx.looker_host
    entry.labels["event_category"] = _capped(category)
    entry.labels["event_name"] = _capped(name)
    entry.timestamp.FromDatetime(created or ctx.fallback_time)
    entry.proto_payload.Pack(audit)
    if entry.ByteSize() > MAX_ENTRY_BYTES:
        entry = shrink(entry, MAX_ENTRY_BYTES)
        if entry.ByteSize() > MAX_ENTRY_BYTES:
            return placeholder(event, ctx, f"the event does not fit in {MAX_ENTRY_BYTES} bytes even when shrunk")
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
        response.update({"truncated": {**existing, **truncated}})
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
