"""The deployed shape: functions-framework serving main.py, fed Pub/Sub CloudEvents as Eventarc sends them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from conftest import CLIENT_SECRET, PROJECT, Stack
from docs_pages import docs_text

from emulators.harness import FUNCTIONS_FRAMEWORK_COMMAND, deliver_pubsub_event, free_port, start_function


@pytest.fixture
def served(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The function on a local port, its log lines captured in a file."""
    port = free_port()
    log_path = tmp_path / "function.log"
    with log_path.open("w") as sink:
        process = start_function(stack.env, port, stdout=sink)
        try:
            yield f"http://127.0.0.1:{port}/", log_path
        finally:
            process.terminate()
            process.wait(10)


def log_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_a_tick_exports_everything_and_logs_one_summary(stack: Stack, served: tuple[str, Path]) -> None:
    url, log_path = served
    assert " ".join(FUNCTIONS_FRAMEWORK_COMMAND) in docs_text()
    assert deliver_pubsub_event(url, PROJECT, "looker-export-tick") == 200
    assert sorted(stack.exported_ids()) == stack.visible_ids()
    summaries = [line for line in log_lines(log_path) if "summary" in line]
    assert len(summaries) == 1
    summary = summaries[0]["summary"]
    assert isinstance(summary, dict) and summary["events_written"] == len(stack.visible_ids())
    assert summaries[0]["severity"] == "INFO"


def test_a_failed_run_answers_500_so_pubsub_redelivers(stack: Stack, served: tuple[str, Path]) -> None:
    url, log_path = served
    stack.logging.inject(grpc.StatusCode.PERMISSION_DENIED, times=-1)
    assert deliver_pubsub_event(url, PROJECT, "looker-export-tick") == 500
    stack.logging.clear_faults()
    assert deliver_pubsub_event(url, PROJECT, "looker-export-tick") == 200  # the redelivery
    assert sorted(stack.exported_ids()) == stack.visible_ids()
    errors = [line for line in log_lines(log_path) if line.get("severity") == "ERROR" and "summary" in line]
    assert errors and "roles/logging.logWriter" in str(errors[0]["message"])
    assert CLIENT_SECRET not in log_path.read_text()


def test_a_tick_older_than_the_age_cut_off_is_dropped_with_a_warning(stack: Stack,
                                                                       served: tuple[str, Path]) -> None:
    url, log_path = served
    old = datetime.now(UTC) - timedelta(hours=2)
    assert deliver_pubsub_event(url, PROJECT, "looker-export-tick", published=old) == 200
    assert stack.exported_ids() == []
    dropped = [line for line in log_lines(log_path) if line.get("dropped_tick")]
    assert dropped and dropped[0]["severity"] == "WARNING"
    assert "MAX_MESSAGE_AGE_SECONDS" in str(dropped[0]["message"])


def test_bad_configuration_fails_with_the_variable_named(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "function.log"
    with log_path.open("w") as sink:
        process = start_function({**stack.env, "LOOKER_BASE_URL": "looker.example.com"}, port, stdout=sink)
        try:
            assert deliver_pubsub_event(f"http://127.0.0.1:{port}/", PROJECT, "t") == 500
        finally:
            process.terminate()
            process.wait(10)
    assert "LOOKER_BASE_URL='looker.example.com' is invalid" in log_path.read_text()
