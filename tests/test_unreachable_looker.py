"""A Looker that cannot be reached, or a URL that is not Looker: one line that says what was tried and failed,
and a fix of its own for each cause, so that "no route to a private Looker" is told from "wrong URL"."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import CLIENT_SECRET, Stack

from emulators.harness import free_port
from looker_audit_export.looker import network

ROOT = Path(__file__).parent.parent
FITTING = "0 */3 * * *"


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "looker_audit_export", "check", "--schedule", FITTING], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def login_lines(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("✗ Looker login"))
    return lines[index], lines[index + 1]


def test_check_names_dns_refused_and_tls_apart(stack: Stack) -> None:
    emulator_port = stack.env["LOOKER_BASE_URL"].rstrip("/").rsplit(":", 1)[1]
    urls = {
        "dns": "https://looker-that-does-not-exist.invalid",
        "refused": f"http://127.0.0.1:{free_port()}",
        "tls": f"https://127.0.0.1:{emulator_port}",  # https to the emulator's plain-HTTP port
    }
    seen: dict[str, tuple[str, str]] = {}
    for kind, url in urls.items():
        started = time.monotonic()
        result = check({**stack.env, "LOOKER_BASE_URL": url})
        assert time.monotonic() - started < 30  # no round of retries before the line
        assert result.returncode == 1, result.stdout + result.stderr
        assert "retrying" not in result.stderr and "Traceback" not in result.stderr
        seen[kind] = login_lines(result)
    line, fix = seen["dns"]
    assert "DNS: the host name looker-that-does-not-exist.invalid does not resolve" in line
    assert "typo" in fix and "VPC egress" in fix and "docs/networking.md" in fix
    line, fix = seen["refused"]
    assert "connection refused" in line and "port" in fix and "IP allowlist" in fix
    line, fix = seen["tls"]
    assert "TLS error" in line and "does not speak TLS" in line and "scheme and port" in fix
    assert len({line for line, _ in seen.values()}) == len({fix for _, fix in seen.values()}) == 3


def test_an_export_to_an_unreachable_looker_fails_at_once_with_one_line(stack: Stack) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "looker_audit_export", "export"], cwd=ROOT,
                            env={**stack.env, "LOOKER_BASE_URL": url}, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 30 and result.returncode == 1
    assert [line for line in result.stderr.splitlines() if "retrying" in line] == []
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error.startswith("Looker 127.0.0.1:") and "connection refused" in error and "fix:" in error
    assert "urllib3" not in error and "HTTPConnectionPool" not in error


@pytest.fixture
def unanswered() -> Iterator[str]:
    """A port whose accept queue is full: the kernel drops new connection attempts, which then time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the backlog (its length is the kernel's, at least one)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for sock in (*fillers, listener):
        sock.close()


def test_a_connection_that_times_out_is_said_to_look_like_a_private_looker(unanswered: str) -> None:
    session = network.RecordingSession()
    with pytest.raises(requests.exceptions.ConnectTimeout):
        session.get(unanswered + "/api/4.0/login", timeout=1)
    found = network.describe(session.last_error, unanswered)
    assert found is not None and found.kind == "timeout"
    assert "connection timed out" in found.cause and "private Looker" in found.fix


def test_a_url_that_is_not_a_looker_api_is_not_called_wrong_credentials(stack: Stack) -> None:
    # Another HTTP service at that URL (here the GCS emulator): 404 on the login, as Looker answers bad keys.
    result = check({**stack.env, "LOOKER_BASE_URL": stack.env["STORAGE_EMULATOR_HOST"]})
    assert result.returncode == 1
    line, fix = login_lines(result)
    assert "is not a Looker API" in line and "GET /versions: HTTP 404" in line
    assert "refused the API credentials" not in result.stdout
    assert "set LOOKER_BASE_URL to the Looker instance's URL" in fix
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_the_emulator_answers_versions_without_a_login_as_looker_does(stack: Stack) -> None:
    base = stack.env["LOOKER_BASE_URL"].rstrip("/")
    looker, seen = network.looker_versions(requests.Session(), base)
    assert looker and "GET /versions: Looker" in seen
    answer = requests.get(base + "/api/4.0/versions", timeout=10).json()
    assert answer["current_version"]["version"] == "4.0" and answer["supported_versions"]
    assert not network.looker_versions(requests.Session(), stack.env["STORAGE_EMULATOR_HOST"])[0]
