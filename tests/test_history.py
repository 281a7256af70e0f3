"""The optional query history stream: its own log and cursor, the AuditLog shape, completed queries only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import PROJECT, Stack, now
from google.cloud.audit.audit_log_pb2 import AuditLog
from google.protobuf import json_format

from emulators.looker_data import SystemActivity
from looker_audit_export.entries.head import EntryContext
from looker_audit_export.entries.history import to_history_entry

HISTORY_LOG = f"projects/{PROJECT}/logs/looker_query_history"
BOTH = {"EXPORT_STREAMS": "events,history"}


@pytest.fixture
def data() -> SystemActivity:
    """Events and 3,000 query history rows over the last half hour (a few still running at the end)."""
    return SystemActivity.synthetic(1_000, end=now() - timedelta(minutes=2), span=timedelta(minutes=30), seed=5,
                                    n_history=3_000)


def history_entries(stack: Stack) -> dict[int, Any]:
    return {int(entry.insert_id.rsplit("-", 1)[1]): entry for entry in stack.logging.entries()
            if entry.log_name == HISTORY_LOG}


def history_rows(data: SystemActivity) -> list[Any]:
    return [data.history.entry_at(index) for index in range(len(data.history.ids))]


def finish_running(data: SystemActivity) -> None:
    """Complete the synthetic queries still running, so that a test's own rows decide."""
    for row in history_rows(data):
        if row.status == "running":
            data.complete_history(row.id, completed=row.created + timedelta(seconds=1), runtime=1.0)


def audit(entry: Any) -> AuditLog:
    message = AuditLog()
    entry.proto_payload.Unpack(message)
    return message


def test_history_is_off_by_default(stack: Stack) -> None:
    summary = stack.run()
    assert history_entries(stack) == {} and set(summary.streams) == {"events"}


def test_history_goes_to_its_own_log_with_its_own_cursor(stack: Stack) -> None:
    summary = stack.run(**BOTH)
    exported = history_entries(stack)
    rows = {row.id: row for row in history_rows(stack.data)}
    running = [i for i, row in rows.items() if row.status == "running"]
    assert running, "the synthetic data ends with queries still running"
    first_running = min(running)
    assert sorted(exported) == [i for i in sorted(rows) if i < first_running]
    assert stack.cursor_id("history") == max(exported) and stack.cursor_id("events") == max(stack.exported_ids())
    assert sorted(stack.exported_ids()) == stack.visible_ids(), "the events stream is unaffected"
    assert summary.streams["history"].written == len(exported)
    for number, entry in list(exported.items())[:300]:
        row = rows[number]
        assert entry.insert_id.startswith("looker-") and "-history-" in entry.insert_id
        assert entry.timestamp.ToDatetime(tzinfo=UTC) == row.created
        payload = audit(entry)
        token = row.source.replace("-", "_")  # data-download-api: methods and labels take [a-z0-9_]
        assert payload.method_name == f"lookerapp.query.{token}" and entry.labels["query_source"] == token
        user = stack.data.users.get(row.user_id) if row.user_id else None
        assert payload.authentication_info.principal_email == (user.email if user else "")
        response = json_format.MessageToDict(payload.response)
        assert response["status"] == row.status and response["model"] and response["view"]
        if row.status == "error":
            assert json_format.MessageToDict(entry)["severity"] == "ERROR" and payload.status.code == 2
        if row.dashboard_id is not None:
            assert payload.resource_name.endswith(f"/dashboards/{row.dashboard_id}")


def test_a_running_query_holds_the_cursor_until_it_completes(stack: Stack) -> None:
    finish_running(stack.data)
    start = now() - timedelta(minutes=3)
    first = stack.data.add_history(created=start, source="dashboard", user_id=1, runtime=1.5, dashboard_id=4,
                                   id=10_000_000)
    slow = stack.data.add_history(created=start + timedelta(seconds=1), source="api", status="running", user_id=2)
    last = stack.data.add_history(created=start + timedelta(seconds=2), source="explore", user_id=3, runtime=0.2)
    stack.run(**BOTH)
    assert first in history_entries(stack) and slow not in history_entries(stack)
    assert last not in history_entries(stack), "the cursor never passes a row that may still change"
    assert stack.cursor_id("history") == first
    stack.data.complete_history(slow, status="error", completed=now() - timedelta(seconds=90), runtime=88.0,
                                message="Query timed out")
    stack.run(**BOTH)
    exported = history_entries(stack)
    assert slow in exported and last in exported
    payload = audit(exported[slow])
    assert payload.status.message == "Query timed out"
    assert json_format.MessageToDict(exported[slow])["severity"] == "ERROR"


def test_a_query_running_past_the_limit_is_exported_as_it_stands(stack: Stack) -> None:
    finish_running(stack.data)
    long_ago = now() - timedelta(minutes=25)
    stuck = stack.data.add_history(created=long_ago, source="sqlrunner", status="running", user_id=1,
                                   id=20_000_000)
    stack.run(**BOTH, HISTORY_MAX_RUNNING_MINUTES="20", INITIAL_LOOKBACK_MINUTES="60")
    entry = history_entries(stack)[stuck]
    assert json_format.MessageToDict(entry)["severity"] == "WARNING"
    assert entry.labels["query_status"] == "running"


def test_history_mapping_of_a_bad_row_is_still_a_valid_entry() -> None:
    context = EntryContext(HISTORY_LOG, "example.looker.com", {}, fallback_time=datetime(2026, 1, 1, tzinfo=UTC))
    entry = to_history_entry({"history.id": "n/a", "history.source": None, "history.status": "weird",
                              "history.message": "x" * 400_000, "query.model": "\ud800"}, context)
    assert len(entry.SerializeToString()) <= 256 * 1024
    assert entry.insert_id.startswith("looker-example.looker.com-history-x")
    assert json_format.MessageToDict(entry)["severity"] == "WARNING"
