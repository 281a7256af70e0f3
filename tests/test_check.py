"""``python -m looker_audit_export check``: the preflight checklist, against the emulators in each failure mode."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from conftest import BUCKET, CLIENT_ID, CLIENT_SECRET, Stack

from looker_audit_export.export.summary import ExportError

ROOT = Path(__file__).parent.parent
#: A schedule that fits the Standard edition's 1,000 query calls a month, so every line can be green.
FITTING = "0 */3 * * *"


def check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "looker_audit_export", "check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's line by name (the text after the mark), and ``fix:`` lines under ``<name> fix``."""
    found: dict[str, str] = {}
    name = ""
    for line in result.stdout.splitlines():
        if line[:2] in ("✓ ", "✗ ", "- "):
            name = line[2:].split(":", 1)[0].replace(" (advisory)", "")
            found[name] = line
        elif line.startswith("    fix: "):
            found[f"{name} fix"] = line[9:]
    return found


def test_all_green_changes_nothing(stack: Stack) -> None:
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    assert set(found) == {"Credentials", "Looker login", "API user", "System Activity query", "Fields of event",
                          "Fields of event_attribute", "Fields of user", "Time zone", "Looker query budget",
                          "Cloud Logging write", "Cursor location"}
    assert all(line.startswith("✓") for line in found.values())
    assert "user time zones on" in found["Time zone"]
    assert "240 runs a month" in found["Looker query budget"]
    assert result.stdout.rstrip().endswith("All required checks passed.")
    assert stack.logging.stats()["write_calls"] == 1 and stack.logging.entries() == []
    # Nothing changed but the probe every run rewrites before it sends: no entry stored, no cursor, two query
    # calls (the probe, the measurement).
    assert stack.cursor() == {} and stack.gcs.object_names(BUCKET) == ["looker/.probe-state.json"]
    assert stack.looker.stats()["query_calls"] == 2 and stack.looker.stats()["me_calls"] == 1
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_an_api_user_that_cannot_read_itself_fails_with_the_fix(stack: Stack) -> None:
    stack.looker.inject(403, path_contains="/api/4.0/user", times=1)
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["API user"].startswith("✗") and "HTTP 403" in found["API user"]
    assert "GET /api/4.0/user" in found["API user fix"]
    assert found["System Activity query"].startswith("✓")


def test_a_live_cursor_is_read_and_left_alone(stack: Stack) -> None:
    stack.run()
    before = stack.gcs.object_bytes(BUCKET, "looker/state.json")
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 0, result.stdout
    assert "a cursor is there" in lines(result)["Cursor location"]
    assert stack.gcs.object_bytes(BUCKET, "looker/state.json") == before
    assert stack.gcs.object_names(BUCKET) == ["looker/.probe-state.json", "looker/state.json"]


def test_the_default_schedule_is_said_to_be_assumed_and_over_the_standard_budget(stack: Stack) -> None:
    result = check(stack.env)
    assert result.returncode == 0  # advisory: the edition is not known
    found = lines(result)
    assert found["Looker query budget"].startswith("✗")
    assert "(assumed: the Terraform default" in found["Looker query budget"]
    assert "4,320 runs a month" in found["Looker query budget"]
    assert 'schedule = "0 */3 * * *"' in found["Looker query budget fix"]


def test_zone_locked_and_readable_says_times_are_converted(stack: Stack) -> None:
    stack.looker.set_time_zones(False, "America/New_York")
    result = check({**stack.env, "EXPORT_STREAMS": "events,history"}, "--schedule", FITTING)
    assert result.returncode == 0, result.stdout
    found = lines(result)
    assert "instance zone America/New_York; System Activity shows times at UTC-05:00" in found["Time zone"]
    assert "they agree; times are converted from America/New_York" in found["Time zone"]
    assert found["Fields of history"] == "✓ Fields of history: all 16 fields the exporter uses exist"
    assert "480 query calls (nothing new) to 1,200" in found["Looker query budget"]  # over Standard: advisory


def test_settings_forbidden_without_the_variable_fails_with_the_functions_message(stack: Stack) -> None:
    stack.looker.forbid_settings()
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["Time zone"].startswith("✗") and "LOOKER_QUERY_TIMEZONE" in found["Time zone"]
    assert "User Specific Time Zones" in found["Time zone"]
    assert result.stdout.rstrip().endswith("1 required check failed.")
    with pytest.raises(ExportError) as failure:
        stack.run()
    assert f"✗ Time zone: {failure.value}" == found["Time zone"]  # one message, shared with the function


def test_settings_forbidden_with_the_variable_passes(stack: Stack) -> None:
    stack.looker.forbid_settings()
    result = check({**stack.env, "LOOKER_QUERY_TIMEZONE": "UTC"}, "--schedule", FITTING)
    assert result.returncode == 0, result.stdout
    assert "HTTP 403): LOOKER_QUERY_TIMEZONE=UTC is expected" in lines(result)["Time zone"]
    assert "UTC+00:00" in lines(result)["Time zone"]


def test_a_missing_required_field_fails_and_an_optional_one_does_not(stack: Stack) -> None:
    stack.looker.lack_field("permission_set.permissions", "user")
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 0, result.stdout
    assert "lacks optional permission_set.permissions" in lines(result)["Fields of user"]
    stack.looker.lack_field("event_attribute.value")
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["Fields of event_attribute"].startswith("✗")
    assert "has no field event_attribute.value" in found["Fields of event_attribute"]
    with pytest.raises(ExportError, match=r"has no field event_attribute\.value"):
        stack.run()


def test_logging_forbidden_fails_with_the_role_to_grant(stack: Stack) -> None:
    stack.logging.inject(grpc.StatusCode.PERMISSION_DENIED, times=-1,
                         message="Permission 'logging.logEntries.create' denied on resource (or it may not exist).")
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["Cloud Logging write"].startswith("✗") and "logging.logEntries.create" in found["Cloud Logging write"]
    assert "roles/logging.logWriter" in found["Cloud Logging write fix"]


def test_wrong_credentials_fail_the_login_and_skip_what_needs_it(stack: Stack, tmp_path: Path) -> None:
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": "wrong-" + CLIENT_SECRET}))
    result = check(stack.env, "--credentials-file", str(credentials), "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["Credentials"].startswith("✓")
    assert found["Looker login"].startswith("✗") and "HTTP 404 on login" in found["Looker login"]
    assert found["Time zone"] == "- Time zone: not run: the Looker login failed"
    assert found["API user"] == "- API user: not run: the Looker login failed"
    # One failed; the six that need it are counted apart, not as failures.
    assert result.stdout.rstrip().endswith("1 required check failed; 6 not run until it passes.")
    assert CLIENT_SECRET not in result.stdout + result.stderr


#: The three instances of issue 17 (see tests/test_looker_instance.py), each with the variable that settles it.
INSTANCES = {
    "unconverted UTC, settings New York": "UTC",
    "unconverted Berlin, user zones on": "Europe/Berlin",
    "runs in Los Angeles, settings New York": "America/Los_Angeles",
}


def configure(stack: Stack, case: str) -> None:
    if case == "unconverted UTC, settings New York":
        stack.looker.set_time_zones(False, "America/New_York")
        stack.looker.show_unconverted("UTC")
    elif case == "unconverted Berlin, user zones on":
        stack.looker.set_time_zones(True, "UTC")
        stack.looker.show_unconverted("Europe/Berlin")
    else:
        stack.looker.set_time_zones(False, "America/New_York", runs_in="America/Los_Angeles")


@pytest.mark.parametrize("case", INSTANCES)
def test_an_unexplained_time_reading_fails_with_the_measurement_and_the_fix(stack: Stack, case: str) -> None:
    configure(stack, case)
    result = check(stack.env, "--schedule", FITTING)
    assert result.returncode == 1
    found = lines(result)
    assert found["Time zone"].startswith("✗ Time zone: ") and "System Activity shows times at UTC" in found["Time zone"]
    assert "LOOKER_QUERY_TIMEZONE" in found["Time zone fix"]
    with pytest.raises(ExportError) as failure:
        stack.run()
    row = re.compile(r"history\.id \d+")  # the function measured from its own query's row
    assert row.sub("row", f"✗ Time zone: {failure.value}") == row.sub("row", found["Time zone"])  # one message
    passing = check({**stack.env, "LOOKER_QUERY_TIMEZONE": INSTANCES[case]}, "--schedule", FITTING)
    assert passing.returncode == 0, passing.stdout
    line = lines(passing)["Time zone"]
    assert f"LOOKER_QUERY_TIMEZONE={INSTANCES[case]} explains" in line and "measured from history.id" in line
