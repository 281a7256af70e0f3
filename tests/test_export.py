"""The export end to end: real looker-sdk, Secret Manager, Cloud Logging and GCS clients, over the wire."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from datetime import timedelta

import grpc
import pytest
from conftest import CLIENT_SECRET, Stack, now
from google.cloud.audit.audit_log_pb2 import AuditLog

from looker_audit_export.export.commit import MAX_UNCOMMITTED_ENTRIES
from looker_audit_export.export.summary import ExportError, RunSummary


def audit(entry: object) -> AuditLog:
    message = AuditLog()
    entry.proto_payload.Unpack(message)  # type: ignore[attr-defined]
    return message


@pytest.fixture
def data():  # type: ignore[no-untyped-def]
    """Twelve thousand events in the last hour: more than Looker's silent 5,000-row default."""
    from emulators.looker_data import SystemActivity
    return SystemActivity.synthetic(12_000, end=now() - timedelta(minutes=2), span=timedelta(minutes=55), seed=3)


def test_window_over_5000_events_is_exported_exactly_once(stack: Stack) -> None:
    summary = stack.run(INITIAL_LOOKBACK_MINUTES="60")
    ids = stack.exported_ids()
    assert sorted(ids) == stack.visible_ids()
    assert summary.events_written == len(ids) == 12_000
    assert summary.caught_up and summary.cursor_after == max(ids)
    assert summary.query_calls <= 12, summary
    assert summary.write_calls <= 14, summary
    assert stack.cursor_id() == max(ids)


def test_entries_carry_true_utc_time_for_a_non_utc_api_user(stack: Stack) -> None:
    stack.run()
    by_id = {event.id: event for event in stack.data.events_after(-1)}
    for entry in stack.logging.entries()[:500]:
        event = by_id[int(entry.insert_id.rsplit("-", 1)[1])]
        assert entry.timestamp.ToDatetime().replace(tzinfo=event.created.tzinfo) == event.created


def test_events_without_attributes_and_sudo_events_are_exported(stack: Stack) -> None:
    stack.run()
    events = list(stack.data.events_after(-1))
    bare = [e for e in events if not e.attributes]
    sudo = [e for e in events if e.sudo_user_id is not None and e.user_id is not None]
    assert bare and sudo
    exported = {entry.insert_id: entry for entry in stack.logging.entries()}
    host = stack.env["LOOKER_BASE_URL"].split("//")[1].rstrip("/")
    for event in bare[:20]:
        assert f"looker-{host}-event-{event.id}" in exported
    for event in sudo[:20]:
        delegation = audit(exported[f"looker-{host}-event-{event.id}"]).authentication_info
        assert delegation.service_account_delegation_info, event
        assert event.sudo_user_id is not None
        sudo_user = stack.data.users[event.sudo_user_id]
        assert delegation.service_account_delegation_info[0].first_party_principal.principal_email == \
            sudo_user.email


def test_second_run_with_nothing_new_makes_one_query_and_no_login(stack: Stack) -> None:
    exporter = stack.exporter()
    exporter.run()
    logins = stack.looker.stats()["logins"]
    summary = exporter.run()
    assert summary.events_read == 0 and summary.query_calls == 1 and summary.write_calls == 0
    assert stack.looker.stats()["logins"] == logins
    assert stack.secrets.stats()["access_calls"] == 1


def test_catch_up_after_a_long_gap_spans_several_runs_within_the_budget(stack: Stack) -> None:
    exporter = stack.exporter(PAGE_SIZE="2000")
    exporter.run()
    last = max(stack.exported_ids())
    start = now() - timedelta(minutes=1, seconds=30)
    for index in range(3000):  # three hours of outage compressed into new rows
        stack.data.add_event("create_dashboard", created=start + timedelta(milliseconds=index),
                             user_id=1, attributes={"dashboard_id": str(index)}, id_gap=3)
    summary = exporter.run()
    assert summary.caught_up and summary.pages >= 2
    assert sorted(stack.exported_ids()) == stack.visible_ids()
    assert min(i for i in stack.exported_ids() if i > last) == last + 3


def test_cursor_never_passes_an_unwritten_event_and_a_retry_duplicates_nothing(stack: Stack) -> None:
    stack.logging.inject(grpc.StatusCode.PERMISSION_DENIED, times=-1)
    with pytest.raises(ExportError, match=r"roles/logging\.logWriter"):
        stack.run()
    assert stack.cursor_id() is None
    stack.logging.clear_faults()
    stack.run()
    ids = stack.exported_ids()
    assert sorted(ids) == stack.visible_ids()
    assert not [i for i, n in Counter(ids).items() if n > 1]


def test_late_rows_are_exported_by_the_next_run(stack: Stack) -> None:
    visible = stack.visible_ids()
    cut = visible[len(visible) // 2]
    stack.data.hide_after(cut)
    exporter = stack.exporter()
    exporter.run()
    assert max(stack.exported_ids()) == cut
    stack.data.reveal_all()
    exporter.run()
    assert sorted(stack.exported_ids()) == visible


def test_unsettled_events_wait_for_the_next_run(stack: Stack) -> None:
    young = stack.data.add_event("login", created=now() - timedelta(seconds=5), user_id=1)
    summary = stack.run()
    assert young.id not in stack.exported_ids() and summary.held_back_unsettled == 1
    stack.run(SETTLE_SECONDS="0")
    assert young.id in stack.exported_ids()


def test_missing_secret_and_bad_payload_are_clear_and_leak_nothing(stack: Stack,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExportError, match="was not found") as missing:
        stack.run(LOOKER_CREDENTIALS_SECRET="projects/demo-project/secrets/nope/versions/latest")
    stack.secrets.add_version("projects/demo-project/secrets/looker-api-credentials",
                              b'{"client_id": "x", "client_secret_typo": "' + CLIENT_SECRET.encode() + b'"}')
    with pytest.raises(ExportError, match="has no client_secret") as bad:
        stack.run()
    stack.secrets.add_version("projects/demo-project/secrets/looker-api-credentials", CLIENT_SECRET.encode())
    with pytest.raises(ExportError, match="does not hold JSON") as not_json:
        stack.run()
    for failure in (missing, bad, not_json):
        assert CLIENT_SECRET not in str(failure.value) and CLIENT_SECRET not in repr(failure.value.summary)
    out = capsys.readouterr()
    assert CLIENT_SECRET not in out.out + out.err


def test_a_deleted_user_is_looked_up_once_per_run(stack: Stack) -> None:
    start = now() - timedelta(minutes=10)
    for index in range(30):
        stack.data.add_event("login", created=start + timedelta(seconds=index), user_id=424242)
    summary = stack.run(PAGE_SIZE="500")
    assert sorted(stack.exported_ids()) == stack.visible_ids()
    assert stack.looker.stats()["cache_hits"] == 0, "no query of the run repeats an earlier one"
    assert summary.query_calls <= 3 * summary.pages


def test_two_overlapping_runs_of_one_instance_each_count_only_their_own_work(stack: Stack) -> None:
    """functions-framework serves requests on threads, and a Pub/Sub redelivery can overlap a slow run."""
    stack.data.hide_after(stack.visible_ids()[499])
    stack.looker.query_latency_seconds = 0.3  # both runs are under way at once
    exporter = stack.exporter()
    queries_before = stack.looker.stats()["query_calls"]
    summaries: list[RunSummary] = []

    def tick() -> None:
        try:
            summaries.append(exporter.run())
        except ExportError as failure:  # the run that stores the cursor second is refused by its precondition
            summaries.append(failure.summary)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(summaries) == 2
    for summary in summaries:
        assert summary.events_read == summary.events_written == 500, summary
    assert sum(s.events_written for s in summaries) == stack.logging.stats()["entries_stored"] == 1000
    assert sum(s.write_calls for s in summaries) == stack.logging.stats()["write_calls"]
    assert sum(s.query_calls for s in summaries) == stack.looker.stats()["query_calls"] - queries_before


def test_at_most_ten_chunks_are_ever_sent_beyond_the_stored_cursor_and_it_is_written_once_a_second(
        stack: Stack) -> None:
    """The bound on re-sending, seen from Cloud Logging: before every cursor write, what it holds beyond the
    cursor already stored is at most 10,000 entries; and Cloud Storage's one write per second is kept."""
    exporter = stack.exporter()
    store = exporter.store
    saves: list[tuple[float, int]] = []  # (when, entries Cloud Logging held beyond the stored cursor)
    real_save = store.save

    def save(data: bytes, token: int, *, deadline: float | None = None) -> int:
        stored = stack.cursor_id()
        held = stack.exported_ids()
        saves.append((time.monotonic(), sum(1 for number in held if stored is None or number > stored)))
        return real_save(data, token, deadline=deadline)

    store.save = save  # type: ignore[method-assign]  # our own store, recorded; the GCS client is untouched
    summary = exporter.run()
    assert summary.caught_up and sorted(stack.exported_ids()) == stack.visible_ids()
    assert summary.cursor_writes == len(saves) >= -(-12_000 // MAX_UNCOMMITTED_ENTRIES)  # 12,000 need two
    assert max(beyond for _, beyond in saves) <= MAX_UNCOMMITTED_ENTRIES
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(saves)]
    assert min(gaps) >= store.min_save_interval - 0.01, gaps
    assert stack.gcs.stats()["rate_limited"] == 0  # the emulator refuses a second write within a second


def test_entries_are_written_while_the_cursor_is_stored(stack: Stack) -> None:
    """Cursor writes run beside the entry writes: a slow one holds no write up while fewer than 10,000 entries
    are beyond the stored cursor, and the bound holds all through it."""
    stack.looker.query_latency_seconds = 0.2  # pages of 1,000 come a few a second, as from a real Looker
    exporter = stack.exporter(PAGE_SIZE="1000")
    store = exporter.store
    saves: list[tuple[int, int, int]] = []  # (held beyond the stored cursor before, after; held more after)
    real_save = store.save

    def slow_save(data: bytes, token: int, *, deadline: float | None = None) -> int:
        # Held until the writes have gone 2,000 entries past where they were, or have stood still for 3 s:
        # a writer that waited for this save (on the critical path) stands still, whatever the machine's speed.
        stored = stack.cursor_id()
        before = stack.exported_ids()
        after, still_since = before, time.monotonic()
        while len(after) - len(before) <= 2_000 and time.monotonic() - still_since < 3:
            time.sleep(0.05)
            now = stack.exported_ids()
            if len(now) != len(after):
                after, still_since = now, time.monotonic()
        saves.append((sum(1 for number in before if stored is None or number > stored),
                      sum(1 for number in after if stored is None or number > stored), len(after) - len(before)))
        return real_save(data, token, deadline=deadline)

    store.save = slow_save  # type: ignore[method-assign]  # our own store, recorded; the GCS client is untouched
    summary = exporter.run()
    assert summary.caught_up and sorted(stack.exported_ids()) == stack.visible_ids()
    assert summary.cursor_writes == len(saves) >= 2
    assert max(max(before, after) for before, after, _ in saves) <= MAX_UNCOMMITTED_ENTRIES
    # pages went on being written during a cursor write: more than a writer waiting for it could have had in flight
    assert max(grown for _, _, grown in saves) > 2_000, saves
    assert stack.gcs.stats()["rate_limited"] == 0
