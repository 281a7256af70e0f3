"""``python -m looker_audit_export backfill``: a past range with progress, resumable by the same command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BUCKET, Stack, now

from emulators.looker_data import SystemActivity
from looker_audit_export.cli import backfill_state_uri
from looker_audit_export.export.commit import MAX_UNCOMMITTED_ENTRIES

ROOT = Path(__file__).parent.parent


@pytest.fixture
def data() -> SystemActivity:
    """Six thousand events over the last three days."""
    return SystemActivity.synthetic(6_000, end=now() - timedelta(minutes=5), span=timedelta(days=3), seed=11)


def since_arg() -> str:
    return f"{now() - timedelta(days=4):%Y-%m-%d}"


def backfill(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "looker_audit_export", "backfill", *args], cwd=ROOT,
                          env={**stack.env, "PAGE_SIZE": "1000", **env}, capture_output=True, text=True,
                          timeout=300, check=False)


def backfill_cursors(stack: Stack) -> list[str]:
    return [name for name in stack.gcs.object_names(BUCKET) if name.startswith("looker/backfill-")]


def test_backfill_exports_the_range_once_with_progress(stack: Stack) -> None:
    result = backfill(stack, "--since", since_arg())
    assert result.returncode == 0, result.stderr
    assert sorted(stack.exported_ids()) == stack.visible_ids()
    assert json.loads(result.stdout.splitlines()[-1])["written"] == len(stack.visible_ids())
    assert "100.0%" in result.stderr and "entries" in result.stderr and "/s" in result.stderr
    assert backfill_cursors(stack), "the backfill keeps its own cursor beside the live one"
    assert stack.cursor() == {}, "the live cursor is not touched"


def test_backfill_over_what_live_runs_exported_stores_that_overlap_twice(stack: Stack) -> None:
    """The backfill keeps its own cursor: what the live function already wrote is sent, and stored, again
    (hidden in a query's results, but exported and billed), as the README says."""
    stack.run(INITIAL_LOOKBACK_MINUTES=str(24 * 60))
    live = len(stack.exported_ids())
    assert 0 < live < len(stack.visible_ids())
    assert backfill(stack, "--since", since_arg()).returncode == 0
    ids = stack.exported_ids()
    assert sorted(set(ids)) == stack.visible_ids()
    assert stack.logging.stats()["duplicates_stored"] == live == len(ids) - len(set(ids))


def test_the_backfill_cursor_is_named_by_the_command_not_by_when_it_runs() -> None:
    since = now().replace(hour=0, minute=0, second=0)
    live = "gs://b/prod/state.json"
    assert backfill_state_uri(live, since, None) == f"gs://b/prod/backfill-{since:%Y%m%d}-open.json"
    assert backfill_state_uri(live, since, since + timedelta(days=3)) == \
        f"gs://b/prod/backfill-{since:%Y%m%d}-{since + timedelta(days=3):%Y%m%d}.json"  # another range, apart
    assert backfill_state_uri(None, since, None) == f".backfill-{since:%Y%m%d}-open.json"


def test_a_backfill_killed_half_way_resumes_with_the_same_command_later(stack: Stack) -> None:
    stack.looker.per_row_latency_seconds = 0.0005  # slow enough to interrupt between pages
    command = [sys.executable, "-m", "looker_audit_export", "backfill", "--since", since_arg()]
    process = subprocess.Popen(command, cwd=ROOT, env={**stack.env, "PAGE_SIZE": "500"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not backfill_cursors(stack) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    first = len(stack.exported_ids())
    assert 0 < first < len(stack.visible_ids())
    cursors = backfill_cursors(stack)
    assert cursors == [f"looker/backfill-{since_arg().replace('-', '')}-open.json"]
    time.sleep(1.1)  # "later": the default --until (now) has moved on; the cursor's name has not
    stack.looker.per_row_latency_seconds = 0.0
    calls = stack.looker.stats()["query_calls"]
    assert backfill(stack, "--since", since_arg()).returncode == 0
    ids = stack.exported_ids()
    assert sorted(set(ids)) == stack.visible_ids() and backfill_cursors(stack) == cursors
    # it resumed: far fewer pages than a fresh start would need, and at most ten chunks sent again
    assert stack.looker.stats()["query_calls"] - calls < 3 * len(stack.visible_ids()) // 1000
    assert stack.logging.stats()["duplicates_stored"] == len(ids) - len(set(ids)) <= MAX_UNCOMMITTED_ENTRIES


def test_backfill_says_what_retention_would_drop_before_it_starts(stack: Stack) -> None:
    old = f"{now() - timedelta(days=45):%Y-%m-%d}"
    refused = backfill(stack, "--since", old)
    assert refused.returncode == 2
    assert "30 days" in refused.stderr and "enable_long_retention" in refused.stderr
    assert stack.logging.stats()["write_calls"] == 0
    assert backfill(stack, "--since", old, "--retention-days", "400").returncode == 0
    assert sorted(stack.exported_ids()) == stack.visible_ids()
