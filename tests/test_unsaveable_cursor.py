"""A cursor that cannot be saved costs at most one bound of duplicates, however many ticks the failure lasts.

Every run first proves that the cursor can be saved (a probe beside it, created and deleted) and sends nothing
until it can. The three ways a store breaks: a grant revoked and a bucket deleted (the project's GCS emulator,
which answers as GCS does), and a read-only folder for a local cursor. Tests run as root here, and chmod does
not stop root: the folder is made read-only by a read-only bind mount in a private mount namespace of the
command alone (``unshare --mount``), or by chmod when not root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BUCKET, CLIENT_SECRET, PROJECT, Stack, now

from emulators.gcs import GcsEmulator
from emulators.harness import deliver_pubsub_event, free_port, start_function
from looker_audit_export.export.commit import MAX_UNCOMMITTED_ENTRIES
from looker_audit_export.export.summary import ExportError

ROOT = Path(__file__).parent.parent
TICKS = 3


def more_events(stack: Stack, count: int) -> None:
    """``count`` more settled events: a run that sends them all stores its cursor on the way."""
    start = now() - timedelta(minutes=1, seconds=30)
    for index in range(count):
        stack.data.add_event("create_dashboard", created=start + timedelta(milliseconds=index), user_id=1,
                             attributes={"dashboard_id": str(index)})


def gcs(stack: Stack) -> GcsEmulator:
    """The project's GCS emulator (the one that answers 403 for a revoked grant)."""
    assert isinstance(stack.gcs, GcsEmulator)
    return stack.gcs


def exported_once(stack: Stack) -> bool:
    return sorted(stack.exported_ids()) == stack.visible_ids()


BREAKS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None], str, str]] = {
    "grant revoked": (lambda s: gcs(s).revoke(BUCKET), lambda s: gcs(s).grant(BUCKET),
                      "permission denied (storage.objects.", "roles/storage.objectUser"),
    "bucket deleted": (lambda s: gcs(s).delete_bucket(BUCKET), lambda s: gcs(s).create_bucket(BUCKET),
                       f"the bucket gs://{BUCKET} does not exist", "create the bucket"),
}


@pytest.mark.parametrize("broken", list(BREAKS))
def test_a_lasting_store_failure_sends_nothing_then_the_export_completes_once(stack: Stack, broken: str) -> None:
    more_events(stack, 3000)  # a run that sent blindly would send all 5,000 (under the bound) and fail
    brk, fix, cause, remedy = BREAKS[broken]
    brk(stack)
    exporter = stack.exporter()  # one warm instance: its ticks fail one after the other
    for _ in range(TICKS):
        with pytest.raises(ExportError) as failure:
            exporter.run()
        message = str(failure.value)
        assert f"gs://{BUCKET}/looker/state.json" in message and cause in message and remedy in message
        assert "Nothing is sent to Cloud Logging until the cursor can be saved" in message
        assert failure.value.summary.write_calls == 0 and failure.value.summary.query_calls == 0
    assert stack.logging.stats()["entries_stored"] == 0
    fix(stack)
    summary = stack.exporter().run()  # a cold instance once the store works again
    assert summary.caught_up and summary.entries_resent == 0
    assert exported_once(stack) and stack.logging.stats()["duplicates_stored"] == 0


def test_a_grant_revoked_mid_run_costs_at_most_one_bound_over_three_more_ticks(stack: Stack) -> None:
    more_events(stack, 13_000)  # 15,000: more than one bound (10,000), so the run stores its cursor on the way
    exporter = stack.exporter()
    saves = 0
    store = exporter.store
    real_save = store.save

    def save_then_revoke(data: bytes, token: int, **kwargs: float | None) -> int:
        nonlocal saves
        token = real_save(data, token, **kwargs)
        saves += 1
        if saves == 1:  # the grant goes away while this run still has entries to send
            gcs(stack).revoke(BUCKET)
        return token

    store.save = save_then_revoke  # type: ignore[method-assign]  # our own store, not a client: a trigger
    for _ in range(1 + TICKS):
        with pytest.raises(ExportError, match="permission denied"):
            exporter.run()
    assert stack.logging.stats()["entries_stored"] <= len(stack.visible_ids())
    gcs(stack).grant(BUCKET)
    assert exporter.run().caught_up
    stored = stack.exported_ids()
    assert sorted(set(stored)) == stack.visible_ids()
    assert 0 < len(stored) - len(set(stored)) <= MAX_UNCOMMITTED_ENTRIES  # one failure: at most one bound


def test_a_revoked_grant_answers_500_with_the_store_named_and_sends_nothing(stack: Stack, tmp_path: Path) -> None:
    """The deployed shape: functions-framework, three Pub/Sub ticks, each answered 500 with one clear line."""
    gcs(stack).revoke(BUCKET)
    port = free_port()
    log_path = tmp_path / "function.log"
    with log_path.open("w") as sink:
        process = start_function(stack.env, port, stdout=sink)
        try:
            for _ in range(TICKS):
                assert deliver_pubsub_event(f"http://127.0.0.1:{port}/", PROJECT, "tick") == 500
            assert stack.logging.stats()["entries_stored"] == 0
            gcs(stack).grant(BUCKET)
            assert deliver_pubsub_event(f"http://127.0.0.1:{port}/", PROJECT, "tick") == 200
        finally:
            process.terminate()
            process.wait(10)
    assert exported_once(stack)
    failures = [json.loads(line) for line in log_path.read_text().splitlines()
                if line.startswith("{") and '"ERROR"' in line and "summary" in line]
    assert len(failures) == TICKS
    assert all("permission denied (storage.objects." in str(line["message"]) for line in failures)
    assert CLIENT_SECRET not in log_path.read_text()


# ----------------------------------------------------------------- a local cursor in a read-only folder
def read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only (for root too); the rest of the machine is not."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--mount", "true"], check=False).returncode != 0:
        pytest.skip("running as root without `unshare --mount`: no way to make a folder read-only for root")
    return [unshare, "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]


def cli(prefix: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "looker_audit_export", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)


def test_a_read_only_folder_sends_nothing_and_check_names_the_cause(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "cursor"
    folder.mkdir()
    env = {**stack.env, "STATE_URI": str(folder / "state.json")}
    prefix = read_only(folder)
    for _ in range(TICKS):
        result = cli(prefix, env, "export")
        assert result.returncode == 2, result.stderr
        assert f"{folder} is on a read-only file system" in result.stderr or f"permission denied in {folder}" \
            in result.stderr
        assert "point STATE_URI at a" in result.stderr and "Traceback" not in result.stderr
    assert stack.logging.stats()["entries_stored"] == 0

    checked = cli(prefix, env, "check", "--schedule", "0 */3 * * *")
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    marks = [line for line in checked.stdout.splitlines() if line[:2] in ("✓ ", "✗ ")]
    assert len(marks) == 11  # every check printed its line
    cursor = next(line for line in marks if "Cursor location" in line)
    assert cursor.startswith("✗") and str(folder) in cursor
    assert checked.stdout.rstrip().endswith("1 required check failed.")

    if os.geteuid() != 0:
        folder.chmod(0o755)
    result = cli([], env, "export")
    assert result.returncode == 0, result.stderr
    assert exported_once(stack) and json.loads((folder / "state.json").read_text())["streams"]["events"]["last_id"]
    assert CLIENT_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("broken", list(BREAKS))
def test_check_prints_every_line_and_the_cursor_line_names_cause_and_fix(stack: Stack, broken: str) -> None:
    brk, _, cause, remedy = BREAKS[broken]
    brk(stack)
    checked = cli([], stack.env, "check", "--schedule", "0 */3 * * *")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    marks = [line for line in lines if line[:2] in ("✓ ", "✗ ")]
    assert len(marks) == 11 and sum(line.startswith("✗") for line in marks) == 1
    index = next(i for i, line in enumerate(lines) if line.startswith("✗ Cursor location"))
    assert cause in lines[index] and remedy in lines[index + 1]
