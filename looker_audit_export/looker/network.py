"""Why Looker could not be reached: DNS, a refused or timed-out connection, or TLS; each with its own fix.

looker-sdk turns every connection failure into a text answer (``requests_transport``: ``except IOError``),
so the session keeps the exception itself, per thread, for ``describe``. A failure to connect at all is not
retried: the next tick tries again, and an admin sees one line that says what was tried and what to fix, not
a run of retry warnings that ends in a urllib3 error.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import one_line

NETWORKING = "docs/networking.md"
#: Longest wait for a TCP connection to Looker (a read may take LOOKER_TIMEOUT_SECONDS): a private Looker
#: reached from outside drops the packets, and each minute waited is a minute of the run's budget.
CONNECT_TIMEOUT_SECONDS = 20.0


class RecordingSession(requests.Session):
    """A requests session that remembers, per thread, the exception of its last failed request."""

    def __init__(self) -> None:
        super().__init__()
        self._failures = threading.local()

    @property
    def last_error(self) -> BaseException | None:
        return getattr(self._failures, "error", None)

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._failures.error = None
        timeout = kwargs.get("timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            kwargs["timeout"] = (min(float(timeout), CONNECT_TIMEOUT_SECONDS), timeout)
        try:
            return super().request(*args, **kwargs)
        except requests.RequestException as exc:
            self._failures.error = exc
            raise


@dataclass(frozen=True)
class Unreachable:
    """What was tried and failed (``kind``: dns, refused, timeout, tls), and the fix."""

    kind: str
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.cause}; fix: {self.fix}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and urllib3's ``reason``, depth first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(item for item in (current.__cause__, current.__context__, getattr(current, "reason", None),
                                      *current.args) if isinstance(item, BaseException))


def describe(exc: BaseException | None, base_url: str) -> Unreachable | None:
    """The cause of a failure to connect to ``base_url`` at all; None for anything else (a read timeout, a
    connection broken mid-answer), which stays a transient failure to retry."""
    if exc is None:
        return None
    parts = urlsplit(base_url)
    host = parts.hostname or parts.netloc
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chain = list(_chain(exc))
    private = (f"a private Looker (private IP or Private Service Connect) is reached only through the "
               f"function's VPC egress, and one with an IP allowlist only from an address it admits ({NETWORKING})")
    if any(isinstance(item, (requests.exceptions.SSLError, ssl.SSLError)) for item in chain):
        detail = next((str(item.reason or item) for item in chain if isinstance(item, ssl.SSLError)), "")
        if "WRONG_VERSION_NUMBER" in detail.upper() or "wrong version number" in detail:
            what = f"the server at {host}:{port} does not speak TLS (https to a plain-HTTP port?)"
        elif "CERTIFICATE_VERIFY_FAILED" in detail.upper():
            what = f"the certificate of {host} is not trusted or does not name it"
        else:
            what = f"the TLS handshake with {host}:{port} failed"
        return Unreachable("tls", f"Looker {parts.netloc}: TLS error: {what} ({one_line(detail, 160)})",
                           f"check the scheme and port in LOOKER_BASE_URL (https://{host} for a Looker-hosted "
                           "instance); a self-hosted Looker needs a certificate for that name from a trusted "
                           "authority (LOOKER_VERIFY_SSL=false only for a test instance)")
    if any(isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError" for item in chain):
        return Unreachable("dns", f"Looker {parts.netloc}: DNS: the host name {host} does not resolve",
                           f"check the host name in LOOKER_BASE_URL for a typo; {private}, and its name may "
                           "resolve only there (a Cloud DNS private zone)")
    if any(isinstance(item, ConnectionRefusedError) for item in chain) or "Connection refused" in str(exc):
        return Unreachable("refused", f"Looker {parts.netloc}: connection refused: nothing accepts connections "
                                      f"on {host} port {port}",
                           f"check the port in LOOKER_BASE_URL (a Looker-hosted instance answers on 443; a "
                           "self-hosted API often on 19999) and that Looker is running; a firewall may refuse "
                           f"this address: {private}")
    if any(isinstance(item, requests.exceptions.ConnectTimeout) for item in chain):
        return Unreachable("timeout", f"Looker {parts.netloc}: connection timed out: {host} port {port} did not "
                                      "answer the connection (no route, or packets dropped)",
                           f"this is how a private Looker or an IP allowlist looks from outside: {private}; "
                           "else check the host and port in LOOKER_BASE_URL")
    return None


def looker_versions(session: requests.Session, base_url: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether ``base_url`` serves Looker's API, by ``GET /versions``, which Looker answers without a login.

    Looker's API spec (looker-open-source/sdk-codegen spec/Looker.4.0.oas.json) lists ``GET /versions``
    (ApiVersion: ``looker_release_version``, ``supported_versions``, ...) with ``x-looker-activity-type: none``,
    as it does ``/login``; Looker's own tools read ``${base_url}/versions`` before any login
    (sdk-codegen-scripts src/fetchSpec.ts ``fetchLookerVersions``; extension-utils OAuthForm sagas.ts, to verify
    an API server URL). Both that and ``/api/4.0/versions`` are tried. Returns (is Looker, what was seen).
    """
    seen = []
    for path in ("/versions", "/api/4.0/versions"):
        try:
            response = session.get(base_url + path, timeout=timeout)
        except requests.RequestException as exc:
            seen.append(f"GET {path}: {exc.__class__.__name__}")
            continue
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict) and (
                "looker_release_version" in body or isinstance(body.get("supported_versions"), list)):
            return True, f"GET {path}: Looker {body.get('looker_release_version') or ''}".strip()
        seen.append(f"GET {path}: HTTP {response.status_code}"
                    f"{'' if isinstance(body, dict) else ', not JSON'}")
    return False, "; ".join(seen)
