"""What every entry shares, of either stream: the log, the resource, the insertId, the time, the labels.

Pure. Knows what a Looker value means (``values``) and the ``LogEntry`` and ``AuditLog`` shapes; knows nothing
of Looker's API or the export.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from google.cloud.logging_v2.types import LogEntry

from ..values import LookerUser, clean_text, event_id, parse_looker_time, parse_time_text, whole_number

LogEntryPb = LogEntry.pb()

AUDIT_LOG_TYPE_URL = "type.googleapis.com/google.cloud.audit.AuditLog"


SERVICE_NAME = "looker.googleapis.com"

RESOURCE_TYPE = "audited_resource"

# Cloud Logging refuses entries over 256 KB, a limit it measures, approximately, on its internal form
# (https://cloud.google.com/logging/quotas); keep a margin.
MAX_ENTRY_BYTES = 250_000

#: What an entry that Cloud Logging still refused is shrunk to before it is written again.
SHRUNK_ENTRY_BYTES = 100_000


UNKNOWN_CODE = 2


@dataclass(frozen=True, slots=True)
class EntryContext:
    """What every entry of a run shares."""

    log_name: str
    looker_host: str
    users: Mapping[int, LookerUser]
    fallback_time: datetime
    #: The Looker user id of the exporter's own API credentials: its entries carry ``labels.looker_exporter``.
    exporter_user_id: int | None = None


def insert_id(host: str, row: Mapping[str, Any]) -> str:
    """Deterministic ``insertId``: ``looker-<host>-event-<id>``, so a retried write never duplicates."""
    number = event_id(row)
    if number is not None:
        return f"looker-{host}-event-{number}"
    return f"looker-{host}-event-{digest(row.get('event.id'), row)}"


def digest(raw_id: Any, row: Mapping[str, Any]) -> str:
    """A stable stand-in for an id that is not a whole number: ``x`` and a hash of the id, or of the row."""
    key = clean_text(str(raw_id)) if raw_id not in (None, "") else repr(sorted(row.items(), key=str))
    return f"x{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()[:24]}"


#: The label of the entries of the exporter's own activity (its API user's queries and logins).
EXPORTER_LABEL = ("looker_exporter", "self")


def entry_head(log_name: str, host: str, method: str, severity: int, labels: Mapping[str, str],
               own: bool = False) -> Any:
    """A ``LogEntry`` message with what every entry shares: its log and severity, the ``audited_resource`` of
    the service and ``method``, and its labels: the host, ``labels``, and the exporter's own label when ``own``."""
    entry = LogEntryPb(log_name=log_name, severity=severity)
    entry.resource.type = RESOURCE_TYPE
    entry.resource.labels.update({"service": SERVICE_NAME, "method": method})
    entry.labels.update({"looker_host": host, **labels})
    if own:
        entry.labels[EXPORTER_LABEL[0]] = EXPORTER_LABEL[1]
    return entry


def is_exporter(user_id: Any, ctx: EntryContext) -> bool:
    """Whether a row's user is the exporter's own API user."""
    return ctx.exporter_user_id is not None and whole_number(user_id) == ctx.exporter_user_id


@lru_cache(maxsize=4096)
def _cached_seconds(text: str) -> tuple[int, int] | None:
    parsed = parse_time_text(text)
    return None if parsed is None else timestamp_parts(parsed)


def timestamp_parts(moment: datetime) -> tuple[int, int]:
    """``Timestamp.FromDatetime``'s seconds and nanos."""
    return calendar.timegm(moment.utctimetuple()), moment.microsecond * 1000


def created_seconds(value: Any) -> tuple[int, int] | None:
    if type(value) is str:
        return _cached_seconds(value)
    parsed = parse_looker_time(value)
    return None if parsed is None else timestamp_parts(parsed)
