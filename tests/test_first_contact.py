"""What a new user meets first: messages that point the right way, exit codes as documented, a quiet pipe,
looker-sdk's own conventions for local runs, and a checklist without log lines in it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PROJECT, Stack

from emulators.harness import free_port
from looker_audit_export.config import Config, ConfigError
from looker_audit_export.errors import EXIT_CODES

ROOT = Path(__file__).parent.parent
FITTING = "0 */3 * * *"
SDK_SECRET = "sdk-" + CLIENT_SECRET


def cli(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "looker_audit_export", *args], cwd=cwd,
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


# ----------------------------------------------------------------------------------- configuration
def test_every_missing_variable_is_reported_at_once(stack: Stack) -> None:
    env = without(stack.env, "GOOGLE_CLOUD_PROJECT", "LOOKER_BASE_URL", "LOOKER_CREDENTIALS_SECRET", "STATE_URI")
    result = cli({**env, "SETTLE_SECONDS": "-5"}, "export")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for name in ("GOOGLE_CLOUD_PROJECT", "LOOKER_BASE_URL", "LOOKER_CREDENTIALS_SECRET", "STATE_URI",
                 "SETTLE_SECONDS"):
        assert sum(line.startswith(f"error: {name}") for line in errors) == 1, (name, errors)


def test_a_base_url_ending_in_the_api_path_is_cut_back_with_a_note() -> None:
    config = Config.from_env({"GOOGLE_CLOUD_PROJECT": PROJECT, "LOOKER_BASE_URL": "https://x.looker.com/api/4.0/",
                              "LOOKER_CREDENTIALS_SECRET": f"projects/{PROJECT}/secrets/s/versions/latest",
                              "STATE_URI": "gs://b/o.json"})
    assert config.looker_base_url == "https://x.looker.com"
    assert len(config.notes) == 1 and "ends in /api/4.0: using https://x.looker.com" in config.notes[0]
    with pytest.raises(ConfigError, match="give the instance URL only"):
        Config.from_env({"GOOGLE_CLOUD_PROJECT": PROJECT, "LOOKER_BASE_URL": "https://x.looker.com/api/3.1"},
                        local=True)


def test_a_credentials_file_that_is_not_json_is_called_a_file(stack: Stack, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.json"
    credentials.write_text("client_id: x\n")
    result = cli(stack.env, "export", "--dry-run", "--credentials-file", str(credentials))
    assert result.returncode == 2
    assert f"error: The credentials file {credentials} does not hold JSON" in result.stderr
    assert "Secret" not in result.stderr


# ----------------------------------------------------------------------------------- Secret Manager
def test_an_unreachable_secret_manager_is_named_quickly_with_the_variable(stack: Stack) -> None:
    started = time.monotonic()
    result = cli({**stack.env, "SECRET_MANAGER_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}, "export")
    took = time.monotonic() - started
    assert result.returncode == 1 and took < 30  # the client's own retry would take 60 s
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error.startswith("Secret Manager could not be reached for LOOKER_CREDENTIALS_SECRET=")
    assert "SECRET_MANAGER_EMULATOR_HOST" in error and "Timeout of 60.0s" not in error
    checked = cli({**stack.env, "SECRET_MANAGER_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}, "check")
    fix = checked.stdout.splitlines()[checked.stdout.splitlines().index(next(
        line for line in checked.stdout.splitlines() if line.startswith("✗ Credentials"))) + 1]
    assert "network path to Secret Manager" in fix and "payload" not in fix


def test_a_secret_name_not_found_names_it_the_project_and_both_fixes(stack: Stack) -> None:
    result = cli({**stack.env, "LOOKER_CREDENTIALS_SECRET": f"projects/{PROJECT}/secrets/lookr-typo/versions/latest"},
                 "export")
    assert result.returncode == 2  # a fix first, as the table says
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert f"Secret Manager has no secret 'lookr-typo' with that version in project {PROJECT}" in error
    assert f"gcloud secrets list --project {PROJECT}" in error  # the typo
    assert f"gcloud secrets versions add lookr-typo --project {PROJECT}" in error  # the missing version


# ----------------------------------------------------------------------------------- exit codes
def test_the_exit_code_table_in_the_docs_is_the_one_the_code_uses() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in text, code


def test_every_path_exits_with_the_documented_code(stack: Stack, tmp_path: Path) -> None:
    assert cli(stack.env, "export", "--frobnicate").returncode == 2  # the command line
    assert cli({**stack.env, "PAGE_SIZE": "x"}, "export").returncode == 2  # a variable
    missing = cli({**stack.env, "LOOKER_CREDENTIALS_SECRET": f"projects/{PROJECT}/secrets/none/versions/1"},
                  "export")
    assert missing.returncode == 2  # a secret that is not there
    stack.looker.inject(503, times=20)
    assert cli({**stack.env, "RETRY_INITIAL_SECONDS": "0.01"}, "export").returncode == 1  # Looker kept failing
    stack.secrets.deny(f"projects/{PROJECT}/secrets/looker-api-credentials")
    assert cli(stack.env, "export").returncode == 2  # a permission on the secret
    assert cli({**stack.env, "RETRY_INITIAL_SECONDS": "0.01", "LOOKER_CREDENTIALS_SECRET": ""},
               "export", "--dry-run", "--credentials-file", str(tmp_path / "absent.json")).returncode == 2


# ----------------------------------------------------------------------------------- check and the CLI
def test_check_prints_no_log_line_among_its_checks(stack: Stack) -> None:
    result = cli(stack.env, "check", "--schedule", FITTING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in (result.stdout + result.stderr).splitlines() if line.lstrip().startswith("{")]


def test_a_closed_pipe_ends_a_dry_run_quietly(stack: Stack, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           **without(stack.env, "LOOKER_CREDENTIALS_SECRET", "STATE_URI", "LOGGING_EMULATOR_HOST")}
    process = subprocess.Popen([sys.executable, "-m", "looker_audit_export", "export", "--dry-run",
                                "--credentials-file", str(credentials)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    first = [process.stdout.readline() for _ in range(3)]  # what `| head -n 3` reads, then it goes away
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait(120) == 0, errors
    assert all(line.startswith("{") for line in first)
    assert "Broken pipe" not in errors and "Traceback" not in errors


def test_export_help_says_what_an_export_does() -> None:
    result = cli({}, "export", "--help")
    assert result.returncode == 0
    assert "Run one export now, as one tick of the Cloud Function does" in result.stdout
    assert "exit codes:" in result.stdout


# ----------------------------------------------------------------------------------- looker-sdk's conventions
def sdk_env(stack: Stack) -> dict[str, str]:
    env = without(stack.env, "LOOKER_BASE_URL", "LOOKER_CREDENTIALS_SECRET")
    return {**env, "LOOKERSDK_BASE_URL": stack.env["LOOKER_BASE_URL"], "LOOKERSDK_CLIENT_ID": CLIENT_ID,
            "LOOKERSDK_CLIENT_SECRET": CLIENT_SECRET}


def test_check_takes_lookersdk_variables_and_says_so(stack: Stack) -> None:
    result = cli(sdk_env(stack), "check", "--schedule", FITTING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(from LOOKERSDK_BASE_URL)" in result.stdout
    assert "Looker credentials from the LOOKERSDK_CLIENT_ID and LOOKERSDK_CLIENT_SECRET environment variables" \
        in result.stdout
    assert stack.secrets.stats()["access_calls"] == 0
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_a_dry_run_and_a_backfill_take_a_looker_ini(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "looker.ini").write_text(f"[Looker]\nbase_url={stack.env['LOOKER_BASE_URL']}\n"
                                         f"client_id={CLIENT_ID}\nclient_secret={CLIENT_SECRET}\nverify_ssl=True\n")
    env = without(stack.env, "LOOKER_BASE_URL", "LOOKER_CREDENTIALS_SECRET", "STATE_URI")
    dry = cli(env, "export", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == len(stack.visible_ids())
    checked = cli(env, "check", "--schedule", FITTING, cwd=tmp_path)
    assert f"Looker credentials from client_id and client_secret in {tmp_path / 'looker.ini'}" in checked.stdout
    assert "(from base_url in looker.ini)" in checked.stdout
    assert CLIENT_SECRET not in dry.stderr + checked.stdout + checked.stderr


def test_the_projects_own_settings_come_first(stack: Stack, tmp_path: Path) -> None:
    env = {**sdk_env(stack), "LOOKERSDK_BASE_URL": "https://wrong.invalid", "LOOKERSDK_CLIENT_SECRET": SDK_SECRET,
           "LOOKER_BASE_URL": stack.env["LOOKER_BASE_URL"],
           "LOOKER_CREDENTIALS_SECRET": stack.env["LOOKER_CREDENTIALS_SECRET"]}
    result = cli(env, "check", "--schedule", FITTING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(from LOOKER_BASE_URL)" in result.stdout
    assert f"Looker credentials from secret {stack.env['LOOKER_CREDENTIALS_SECRET']}" in result.stdout
    # The deployed function never reads looker-sdk's variables.
    with pytest.raises(ConfigError, match="LOOKER_BASE_URL is not set"):
        Config.from_env(without(env, "LOOKER_BASE_URL"))


def test_a_secret_from_the_environment_never_reaches_a_log_line(stack: Stack) -> None:
    env = {**sdk_env(stack), "LOOKERSDK_CLIENT_SECRET": SDK_SECRET}  # wrong: the login fails and says so
    for args in (("check", "--schedule", FITTING), ("export", "--dry-run"), ("backfill", "--since", "2026-01-01",
                                                                             "--yes")):
        result = cli(env, *args)
        assert result.returncode != 0
        assert "refused the API credentials" in result.stdout + result.stderr
        assert SDK_SECRET not in result.stdout + result.stderr


def test_a_dry_runs_summary_says_it_stored_no_cursor(stack: Stack) -> None:
    result = cli(stack.env, "export", "--dry-run")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["events_written"] == len(stack.visible_ids()) and summary["cursor_writes"] == 0
    assert stack.cursor() == {}
    assert '`"cursor_writes": 0`' in (ROOT / "docs" / "local.md").read_text()  # as the docs say


def test_a_zone_that_contradicts_lookers_settings_and_refused_keys_exit_2(stack: Stack, tmp_path: Path) -> None:
    stack.looker.forbid_settings()  # an API user that may not read the settings, and no LOOKER_QUERY_TIMEZONE
    assert cli(stack.env, "export").returncode == 2
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": "wrong"}))
    assert cli(stack.env, "export", "--credentials-file", str(credentials)).returncode == 2


# ----------------------------------------------------------------------------------- the docs' local commands
def local_block(containing: str) -> str:
    text = (ROOT / "docs" / "local.md").read_text()
    return next(block for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if containing in block)


def test_the_emulators_load_into_the_shell_in_one_line_and_check_passes() -> None:
    block = local_block('eval "$(python -m emulators --env)"')
    assert "kill $EMULATORS_PID" in block
    cleanup = 'trap \'[ -n "${EMULATORS_PID:-}" ] && kill "$EMULATORS_PID" 2>/dev/null || true\' EXIT\n'
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", cleanup + block], cwd=ROOT, capture_output=True,
                            text=True, timeout=180,
                            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(from LOOKER_BASE_URL)" in result.stdout and result.stdout.rstrip().endswith("All required checks passed.")


def test_the_documented_curl_delivers_a_tick_that_exports(stack: Stack, tmp_path: Path) -> None:
    from emulators.harness import start_function

    block = local_block("curl ")
    port = free_port()
    with (tmp_path / "function.log").open("w") as sink:
        function = start_function(stack.env, port, stdout=sink)
        try:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c",
                                     block.replace("localhost:8080", f"127.0.0.1:{port}")],
                                    capture_output=True, text=True, timeout=180)
        finally:
            function.terminate()
            function.wait(10)
    assert result.returncode == 0 and result.stdout.strip() == "200", result.stdout + result.stderr
    assert sorted(stack.exported_ids()) == stack.visible_ids()
