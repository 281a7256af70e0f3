"""One query history row as a ``LogEntry`` shaped like a GCP audit log entry.

Built as a message (the history stream is small), serialised once by ``history_entry``. Pure; never raises
on bad data. Knows the entries rooms below it; knows nothing of Looker's API, the streams or the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.cloud.audit.audit_log_pb2 import AuditLog
from google.logging.type.log_severity_pb2 import ERROR, INFO, WARNING
from google.protobuf.message import Message

from ..values import whole_number
from .encode import capped, display_name, exact_id, is_id, json_value, nest_row, set_struct, token
from .head import (
    MAX_ENTRY_BYTES,
    SERVICE_NAME,
    UNKNOWN_CODE,
    EntryContext,
    created_seconds,
    digest,
    entry_head,
    is_exporter,
    timestamp_parts,
)
from .repair import placeholder, shrink

#: Query history: ``history.status`` to the ``google.rpc.Code`` and severity of the entry.
HISTORY_STATUS: dict[str, tuple[int, int]] = {
    "complete": (0, INFO), "cache_only_miss": (5, INFO), "killed": (1, WARNING), "error": (UNKNOWN_CODE, ERROR),
    "running": (UNKNOWN_CODE, WARNING),
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
    created = created_seconds(row.get("history.created_time"))
    source = token(row.get("history.source"), "unknown")
    status_text = capped(row.get("history.status") or "unknown")
    code, level = HISTORY_STATUS.get(status_text, (UNKNOWN_CODE, WARNING))
    problems = []
    if number is None:
        problems.append(f"history.id {row.get('history.id')!r} is not a whole number")
    if created is None:
        problems.append(f"history.created_time {row.get('history.created_time')!r} is missing or not a datetime")
    method = f"lookerapp.query.{source}"
    subject = next((f"{collection}/{capped(row[field])}" for field, collection in
                    (("history.dashboard_id", "dashboards"), ("history.look_id", "looks"), ("query.id", "queries"))
                    if row.get(field) not in (None, "")), "")
    audit = AuditLog(service_name=SERVICE_NAME, method_name=method,
                     resource_name=f"{host}/{subject}" if subject else host)
    audit.status.code = code
    audit.status.message = capped(row.get("history.message") or status_text) if code else status_text
    email = row.get("user.email")
    if email:
        audit.authentication_info.principal_email = capped(email)
        audit.authentication_info.principal_subject = f"user:{capped(email)}"
    principal = {"looker_user_id": exact_id(whole_number(row.get("user.id"))),
                 "looker_user_name": display_name(row.get("user.name"))}
    set_struct(audit.authentication_info.third_party_principal, principal)
    set_struct(audit.response, _response(row, status_text, problems))

    raw_id = row.get("history.id")
    ident = f"looker-{host}-history-{number if number is not None else digest(raw_id, row)}"
    entry = entry_head(ctx.log_name, host, method, WARNING if problems and level < WARNING else level,
                       {"query_source": source, "query_status": status_text}, is_exporter(row.get("user.id"), ctx))
    entry.insert_id = ident
    seconds, nanos = created or timestamp_parts(ctx.fallback_time)
    entry.timestamp.seconds, entry.timestamp.nanos = seconds, nanos
    entry.proto_payload.Pack(audit)
    if entry.ByteSize() > MAX_ENTRY_BYTES:
        entry = shrink(entry, MAX_ENTRY_BYTES)
        if entry.ByteSize() > MAX_ENTRY_BYTES:
            return placeholder(entry, ctx, f"the query history row does not fit in {MAX_ENTRY_BYTES} bytes")
    return entry


def _response(row: Mapping[str, Any], status_text: str, problems: list[str]) -> dict[str, Any]:
    """The ``response`` of a history entry: the query's details, its status, the raw row, and any problems."""
    response = {name: json_value(exact_id(row[field]) if is_id(name) else row[field])
                for field, name in _HISTORY_RESPONSE if row.get(field) is not None}
    response["status"] = status_text
    response["looker"] = nest_row(row)
    if problems:
        response["export_problems"] = problems
    return response


def history_entry(row: Mapping[str, Any], ctx: EntryContext) -> bytes:
    """``to_history_entry`` serialised: what the export writes."""
    return to_history_entry(row, ctx).SerializeToString()
