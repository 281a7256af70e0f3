"""Bad input from Looker rows: every row still gives a valid entry, or a clear placeholder, and never a crash.

End to end, the Looker emulator serves rows malformed on purpose (``LookerEmulator.tamper``); then a
``hypothesis`` fuzz test checks the row-to-entry mapping against the Cloud Logging emulator's own rules.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import FAULT_COUNTS, LOG_NAME, Stack, now
from google.cloud.audit.audit_log_pb2 import AuditLog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.cloud_logging import LoggingEmulator
from emulators.looker import OMIT
from looker_audit_export.entries.events import to_log_entry
from looker_audit_export.entries.head import EntryContext, insert_id
from looker_audit_export.entries.repair import placeholder
from looker_audit_export.values import LookerEvent, LookerUser

FAST = {"RETRY_INITIAL_SECONDS": "0.05", "PAGE_SIZE": "500"}


def audit(entry: Any) -> AuditLog:
    message = AuditLog()
    entry.proto_payload.Unpack(message)
    return message


def test_malformed_rows_each_give_one_valid_entry_or_placeholder(stack: Stack) -> None:
    host = stack.env["LOOKER_BASE_URL"].split("//")[1].rstrip("/")
    start = now() - timedelta(minutes=1, seconds=30)
    huge = stack.data.add_event("create_dashboard", created=start, user_id=1,
                                attributes={"dashboard_id": "9", "sql": "x" * 4_000_000}).id
    unknown = stack.data.add_event("frobnicate_widget", category="mystery", created=start, user_id=None).id
    nasty = stack.data.add_event("update_dashboard", created=start, user_id=1,
                                 attributes={"title": "bell\x07 nul\x00 lone \ud800 pair \ud83d\ude80",
                                             "\udcff key": "v"}).id
    ids = stack.visible_ids()
    tampered: dict[int, dict[str, Any]] = {
        ids[10]: {"event.user_id": None, "user.email": None, "user.name": None},
        ids[11]: {"event.category": None},
        ids[12]: {"event.name": OMIT, "event.category": OMIT},
        ids[13]: {"event.created_time": None},
        ids[14]: {"event.created_time": "25/11/2026 10h15"},
        ids[15]: {"event.created_time": 1_764_000_000},
        ids[16]: {"event.id": "not-a-number"},
        ids[17]: {"event.id": f" {ids[17]} "},
        ids[18]: {"event.user_id": "seven", "event.sudo_user_id": [1, 2]},
        ids[19]: {"user.name": "ctrl \x1b[31m \ud800 \udfff", "user.email": {"nested": "object"}},
        ids[20]: {"event.created_time": "2099-01-01 00:00:00"},
        ids[21]: {"event.is_api_call": "maybe", "event.category": "x" * 5000},
    }
    for number, values in tampered.items():
        stack.looker.tamper(number, values)
    stack.looker.tamper(ids[30], duplicate=True)
    stack.looker.tamper(ids[499], duplicate=True)  # the last row of a full page, twice

    exporter = stack.exporter(**FAST)
    summary = exporter.run()
    again = exporter.run()  # a redelivery changes nothing

    entries = [entry for entry in stack.logging.entries() if entry.log_name == LOG_NAME]
    counts = Counter(entry.insert_id for entry in entries)
    odd = insert_id(host, {"event.id": "not-a-number"})
    expected = {f"looker-{host}-event-{number}" for number in ids if number != ids[16]} | {odd}
    stand_ins = [entry for entry in entries if entry.labels.get("export_placeholder") == "true"]
    FAULT_COUNTS.append({"fault": "malformed Looker rows (14 kinds)", "expected": len(expected),
                         "found": len(expected & set(counts)),
                         "stored_twice": stack.logging.stats()["duplicates_stored"],
                         "placeholders": len(stand_ins), "shrunk": summary.rewritten_after_shrinking, "runs": 2})
    assert set(counts) == expected and max(counts.values()) == 1
    assert summary.duplicate_rows == 2 and summary.caught_up and again.events_written == 0
    assert stack.logging.stats()["rejected_calls"] == 0 or summary.placeholders == 1
    # only the row dated 2099 (Cloud Logging refuses times over a day ahead) became a placeholder
    assert [entry.insert_id for entry in stand_ins] == [f"looker-{host}-event-{ids[20]}"]
    assert "2099-01-01" in audit(stand_ins[0]).status.message

    def entry(number: int) -> Any:
        return stack.logging.entry(f"looker-{host}-event-{number}")

    assert audit(entry(huge)).response["truncated"]["attributes.sql"] == 4_000_000
    assert entry(unknown).resource.labels["method"] == "lookerapp.event.mystery.frobnicate_widget"
    assert "\ufffd" in audit(entry(nasty)).response["attributes"]["title"]
    for number in (ids[13], ids[14], ids[15]):  # no readable time: the previous row's, flagged
        problems = list(audit(entry(number)).response["export_problems"])
        assert any("created_time" in problem for problem in problems)
        assert entry(number).timestamp == entry(ids[12]).timestamp
    assert stack.cursor_id() == max(ids)


HOST = "example.looker.com"
CONTEXT = EntryContext("projects/demo-project/logs/looker_system_activity_logs", HOST,
                       {7: LookerUser(7, "ana@example.com", "Ana", ("administer",))},
                       fallback_time=datetime.now(UTC).replace(microsecond=0))
RULES = LoggingEmulator()  # not started: only its WriteLogEntries rules are used

texts = st.text() | st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")) | st.sampled_from(
    ["", " ", "\x00", "\ud800", "null", "NaN", "0x10", "1e309", "-0", "٣", "12 ", "9" * 40])
moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))
times = moments.flatmap(lambda m: st.sampled_from([
    m.strftime("%Y-%m-%d %H:%M:%S"), m.isoformat(), m.strftime("%d/%m/%Y %H:%M"), m.strftime("%Y-%m-%dT%H:%M:%SZ"),
    m.strftime("%Y/%m/%d"), str(m.timestamp())]))
values = st.none() | st.booleans() | st.integers() | st.floats() | texts | times | st.lists(st.integers(), max_size=3) \
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
fields = st.sampled_from(["event.id", "event.name", "event.category", "event.created_time", "event.user_id",
                          "event.sudo_user_id", "user.email", "user.name", "event.is_api_call"])
rows = st.dictionaries(fields | st.text(max_size=20), values, max_size=12)
big = st.integers(1, 3_000_000).map(lambda n: "\x01é𝄞"[n % 3] * n)
attributes = st.lists(st.tuples(texts | st.sampled_from(["status", "dashboard_id", "user_id", "sql"]), values | big),
                      max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows, attributes)
def test_any_row_gives_an_entry_cloud_logging_accepts_or_a_placeholder_it_accepts(
        raw: dict[str, Any], attrs: list[tuple[Any, Any]]) -> None:
    entry = to_log_entry(LookerEvent(raw, attrs), CONTEXT)
    problem = RULES.validate(entry)
    if problem is None:
        return
    # The one refusal left to the sink: a time over a day ahead. Its placeholder at the export time is accepted.
    assert "in the future" in problem, problem
    moved = type(entry)()
    moved.CopyFrom(entry)
    moved.timestamp.FromDatetime(CONTEXT.fallback_time)
    stand_in = placeholder(moved, CONTEXT, problem)
    assert RULES.validate(stand_in) is None
    assert stand_in.insert_id == entry.insert_id
