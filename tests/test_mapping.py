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

from looker_audit_export.entries.events import to_log_entry
from looker_audit_export.entries.head import MAX_ENTRY_BYTES, SHRUNK_ENTRY_BYTES, EntryContext
from looker_audit_export.entries.history import to_history_entry
from looker_audit_export.entries.repair import MIN_KEPT_CHARS, TRUNCATION_MARK, placeholder, shrink
from looker_audit_export.values import LookerEvent, LookerUser

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
    ("create_user", "user", "NOTICE"), ("delete_user_credentials_api3", "undocumented", "NOTICE"),
    ("create_dashboard", "dashboard", "INFO"), ("login", "authentication", "INFO"),
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


def exact(name: str, value: Any) -> Any:
    """An id (a name ``id`` or ``*_id``) that is a whole number, as the string of its digits (README, Exact ids)."""
    whole = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    return str(int(value)) if whole and (name == "id" or name.endswith("_id")) else value


def looker_shape(raw: dict[str, Any]) -> dict[str, Any]:
    """The README's shape of ``response.looker``: ``view.field`` names nested by view, the rest as sent."""
    plain = {key for key in raw if not all(key.partition("."))}
    shape: dict[str, Any] = {}
    for key, value in raw.items():
        view, _, field = key.partition(".")
        if view and field and view not in plain:
            shape.setdefault(view, {})[field] = exact(field, value)
        else:
            shape[key] = exact(key.rpartition(".")[2], value)
    return shape


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=20) | st.sampled_from(["event.id", "user.id", "event", "a.b.c", ".x", "x."]),
                       json_scalars, max_size=10),
       st.lists(st.tuples(st.sampled_from(["title", "status", "dashboard_id", "sql"]), json_scalars), max_size=4))
def test_response_holds_every_raw_field_and_attribute_as_looker_sent_it(raw: dict[str, Any],
                                                                        attrs: list[tuple[str, Any]]) -> None:
    response = json_format.MessageToDict(audit_of(to_log_entry(LookerEvent(raw, attrs), CONTEXT)).response)
    assert response["looker"] == looker_shape(raw)
    by_name: dict[str, list[Any]] = {}
    for name, value in attrs:
        by_name.setdefault(name, []).append(exact(name, value))
    assert response["attributes"] == {name: values[0] if len(values) == 1 else values
                                      for name, values in by_name.items()}


def test_looker_fields_are_plain_paths_and_ids_exact() -> None:
    big = 2**63 - 25  # beyond a double's 2**53: exact only as text
    entry = json_format.MessageToDict(to_log_entry(
        LookerEvent(row(event__id=big, event__sudo_user_id=7), [("dashboard_id", 31), ("look_id", "12")]), CONTEXT))
    payload = entry["protoPayload"]
    looker = payload["response"]["looker"]
    assert looker["event"]["id"] == str(big) and entry["insertId"].endswith(f"-event-{big}")
    assert looker["event"]["name"] == "login" and looker["user"]["email"] == "bo@example.com"
    assert (looker["event"]["user_id"], looker["event"]["sudo_user_id"]) == ("42", "7")
    assert payload["response"]["attributes"] == {"dashboard_id": "31", "look_id": "12"}
    principal = payload["authenticationInfo"]["thirdPartyPrincipal"]
    assert (principal["looker_user_id"], principal["looker_sudo_user_id"]) == ("42", "7")
    delegation = payload["authenticationInfo"]["serviceAccountDelegationInfo"][0]
    assert delegation["firstPartyPrincipal"]["serviceMetadata"] == {"looker_user_id": "7"}


def test_history_entries_nest_the_raw_row_and_keep_ids_exact() -> None:
    history = {"history.id": 77, "history.created_time": "2026-11-25 10:00:00", "history.completed_time":
               "2026-11-25 10:00:02", "history.status": "complete", "history.source": "dashboard",
               "history.runtime": 1.5, "history.dashboard_id": 4, "query.id": 9, "query.model": "thelook",
               "query.view": "orders", "user.id": 42, "user.email": "bo@example.com", "user.name": "Bo Builder"}
    context = EntryContext("projects/demo-project/logs/looker_query_history", HOST, USERS, CONTEXT.fallback_time)
    payload = json_format.MessageToDict(to_history_entry(history, context))["protoPayload"]
    looker = payload["response"]["looker"]
    assert looker["history"]["id"] == "77" and looker["history"]["dashboard_id"] == "4"
    assert looker["history"]["runtime"] == 1.5, "a number that is not an id stays a number"
    assert looker["query"] == {"id": "9", "model": "thelook", "view": "orders"}
    assert looker["user"] == {"id": "42", "email": "bo@example.com", "name": "Bo Builder"}
    assert (payload["response"]["dashboard_id"], payload["response"]["query_id"]) == ("4", "9")
    assert payload["authenticationInfo"]["thirdPartyPrincipal"]["looker_user_id"] == "42"


# The shrink: every value whole or keeping its start, the largest cut to one common length.

LIMIT_CONTEXT = EntryContext("projects/demo-project/logs/looker_system_activity_logs", HOST, USERS,
                             fallback_time=CONTEXT.fallback_time)


def strings(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Every string of a JSON value by its path (list items by index)."""
    if isinstance(value, str):
        return {path: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return {found: text for key, item in items for found, text in strings(item, (*path, str(key))).items()}


def check_cut(event: LookerEvent, entry: Any, limit: int) -> dict[tuple[str, ...], str]:
    """Assert the shrink's promise for ``entry``, mapped from ``event``; return the cut values by path."""
    assert entry.ByteSize() <= limit and entry.labels.get("export_placeholder") != "true"
    response = json_format.MessageToDict(audit_of(entry).response)
    attributes: dict[str, Any] = {}
    for name, value in event.attributes:
        attributes[name] = [*attributes[name], value] if name in attributes else value  # two at most here
    original = strings({"attributes": attributes, "looker": looker_shape(dict(event.row))})
    kept = strings({key: value for key, value in response.items() if key != "truncated"})
    assert kept.keys() == original.keys(), "no value lost or added"
    cut: dict[tuple[str, ...], str] = {}
    for path, text in kept.items():
        if text != original[path]:
            start = text.removesuffix(TRUNCATION_MARK)
            assert text.endswith(TRUNCATION_MARK) and original[path].startswith(start), f"{path} keeps its start"
            assert response["truncated"][".".join(path)] == len(original[path]), "its original length is recorded"
            cut[path] = start
    return cut


def assert_fair(cut: dict[Any, str], whole: list[str]) -> int:
    """The cut values keep one common length in bytes (give or take a character), at least ``MIN_KEPT_CHARS``
    characters, and no value left whole is much longer; return the common length."""
    sizes = [len(start.encode()) for start in cut.values()]
    assert all(len(start) >= MIN_KEPT_CHARS for start in cut.values())
    level = max(sizes)
    assert min(sizes) >= level - 3, sizes
    assert all(len(text.encode()) <= level + 100 for text in whole)
    return level


def test_one_huge_value_is_cut_and_the_small_ones_stay_whole() -> None:
    event = LookerEvent(row(), [("sql", "x" * 3_000_000), ("title", "kept")])
    entry = to_log_entry(event, CONTEXT)
    cut = check_cut(event, entry, MAX_ENTRY_BYTES)
    assert list(cut) == [("attributes", "sql")] and len(cut["attributes", "sql"]) > 240_000
    assert audit_of(entry).response["attributes"]["title"] == "kept"


def test_four_large_values_are_cut_to_one_common_length() -> None:
    values = [(f"part{k}", chr(ord("a") + k) * 90_000) for k in range(4)]
    event = LookerEvent(row(), values)
    cut = check_cut(event, to_log_entry(event, CONTEXT), MAX_ENTRY_BYTES)
    assert len(cut) == 4 and {len(start) for start in cut.values()} == {len(cut["attributes", "part0"])}
    assert 60_000 < len(cut["attributes", "part0"]) < 62_500  # all four share the room (~250,000 bytes)


def test_many_medium_values_each_keep_an_equal_start() -> None:
    values = [(f"field_{k}", f"{k}:" + "m" * 4_000) for k in range(100)]
    event = LookerEvent(row(), values)
    cut = check_cut(event, to_log_entry(event, CONTEXT), MAX_ENTRY_BYTES)
    assert len(cut) == 100
    assert assert_fair(cut, []) > 2_000


def test_a_huge_value_inside_a_nested_json_attribute_is_cut_where_it_is() -> None:
    definition = {"query": {"sql": "SELECT " + "q" * 400_000, "fields": ["orders.id", "orders.total"]},
                  "notes": ["n" * 100_000, {"deep": "d" * 100_000}], "title": "Orders"}
    event = LookerEvent(row(), [("definition", definition)])
    entry = to_log_entry(event, CONTEXT)
    cut = check_cut(event, entry, MAX_ENTRY_BYTES)
    assert set(cut) == {("attributes", "definition", "query", "sql"), ("attributes", "definition", "notes", "0"),
                        ("attributes", "definition", "notes", "1", "deep")}
    assert cut["attributes", "definition", "query", "sql"].startswith("SELECT qqq")
    assert assert_fair(cut, []) > 70_000
    kept = json_format.MessageToDict(audit_of(entry).response)["attributes"]["definition"]
    assert kept["query"]["fields"] == ["orders.id", "orders.total"] and kept["title"] == "Orders"


def test_multi_byte_text_is_cut_on_a_character_boundary_at_a_common_byte_length() -> None:
    event = LookerEvent(row(user__name="Bø " + "ü" * 600), [("title", "日本語" * 100_000), ("emoji", "😀" * 100_000),
                                                            ("mixed", "aé日😀" * 30_000)])
    cut = check_cut(event, to_log_entry(event, CONTEXT), MAX_ENTRY_BYTES)
    assert set(cut) == {("attributes", "title"), ("attributes", "emoji"), ("attributes", "mixed")}
    level = assert_fair(cut, ["Bø " + "ü" * 600])
    assert len(cut["attributes", "title"]) == level // 3 and len(cut["attributes", "emoji"]) == level // 4


def test_a_second_shrink_keeps_each_start_and_the_first_record() -> None:
    event = LookerEvent(row(), [("sql", "s" * 3_000_000), ("title", "t" * 50_000)])
    entry = to_log_entry(event, CONTEXT)
    smaller = shrink(entry, SHRUNK_ENTRY_BYTES)
    cut = check_cut(event, smaller, SHRUNK_ENTRY_BYTES)
    assert smaller.insert_id == entry.insert_id and set(cut) == {("attributes", "sql"), ("attributes", "title")}
    assert assert_fair(cut, []) > 45_000


def test_when_even_the_first_characters_do_not_fit_all_values_share_what_room_there_is() -> None:
    values = [(f"v{k}", "w" * 1_000) for k in range(1_000)]  # 1,000 x 256 characters is more than the limit
    event = LookerEvent(row(), values)
    cut = check_cut(event, to_log_entry(event, CONTEXT), MAX_ENTRY_BYTES)
    sizes = {len(start) for start in cut.values()}
    assert len(cut) == 1_000 and len(sizes) == 1 and 100 < sizes.pop() < MIN_KEPT_CHARS


sizes = st.integers(0, 600) | st.integers(0, 140_000)
texts = st.builds(lambda unit, count: unit * count, st.sampled_from(["x", "é", "日本", "😀", "ab\u0301c"]), sizes)
json_values = st.recursive(texts, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["sql", "a", "b"]), inner, max_size=3), max_leaves=4)
names = st.sampled_from(["sql", "title", "filters", "query_id", "destination", "message"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.dictionaries(names, texts | json_values, max_size=8), texts)
def test_any_event_fits_and_every_value_is_whole_or_keeps_its_start(attrs: dict[str, Any], name: str) -> None:
    event = LookerEvent(row(user__name=name), list(attrs.items()))
    entry = to_log_entry(event, LIMIT_CONTEXT)
    cut = check_cut(event, entry, MAX_ENTRY_BYTES)
    if cut:
        original = strings({"attributes": attrs, "looker": looker_shape(dict(event.row))})
        assert_fair(cut, [text for path, text in original.items() if path not in cut])
    check_cut(event, shrink(entry, SHRUNK_ENTRY_BYTES), SHRUNK_ENTRY_BYTES)


def test_an_entry_that_fits_is_not_cut() -> None:
    entry = to_log_entry(LookerEvent(row(), [("sql", "s" * 90_000)]), CONTEXT)
    assert shrink(entry, entry.ByteSize()) == entry
    assert shrink(entry, entry.ByteSize() - 1).ByteSize() < entry.ByteSize()
