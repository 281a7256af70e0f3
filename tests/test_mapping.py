"""The pure row-to-entry mapping: exact shape (golden files), severities, bad input, and a fuzz test."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud.audit.audit_log_pb2 import AuditLog
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from looker_audit_export.mapping import (
    SHRUNK_ENTRY_BYTES,
    EntryContext,
    LookerEvent,
    LookerUser,
    placeholder,
    shrink,
    to_log_entry,
)

GOLDEN = Path(__file__).parent / "golden"
HOST = "example.looker.com"
USERS = {
    7: LookerUser(7, "ana@example.com", "Ana Admin", ("administer", "see_system_activity")),
    42: LookerUser(42, "bo@example.com", "Bo Builder", ("explore", "save_content")),
}
CONTEXT = EntryContext("projects/demo-project/logs/looker_system_activity_logs", HOST, USERS,
                       fallback_time=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


def row(**fields: Any) -> dict[str, Any]:
    base = {"event.id": 1001, "event.name": "login", "event.category": "authentication",
            "event.created_time": "2026-11-25 10:15:30", "event.user_id": 42, "event.sudo_user_id": None,
            "event.is_api_call": "No", "user.email": "bo@example.com", "user.name": "Bo Builder"}
    base.update({key.replace("__", "."): value for key, value in fields.items()})
    return base


CASES = {
    "login_failure": LookerEvent(row(event__name="login_failure", event__user_id=None, user__email=None,
                                     user__name=None), [("email", "mallory@example.com"), ("status", "failure")]),
    "create_dashboard": LookerEvent(row(event__id=1002, event__name="create_dashboard", event__category="dashboard"),
                                    [("dashboard_id", "31"), ("title", "Ventes 日本")]),
    "update_role_by_sudo": LookerEvent(row(event__id=1003, event__name="update_role", event__category="role",
                                           event__sudo_user_id=7), [("role_id", "5"), ("status", "success")]),
    "no_attributes": LookerEvent(row(event__id=1004, event__name="accept_integration_hub_legal_agreement",
                                     event__category="integration")),
}


def audit_of(entry: Any) -> AuditLog:
    audit = AuditLog()
    assert entry.proto_payload.Unpack(audit)
    return audit


@pytest.mark.parametrize("name", sorted(CASES))
def test_entry_matches_golden_file(name: str) -> None:
    entry = to_log_entry(CASES[name], CONTEXT)
    actual = json_format.MessageToDict(entry)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert actual == json.loads(path.read_text())


def test_entry_is_a_real_audit_log_entry() -> None:
    entry = to_log_entry(CASES["update_role_by_sudo"], CONTEXT)
    assert entry.insert_id == "looker-example.looker.com-event-1003"
    assert entry.timestamp.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 25, 10, 15, 30, tzinfo=UTC)
    assert entry.resource.type == "audited_resource"
    assert dict(entry.resource.labels) == {"service": "looker.googleapis.com",
                                           "method": "lookerapp.event.role.update_role"}
    assert entry.proto_payload.type_url == "type.googleapis.com/google.cloud.audit.AuditLog"
    audit = audit_of(entry)
    assert audit.method_name == "lookerapp.event.role.update_role"
    assert audit.resource_name == "example.looker.com/roles/5"
    assert audit.authentication_info.principal_email == "bo@example.com"
    delegation = audit.authentication_info.service_account_delegation_info[0]
    assert delegation.first_party_principal.principal_email == "ana@example.com"
    assert {a.permission for a in audit.authorization_info} == {"looker.explore", "looker.save_content"}
    assert audit.status.code == 0 and audit.status.message == "success"
    assert entry.severity == 300  # NOTICE: a role change


@pytest.mark.parametrize(("name", "category", "severity"), [
    ("login_failure", "authentication", "WARNING"), ("scheduler_execute_failed", "scheduler", "WARNING"),
    ("user_permission_elevation", "undocumented", "NOTICE"), ("set_login_notification_text", "settings", "NOTICE"),
    ("add_group_user", "group", "NOTICE"), ("update_permission_set", "permission_set", "NOTICE"),
    ("create_user", "user", "INFO"), ("create_dashboard", "dashboard", "INFO"), ("login", "authentication", "INFO"),
    ("inactivity_logout", "authentication", "INFO"),
])
def test_severity_table(name: str, category: str, severity: str) -> None:
    entry = to_log_entry(LookerEvent(row(event__name=name, event__category=category)), CONTEXT)
    assert json_format.MessageToDict(entry)["severity"] == severity


def test_an_event_done_under_sudo_is_at_least_notice() -> None:
    alone = to_log_entry(LookerEvent(row(event__name="create_dashboard", event__category="dashboard")), CONTEXT)
    under_sudo = to_log_entry(LookerEvent(row(event__name="create_dashboard", event__category="dashboard",
                                              event__sudo_user_id=7)), CONTEXT)
    failed = to_log_entry(LookerEvent(row(event__name="login_failure", event__sudo_user_id=7)), CONTEXT)
    assert [json_format.MessageToDict(e)["severity"] for e in (alone, under_sudo, failed)] == \
        ["INFO", "NOTICE", "WARNING"]


def test_bad_rows_still_give_valid_entries_that_say_what_is_wrong() -> None:
    bad = LookerEvent({"event.id": "abc", "event.created_time": "25/11/2026 10h", "event.name": None,
                       "user.name": "bad \ud800 surrogate \x00\x07"}, [("value", "\udcff")])
    entry = to_log_entry(bad, CONTEXT)
    entry.SerializeToString()  # valid UTF-8 everywhere
    assert entry.insert_id.startswith("looker-example.looker.com-event-x")
    assert entry.insert_id == to_log_entry(bad, CONTEXT).insert_id  # deterministic
    assert entry.timestamp.ToDatetime(tzinfo=UTC) == CONTEXT.fallback_time
    problems = list(audit_of(entry).response["export_problems"])
    assert any("event.id" in p for p in problems) and any("created_time" in p for p in problems)
    assert json_format.MessageToDict(entry)["severity"] == "WARNING"


def test_times_with_offsets_are_converted_to_utc() -> None:
    entry = to_log_entry(LookerEvent(row(event__created_time="2026-11-25T02:15:30-08:00")), CONTEXT)
    assert entry.timestamp.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 25, 10, 15, 30, tzinfo=UTC)


def test_huge_attribute_is_truncated_and_its_length_recorded() -> None:
    entry = to_log_entry(LookerEvent(row(), [("sql", "x" * 3_000_000), ("title", "kept")]), CONTEXT)
    assert entry.ByteSize() < 256 * 1024
    response = audit_of(entry).response
    assert response["truncated"]["attributes.sql"] == 3_000_000
    assert response["attributes"]["title"] == "kept"
    smaller = shrink(entry, SHRUNK_ENTRY_BYTES)
    assert smaller.ByteSize() <= SHRUNK_ENTRY_BYTES and smaller.insert_id == entry.insert_id


def test_placeholder_keeps_insert_id_and_time_and_says_why() -> None:
    entry = to_log_entry(CASES["create_dashboard"], CONTEXT)
    stand_in = placeholder(entry, CONTEXT, "timestamp rejected")
    assert (stand_in.insert_id, stand_in.timestamp) == (entry.insert_id, entry.timestamp)
    assert stand_in.labels["export_placeholder"] == "true"
    assert "timestamp rejected" in audit_of(stand_in).status.message


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(),
                   st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")))
rows = st.dictionaries(
    st.sampled_from(["event.id", "event.name", "event.category", "event.created_time", "event.user_id",
                     "event.sudo_user_id", "user.email", "user.name", "event.is_api_call"]) | st.text(max_size=20),
    values | st.sampled_from(["2026-11-25 10:00:00", "2026-02-30 25:61:00", "12", "-1"]),
    max_size=12,
)
attributes = st.lists(st.tuples(st.text(max_size=30) | st.sampled_from(["status", "dashboard_id", "user_id"]),
                                values | st.integers(50_000, 400_000).map(lambda n: "é\x01" * (n // 2))), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, attributes)
def test_any_row_gives_an_entry_cloud_logging_accepts(raw: dict[str, Any], attrs: list[tuple[str, Any]]) -> None:
    entry = to_log_entry(LookerEvent(raw, attrs), CONTEXT)
    data = entry.SerializeToString()
    assert len(data) <= 256 * 1024
    assert entry.insert_id and entry.log_name == CONTEXT.log_name
    assert entry.HasField("timestamp") and entry.resource.type == "audited_resource"
    assert set(entry.resource.labels) == {"service", "method"}
    audit = audit_of(entry)
    assert audit.service_name == "looker.googleapis.com"
    assert audit.method_name.startswith("lookerapp.event.")


json_scalars = st.one_of(st.none(), st.booleans(), st.text(), st.integers(-(2**53) + 1, 2**53 - 1),
                         st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=20), json_scalars, max_size=10),
       st.lists(st.tuples(st.sampled_from(["title", "status", "dashboard_id", "sql"]), json_scalars), max_size=4))
def test_response_holds_every_raw_field_and_attribute_as_looker_sent_it(raw: dict[str, Any],
                                                                        attrs: list[tuple[str, Any]]) -> None:
    response = json_format.MessageToDict(audit_of(to_log_entry(LookerEvent(raw, attrs), CONTEXT)).response)
    assert response["looker"] == raw
    by_name: dict[str, list[Any]] = {}
    for name, value in attrs:
        by_name.setdefault(name, []).append(value)
    assert response["attributes"] == {name: values[0] if len(values) == 1 else values
                                      for name, values in by_name.items()}
