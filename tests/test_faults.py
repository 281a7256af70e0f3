"""Nothing lost under faults: every fault injected through the emulators, over the real wire.

Each test injects a fault, runs the export as Pub/Sub would (the same instance again after a failed run,
like a redelivery), then checks that Cloud Logging holds every visible Looker event (by insertId), that
what it stored twice (same insertId and timestamp: hidden in Logs Explorer, but exported and billed) is
at most the entries one failure can leave in flight (``MAX_UNCOMMITTED_ENTRIES``, 10,000), that the cursor
ends on the last event, and that no secret showed in any output.  The counts each test saw are printed in
a table at the end of the session (see ``FAULT_COUNTS`` in conftest.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import BUCKET, CLIENT_ID, CLIENT_SECRET, FAULT_COUNTS, LOG_NAME, SECRET, Stack, now
from google.cloud.audit.audit_log_pb2 import AuditLog

from looker_audit_export import function
from looker_audit_export.export.commit import MAX_UNCOMMITTED_ENTRIES
from looker_audit_export.export.run import Exporter
from looker_audit_export.export.summary import ExportError, RunSummary
from looker_audit_export.looker.client import transient_sql_error

ROOT = Path(__file__).resolve().parent.parent
WRONG_SECRET = "wr0ng-Secret-value-also-never-shown"
#: Fast retries and several pages per run: 2,000 events in pages of 500.
FAST = {"RETRY_INITIAL_SECONDS": "0.05", "PAGE_SIZE": "500"}
CURSOR = "looker/state.json"


# ----------------------------------------------------------------- helpers
def host(stack: Stack) -> str:
    return stack.env["LOOKER_BASE_URL"].split("//")[1].rstrip("/")


def held(stack: Stack) -> Counter[str]:
    """How many stored entries each insertId has in Cloud Logging."""
    return Counter(entry.insert_id for entry in stack.logging.entries() if entry.log_name == LOG_NAME)


def placeholders(stack: Stack) -> list[Any]:
    return [entry for entry in stack.logging.entries() if entry.labels.get("export_placeholder") == "true"]


def audit(entry: Any) -> AuditLog:
    message = AuditLog()
    entry.proto_payload.Unpack(message)
    return message


def verify(stack: Stack, fault: str, *, runs: int, placeholders_expected: int = 0, shrunk: int = 0,
           stored_twice: int | None = 0) -> int:
    """Every visible event stored, at most one failure's in-flight entries stored twice (exactly
    ``stored_twice`` when given), the cursor on the last one; record the counts for the table.

    Returns how many entries were stored twice.
    """
    counts = held(stack)
    expected = {f"looker-{host(stack)}-event-{number}" for number in stack.visible_ids()}
    twice = stack.logging.stats()["duplicates_stored"]
    stand_ins = len({entry.insert_id for entry in placeholders(stack)})
    FAULT_COUNTS.append({
        "fault": fault, "expected": len(expected), "found": len(expected & set(counts)), "stored_twice": twice,
        "placeholders": stand_ins, "shrunk": shrunk, "runs": runs,
    })
    assert set(counts) == expected, (len(expected - set(counts)), len(set(counts) - expected))
    assert twice == sum(count - 1 for count in counts.values())  # every extra copy is a stored duplicate
    assert twice <= MAX_UNCOMMITTED_ENTRIES
    if stored_twice is not None:
        assert twice == stored_twice
    assert stand_ins == placeholders_expected
    assert stack.cursor_id() == max(stack.visible_ids())
    return twice


def deliver(exporter: Exporter, *, attempts: int = 5) -> tuple[RunSummary, list[ExportError]]:
    """Run like Pub/Sub delivers a tick: again on the same instance after each failure."""
    failures: list[ExportError] = []
    for _ in range(attempts):
        try:
            return exporter.run(), failures
        except ExportError as exc:
            failures.append(exc)
    raise AssertionError(f"still failing after {attempts} deliveries: {failures[-1]}")


def assert_clear(failure: ExportError, *fragments: str) -> None:
    """A permanent failure: one message that says what to fix, and never the secret."""
    text = str(failure)
    for fragment in fragments:
        assert fragment in text, text
    assert CLIENT_SECRET not in text and WRONG_SECRET not in text
    assert CLIENT_SECRET not in json.dumps(failure.summary.as_dict())


@pytest.fixture(autouse=True)
def no_secret_anywhere(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Every log record (at DEBUG, before any masking), stdout and stderr are free of secret values."""
    caplog.set_level(logging.DEBUG)
    yield
    out = capfd.readouterr()
    for text in (caplog.text, out.out, out.err):
        assert CLIENT_SECRET not in text and WRONG_SECRET not in text


# ------------------------------------------------------------------ Looker
@pytest.mark.parametrize("fault", [500, 502, 503, 429, "truncate", "not_json"])
def test_looker_transient_answers_are_retried(stack: Stack, fault: int | str) -> None:
    stack.looker.inject(fault, path_contains="queries", times=2)
    started = time.monotonic()
    summary, failures = deliver(stack.exporter(**FAST))
    assert not failures and summary.caught_up
    if fault == 429:  # Looker's Retry-After (1 s) is honoured over the shorter backoff
        assert time.monotonic() - started >= 2
    verify(stack, f"Looker {fault} on a query (x2)", runs=1)


def test_looker_query_slower_than_the_client_timeout_is_retried(stack: Stack) -> None:
    stack.looker.inject("slow:2", path_contains="queries", times=1)
    started = time.monotonic()
    summary, failures = deliver(stack.exporter(**FAST, LOOKER_TIMEOUT_SECONDS="1"))
    assert not failures and summary.caught_up and time.monotonic() - started < 15
    verify(stack, "Looker query slower than the timeout", runs=1)


def test_looker_keeps_failing_then_recovers_on_the_next_delivery(stack: Stack) -> None:
    stack.looker.inject(503, path_contains="queries", times=6)
    exporter = stack.exporter(**FAST)
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert_clear(failure.value, host(stack), "HTTP 503", "giving up after 6 attempts")
    assert stack.cursor_id() is None
    deliver(exporter)
    verify(stack, "Looker 503 on every call of a run", runs=2)


def test_token_expiring_mid_run_logs_in_again_once_and_continues(stack: Stack) -> None:
    stack.looker.inject("slow:0", path_contains="queries/run", times=3)  # three queries go through...
    stack.looker.inject("expire_tokens", path_contains="queries/run", times=1)  # ...then the session ends
    summary, failures = deliver(stack.exporter(**FAST))
    assert not failures and summary.caught_up
    assert stack.looker.stats()["logins"] == 2
    verify(stack, "Looker token expired mid-run", runs=1)


def test_wrong_secret_fails_fast_naming_host_and_secret_then_recovers(stack: Stack) -> None:
    stack.secrets.add_version(SECRET, json.dumps({"client_id": CLIENT_ID, "client_secret": WRONG_SECRET}).encode())
    exporter = stack.exporter(**FAST)
    started = time.monotonic()
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert time.monotonic() - started < 5
    assert_clear(failure.value, host(stack), f"{SECRET}/versions/latest", "HTTP 404 on login")
    assert stack.logging.stats()["write_calls"] == 0
    stack.secrets.add_version(SECRET, json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode())
    deliver(exporter)  # the redelivery fetches the secret again
    assert stack.secrets.stats()["access_calls"] == 2
    verify(stack, "Looker login 404 (wrong secret)", runs=2)


def more_events(stack: Stack, count: int) -> None:
    """``count`` more settled events, so that a run stores its cursor on the way (a second after the first
    chunks were accepted, while later ones are on their way)."""
    start = now() - timedelta(minutes=1, seconds=30)
    for index in range(count):
        stack.data.add_event("create_dashboard", created=start + timedelta(milliseconds=index), user_id=1,
                             attributes={"dashboard_id": str(index)})


def test_process_killed_mid_run_loses_nothing_and_sends_at_most_ten_chunks_again(stack: Stack) -> None:
    more_events(stack, 4000)
    stack.looker.query_latency_seconds = 0.2  # pages take long enough to be killed between
    env = {**os.environ, **stack.env, **FAST, "PAGE_SIZE": "300"}
    process = subprocess.Popen([sys.executable, "-m", "looker_audit_export", "export"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while stack.cursor_id() is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, (out, err)
    killed_at = stack.cursor_id()
    assert killed_at is not None and killed_at < max(stack.visible_ids())  # it really was killed mid-way
    sent_through = stack.cursor()["streams"]["events"]["sent_through"]
    assert sent_through is not None and sent_through > killed_at  # the killed run said what it had sent
    assert CLIENT_SECRET not in out + err
    stack.looker.query_latency_seconds = 0.0
    rerun = subprocess.run([sys.executable, "-m", "looker_audit_export", "export"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["cursor_before"] == killed_at and summary["caught_up"]
    assert 0 < summary["entries_resent"] <= MAX_UNCOMMITTED_ENTRIES
    assert CLIENT_SECRET not in rerun.stdout + rerun.stderr
    verify(stack, "process killed mid-run", runs=2, stored_twice=None)


# ----------------------------------------------------------- Cloud Logging
@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL])
def test_logging_transient_errors_on_the_first_calls_are_retried(stack: Stack, code: grpc.StatusCode) -> None:
    stack.logging.inject(code, times=3)
    summary, failures = deliver(stack.exporter(**FAST))
    assert not failures and summary.caught_up
    assert stack.logging.stats()["rejected_calls"] == 3
    # the first request (one page of 500) went three more times; only a quota refusal says it was not stored
    assert summary.entries_resent == (0 if code == grpc.StatusCode.RESOURCE_EXHAUSTED else 3 * 500)
    verify(stack, f"Logging {code.name} (first 3 calls)", runs=1)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_logging_failing_every_call_fails_within_the_budget(stack: Stack, code: grpc.StatusCode) -> None:
    stack.logging.inject(code, times=-1)
    exporter = stack.exporter(**FAST, RUN_BUDGET_SECONDS="10")
    started = time.monotonic()
    with pytest.raises(ExportError) as failure:
        exporter.run()
    elapsed = time.monotonic() - started
    assert elapsed < 12, elapsed
    assert_clear(failure.value, "Cloud Logging kept failing", "continues from the cursor")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert "write quota" in str(failure.value)
    calls = stack.logging.stats()["write_calls"]
    assert 4 <= calls < 200, calls  # backed off, not hammered
    assert stack.cursor_id() is None
    stack.logging.clear_faults()
    deliver(exporter)
    verify(stack, f"Logging {code.name} (every call)", runs=2)


def test_write_applied_but_answered_too_late_is_sent_again_once(stack: Stack) -> None:
    stack.logging.inject_delay(10.5, times=1)  # past the client's deadline; the server still stores
    exporter = stack.exporter(**FAST, RUN_BUDGET_SECONDS="10")
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert stack.cursor_id() is None and failure.value.summary.entries_resent == 0
    landed = time.monotonic() + 10
    while stack.logging.stats()["entries_stored"] < 500 and time.monotonic() < landed:
        time.sleep(0.05)  # let the late write land, however loaded the machine
    summary, _ = deliver(exporter)
    # the first chunk (one page of 500) was stored twice; the rerun knows it sent it again
    verify(stack, "Logging DEADLINE_EXCEEDED after storing", runs=2, stored_twice=500)
    assert summary.entries_resent == 500


def big_events(stack: Stack, count: int, size: int) -> list[int]:
    start = now() - timedelta(minutes=1, seconds=30)
    return [stack.data.add_event("create_dashboard", created=start + timedelta(milliseconds=k), user_id=1,
                                 attributes={"dashboard_id": str(k), "sql": "é" * (size // 2)}).id
            for k in range(count)]


def test_entry_refused_as_too_large_is_shrunk_and_written(stack: Stack) -> None:
    ids = big_events(stack, 3, 3_000_000)
    stack.logging.reject_entry(lambda e: f"Log entry with size {e.ByteSize() / 1024:.1f}K exceeds maximum size "
                               "of 180.0K." if e.ByteSize() > 180_000 else None)
    summary, _ = deliver(stack.exporter(**FAST))
    assert summary.rewritten_after_shrinking == 3 and summary.placeholders == 0
    entry = stack.logging.entry(f"looker-{host(stack)}-event-{ids[0]}")
    assert entry is not None
    response = audit(entry).response
    assert response["truncated"]["attributes.sql"] == 1_500_000 and entry.ByteSize() <= 180_000
    assert response["attributes"]["dashboard_id"] == "0"
    verify(stack, "Logging INVALID_ARGUMENT: entry over the size limit", runs=1, shrunk=3)


def test_entry_refused_for_its_timestamp_becomes_a_placeholder(stack: Stack) -> None:
    target = stack.visible_ids()[700]
    seconds = int(next(e for e in stack.data.events_after(target - 1)).created.timestamp())
    stack.logging.reject_entry(lambda e: "Log entry timestamp is invalid." if e.timestamp.seconds == seconds
                               and e.insert_id.endswith(f"-{target}") else None)
    summary, _ = deliver(stack.exporter(**FAST))
    assert summary.placeholders == 1 and summary.events_written == len(stack.visible_ids())
    stand_in = stack.logging.entry(f"looker-{host(stack)}-event-{target}")
    message = audit(stand_in).status.message
    assert "timestamp is invalid" in message and "written at the export time" in message
    verify(stack, "Logging INVALID_ARGUMENT: timestamp rejected", runs=1, placeholders_expected=1)


def test_a_batch_whose_every_entry_is_refused_does_not_block_the_rest(stack: Stack) -> None:
    refused = set(stack.visible_ids()[100:108])
    stack.logging.reject_entry(lambda e: "Log entry rejected." if int(e.insert_id.rsplit("-", 1)[1]) in refused
                               and "export_placeholder" not in e.labels else None)
    summary, _ = deliver(stack.exporter(**FAST, WRITE_BATCH_ENTRIES="4"))
    assert summary.placeholders == 8
    verify(stack, "Logging INVALID_ARGUMENT: whole batch refused", runs=1, placeholders_expected=8)


def test_entry_refused_even_as_placeholder_stops_the_cursor_before_it(stack: Stack) -> None:
    target = stack.visible_ids()[1200]
    stack.logging.reject_insert_ids([f"looker-{host(stack)}-event-{target}"])
    exporter = stack.exporter(**FAST)
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert_clear(failure.value, f"event-{target}", "placeholders")
    assert (stack.cursor_id() or 0) < target
    stack.logging.clear_rejections()
    deliver(exporter)
    # the rest of the refused entry's request (one page of 500) was stored, and is sent again with it
    verify(stack, "Logging refuses an entry and its placeholders", runs=2, stored_twice=499)


def test_pages_over_10_mb_are_split_below_the_request_limit(stack: Stack) -> None:
    big_events(stack, 45, 600_000)  # about 250 KB each once mapped: 11 MB in one page
    summary, _ = deliver(stack.exporter(**FAST))
    stats = stack.logging.stats()
    assert stats["rejected_calls"] == 0 and stats["invalid_entries"] == 0
    assert summary.bytes_sent > 10 * 1024 * 1024
    verify(stack, "request over 10 MB", runs=1)


# ---------------------------------------------------------- Secret Manager
@pytest.mark.parametrize("case", ["not_found", "permission_denied", "not_json", "no_client_secret"])
def test_secret_problems_fail_clearly_then_recover(stack: Stack, case: str) -> None:
    overrides: dict[str, str] = {}
    good = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode()
    if case == "not_found":
        overrides["LOOKER_CREDENTIALS_SECRET"] = f"projects/{SECRET.split('/')[1]}/secrets/missing/versions/latest"
        expected = ("secrets/missing/versions/latest", "was not found")
    elif case == "permission_denied":
        stack.secrets.deny(SECRET)
        expected = (SECRET, "roles/secretmanager.secretAccessor")
    elif case == "not_json":
        stack.secrets.add_version(SECRET, CLIENT_SECRET.encode())
        expected = (SECRET, "does not hold JSON")
    else:
        stack.secrets.add_version(SECRET, json.dumps({"client_id": CLIENT_ID, "secret": CLIENT_SECRET}).encode())
        expected = (SECRET, "has no client_secret")
    exporter = stack.exporter(**FAST, **overrides)
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert_clear(failure.value, *expected)
    assert stack.logging.stats()["write_calls"] == 0 and stack.cursor() == {}
    if case == "not_found":
        exporter = stack.exporter(**FAST)  # the operator fixes LOOKER_CREDENTIALS_SECRET
    elif case == "permission_denied":
        stack.secrets.denied.clear()
    else:
        stack.secrets.add_version(SECRET, good)
    deliver(exporter)
    verify(stack, f"Secret Manager {case}", runs=2)


def test_secret_manager_unavailable_once_is_retried(stack: Stack) -> None:
    stack.secrets.inject(grpc.StatusCode.UNAVAILABLE, times=1)
    _, failures = deliver(stack.exporter(**FAST))
    assert not failures
    verify(stack, "Secret Manager UNAVAILABLE (once)", runs=1)


# ------------------------------------------------------------------- state
def test_cursor_moved_by_another_run_fails_the_run_and_the_redo_sends_its_entries_again(stack: Stack) -> None:
    stack.looker.inject("slow:0.6", path_contains="queries/run", times=1)

    def another_run_commits() -> None:
        time.sleep(0.3)  # after this run read the cursor
        stack.gcs.corrupt(BUCKET, CURSOR, json.dumps({"version": 1, "looker_host": host(stack)}).encode())

    thread = threading.Thread(target=another_run_commits)
    thread.start()
    exporter = stack.exporter(**FAST)
    with pytest.raises(ExportError) as failure:
        exporter.run()
    thread.join()
    assert_clear(failure.value, "Another run moved the cursor", CURSOR)
    assert stack.gcs.stats()["precondition_failures"] >= 1
    written = len(held(stack))
    assert written > 0  # entries were written before the cursor write failed
    deliver(exporter)
    verify(stack, "GCS 412: cursor moved by another run", runs=2, stored_twice=written)


def test_corrupt_cursor_fails_clearly_and_nothing_passes_it(stack: Stack) -> None:
    visible = stack.visible_ids()
    stack.data.hide_after(visible[999])
    exporter = stack.exporter(**FAST)
    exporter.run()
    good = stack.gcs.object_bytes(BUCKET, CURSOR)
    assert good is not None
    stack.data.reveal_all()
    stack.gcs.corrupt(BUCKET, CURSOR, b'{"version": 1, "streams": {"events": {"last_id": "12')
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert_clear(failure.value, f"gs://{BUCKET}/{CURSOR}", "unreadable", "delete it")
    assert max(int(i.rsplit("-", 1)[1]) for i in held(stack)) == visible[999]
    stack.gcs.corrupt(BUCKET, CURSOR, good)  # the operator restores it
    deliver(exporter)
    verify(stack, "cursor object corrupt", runs=3)


def test_state_backend_unavailable_briefly_is_retried(stack: Stack) -> None:
    stack.gcs.inject(503, times=2)
    _, failures = deliver(stack.exporter(**FAST))
    assert not failures
    verify(stack, "GCS 503 (twice)", runs=1)


def test_state_backend_down_at_commit_fails_within_budget_and_redo_sends_the_rest_again(stack: Stack) -> None:
    stack.looker.inject("slow:0.6", path_contains="queries/run", times=1)

    def backend_goes_down() -> None:
        time.sleep(0.3)  # after the cursor was read
        stack.gcs.inject(503, times=-1)

    thread = threading.Thread(target=backend_goes_down)
    thread.start()
    exporter = stack.exporter(**FAST, RUN_BUDGET_SECONDS="10")
    started = time.monotonic()
    with pytest.raises(ExportError) as failure:
        exporter.run()
    thread.join()
    assert time.monotonic() - started < 12
    assert_clear(failure.value, f"gs://{BUCKET}/{CURSOR}", "could not be written")
    written = len(held(stack))
    assert written  # entries written, cursor not moved: the redo sends them again
    stack.gcs.clear_faults()
    deliver(exporter)
    verify(stack, "GCS 503 at commit (every call)", runs=2, stored_twice=written)


def test_a_cursor_that_cannot_be_stored_stops_the_writes_within_ten_chunks(stack: Stack) -> None:
    """25,000 events, and the function loses its right to write the cursor once it has read it: the run
    writes no more than the 10,000 entries the bound lets it send beyond the stored cursor, fails, and the
    redo stores those twice, no more."""
    more_events(stack, 23_000)
    stack.looker.inject("slow:0.6", path_contains="queries/run", times=1)

    def permission_revoked() -> None:
        time.sleep(0.3)  # after the cursor was read
        stack.gcs.inject(403, times=-1)

    thread = threading.Thread(target=permission_revoked)
    thread.start()
    exporter = stack.exporter(**FAST)
    with pytest.raises(ExportError) as failure:
        exporter.run()
    thread.join()
    assert_clear(failure.value, f"gs://{BUCKET}/{CURSOR}", "cannot be saved", "permission denied")
    written = len(held(stack))
    assert 0 < written <= MAX_UNCOMMITTED_ENTRIES, written
    stack.gcs.clear_faults()
    deliver(exporter)
    verify(stack, "GCS 403 at commit, 25,000 events", runs=2, stored_twice=written)


def test_state_backend_down_at_start_fails_within_budget(stack: Stack) -> None:
    stack.gcs.inject(503, times=-1)
    exporter = stack.exporter(**FAST, RUN_BUDGET_SECONDS="10")
    started = time.monotonic()
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert time.monotonic() - started < 12
    assert_clear(failure.value, f"gs://{BUCKET}/{CURSOR}", "could not be read")
    assert stack.logging.stats()["write_calls"] == 0
    stack.gcs.clear_faults()
    deliver(exporter)
    verify(stack, "GCS 503 at start (every call)", runs=2)


# ------------------------------------------------------- the summary line
SUMMARY_FIELDS = {"events_read", "events_written", "rewritten_after_shrinking", "placeholders", "query_calls",
                  "write_calls", "cursor_before", "cursor_after", "duration_seconds", "caught_up", "error"}


def summary_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.json_fields["summary"] for record in caplog.records  # type: ignore[attr-defined]
            if "summary" in getattr(record, "json_fields", {})]


@pytest.fixture
def tick_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {**stack.env, **FAST}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(function, "instance_exporter", None)
    yield


def test_each_tick_logs_exactly_one_summary_line_success_or_failure(stack: Stack, tick_env: None,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    stack.logging.inject(grpc.StatusCode.PERMISSION_DENIED, times=1)
    with pytest.raises(RuntimeError, match=r"roles/logging\.logWriter"):
        function.handle_tick(None, {})
    failed = summary_lines(caplog)
    assert len(failed) == 1 and failed[0].keys() >= SUMMARY_FIELDS and failed[0]["error"]
    caplog.clear()
    function.handle_tick(None, {})
    done = summary_lines(caplog)
    assert len(done) == 1 and done[0].keys() >= SUMMARY_FIELDS and done[0]["error"] is None
    assert done[0]["caught_up"] and done[0]["events_written"] == len(stack.visible_ids())
    verify(stack, "summary line per tick (PERMISSION_DENIED, then ok)", runs=2)


def test_a_tick_with_bad_configuration_still_logs_one_summary_line(stack: Stack, tick_env: None,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PAGE_SIZE", "lots")
    with pytest.raises(RuntimeError, match="PAGE_SIZE='lots' is invalid"):
        function.handle_tick(None, {})
    lines = summary_lines(caplog)
    assert len(lines) == 1 and lines[0].keys() >= SUMMARY_FIELDS and "PAGE_SIZE" in lines[0]["error"]


# ------------------------------------------- SQL errors answered with HTTP 200 (looker_error rows)
HISTORY_LOG = LOG_NAME.rsplit("/", 1)[0] + "/looker_query_history"
#: The query of each System Activity explore the exporter reads, and the variables that make it run.
SQL_ERROR_QUERIES = {"event": FAST, "event_attribute": FAST, "user": FAST,
                     "history": {**FAST, "EXPORT_STREAMS": "events,history"}}


def history_rows(stack: Stack, count: int = 40) -> list[int]:
    """Finished query history rows of user 1 over the last half hour, all settled."""
    start = now() - timedelta(minutes=30)
    return [stack.data.add_history(created=start + timedelta(seconds=30 * k), source="dashboard", user_id=1,
                                   runtime=0.5, dashboard_id=k % 7 + 1) for k in range(count)]


def history_held(stack: Stack) -> Counter[int]:
    return Counter(int(entry.insert_id.rsplit("-", 1)[1]) for entry in stack.logging.entries()
                   if entry.log_name == HISTORY_LOG)


def lookups_complete(stack: Stack) -> None:
    """Every exported event carries all its attributes, and its user's permissions (from the user query)."""
    events = {event.id: event for event in stack.data.events_after(-1)}
    for entry in stack.logging.entries():
        if entry.log_name == LOG_NAME:
            event, message = events[int(entry.insert_id.rsplit("-", 1)[1])], audit(entry)
            assert len(message.response["attributes"]) == len({name for _, name, _ in event.attributes})
            user = stack.data.users.get(event.user_id or -1)
            assert bool(message.authorization_info) == bool(user and user.permission_sets), entry.insert_id


def no_junk(stack: Stack) -> None:
    """No placeholder, and no entry holding a looker_error row, in either log."""
    assert not placeholders(stack)
    assert not any("looker_error" in str(audit(entry).response) for entry in stack.logging.entries())


@pytest.mark.parametrize(("view", "after_rows"), [("event", False), ("event", True), ("event_attribute", False),
                                                  ("user", False), ("history", False)])
def test_a_sql_error_answered_with_http_200_fails_the_run_and_moves_no_cursor(stack: Stack, view: str,
                                                                               after_rows: bool) -> None:
    history = history_rows(stack) if view == "history" else []
    text = f"Unknown column '{view}.région' in 'field list'"  # fails the same way every time: not retried
    stack.looker.inject_sql_error(text, view=view, after_rows=after_rows)
    exporter = stack.exporter(**SQL_ERROR_QUERIES[view])
    with pytest.raises(ExportError) as failure:
        exporter.run()
    assert_clear(failure.value, host(stack), f"the {view} query", "looker_error", text, "cursor stays before it")
    assert stack.looker.stats()["sql_errors"] == 1
    no_junk(stack)
    if history:  # the events stream ran first and is done; the history page failed whole
        assert not history_held(stack) and stack.cursor_id("history") is None
    else:  # the first page failed: nothing of it written
        assert not held(stack) and stack.cursor_id() is None
    deliver(exporter)  # the next run exports everything, once
    no_junk(stack)
    lookups_complete(stack)
    if history:
        assert history_held(stack) == Counter(history) and stack.cursor_id("history") == history[-1]
    verify(stack, f"looker_error on the {view} query{' after its rows' if after_rows else ''}", runs=2)


@pytest.mark.parametrize("view", SQL_ERROR_QUERIES)
def test_a_transient_sql_error_answered_with_http_200_is_retried(stack: Stack, view: str) -> None:
    history = history_rows(stack) if view == "history" else []
    stack.looker.inject_sql_error("Lost connection to MySQL server during query", view=view, times=2)
    summary, failures = deliver(stack.exporter(**SQL_ERROR_QUERIES[view]))
    assert not failures and summary.caught_up
    assert stack.looker.stats()["sql_errors"] == 2
    no_junk(stack)
    lookups_complete(stack)
    if history:
        assert history_held(stack) == Counter(history)
    verify(stack, f"looker_error (lost connection, x2) on the {view} query", runs=1)


@pytest.mark.parametrize(("text", "transient"), [
    ("Query timed out after 30 seconds", True),
    ("Lock wait timeout exceeded; try restarting transaction", True),
    ("Lost connection to MySQL server during query", True),
    ("MySQL server has gone away", True),
    ("Could not connect to the database: Connection refused", True),
    ("Too many connections", True),
    ("Deadlock found when trying to get lock", True),
    ("The database is temporarily unavailable", True),
    ("Unknown column 'event.région' in 'field list'", False),
    ("You have an error in your SQL syntax near 'WHERE'", False),
    ("PostgreSQL: permission denied for relation history", False),
    ("could not open relation with OID 16384", False),
    ("Field 'user.created_time' is not available in this explore", False),
])
def test_only_a_sql_error_that_may_pass_is_retried(text: str, transient: bool) -> None:
    """Each retry spends a query call (Standard edition: 1,000 a month): only texts of a passing state."""
    assert transient_sql_error(text) is transient
