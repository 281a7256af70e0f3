"""The Cloud Logging emulator, driven by the real GAPIC client over a real gRPC channel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import google.auth.credentials
import grpc
import pytest
from google.api import monitored_resource_pb2
from google.api_core import exceptions
from google.cloud.audit import audit_log_pb2
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.services.logging_service_v2.transports import LoggingServiceV2GrpcTransport
from google.cloud.logging_v2.types import LogEntry, WriteLogEntriesPartialErrors, WriteLogEntriesRequest
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

from emulators.cloud_logging import MAX_ENTRY_BYTES, MAX_REQUEST_BYTES, LoggingEmulator

LOG = "projects/demo-project/logs/looker_system_activity_logs"
GLOBAL = monitored_resource_pb2.MonitoredResource(type="global")
AUDITED = monitored_resource_pb2.MonitoredResource(
    type="audited_resource", labels={"service": "looker.googleapis.com", "method": "query"}
)


@pytest.fixture
def emulator() -> Iterator[LoggingEmulator]:
    with LoggingEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emulator: LoggingEmulator) -> Iterator[LoggingServiceV2Client]:
    # The way that works with the emulator: an explicit insecure channel.
    channel = grpc.insecure_channel(emulator.address)
    yield LoggingServiceV2Client(transport=LoggingServiceV2GrpcTransport(channel=channel))
    channel.close()


def ts(offset_seconds: float = 0.0) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns() + int(offset_seconds * 1e9))
    return stamp


def entry(insert_id: str, **fields: Any) -> LogEntry:
    return LogEntry(insert_id=insert_id, text_payload=fields.pop("text_payload", "x"), **fields)


def write(client: LoggingServiceV2Client, entries: list[LogEntry], **fields: Any) -> None:
    fields.setdefault("log_name", LOG)
    fields.setdefault("resource", GLOBAL)
    client.write_log_entries(request=WriteLogEntriesRequest(entries=entries, **fields), retry=None)


def partial_errors(error: exceptions.GoogleAPICallError) -> dict[int, str]:
    """Per-entry errors as the real client surfaces them (an Any it cannot resolve)."""
    (detail,) = error.details
    assert isinstance(detail, any_pb2.Any)
    errors = WriteLogEntriesPartialErrors.pb()()
    assert detail.Unpack(errors)
    return {index: status.message for index, status in errors.log_entry_errors.items()}


def test_write_merges_request_defaults_and_assigns_ids(emulator: LoggingEmulator, client: Any) -> None:
    write(
        client,
        [entry("a", labels={"k": "entry"}), LogEntry(text_payload="no id", resource=AUDITED)],
        labels={"k": "request", "extra": "1"},
    )
    first, second = emulator.entries()
    assert first.log_name == LOG and first.resource.type == "global"
    assert dict(first.labels) == {"k": "entry", "extra": "1"}
    assert second.resource.type == "audited_resource" and second.insert_id
    assert second.HasField("timestamp") and second.HasField("receive_timestamp")
    assert emulator.entry("a") == first
    assert emulator.stats() | {"bytes_received": 0} == {
        "write_calls": 1,
        "entries_received": 2,
        "entries_stored": 2,
        "duplicates_stored": 0,
        "invalid_entries": 0,
        "rejected_calls": 0,
        "bytes_received": 0,
        "dropped_old": 0,
    }
    assert emulator.stats()["bytes_received"] > 0


def test_audit_log_proto_payload_round_trips(emulator: LoggingEmulator, client: Any) -> None:
    payload = any_pb2.Any()
    payload.Pack(audit_log_pb2.AuditLog(service_name="looker.googleapis.com", method_name="query"))
    write(client, [LogEntry(insert_id="p", proto_payload=payload)], resource=AUDITED)
    stored = audit_log_pb2.AuditLog()
    assert emulator.entries()[0].proto_payload.Unpack(stored)
    assert stored.method_name == "query"


def test_partial_success_writes_valid_entries_and_reports_the_rest(emulator: LoggingEmulator, client: Any) -> None:
    entries = [entry("ok-0"), entry("bad-1", severity=150), entry("ok-2"), entry("bad-3", timestamp=ts(25 * 3600))]
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(client, entries, partial_success=True)
    errors = partial_errors(caught.value)
    assert sorted(errors) == [1, 3]
    assert "severity" in errors[1] and "future" in errors[3]
    assert [e.insert_id for e in emulator.entries()] == ["ok-0", "ok-2"]
    assert emulator.stats()["invalid_entries"] == 2 and emulator.stats()["rejected_calls"] == 0


def test_without_partial_success_nothing_is_written(emulator: LoggingEmulator, client: Any) -> None:
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(client, [entry("ok"), entry("bad", severity=7)])
    assert caught.value.details == []
    assert emulator.entries() == [] and emulator.stats()["rejected_calls"] == 1


def test_failed_call_that_wrote_nothing_has_no_per_entry_errors(emulator: LoggingEmulator, client: Any) -> None:
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(client, [entry("bad", severity=7)], partial_success=True)
    assert caught.value.details == [] and emulator.entries() == []


def test_request_size_limit(emulator: LoggingEmulator, client: Any) -> None:
    chunk = "x" * (200 * 1024)
    under = [entry(f"u{i}", text_payload=chunk) for i in range(51)]
    assert WriteLogEntriesRequest.pb(WriteLogEntriesRequest(entries=under, log_name=LOG)).ByteSize() < MAX_REQUEST_BYTES
    write(client, under)
    over = [entry(f"o{i}", text_payload=chunk) for i in range(52)]
    with pytest.raises(exceptions.InvalidArgument, match="exceeds the limit"):
        write(client, over, partial_success=True)
    assert emulator.stats()["entries_stored"] == 51 and emulator.stats()["rejected_calls"] == 1


def sized_entry(insert_id: str, size: int) -> LogEntry:
    """An entry (with its own log name and resource) whose serialized size is exactly ``size``."""
    padding = size
    while True:
        candidate = LogEntry(insert_id=insert_id, log_name=LOG, resource=GLOBAL, text_payload="x" * padding)
        actual = LogEntry.pb(candidate).ByteSize()
        if actual == size:
            return candidate
        padding -= actual - size


def test_entry_size_limit_is_256_kib(emulator: LoggingEmulator, client: Any) -> None:
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(
            client,
            [sized_entry("max", MAX_ENTRY_BYTES), sized_entry("over", MAX_ENTRY_BYTES + 1)],
            partial_success=True,
        )
    assert list(partial_errors(caught.value)) == [1]
    assert [e.insert_id for e in emulator.entries()] == ["max"]


@pytest.mark.parametrize(
    "log_name",
    [
        "",
        "projects/demo-project/logs/a/b",  # LOG_ID must be URL-encoded
        "projects/demo-project/logs/bad%20name",
        "projects/demo-project/logs/" + "a" * 512,
        "/projects/demo-project/logs/x",
        "organizations/123/logs/x",
        "projects/Bad_Project/logs/x",
        "projects/demo-project/x",
    ],
)
def test_invalid_log_names(client: Any, log_name: str) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        write(client, [entry("x")], log_name=log_name)


@pytest.mark.parametrize(
    "log_name",
    [LOG, "projects/demo-project/logs/cloudaudit.googleapis.com%2Factivity", "projects/123456789012/logs/" + "a" * 511],
)
def test_valid_log_names(client: Any, log_name: str) -> None:
    write(client, [entry("x")], log_name=log_name)


def test_entry_log_name_overrides_request(emulator: LoggingEmulator, client: Any) -> None:
    write(client, [entry("x", log_name="projects/demo-project/logs/other")], log_name="projects/demo-project/logs/a/b")
    assert emulator.entries()[0].log_name == "projects/demo-project/logs/other"


@pytest.mark.parametrize(
    "resource",
    [
        None,
        monitored_resource_pb2.MonitoredResource(),
        monitored_resource_pb2.MonitoredResource(type="audited_resource", labels={"service": "s"}),
        monitored_resource_pb2.MonitoredResource(type="audited_resource", labels={"service": "s", "method": ""}),
    ],
)
def test_invalid_resources(client: Any, resource: Any) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        write(client, [entry("x")], resource=resource)


def test_timestamps(emulator: LoggingEmulator, client: Any) -> None:
    write(client, [entry("soon", timestamp=ts(23 * 3600)), entry("old", timestamp=ts(-31 * 86400))])
    with pytest.raises(exceptions.InvalidArgument, match="future"):
        write(client, [entry("late", timestamp=ts(24 * 3600 + 60))])
    assert [e.insert_id for e in emulator.entries()] == ["soon"]
    assert emulator.stats()["dropped_old"] == 1


def test_payload_and_severity_rules(emulator: LoggingEmulator, client: Any) -> None:
    unsupported = any_pb2.Any()
    unsupported.Pack(struct_pb2.Struct())
    garbage = any_pb2.Any(type_url="type.googleapis.com/google.cloud.audit.AuditLog", value=b"\xff\xff\xff")
    json_payload = struct_pb2.Struct()
    json_payload.update({"k": "v"})
    entries = [
        LogEntry(insert_id="struct", proto_payload=unsupported),
        LogEntry(insert_id="garbage", proto_payload=garbage),
        LogEntry(insert_id="labels", labels={str(i): "v" for i in range(65)}),
        LogEntry(insert_id="json", json_payload=json_payload, severity=500),
        LogEntry(insert_id="empty"),
    ]
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(client, entries, partial_success=True)
    assert sorted(partial_errors(caught.value)) == [0, 1, 2]
    assert [e.insert_id for e in emulator.entries()] == ["json", "empty"]


def test_duplicates_are_stored_and_hidden_only_when_listed(emulator: LoggingEmulator, client: Any) -> None:
    """Same insertId and timestamp: stored (billed, exported) again, removed from a query result."""
    stamp = ts()
    write(client, [entry("dup", timestamp=stamp, labels={"try": "1"})])
    write(client, [entry("dup", timestamp=stamp, labels={"try": "2"}), entry("dup", timestamp=ts(1))])
    assert len(emulator.entries()) == 3 and emulator.stats()["entries_stored"] == 3
    assert emulator.stats()["duplicates_stored"] == 1
    listed = list(client.list_log_entries(resource_names=["projects/demo-project"], filter=f'logName="{LOG}"'))
    assert [(e.insert_id, e.labels.get("try")) for e in listed] == [
        ("dup", "1"), ("dup", None)]  # the first one stored stands for its duplicates; another time is no duplicate


def test_entries_are_required(client: Any) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        write(client, [])


def test_dry_run_stores_nothing(emulator: LoggingEmulator, client: Any) -> None:
    write(client, [entry("x")], dry_run=True)
    assert emulator.entries() == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, exceptions.ServiceUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, exceptions.DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, exceptions.ResourceExhausted),
        (grpc.StatusCode.INTERNAL, exceptions.InternalServerError),
        (grpc.StatusCode.PERMISSION_DENIED, exceptions.PermissionDenied),
    ],
)
def test_injected_faults(emulator: LoggingEmulator, client: Any, code: grpc.StatusCode, error: type) -> None:
    emulator.inject(code, times=2, message="boom")
    for _ in range(2):
        with pytest.raises(error, match="boom"):
            write(client, [entry("x")])
    write(client, [entry("x")])
    assert emulator.stats()["rejected_calls"] == 2 and len(emulator.entries()) == 1


def test_persistent_fault_until_cleared(emulator: LoggingEmulator, client: Any) -> None:
    emulator.inject(grpc.StatusCode.UNAVAILABLE, times=-1)
    for _ in range(3):
        with pytest.raises(exceptions.ServiceUnavailable):
            write(client, [entry("x")])
    emulator.clear_faults()
    write(client, [entry("x")])


def test_delay_past_deadline_still_applies_the_write(emulator: LoggingEmulator, client: Any) -> None:
    emulator.inject_delay(0.5)
    with pytest.raises(exceptions.DeadlineExceeded):
        client.write_log_entries(log_name=LOG, resource=GLOBAL, entries=[entry("slow")], retry=None, timeout=0.1)
    deadline = time.monotonic() + 5
    while emulator.entry("slow") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.entry("slow") is not None


def test_rejection_hooks(emulator: LoggingEmulator, client: Any) -> None:
    emulator.reject_insert_ids({"b"})
    emulator.reject_entry(lambda e: "no c please" if e.insert_id == "c" else None)
    with pytest.raises(exceptions.InvalidArgument) as caught:
        write(client, [entry("a"), entry("b"), entry("c")], partial_success=True)
    assert partial_errors(caught.value) == {1: "Log entry with insertId b rejected.", 2: "no c please"}
    emulator.clear_rejections()
    write(client, [entry("b")])


def test_store_entries_false_only_counts(client: Any) -> None:
    with LoggingEmulator(store_entries=False) as emulator:
        channel = grpc.insecure_channel(emulator.address)
        counting = LoggingServiceV2Client(transport=LoggingServiceV2GrpcTransport(channel=channel))
        stamp = ts()
        write(counting, [entry("a", timestamp=stamp), entry("a", timestamp=stamp), entry("b")])
        assert emulator.entries() == []
        assert emulator.stats()["entries_stored"] == 3 and emulator.stats()["duplicates_stored"] == 1
        channel.close()


def test_list_log_entries_with_the_real_client(client: Any) -> None:
    write(client, [entry(f"e{i}", timestamp=ts(i)) for i in range(5)])
    write(client, [entry("other")], log_name="projects/demo-project/logs/other")
    pager = client.list_log_entries(
        request={
            "resource_names": ["projects/demo-project"],
            "filter": f'logName="{LOG}" AND timestamp>="2000-01-01T00:00:00Z"',
            "order_by": "timestamp desc",
            "page_size": 2,
        }
    )
    assert [e.insert_id for e in pager] == ["e4", "e3", "e2", "e1", "e0"]
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_log_entries(resource_names=["projects/demo-project"], filter="severity>=ERROR"))


def test_client_options_endpoint_does_not_reach_a_plaintext_emulator(emulator: LoggingEmulator) -> None:
    """``api_endpoint`` + anonymous credentials still speaks TLS: pass an insecure channel instead."""
    secure = LoggingServiceV2Client(
        client_options={"api_endpoint": emulator.address},
        credentials=google.auth.credentials.AnonymousCredentials(),
    )
    with pytest.raises(exceptions.ServiceUnavailable):
        secure.write_log_entries(log_name=LOG, resource=GLOBAL, entries=[entry("x")], retry=None, timeout=5)
    assert emulator.stats()["write_calls"] == 0
