"""``python -m looker_audit_export``: one export, a dry run that writes nothing, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import CLIENT_ID, CLIENT_SECRET, Stack

ROOT = Path(__file__).parent.parent


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "looker_audit_export", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_export_writes_everything_and_prints_the_summary(stack: Stack) -> None:
    result = cli(stack.env, "export")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events_written"] == len(stack.visible_ids()) and summary["caught_up"]
    assert sorted(stack.exported_ids()) == stack.visible_ids()


def test_dry_run_prints_entries_and_writes_nothing(stack: Stack, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    env = {key: value for key, value in stack.env.items()
           if key not in ("LOOKER_CREDENTIALS_SECRET", "STATE_URI", "LOGGING_EMULATOR_HOST")}
    result = cli(env, "export", "--dry-run", "--credentials-file", str(credentials))
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(entries) == len(stack.visible_ids())
    assert entries[0]["protoPayload"]["@type"] == "type.googleapis.com/google.cloud.audit.AuditLog"
    assert stack.logging.stats()["write_calls"] == 0 and stack.cursor() == {}
    assert stack.secrets.stats()["access_calls"] == 0
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_dry_run_reads_the_cursor_but_never_moves_it(stack: Stack) -> None:
    stack.data.hide_after(stack.visible_ids()[99])
    assert cli(stack.env, "export").returncode == 0
    before = stack.cursor()
    stack.data.reveal_all()
    result = cli(stack.env, "export", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(stack.visible_ids()) - 100
    assert stack.cursor() == before


def test_bad_configuration_exits_2_and_names_the_variable(stack: Stack) -> None:
    result = cli({**stack.env, "SETTLE_SECONDS": "-5"}, "export")
    assert result.returncode == 2
    assert "SETTLE_SECONDS=-5 is out of range" in result.stderr


def test_wrong_secret_fails_clearly_without_leaking_it(stack: Stack, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": "wrong-" + CLIENT_SECRET}))
    result = cli(stack.env, "export", "--credentials-file", str(credentials))
    assert result.returncode == 2  # credentials to fix first (docs/configuration.md#exit-codes)
    assert "refused the API credentials (HTTP 404 on login)" in result.stderr
    assert CLIENT_SECRET not in result.stdout + result.stderr
