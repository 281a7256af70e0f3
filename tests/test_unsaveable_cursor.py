"""A cursor that cannot be saved costs at most one bound of duplicates, however many ticks the failure lasts.

Every run first proves that the cursor can be saved (a probe beside it, created and deleted) and sends nothing
until it can. The three ways a store breaks: a grant revoked and a bucket deleted (the project's GCS emulator,
which answers as GCS does), and a read-only folder for a local cursor. Tests run as root here, and chmod does
not stop root: the folder is made read-only by a read-only bind mount in a private mount namespace of the
command alone (``unshare --mount``), or by chmod when not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BUCKET, Stack, now

from emulators.gcs import GcsEmulator

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
