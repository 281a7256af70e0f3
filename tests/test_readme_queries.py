"""Every Logs Explorer query in the README matches entries the exporter writes, by field paths they have.

The README's query blocks are parsed with the subset of the Logging query language they use
(https://cloud.google.com/logging/docs/view/logging-query-language: comparisons joined by AND, OR and NOT,
lines joined by AND, OR binding tighter than AND, string comparisons without regard to case; `.` steps into
a field, as in AIP-160, https://google.aip.dev/160) and run over entries mapped from sample events and
query history rows. A query must match at least one of them, and every field path it names must be a
plain path (no quoted segment) that exists in an entry it matches. The paths the section names in its
prose must exist in some entry too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from looker_audit_export.mapping import EntryContext, LookerEvent, LookerUser, to_history_entry, to_log_entry

README = Path(__file__).parent.parent / "README.md"
HOST = "example.looker.com"
EVENTS_LOG = "projects/PROJECT_ID/logs/looker_system_activity_logs"
HISTORY_LOG = "projects/PROJECT_ID/logs/looker_query_history"
USERS = {7: LookerUser(7, "ana@example.com", "Ana Admin", ("administer",)),
         42: LookerUser(42, "bo@example.com", "Bo Builder", ("explore",))}
SEVERITY = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500, "CRITICAL": 600,
            "ALERT": 700, "EMERGENCY": 800}


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
    text = README.read_text()
    start = text.index("### Logs Explorer queries")
    return text[start:text.index("\n## ", start)]


def query_blocks() -> list[tuple[str, str]]:
    """Each query block of the section with the line that introduces it."""
    found = re.findall(r"([^\n]+)\n```\n(.*?)```", section(), flags=re.S)
    assert len(found) >= 8, "the README's Logs Explorer queries were not found"
    return [(caption.strip(), body) for caption, body in found]


# A parser for the subset of the Logging query language the README uses.

TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=~|!~|=|>|<|:)|(?P<paren>[()])'
                   r'|(?P<word>[^\s"()=<>!:]+))')
Entry = dict[str, Any]
Test = Callable[[Entry], bool]


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match and match.end() > position, f"cannot read the query at {text[position:]!r}"
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        position = match.end()
    return found


class Query:
    """A parsed query: ``test(entry)`` and the field paths it names."""

    def __init__(self, text: str) -> None:
        self.items = tokens(text)
        self.at = 0
        self.paths: list[str] = []
        self.test = self.conjunction()
        assert self.at == len(self.items), f"unread: {self.items[self.at:]}"

    def peek(self) -> tuple[str, str]:
        return self.items[self.at] if self.at < len(self.items) else ("end", "")

    def take(self) -> tuple[str, str]:
        item = self.peek()
        self.at += 1
        return item

    def conjunction(self) -> Test:
        parts = [self.disjunction()]
        while self.peek() not in (("end", ""), ("paren", ")")):
            if self.peek() == ("word", "AND"):
                self.take()
            parts.append(self.disjunction())
        return lambda entry: all(part(entry) for part in parts)

    def disjunction(self) -> Test:
        parts = [self.negation()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.negation())
        return lambda entry: any(part(entry) for part in parts)

    def negation(self) -> Test:
        if self.peek() in (("word", "NOT"), ("word", "-")):
            self.take()
            inner = self.primary()
            return lambda entry: not inner(entry)
        return self.primary()

    def primary(self) -> Test:
        if self.peek() == ("paren", "("):
            self.take()
            inner = self.conjunction()
            assert self.take() == ("paren", ")")
            return inner
        kind, path = self.take()
        assert kind == "word" and not path.endswith("."), f"a field path, plain (no quoted segment): {path!r}"
        self.paths.append(path)
        op_kind, op = self.take()
        assert op_kind == "op", f"an operator after {path}"
        wanted = self.values()
        return lambda entry: any(compare(path, found, op, value) for found in resolve(entry, path)
                                 for value in wanted) if wanted != ["*"] else bool(list(resolve(entry, path)))

    def values(self) -> list[str]:
        if self.peek() == ("paren", "("):
            self.take()
            found = [self.value()]
            while self.peek() == ("word", "OR"):
                self.take()
                found.append(self.value())
            assert self.take() == ("paren", ")")
            return found
        return [self.value()]

    def value(self) -> str:
        kind, text = self.take()
        assert kind in ("string", "word"), f"a value, not {text!r}"
        return text[1:-1].replace('\\"', '"') if kind == "string" else text


def resolve(entry: Any, path: str) -> Iterator[Any]:
    """The values at ``path`` (each `.` a step into a field; a list yields each of its items)."""
    found = [entry]
    for step in path.split("."):
        found = [item for value in found for item in (value if isinstance(value, list) else [value])]
        found = [value[step] for value in found if isinstance(value, dict) and step in value]
    for value in found:
        yield from value if isinstance(value, list) else [value]


def compare(path: str, found: Any, op: str, value: str) -> bool:
    left: Any
    right: Any
    if path == "severity":
        left, right = SEVERITY[found], SEVERITY[value.upper()]
    elif path == "timestamp":
        left, right = (datetime.fromisoformat(text.replace("Z", "+00:00")) for text in (found, value))
    elif isinstance(found, bool | int | float):
        left, right = float(found), float(value)
    else:
        left, right = str(found).lower(), value.lower()
    if op == "=~":
        return re.search(value, str(found)) is not None
    if op == ":":
        return str(right) in str(left)
    checks = {"=": left == right, "!=": left != right, ">": left > right, ">=": left >= right, "<": left < right,
              "<=": left <= right}
    return checks[op]


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
    """The README's SQL reads the dataset Terraform links by default, by columns of the LogEntry schema.

    Log Analytics views have the LogEntry fields as columns, in snake case (the proto's own field names):
    https://cloud.google.com/logging/docs/analyze/query-and-view.
    """
    from google.cloud.logging_v2.types import LogEntry

    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    sql = next(block for block in blocks if "QUALIFY" in block)
    terraform = Path(__file__).parent.parent / "terraform"
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
