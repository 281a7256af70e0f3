"""Local plumbing shared by the demo, the tests and the benchmark: processes and Eventarc-style delivery."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_FRAMEWORK_COMMAND = ("functions-framework", "--target", "export_system_activity",
                               "--signature-type", "cloudevent")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_emulators(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``python -m emulators ARGS`` in a child process; returns it and the environment it printed."""
    process = subprocess.Popen([sys.executable, "-m", "emulators", *args], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the emulators exited before printing their endpoints")
    return process, {key: str(value) for key, value in json.loads(line).items()}


def start_function(env: Mapping[str, str], port: int, stdout: IO[str] | None = None) -> subprocess.Popen[bytes]:
    """Serve ``main.export_system_activity`` with the README's functions-framework command."""
    command = [*FUNCTIONS_FRAMEWORK_COMMAND, "--host", "127.0.0.1", "--port", str(port)]
    command[0] = str(Path(sys.executable).with_name(command[0]))
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=stdout,
                               stderr=subprocess.STDOUT if stdout else None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"functions-framework exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("functions-framework did not start listening within 30 s")


def deliver_pubsub_event(url: str, project: str, topic: str, data: bytes = b"tick",
                         published: datetime | None = None, timeout: float = 600) -> int:
    """POST a Pub/Sub ``messagePublished`` CloudEvent in binary mode, as Eventarc does; return the status."""
    published = published or datetime.now(UTC)
    stamp = published.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message_id = str(uuid.uuid4().int % 10**16)
    body = {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id, "publishTime": stamp},
        "subscription": f"projects/{project}/subscriptions/eventarc-{topic}-sub",
    }
    headers = {
        "Content-Type": "application/json",
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-time": stamp,
    }
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def read_json(url: str) -> dict[str, object]:
    """GET a JSON document (the emulators' stats)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return dict(json.loads(response.read()))
