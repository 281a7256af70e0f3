"""Cloud Logging emulator: ``google.logging.v2.LoggingServiceV2`` over real gRPC.

Serves ``WriteLogEntries`` with the documented limits and rules
(https://cloud.google.com/logging/quotas and the ``LogEntry`` reference) and a
minimal ``ListLogEntries`` so the real client can read entries back.

Rules enforced on ``WriteLogEntries``:

* no entries, or a serialized request larger than 10 MiB: INVALID_ARGUMENT;
* per entry, after merging the request's ``log_name``/``resource``/``labels``
  defaults: log name ``projects/[PROJECT_ID]/logs/[LOG_ID]`` (``LOG_ID``
  URL-encoded, under 512 characters, ``[A-Za-z0-9/_.-]`` once decoded;
  the other parents and the legacy leading ``/`` are refused), a resource with
  a type (``audited_resource`` needs ``service`` and ``method`` labels), a
  known severity, at most 64 labels, a ``proto_payload`` only of a supported
  type (AuditLog, App Engine RequestLog) that parses, a timestamp at most 24
  hours in the future, a serialized size of at most 256 KiB;
* an invalid entry fails the call with INVALID_ARGUMENT.  Without
  ``partial_success`` nothing is written; with it, the valid entries are
  written and the status details carry ``WriteLogEntriesPartialErrors``.
  As documented, a failed call that wrote no entry has no per-entry errors;
* entries older than the 30-day retention of the ``_Default`` bucket are
  accepted but not stored (``dropped_old``);
* every other valid entry is stored, duplicates included: an entry with the same
  project, ``insert_id`` and ``timestamp`` as a stored one is stored again and
  counted (``duplicates_stored``).  The ``LogEntry.insertId`` reference
  (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry) says such
  entries are duplicates "removed in a single query result", with "no guarantees
  of de-duplication in the export of logs": they are ingested, billed and routed
  by sinks.  So only ``ListLogEntries`` hides them (the first one stored is
  listed); ``entries()`` returns what is stored, as an export would see it.
  Missing ``timestamp`` and ``insert_id`` are assigned by the server.

Faults come from :class:`emulators._grpc.GrpcEmulator` (``inject``,
``inject_delay``, ``clear_faults``) and apply to ``WriteLogEntries`` only.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import grpc
from google.cloud.appengine_logging_v1 import RequestLog
from google.cloud.audit import audit_log_pb2
from google.cloud.logging_v2.types import (
    ListLogEntriesRequest,
    ListLogEntriesResponse,
    LogEntry,
    WriteLogEntriesPartialErrors,
    WriteLogEntriesRequest,
    WriteLogEntriesResponse,
)
from google.logging.type import log_severity_pb2
from google.protobuf import any_pb2, message, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from emulators._grpc import Abort, GrpcEmulator, unary

SERVICE = "google.logging.v2.LoggingServiceV2"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024
MAX_LABELS = 64
MAX_FUTURE_SECONDS = 24 * 3600
RETENTION_SECONDS = 30 * 24 * 3600

LogEntryPb: Any = LogEntry.pb()
_WriteRequestPb: Any = WriteLogEntriesRequest.pb()
_WriteResponsePb: Any = WriteLogEntriesResponse.pb()
_ListRequestPb: Any = ListLogEntriesRequest.pb()
_ListResponsePb: Any = ListLogEntriesResponse.pb()
_PartialErrorsPb: Any = WriteLogEntriesPartialErrors.pb()

_PROTO_PAYLOAD_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "type.googleapis.com/google.cloud.audit.AuditLog": audit_log_pb2.AuditLog.FromString,
    "type.googleapis.com/google.appengine.logging.v1.RequestLog": RequestLog.pb().FromString,
}
_SEVERITIES = frozenset(log_severity_pb2.LogSeverity.values())
_LOG_NAME = re.compile(r"projects/([^/]+)/logs/([^/]+)")
# Project ID (optionally domain-scoped) or project number.
_PROJECT = re.compile(r"(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+")
_ENCODED_LOG_ID = re.compile(r"(?:[A-Za-z0-9_.-]|%[0-9A-Fa-f]{2})+")
_LOG_ID = re.compile(r"[A-Za-z0-9/_.-]{1,511}")
_FILTER_TERM = re.compile(r'\s*(logName|timestamp)\s*(>=|<=|=|>|<)\s*("[^"]*"|\S+)\s*')
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000

EntryCheck = Callable[[Any], str | None]


class LoggingEmulator(GrpcEmulator):
    """In-process Cloud Logging API (``WriteLogEntries``, ``ListLogEntries``).

    With ``store_entries=False`` only a hash of each duplicate key is kept (to
    count stored duplicates), so million-entry benchmarks stay small;
    ``entries()`` and ``ListLogEntries`` then return nothing.
    ``latency_seconds`` is added to every ``WriteLogEntries`` call.
    With ``keep_received=True`` a copy of every entry that reaches validation (refused, too old or stored)
    is also kept, in arrival order, as it was received: ``received()``.
    """

    def __init__(
        self,
        *,
        store_entries: bool = True,
        latency_seconds: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_received: bool = False,
    ) -> None:
        super().__init__(
            SERVICE,
            {
                "WriteLogEntries": unary(self._write, _SizedWriteRequest, _WriteResponsePb),
                "ListLogEntries": unary(self._list, _ListRequestPb, _ListResponsePb),
            },
            host=host,
            port=port,
            # Above the 10 MiB API limit so oversized requests reach our check.
            options=[("grpc.max_receive_message_length", 4 * MAX_REQUEST_BYTES)],
        )
        self.store_entries = store_entries
        self.latency_seconds = latency_seconds
        self.keep_received = keep_received
        self._received: list[Any] = []
        self._lock = threading.Lock()
        self._entries: list[Any] = []
        self._by_insert_id: dict[str, Any] = {}
        self._seen: set[int] = set()
        self._insert_ids = itertools.count(1)
        self._rejectors: list[EntryCheck] = []
        self._stats = dict.fromkeys(
            (
                "write_calls",
                "entries_received",
                "entries_stored",
                "duplicates_stored",
                "invalid_entries",
                "rejected_calls",
                "bytes_received",
                "dropped_old",
            ),
            0,
        )

    # -- test hooks -------------------------------------------------------

    def reject_entry(self, check: EntryCheck) -> None:
        """Also treat an entry as invalid when ``check(entry_pb)`` returns a message.

        ``entry_pb`` is the raw ``LogEntry`` after request defaults were merged.
        """
        self._rejectors.append(check)

    def reject_insert_ids(self, insert_ids: Iterable[str]) -> None:
        """Treat entries with any of these insert IDs as invalid."""
        rejected = frozenset(insert_ids)
        self.reject_entry(
            lambda entry: (
                f"Log entry with insertId {entry.insert_id} rejected." if entry.insert_id in rejected else None
            )
        )

    def clear_rejections(self) -> None:
        """Forget every ``reject_entry``/``reject_insert_ids`` rule."""
        self._rejectors.clear()

    def validate(self, entry: Any) -> str | None:
        """Why Cloud Logging would refuse this ``LogEntry`` now (the rules of ``WriteLogEntries``), or None."""
        return self._entry_error(entry, time.time_ns() // 1_000_000_000)

    # -- inspection -------------------------------------------------------

    def entries(self) -> list[Any]:
        """Stored ``LogEntry`` protobufs in the order they were stored, duplicates included (what an export
        or a BigQuery linked dataset holds); ``ListLogEntries`` hides the duplicates."""
        with self._lock:
            return list(self._entries)

    def received(self) -> list[Any]:
        """With ``keep_received``: every ``LogEntry`` received, refused ones included, in arrival order,
        before request defaults were merged."""
        with self._lock:
            return list(self._received)

    def entry(self, insert_id: str) -> Any | None:
        """The first stored entry with ``insert_id``, if any."""
        with self._lock:
            return self._by_insert_id.get(insert_id)

    def stats(self) -> dict[str, int]:
        """Counters: write_calls, entries_received, entries_stored (duplicates
        included), duplicates_stored (entries stored again with the insert_id
        and timestamp of a stored one), invalid_entries, rejected_calls,
        bytes_received, dropped_old."""
        with self._lock:
            return dict(self._stats)

    # -- service ----------------------------------------------------------

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                self._stats[key] += delta

    def _write(self, sized: tuple[Any, int]) -> Any:
        request, size = sized  # the serialized size is the length received: no need to serialize again
        self._count(write_calls=1, bytes_received=size, entries_received=len(request.entries))
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        fault = self._take_fault()
        if fault is not None:
            self._count(rejected_calls=1)
            raise fault
        if not request.entries:
            self._count(rejected_calls=1)
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "entries is required.")
        if size > MAX_REQUEST_BYTES:
            self._count(rejected_calls=1)
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.",
            )
        now_ns = time.time_ns()
        now_s = now_ns // 1_000_000_000
        errors: dict[int, str] = {}
        valid = []
        has_defaults = bool(request.log_name or request.HasField("resource") or request.labels)
        if self.keep_received:
            with self._lock:
                for entry in request.entries:
                    kept = type(entry)()
                    kept.CopyFrom(entry)
                    self._received.append(kept)
        for index, entry in enumerate(request.entries):
            if has_defaults:
                _merge_defaults(request, entry)
            error = self._entry_error(entry, now_s)
            if error is None:
                valid.append(entry)
            else:
                errors[index] = error
        if errors:
            self._count(invalid_entries=len(errors))
        first_error = next(iter(errors.values()), "")
        if errors and (not request.partial_success or not valid):
            self._count(rejected_calls=1)
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, first_error)
        if not request.dry_run:
            self._store(valid, now_ns)
        if errors:
            partial = _PartialErrorsPb()
            for index, error in errors.items():
                partial.log_entry_errors[index].CopyFrom(
                    status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error)
                )
            detail = any_pb2.Any()
            detail.Pack(partial)
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, first_error, [detail])
        return _WriteResponsePb()

    def _entry_error(self, entry: Any, now_s: int) -> str | None:
        """Why ``entry`` (defaults merged) is invalid, or None if it is valid."""
        error = _log_name_error(entry.log_name)
        if error:
            return error
        resource = entry.resource
        if not resource.type:
            return "Log entry has no monitored resource type and the request has no default."
        if resource.type == "audited_resource":
            labels = resource.labels
            missing = [key for key in ("method", "service") if not labels.get(key)]  # sorted
            if missing:
                return f"Resource audited_resource is missing required labels: {', '.join(missing)}."
        if entry.severity not in _SEVERITIES:
            return f"Invalid severity value: {entry.severity}."
        if len(entry.labels) > MAX_LABELS:
            return f"Log entry has {len(entry.labels)} labels; at most {MAX_LABELS} are allowed."
        if entry.WhichOneof("payload") == "proto_payload":
            payload = entry.proto_payload
            parse = _PROTO_PAYLOAD_PARSERS.get(payload.type_url)
            if parse is None:
                return f"Unsupported proto_payload type: {payload.type_url!r}."
            try:
                parse(payload.value)
            except message.DecodeError:
                return f"Cannot parse proto_payload of type {payload.type_url!r}."
        if entry.HasField("timestamp"):
            timestamp = entry.timestamp
            if not 0 <= timestamp.nanos < 1_000_000_000:
                return "Log entry timestamp has out-of-range nanos."
            if timestamp.seconds > now_s + MAX_FUTURE_SECONDS:
                return f"Log entry timestamp (seconds={timestamp.seconds}) is more than 24 hours in the future."
        size = entry.ByteSize()
        if size > MAX_ENTRY_BYTES:
            return f"Log entry with size {size / 1024:.1f}K exceeds maximum size of 256.0K."
        for check in self._rejectors:
            error = check(entry)
            if error:
                return error
        return None

    def _store(self, entries: list[Any], now_ns: int) -> None:
        oldest = now_ns // 1_000_000_000 - RETENTION_SECONDS
        seen = self._seen
        with self._lock:
            for entry in entries:
                if not entry.HasField("timestamp"):
                    entry.timestamp.FromNanoseconds(now_ns)
                if not entry.insert_id:
                    entry.insert_id = f"emulator-{next(self._insert_ids):016d}"
                timestamp = entry.timestamp
                seconds = timestamp.seconds
                if seconds < oldest:
                    self._stats["dropped_old"] += 1
                    continue
                key = hash((entry.log_name.split("/", 2)[1], entry.insert_id, seconds, timestamp.nanos))
                if key in seen:
                    self._stats["duplicates_stored"] += 1
                seen.add(key)
                self._stats["entries_stored"] += 1
                if self.store_entries:
                    entry.receive_timestamp.FromNanoseconds(now_ns)
                    self._entries.append(entry)
                    self._by_insert_id.setdefault(entry.insert_id, entry)

    def _list(self, request: Any) -> Any:
        projects = set()
        for name in request.resource_names:
            if not re.fullmatch(r"projects/[^/]+", name):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unsupported resource name {name!r} (emulator: projects/[PROJECT_ID]).",
                )
            projects.add(name.split("/")[1])
        if not projects:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "resource_names is required.")
        if request.order_by not in ("", "timestamp asc", "timestamp desc"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid order_by {request.order_by!r}.")
        if not 0 <= request.page_size <= _MAX_PAGE_SIZE:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid page_size {request.page_size}.")
        try:
            keep = _compile_filter(request.filter)
        except ValueError as exc:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        matching = [entry for entry in _first_of_each(self.entries())
                    if entry.log_name.split("/", 2)[1] in projects and keep(entry)]
        matching.sort(
            key=lambda e: (e.timestamp.seconds, e.timestamp.nanos, e.insert_id),
            reverse=request.order_by == "timestamp desc",
        )
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid page_token.") from None
        end = offset + (request.page_size or _DEFAULT_PAGE_SIZE)
        response = _ListResponsePb(entries=matching[offset:end])
        if end < len(matching):
            response.next_page_token = str(end)
        return response


def _first_of_each(entries: list[Any]) -> list[Any]:
    """The entries without duplicates (same project, ``insert_id`` and ``timestamp``): what a query returns."""
    seen: set[tuple[str, str, int, int]] = set()
    kept = []
    for entry in entries:
        key = (entry.log_name.split("/", 2)[1], entry.insert_id, entry.timestamp.seconds, entry.timestamp.nanos)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


class _SizedWriteRequest:
    """Deserializes a ``WriteLogEntriesRequest`` together with its size on the wire."""

    @staticmethod
    def FromString(data: bytes) -> tuple[Any, int]:  # the name gRPC calls
        return _WriteRequestPb.FromString(data), len(data)


@functools.lru_cache(maxsize=4096)
def _log_name_error(log_name: str) -> str | None:
    """Why a (defaults merged) log name is invalid, or None; the same few names recur in every request."""
    if not log_name:
        return "Log entry has no logName and the request has no default logName."
    match = _LOG_NAME.fullmatch(log_name)
    if match is None or not _PROJECT.fullmatch(match[1]):
        return f"Invalid log name {log_name!r}: expected projects/[PROJECT_ID]/logs/[LOG_ID]."
    if not _ENCODED_LOG_ID.fullmatch(match[2]) or not _LOG_ID.fullmatch(unquote(match[2])):
        return (
            f"Invalid log ID in {log_name!r}: it must be URL-encoded, under 512 "
            "characters, and contain only [A-Za-z0-9/_.-]."
        )
    return None


def _merge_defaults(request: Any, entry: Any) -> None:
    """Copy the request's default log name, resource and labels into ``entry``."""
    if not entry.log_name:
        entry.log_name = request.log_name
    if not entry.HasField("resource") and request.HasField("resource"):
        entry.resource.CopyFrom(request.resource)
    for key, value in request.labels.items():
        if key not in entry.labels:
            entry.labels[key] = value


def _compile_filter(text: str) -> Callable[[Any], bool]:
    """A predicate for filters made of ``logName`` and ``timestamp`` comparisons
    joined by ``AND`` (the subset the emulator supports)."""
    tests: list[Callable[[Any], bool]] = []
    for term in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
        match = _FILTER_TERM.fullmatch(term)
        if match is None:
            raise ValueError(
                f"Unsupported filter term {term!r} (emulator: logName= and timestamp comparisons joined by AND)."
            )
        field, op, value = match[1], match[2], match[3].strip('"')
        if field == "logName":
            if op != "=":
                raise ValueError(f"Unsupported logName operator {op!r}.")
            tests.append(_log_name_test(value))
        else:
            bound = timestamp_pb2.Timestamp()
            try:
                bound.FromJsonString(value)
            except ValueError as exc:
                raise ValueError(f"Invalid timestamp {value!r} in filter.") from exc
            tests.append(_timestamp_test(op, bound.ToNanoseconds()))
    return lambda entry: all(test(entry) for test in tests)


def _log_name_test(name: str) -> Callable[[Any], bool]:
    return lambda entry: bool(entry.log_name == name)


def _timestamp_test(op: str, bound_ns: int) -> Callable[[Any], bool]:
    compare: dict[str, Callable[[int], bool]] = {
        "=": lambda ns: ns == bound_ns,
        ">": lambda ns: ns > bound_ns,
        ">=": lambda ns: ns >= bound_ns,
        "<": lambda ns: ns < bound_ns,
        "<=": lambda ns: ns <= bound_ns,
    }
    check = compare[op]
    return lambda entry: check(entry.timestamp.ToNanoseconds())
