"""Entries that do not fit or that Cloud Logging refused: shrunk, else a placeholder that says why.

``Repair`` is what the sink is given to mend a refused entry. Pure; works on ``LogEntry`` messages (an entry
is parsed back only here, to be repaired). Knows nothing of Looker's API, the streams or the export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from google.cloud.audit.audit_log_pb2 import AuditLog
from google.logging.type.log_severity_pb2 import WARNING
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

from .. import protowire
from ..values import LookerEvent, parse_looker_time
from .encode import exact_id, json_value, token
from .head import (
    SERVICE_NAME,
    SHRUNK_ENTRY_BYTES,
    UNKNOWN_CODE,
    EntryContext,
    LogEntryPb,
    entry_head,
    insert_id,
)

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
        method = f"lookerapp.event.{token(row.get('event.category'), 'uncategorized')}." \
                 f"{token(row.get('event.name'), 'unknown')}"
        looker_id: Any = json_value(exact_id(row.get("event.id")))
    else:
        ident = entry_or_event.insert_id
        created = entry_or_event.timestamp.ToDatetime(tzinfo=UTC)
        method = entry_or_event.resource.labels.get("method", "lookerapp.event.unknown")
        looker_id = ident.rsplit("-", 1)[-1]
    audit = AuditLog(service_name=SERVICE_NAME, method_name=method, resource_name=ctx.looker_host)
    audit.status.code = UNKNOWN_CODE
    audit.status.message = f"Looker event not exported in full: {reason}"[:2000]
    audit.response.update({"export_placeholder": True, "looker_event_id": looker_id, "reason": reason[:2000]})
    entry = entry_head(ctx.log_name, ctx.looker_host, method, WARNING, {"export_placeholder": "true"})
    entry.insert_id = ident
    entry.timestamp.FromDatetime(created)
    entry.proto_payload.Pack(audit)
    return entry


@dataclass(frozen=True)
class Repair:
    """How the sink mends an entry Cloud Logging refused, for the entries of one stream (its context)."""

    context: EntryContext

    def shrink(self, entry: Message) -> Message:
        """``entry`` shrunk to ``SHRUNK_ENTRY_BYTES`` (no smaller than it was if nothing could be cut)."""
        return shrink(entry, SHRUNK_ENTRY_BYTES)

    def placeholder(self, entry: Message, reason: str) -> Message:
        """A placeholder for ``entry`` that says ``reason``."""
        return placeholder(entry, self.context, reason)
