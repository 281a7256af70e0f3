"""The event catalogue: only documented names and categories, each cited; the severity table, the
emulator's synthetic data and the Terraform security signals built on it; unknown names passed through.

The signals are read from the module's signals.tf with python-hcl2 and each filter is evaluated (by
tests/logging_query.py, the Logging query evaluator the README queries' test uses too) against entries that
the real mapping makes from the catalogue's events and history sources.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hcl2
import pytest
from google.protobuf import json_format
from logging_query import Entry, Query

from emulators.looker_data import CATALOG, HISTORY_SOURCES, UNDOCUMENTED_CATEGORY, SystemActivity
from looker_audit_export import catalogue
from looker_audit_export.entries.events import SUBJECT_ATTRIBUTES, severity, to_log_entry
from looker_audit_export.entries.head import EntryContext
from looker_audit_export.entries.history import to_history_entry
from looker_audit_export.values import LookerEvent, LookerUser

TF = Path(__file__).resolve().parent.parent / "terraform" / "modules" / "looker_audit_export"
EVENTS_LOG = "projects/p/logs/looker_system_activity_logs"
HISTORY_LOG = "projects/p/logs/looker_query_history"
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAGES = {catalogue.EVENTS_PAGE, catalogue.AUDIT_LOGGING_PAGE, catalogue.SYSTEM_ACTIVITY_PAGE}
TOKEN = re.compile(r"[a-z0-9_]+")


# --- the catalogue itself ---------------------------------------------------------------------------


def test_every_name_and_category_cites_a_looker_page() -> None:
    names = [event.name for event in catalogue.EVENTS]
    assert len(names) == len(set(names)), "each event once"
    for event in catalogue.EVENTS:
        assert event.source in PAGES and event.source.startswith("https://cloud.google.com/looker/docs/"), event
        assert TOKEN.fullmatch(event.name) and (event.category is None or TOKEN.fullmatch(event.category)), event
    assert set(catalogue.CATEGORIES.values()) <= PAGES
    # The facts: login events are authentication, the login-notification settings are settings.
    assert {catalogue.BY_NAME[n].category for n in ("login", "login_failure", "inactivity_logout")} == {
        "authentication"}
    assert catalogue.BY_NAME["set_login_notification_text"].category == "settings"
    assert "setting" not in catalogue.CATEGORIES and "user" not in catalogue.CATEGORIES


def test_the_severity_table_hard_codes_only_documented_names_and_categories() -> None:
    documented_names, documented_categories = set(catalogue.BY_NAME), set(catalogue.CATEGORIES)
    assert not catalogue.WARNING_EVENTS - documented_names
    assert not catalogue.NOTICE_EVENTS - documented_names
    assert not catalogue.ADMIN_CATEGORIES - documented_categories
    assert catalogue.DOWNLOAD_SOURCES <= catalogue.HISTORY_SOURCES
    # Every documented Admin Activity settings event is a change by the generic rule.
    settings = [e.name for e in catalogue.EVENTS if e.category in catalogue.ADMIN_CATEGORIES]
    assert settings and all(name.startswith(catalogue.CHANGE_PREFIXES) for name in settings)


@pytest.mark.parametrize(("name", "category", "level"), [
    ("frobnicate_widget", "brand_new", "INFO"),  # Looker adds events: kept as given
    ("export_query", "query", "INFO"),  # named by Looker Support only: no special meaning
    ("sudo_login", "sudo", "INFO"),  # no documented sudo event
    ("saml_login_failure", "brand_new", "WARNING"),  # the generic failure rule
    ("update_model_set", "brand_new", "NOTICE"),  # the generic access-change rule
])
def test_unknown_names_pass_through_unchanged(name: str, category: str, level: str) -> None:
    assert name not in catalogue.BY_NAME
    ctx = EntryContext(EVENTS_LOG, "example.looker.com", {}, WHEN)
    entry = to_log_entry(LookerEvent({"event.id": 5, "event.name": name, "event.category": category,
                                      "event.created_time": "2026-11-25 10:00:00"}), ctx)
    assert dict(entry.labels) == {"looker_host": "example.looker.com", "event_category": category,
                                  "event_name": name}
    assert entry.resource.labels["method"] == f"lookerapp.event.{category}.{name}"
    assert json_format.MessageToDict(entry)["severity"] == level


def test_every_documented_event_has_a_severity() -> None:
    levels = {e.name: severity(e.name, e.category or UNDOCUMENTED_CATEGORY) for e in catalogue.EVENTS}
    assert levels["login_failure"] == 400 and levels["login"] == 200
    assert all(levels[name] == 300 for name in catalogue.NOTICE_EVENTS)
    assert levels["set_login_notification_text"] == 300 and levels["create_dashboard"] == 200


# --- the emulator ------------------------------------------------------------------------------------


def test_the_emulators_catalogue_is_this_one() -> None:
    assert [name for name, *_ in CATALOG] == [e.name for e in catalogue.EVENTS]
    subjects = {attribute for attribute, _ in SUBJECT_ATTRIBUTES}
    for (name, category, attributes, weight), event in zip(CATALOG, catalogue.EVENTS, strict=True):
        assert category == (event.category or UNDOCUMENTED_CATEGORY), name
        assert attributes[:len(event.attributes)] == event.attributes, f"{name}: documented attributes first"
        padding = attributes[len(event.attributes):]
        assert "status" not in padding and not subjects & set(padding), f"{name}: padding must be inert"
        assert weight > 0
    assert {source for source, _, _ in HISTORY_SOURCES} <= catalogue.HISTORY_SOURCES
    data = SystemActivity()
    assert data.add_event("login_failure", created=WHEN).category == "authentication"
    assert data.add_event("brand_new_event", created=WHEN).category == UNDOCUMENTED_CATEGORY


# --- the Terraform security signals -----------------------------------------------------------------


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value


def _signals() -> dict[str, dict[str, Any]]:
    with (TF / "signals.tf").open() as fh:
        doc = hcl2.load(fh)
    found = next(block["security_signals"] for block in doc["locals"] if "security_signals" in block)
    return {_unquote(k): {_unquote(f): _unquote(v) for f, v in s.items() if not f.startswith("__")}
            for k, s in found.items() if not k.startswith("__")}


SUBSTITUTE = {
    "local.events_log_filter": f'logName="{EVENTS_LOG}"',
    "local.history_log_filter": f'logName="{HISTORY_LOG}"',
    "var.name_prefix": "looker-audit",
    "var.large_export_row_count": "100000",
    "local.row_count_at_least_regex": "^ *0*([1-9][0-9]{6,}|100000|[1-9][0-9]{5})([.][0-9]*)? *$",
}


def _resolve(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        assert match.group(1) in SUBSTITUTE, f"unexpected interpolation {match.group(0)} in a signal filter"
        return SUBSTITUTE[match.group(1)]
    return re.sub(r"\$\{([^}]*)\}", one, text)


def _flag(value: Any) -> bool:
    return value is True or value == "true"


def _documented_entries() -> dict[str, Entry]:
    """An entry for every documented event (also one done under sudo) and every documented history source."""
    users: dict[int, LookerUser] = {}
    ctx = EntryContext(EVENTS_LOG, "example.looker.com", users, WHEN)
    entries = {}
    for number, event in enumerate(catalogue.EVENTS, start=1):
        row = {"event.id": number, "event.name": event.name, "event.category": event.category or UNDOCUMENTED_CATEGORY,
               "event.created_time": "2026-11-25 10:00:00", "event.user_id": 42, "event.sudo_user_id": None}
        entries[f"event:{event.name}"] = json_format.MessageToDict(to_log_entry(LookerEvent(row), ctx))
        if number == 1:
            sudo = LookerEvent({**row, "event.id": 999, "event.sudo_user_id": 7})
            entries[f"sudo:{event.name}"] = json_format.MessageToDict(to_log_entry(sudo, ctx))
    history_ctx = EntryContext(HISTORY_LOG, "example.looker.com", users, WHEN)
    for number, source in enumerate(sorted(catalogue.HISTORY_SOURCES), start=1):
        row = {"history.id": number, "history.source": source, "history.status": "complete",
               "history.created_time": "2026-11-25 10:00:00", "user.id": 42}
        entries[f"history:{source}"] = json_format.MessageToDict(to_history_entry(row, history_ctx))
    return entries


def test_every_signal_is_built_on_documented_events_or_is_experimental_and_off() -> None:
    signals = _signals()
    assert set(signals) == {"login_failure_burst", "role_changes", "sudo_sessions", "api_credentials",
                            "large_exports", "downloads"}
    entries = _documented_entries()
    fired: dict[str, set[str]] = {}
    for key, signal in signals.items():
        text = _resolve(signal["filter"])
        matches = Query(text).test
        fired[key] = {name for name, entry in entries.items() if matches(entry)}
        literals = re.findall(r'labels\.event_name=\(?((?:"[^"]*"(?: OR )?)+)\)?', text)
        names = {_unquote(v) for group in literals for v in group.split(" OR ")}
        if _flag(signal["experimental"]):
            assert not fired[key], f"{key} is experimental yet matches documented events {fired[key]}"
        else:
            assert fired[key], f"{key} matches no documented event: make it experimental, or remove it"
            assert names <= catalogue.BY_NAME.keys(), f"{key} names undocumented events {names}"
            categories = set(re.findall(r'labels\.event_category="([^"]*)"', text))
            assert categories <= catalogue.CATEGORIES.keys(), f"{key} names undocumented categories {categories}"
            assert "event_category=(" not in text and "event_category=~" not in text, "name categories one by one"
    assert fired["login_failure_burst"] == {"event:login_failure"}
    assert fired["sudo_sessions"] == {"sudo:login"}
    assert fired["api_credentials"] == {"event:activate_oauth_client_app_user"}
    assert fired["role_changes"] == {f"event:{name}" for name in
                                     ("user_permission_elevation", "add_group_user", "add_group_group")}
    assert fired["downloads"] == {f"history:{source}" for source in catalogue.DOWNLOAD_SOURCES}


def test_the_signal_rules_are_the_catalogues() -> None:
    signals = _signals()
    role = signals["role_changes"]["filter"]
    assert f'labels.event_name=~"{catalogue.CHANGE_REGEX}"' in role
    assert f'labels.event_name=~"{catalogue.ACCESS_OBJECT_REGEX}"' in role
    downloads = signals["downloads"]
    assert downloads["stream"] == "history" and downloads["filter"].startswith("${local.history_log_filter} AND ")
    tokens = sorted(re.sub(r"[^a-z0-9_]+", "_", source) for source in catalogue.DOWNLOAD_SOURCES)
    assert sorted(re.findall(r'"([a-z0-9_]+)"', downloads["filter"].split("labels.query_source=")[1])) == tokens
    # Unset switches: on when the signal's log is exported and the signal is not experimental.
    with (TF / "signals.tf").open() as fh:
        text = fh.read()
    assert "contains(var.export_streams, s.stream) && !s.experimental" in text
