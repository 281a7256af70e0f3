"""Every Logs Explorer query in the docs matches entries the exporter writes, by field paths they have.

The query blocks of docs/log-entry.md are parsed with the subset of the Logging query language they use
(tests/logging_query.py, after https://cloud.google.com/logging/docs/view/logging-query-language: OR binding
tighter than AND, string comparisons without regard to case) and run over entries mapped from sample events and
query history rows. A query must match at least one of them, and every field path it names must be a
plain path (no quoted segment) that exists in an entry it matches. The paths the section names in its
prose must exist in some entry too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from docs_pages import docs_text, page_section
from google.protobuf import json_format
from logging_query import Query, resolve

from looker_audit_export.entries.events import to_log_entry
from looker_audit_export.entries.head import EntryContext
from looker_audit_export.entries.history import to_history_entry
from looker_audit_export.values import LookerEvent, LookerUser

HOST = "example.looker.com"
EVENTS_LOG = "projects/PROJECT_ID/logs/looker_system_activity_logs"
HISTORY_LOG = "projects/PROJECT_ID/logs/looker_query_history"
USERS = {7: LookerUser(7, "ana@example.com", "Ana Admin", ("administer",)),
         42: LookerUser(42, "bo@example.com", "Bo Builder", ("explore",))}


def event(number: int, name: str, category: str, user: int, when: str, *attributes: tuple[str, Any],
          sudo: int | None = None) -> LookerEvent:
    person = USERS[user]
    return LookerEvent({"event.id": number, "event.name": name, "event.category": category,
                        "event.created_time": when, "event.user_id": user, "event.sudo_user_id": sudo,
                        "event.is_api_call": "No", "user.email": person.email, "user.name": person.name},
                       list(attributes))


def history(number: int, source: str, status: str, user: int, **fields: Any) -> dict[str, Any]:
    person = USERS[user]
    return {"history.id": number, "history.created_time": "2026-11-24 15:00:00",
            "history.completed_time": "2026-11-24 15:00:03", "history.status": status, "history.source": source,
            "history.runtime": 3.0, "query.id": 500 + number, "query.model": "thelook", "query.view": "orders",
            "user.id": user, "user.email": person.email, "user.name": person.name, **fields}


SAMPLE_EVENTS = [
    event(1001, "login", "authentication", 42, "2026-11-24 09:00:00", ("ip", "10.1.2.3"), ("status", "success")),
    event(1002, "login_failure", "authentication", 42, "2026-11-24 09:01:00", ("ip", "10.1.2.4")),
    event(1003, "create_dashboard", "dashboard", 7, "2026-11-24 10:00:00", ("dashboard_id", "31")),
    event(1004, "update_role", "role", 42, "2026-11-24 11:00:00", ("role_id", "5"), sudo=7),
    event(1005, "update_dashboard", "dashboard", 42, "2026-11-24 12:00:00", ("dashboard_id", "31"),
          ("sql", "SELECT " + "x" * 400_000)),
]
SAMPLE_HISTORY = [
    history(1, "dashboard", "complete", 7, **{"history.dashboard_id": 31}),
    history(2, "data-download-api", "complete", 42, **{"history.dashboard_id": 31}),
    history(3, "explore", "error", 7, **{"history.message": "Snowflake: warehouse suspended"}),
]


def sample_entries() -> list[dict[str, Any]]:
    """The sample events and query history rows as the exporter writes them, in their JSON form."""
    moment = datetime(2026, 11, 25, tzinfo=UTC)
    events = EntryContext(EVENTS_LOG, HOST, USERS, moment)
    queries = EntryContext(HISTORY_LOG, HOST, USERS, moment)
    entries = [to_log_entry(sample, events) for sample in SAMPLE_EVENTS]
    entries += [to_history_entry(row, queries) for row in SAMPLE_HISTORY]
    return [json_format.MessageToDict(entry) for entry in entries]


def section() -> str:
    return page_section("docs/log-entry.md", "## Logs Explorer queries")


def query_blocks() -> list[tuple[str, str]]:
    """Each query block of the section with the line that introduces it."""
    found = re.findall(r"([^\n]+)\n```\n(.*?)```", section(), flags=re.S)
    assert len(found) >= 8, "the Logs Explorer queries of docs/log-entry.md were not found"
    return [(caption.strip(), body) for caption, body in found]


ENTRIES = sample_entries()


@pytest.mark.parametrize(("caption", "text"), query_blocks(), ids=lambda value: value[:40])
def test_each_readme_query_matches_entries_that_have_the_fields_it_names(caption: str, text: str) -> None:
    query = Query(text)
    matched = [entry for entry in ENTRIES if query.test(entry)]
    assert matched, f"{caption}: matches none of the sample entries"
    for path in query.paths:
        assert any(list(resolve(entry, path)) for entry in matched), f"{caption}: no matched entry has {path}"


def test_the_field_paths_named_in_the_prose_exist_in_the_entries() -> None:
    prose = re.sub(r"```.*?```", "", section(), flags=re.S)
    paths = re.findall(r"`(protoPayload\.[A-Za-z0-9_.]+)", prose)
    assert len(paths) >= 2
    for path in paths:
        assert any(list(resolve(entry, path.rstrip("."))) for entry in ENTRIES), path


def test_the_parser_rejects_a_quoted_path_and_a_dotted_key_is_not_a_plain_path() -> None:
    with pytest.raises(AssertionError):
        Query('protoPayload.response.looker."event.id"="1003"')
    old = Query("protoPayload.response.looker.event.id=1003")
    new = Query('protoPayload.response.looker.event.id="1003"')
    flat = {"protoPayload": {"response": {"looker": {"event.id": 1003.0}}}}
    assert not old.test(flat) and any(new.test(entry) for entry in ENTRIES)


def test_the_bigquery_deduplication_query_names_the_linked_dataset_and_logentry_columns() -> None:
    """The docs' SQL reads the dataset Terraform links by default, by columns of the LogEntry schema.

    Log Analytics views have the LogEntry fields as columns, in snake case (the proto's own field names):
    https://cloud.google.com/logging/docs/analyze/query-and-view.
    """
    from google.cloud.logging_v2.types import LogEntry

    blocks = re.findall(r"```sql\n(.*?)```", docs_text(), re.S)
    sql = next(block for block in blocks if "QUALIFY" in block)
    terraform = Path(__file__).parent.parent / "terraform" / "modules" / "looker_audit_export"
    declared = re.search(r'variable "name_prefix" \{.*?\n  default\s*=\s*"([^"]+)"',
                         (terraform / "variables.tf").read_text(encoding="utf-8"), re.S)
    assert declared, "variable name_prefix has a default"
    prefix = declared.group(1)
    assert 'replace("${var.name_prefix}_audit", "-", "_")' in (terraform / "retention.tf").read_text()
    dataset = prefix.replace("-", "_") + "_audit"
    assert f"`PROJECT_ID.{dataset}._AllLogs`" in sql
    assert f'log_name = "{EVENTS_LOG}"' in sql
    columns = set(LogEntry.pb().DESCRIPTOR.fields_by_name)
    code = re.sub(r'`[^`]*`|"[^"]*"', "", sql)  # without the table name and the strings
    named = set(re.findall(r"\b[a-z][a-z_]*\b", code))  # the columns: the SQL keywords are in capitals
    assert {"insert_id", "timestamp", "receive_timestamp", "log_name"} <= named
    assert named <= columns, f"not LogEntry columns: {named - columns}"
    assert "PARTITION BY insert_id, timestamp" in sql  # the pair Cloud Logging treats as one entry
