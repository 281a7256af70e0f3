"""The exporter's own activity: its API user's logins and System Activity queries, labelled, and left out of
the query history stream unless HISTORY_INCLUDE_OWN_QUERIES keeps them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import LOG_NAME, PROJECT, Stack, now

from emulators.looker_data import API_USER_ID, SystemActivity
from looker_audit_export.config import Config, ConfigError
from looker_audit_export.export.summary import ExportError

HISTORY_LOG = f"projects/{PROJECT}/logs/looker_query_history"
BOTH = {"EXPORT_STREAMS": "events,history"}
SELF = ("looker_exporter", "self")


@pytest.fixture
def data() -> SystemActivity:
    """Events and query history over the last half hour, with the API user's own logins and queries."""
    found = SystemActivity.synthetic(2_000, end=now() - timedelta(minutes=2), span=timedelta(minutes=30), seed=11,
                                     n_history=800, api_user_id=API_USER_ID)
    h = found.history
    for index in range(len(h)):  # finish the queries still running, so that every row is exported or left out
        row = h.entry_at(index)
        if row.status == "running":
            found.complete_history(row.id, completed=row.created + timedelta(seconds=1), runtime=1.0)
    return found


def entries(stack: Stack, log_name: str) -> dict[int, Any]:
    return {int(entry.insert_id.rsplit("-", 1)[1]): entry for entry in stack.logging.entries()
            if entry.log_name == log_name}


def labelled_self(entry: Any) -> bool:
    return entry.labels.get(SELF[0]) == SELF[1]


def own_history(stack: Stack) -> tuple[list[int], set[int]]:
    """Every history id in order, and those of the API user's System Activity queries."""
    rows = [stack.data.history.entry_at(index) for index in range(len(stack.data.history))]
    return [row.id for row in rows], {row.id for row in rows
                                      if row.user_id == API_USER_ID and row.model == "system__activity"}


def test_the_exporters_own_logins_are_labelled_and_nothing_else_is(stack: Stack) -> None:
    stack.run()
    exported = entries(stack, LOG_NAME)
    own = {event.id for event in stack.data.events_after(-1) if event.user_id == API_USER_ID}
    assert own and set(exported) == set(stack.visible_ids())
    assert {number for number, entry in exported.items() if labelled_self(entry)} == own
    sample = exported[min(own)]
    assert sample.labels["event_name"] == "login" and sample.labels["looker_host"]


def test_own_system_activity_queries_are_left_out_of_the_history_and_the_cursor_passes_them(stack: Stack) -> None:
    start = now() - timedelta(seconds=100)  # after the synthetic rows, settled
    other_model = stack.data.add_history(created=start, source="api", user_id=API_USER_ID, model="thelook",
                                         view="orders", runtime=0.2)
    last_own = stack.data.add_history(created=start + timedelta(seconds=5), source="api3", user_id=API_USER_ID,
                                      model="system__activity", view="history", runtime=0.1)
    ids, own = own_history(stack)
    assert last_own == ids[-1] and len(own) > 90
    summary = stack.run(**BOTH)
    exported = entries(stack, HISTORY_LOG)
    assert set(exported) == set(ids) - own
    assert stack.cursor_id("history") == last_own, "the cursor moves past the rows left out"
    assert {number for number, entry in exported.items() if labelled_self(entry)} == {other_model}
    history = summary.streams["history"]
    # this run's own queries are in History too (Looker records them as they run): read, and held back as too young
    assert history.held_back and history.read == len(ids) + history.held_back
    assert history.written == len(ids) - len(own)


def test_history_include_own_queries_keeps_them_labelled(stack: Stack) -> None:
    ids, own = own_history(stack)
    stack.run(**BOTH, HISTORY_INCLUDE_OWN_QUERIES="true")
    exported = entries(stack, HISTORY_LOG)
    assert set(exported) == set(ids)
    assert {number for number, entry in exported.items() if labelled_self(entry)} == own
    assert {exported[number].labels["query_source"] for number in own} == {"api", "api3"}


def test_the_api_user_is_read_once_per_instance(stack: Stack) -> None:
    exporter = stack.exporter()
    exporter.run()
    exporter.run()
    assert stack.looker.stats()["me_calls"] == 1
    stack.run()  # a new instance reads it again
    assert stack.looker.stats()["me_calls"] == 2


def test_a_bad_history_include_own_queries_is_named(stack: Stack) -> None:
    with pytest.raises(ConfigError, match="HISTORY_INCLUDE_OWN_QUERIES='sometimes' is invalid"):
        Config.from_env({**stack.env, "HISTORY_INCLUDE_OWN_QUERIES": "sometimes"})
    assert Config.from_env(stack.env).history_include_own_queries is False


def test_the_api_user_unreadable_fails_the_run_before_any_write_then_recovers(stack: Stack) -> None:
    stack.looker.inject(503, path_contains="/api/4.0/user", times=6)  # every attempt of the run
    exporter = stack.exporter(RETRY_INITIAL_SECONDS="0.05")  # the same 6 attempts, without 30 s of backoff
    with pytest.raises(ExportError, match=r"HTTP 503.*giving up after 6 attempts"):
        exporter.run()
    assert stack.logging.stats()["write_calls"] == 0 and stack.cursor_id() is None
    exporter.run()
    assert set(entries(stack, LOG_NAME)) == set(stack.visible_ids())
