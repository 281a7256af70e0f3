"""Every entry an export writes, pinned: for the same input, the same entries, byte for byte.

One export of both streams over fixed emulator data (synthetic events and query history, plus rows too large
for an entry) against the Looker, Secret Manager and Cloud Logging emulators, at a fixed clock. Cloud Logging
refuses some entries on purpose, so the golden list holds entries shrunk when they were built, entries shrunk
again after a refusal, and placeholders, of both streams. Each line is an entry as the emulator received it:
its insertId, its size and a digest of its bytes with every map in key order (upb orders the entries of a map
differently in each process, so an entry's raw bytes differ between two processes, never its content or size).

``UPDATE_GOLDEN=1`` rewrites ``tests/golden/written_entries.txt``; only ever from code known to be right.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.audit.audit_log_pb2 import AuditLog
from google.cloud.logging_v2.types import LogEntry

from emulators.cloud_logging import LoggingEmulator
from emulators.looker import LookerEmulator
from emulators.looker_data import SystemActivity
from emulators.secret_manager import SecretManagerEmulator
from looker_audit_export.config import Config
from looker_audit_export.wiring import build_exporter

GOLDEN = Path(__file__).parent / "golden" / "written_entries.txt"
PROJECT = "demo-project"
SECRET = f"projects/{PROJECT}/secrets/looker-api-credentials"
CLIENT_ID, CLIENT_SECRET = "golden-client-id", "golden-client-secret"
API_USER_ID = 4242
END = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
NOW = END + timedelta(minutes=10)
#: Cloud Logging (here) refuses entries over this size once: they are written again shrunk.
REFUSED_OVER_BYTES = 150_000


def golden_data() -> tuple[SystemActivity, list[str]]:
    """The fixed input, and the insertIds Cloud Logging refuses until they are placeholders."""
    # Events built too large (shrunk; one with so many values that it becomes a placeholder), one refused
    # only for its size (shrunk after the refusal), one refused until it is a placeholder; the same in history.
    data = SystemActivity.synthetic(400, end=END, span=timedelta(minutes=30), seed=18, n_history=150,
                                    api_user_id=API_USER_ID)
    user = min(data.users)
    at = END + timedelta(seconds=1)
    big = data.add_event("update_dashboard", created=at, user_id=user,
                         attributes=[("dashboard_id", "77"), ("title", "Ventes 日本 " * 30_000)])
    many = data.add_event("update_dashboard", created=at, user_id=user,
                          attributes=[(f"field_{n:05d}", "v" * 300) for n in range(6_000)])
    medium = data.add_event("create_dashboard", created=at, user_id=user,
                            attributes=[("dashboard_id", "78"), ("description", "é" * 90_000)])
    refused = data.add_event("login", created=at, user_id=user)
    data.add_history(created=at, source="api", status="error", user_id=user, runtime=1.5,
                     message="SQL error: " + "near 'x' " * 40_000)
    plain = data.add_history(created=at, source="explore", user_id=user, runtime=0.5)
    assert big.id < many.id < medium.id < refused.id
    return data, [f"-event-{refused.id}", f"-history-{plain}"]


def refusal(refused: list[str]):  # type: ignore[no-untyped-def]
    """Cloud Logging's refusals for this test: entries over ``REFUSED_OVER_BYTES``, and the chosen entries
    until they come as placeholders."""
    def check(entry: LogEntry) -> str | None:
        if entry.ByteSize() > REFUSED_OVER_BYTES:
            return f"Log entry with size {entry.ByteSize()} refused here"
        if any(entry.insert_id.endswith(ending) for ending in refused) and "export_placeholder" not in entry.labels:
            return f"Log entry with insertId {entry.insert_id} rejected."
        return None
    return check


@pytest.fixture
def written(tmp_path: Path) -> Iterator[tuple[list[Any], dict[str, object], str]]:
    data, refused = golden_data()
    looker = LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=lambda: NOW,
                            api_user_id=API_USER_ID)
    logging = LoggingEmulator(keep_received=True)
    logging.reject_entry(refusal(refused))
    secrets = SecretManagerEmulator({SECRET: json.dumps({"client_id": CLIENT_ID,
                                                         "client_secret": CLIENT_SECRET}).encode()})
    env = {"GOOGLE_CLOUD_PROJECT": PROJECT, "LOOKER_BASE_URL": looker.start(),
           "LOOKER_CREDENTIALS_SECRET": f"{SECRET}/versions/latest", "STATE_URI": str(tmp_path / "state.json"),
           "EXPORT_STREAMS": "events,history", "INITIAL_LOOKBACK_MINUTES": "120", "SETTLE_SECONDS": "60",
           "LOGGING_EMULATOR_HOST": logging.start(), "SECRET_MANAGER_EMULATOR_HOST": secrets.start(),
           "RUN_BUDGET_SECONDS": "300", "PAGE_SIZE": "200", "WRITE_BATCH_ENTRIES": "50",
           "HISTORY_MAX_RUNNING_MINUTES": "5"}  # the last rows still run at END: count them as finished
    try:
        exporter = build_exporter(Config.from_env(env))
        exporter.clock = exporter.source.clock = lambda: NOW  # the measurement reads the emulator's clock too
        summary = exporter.run()
        yield logging.received(), summary.as_dict(), Config.from_env(env).looker_host
    finally:
        looker.stop()
        logging.stop()
        secrets.stop()


def canonical(entry: Any) -> bytes:
    """An entry's bytes with every map in key order, its ``AuditLog`` payload too (an ``Any`` holds it as bytes)."""
    copy = LogEntry.pb()()
    copy.CopyFrom(entry)
    if copy.proto_payload.type_url.endswith("/google.cloud.audit.AuditLog"):
        audit = AuditLog.FromString(copy.proto_payload.value)
        copy.proto_payload.value = audit.SerializeToString(deterministic=True)
    return copy.SerializeToString(deterministic=True)  # type: ignore[no-any-return]


def lines(received: list[Any], host: str) -> list[str]:
    """One line per entry received: insertId, size in bytes, and the first 16 hex digits of the sha256 of its
    ``canonical`` bytes, with the emulator's host (``127.0.0.1:<port>``, a new port each time) named ``HOST``
    in all three. The port has five digits (Linux picks ephemeral ports from 32768 up): sizes stay put."""
    found = []
    for entry in received:
        same = canonical(entry).replace(host.encode(), b"HOST")
        ident = entry.insert_id.replace(host, "HOST")
        found.append(f"{ident} {entry.ByteSize()} {hashlib.sha256(same).hexdigest()[:16]}")
    return found


def test_every_written_entry_is_the_same_as_the_golden_list(
        written: tuple[list[Any], dict[str, object], str]) -> None:
    received, summary, host = written
    assert len(host) == len("127.0.0.1:12345"), host
    assert summary["caught_up"] and summary["error"] is None
    assert summary["rewritten_after_shrinking"] and summary["placeholders"], "the golden list covers repairs"
    found = lines(received, host)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text("\n".join(found) + "\n")
    expected = GOLDEN.read_text().splitlines()
    assert len(found) == len(expected)
    assert found == expected
