"""Looker's API over one ``looker-sdk`` session: log in, calls and queries with bounded retries, and what
each failure means (permanent: ``LookerError`` with the fix; transient: retried, then ``LookerUnavailable``).

Knows the SDK, HTTP statuses and the credentials; knows nothing of explores' fields, time zones, entries or
the export.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from looker_sdk import error as looker_error
from looker_sdk.rtl import api_settings, auth_session, auth_token, requests_transport, serialize
from looker_sdk.sdk.api40 import methods as methods40
from looker_sdk.sdk.api40 import models as models40

from ..credentials import LookerCredentials
from ..errors import NeedsFix, one_line
from . import network
from .explores import MODEL

log = logging.getLogger("looker_audit_export.looker_source")  # the name its lines carried before the split

_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_AUTH_STATUSES = frozenset({401, 403, 404})

_MAX_ATTEMPTS = 6

_BACKOFF_SECONDS = 1.0

_BACKOFF_CAP_SECONDS = 30.0


#: The key of the row Looker answers, with HTTP 200, when a query fails inside Looker or its database (a SQL
#: error, a timeout, an unknown field): ``[{"looker_error": "..."}]``, sometimes several such rows (a warning,
#: then the error). Public clients check for it: https://github.com/spectacles-ci/spectacles/issues/67,
#: https://github.com/spectacles-ci/spectacles/issues/140 (several rows), spectacles/models.py (``ErrorRow``),
#: airbytehq/airbyte airbyte-integrations/connectors/source-looker/source_looker/streams.py (every row checked).
SQL_ERROR_KEY = "looker_error"

#: SQL error texts worth the same query again: the database timed out, was unreachable or busy. Anything else (an
#: unknown field, a syntax or permission error) fails the same way again, and each try spends a query call.
#: A heuristic, not a documented list (Looker passes the database's own text): a wrong guess costs either a few
#: retries or a run failed early, never data, since the failed page is neither written nor passed.
_TRANSIENT_SQL_ERROR = re.compile(
    r"time[ds]?[ -]?out|deadline exceeded|connection (refused|reset|closed|lost|timed)|lost connection"
    r"|(could ?not|can'?t|cannot|unable to|failed to) (connect|reach)|gone away|broken pipe"
    r"|(temporarily|currently|service) unavailable|database (is )?(unavailable|not available|starting)"
    r"|too many connections|deadlock|try again",
    re.IGNORECASE)

_T = TypeVar("_T")


class LookerError(RuntimeError):
    """Looker refused a request for good; the message says what to fix."""


class LookerUnavailable(RuntimeError):
    """Looker kept failing with transient errors until the retries or the time budget ran out."""


class LookerSetupError(LookerError, NeedsFix):
    """Looker refuses because of a setting, a permission or the credentials: a retry fails the same way."""


class NotLooker(LookerSetupError):
    """The base URL answers, but not as Looker's API does: the URL is wrong, not the credentials."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; fix: {fix}")
        self.cause, self.fix = cause, fix


class LookerUnreachable(LookerUnavailable):
    """No connection to Looker at all (DNS, refused, timed out, TLS): not retried; ``fix`` says what to check."""

    def __init__(self, found: network.Unreachable) -> None:
        super().__init__(str(found))
        self.kind, self.cause, self.fix = found.kind, found.cause, found.fix


class _Settings(api_settings.ApiSettings):
    """SDK settings from the run's configuration; never from looker.ini or LOOKERSDK_* variables."""

    def __init__(self, base_url: str, verify_ssl: bool, timeout: int,
                 credentials: Callable[[], LookerCredentials]) -> None:
        self._config = {"base_url": base_url, "verify_ssl": "true" if verify_ssl else "false",
                        "timeout": str(timeout)}
        self._credentials = credentials
        super().__init__(filename="", env_prefix=None)

    def read_config(self) -> api_settings.SettingsConfig:
        credentials = self._credentials()
        config = {**self._config, "client_id": credentials.client_id, "client_secret": credentials.client_secret}
        return config  # type: ignore[return-value]


class _LastResponse(threading.local):
    """The HTTP status and path of the SDK's last response in the calling thread (the SDK's errors carry
    neither). Per thread: a run's reader and lookup threads, and runs that overlap in one instance, share the
    session."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.path = ""
        self.retry_after = 0.0
        #: The session token this thread's last request went out with.
        self.token: auth_token.AuthToken | None = None

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.status = response.status_code
        self.path = requests.utils.urlparse(response.url).path
        raw = response.headers.get("Retry-After", "")
        self.retry_after = min(float(raw), _BACKOFF_CAP_SECONDS) if raw.strip().isdigit() else 0.0


@dataclass
class LookerClient:
    """One authenticated SDK session, shared by the runs of an instance.

    One class over the usual 150 lines on purpose: the retry loops (``call``, ``query``) and the failure
    classification (``_classify``) share the session's state, the calling thread's last response, the token
    it went out with and the login lock, and a 401 or a refused login changes that state; what needs none
    of it (SQL errors, HTTP statuses) is in the functions below.
    """

    base_url: str
    verify_ssl: bool
    timeout_seconds: int
    credentials: Callable[[], LookerCredentials]
    forget_credentials: Callable[[], None] = lambda: None
    #: Where the credentials come from, named in errors: e.g. ``secret projects/P/secrets/S/versions/latest``.
    credentials_source: str = "the credentials secret"
    #: First delay of the jittered exponential backoff between attempts (``RETRY_INITIAL_SECONDS``).
    backoff_seconds: float = _BACKOFF_SECONDS
    #: Queries sent, per calling thread: each run reads Looker from threads of its own, so runs that
    #: overlap in one instance count apart (``query_calls``, summed over the run's threads).
    _calls: threading.local = field(default_factory=threading.local, repr=False)
    sleep: Callable[[float], None] = time.sleep
    _last: _LastResponse = field(default_factory=_LastResponse)
    _session: network.RecordingSession = field(default_factory=network.RecordingSession, repr=False)
    _sdk: methods40.Looker40SDK | None = None
    #: Held while the session's token is checked, renewed or dropped: a run's reader and lookup threads (and
    #: overlapping runs) share the session, and a session that ended must lead to one login, not one a thread.
    _login_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def query_calls(self) -> int:
        """How many queries the calling thread has sent to Looker (retries included)."""
        return int(getattr(self._calls, "count", 0))

    @property
    def host(self) -> str:
        return requests.utils.urlparse(self.base_url).netloc

    def sdk(self) -> methods40.Looker40SDK:
        """The SDK, built once; it logs in on first use and again when its token expires."""
        if self._sdk is None:
            settings = _Settings(self.base_url, self.verify_ssl, self.timeout_seconds, self.credentials)
            session = self._session
            session.hooks["response"].append(self._last.hook)
            transport = requests_transport.RequestsTransport(settings, session)
            self._sdk = methods40.Looker40SDK(
                auth_session.AuthSession(settings, transport, serialize.deserialize40, "4.0"),
                serialize.deserialize40, serialize.serialize40, transport, "4.0",
            )
        return self._sdk

    def login(self, deadline: float) -> None:
        """Log in now (``check``); LookerError names the credentials' source when Looker refuses them."""
        self.call("the login", lambda timeout: self.sdk().auth.authenticate({"timeout": timeout}), deadline, set())

    def call(self, what: str, call: Callable[[int], _T], deadline: float, expected: set[int]) -> _T | int:
        """A metadata call (not a query) with the query's retries; a status in ``expected`` is returned."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                raise LookerUnavailable(f"time budget exhausted before reading {what} from {self.host}")
            self._last.status, self._last.path, self._last.retry_after = None, "", 0.0
            self._last.token = self.sdk().auth.token
            try:
                return call(max(1, int(min(self.timeout_seconds, remaining))))
            except (looker_error.SDKError, serialize.DeserializeError) as exc:
                status = self._last.status
                if status is not None and status in expected and not self._last.path.endswith("/login"):
                    return status
                if (status is not None and status >= 400 and status not in _TRANSIENT_STATUSES and status != 401
                        and not self._last.path.endswith("/login")):
                    raise LookerError(f"Looker {self.host} refused {what} (HTTP {status}): "
                                      f"{one_line(getattr(exc, 'message', '') or str(exc))}") from None
                problem = self._classify(exc) if isinstance(exc, looker_error.SDKError) else (
                    f"Looker {self.host} sent an unreadable answer for {what}")
            if not self._wait_to_retry(problem, attempt, deadline):
                raise LookerUnavailable(f"{problem}; giving up after {attempt} attempts")

    def _live_token(self, timeout: int) -> None:
        """Log in unless the session has a live token, one thread at a time (the others then use its token),
        and remember the token this thread's request goes out with."""
        auth = self.sdk().auth
        with self._login_lock:
            if not auth.is_authenticated:
                auth.authenticate({"timeout": timeout})
            self._last.token = auth.token

    def query(self, view: str, fields: Iterable[str], filters: dict[str, str], sorts: list[str],
               limit: int, deadline: float) -> list[dict[str, Any]]:
        body = models40.WriteQuery(model=MODEL, view=view, fields=list(fields), filters=filters, sorts=sorts,
                                   limit=str(limit), query_timezone="UTC")
        relogged = False
        attempt = 0
        while attempt < _MAX_ATTEMPTS:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                raise LookerUnavailable(f"time budget exhausted before the {view} query to {self.host}")
            self._last.status, self._last.path, self._last.retry_after = None, "", 0.0
            try:
                self._calls.count = self.query_calls + 1
                self._live_token(max(1, int(min(self.timeout_seconds, remaining))))
                text = self.sdk().run_inline_query(
                    "json", body, cache=False,
                    transport_options={"timeout": max(1, int(min(self.timeout_seconds, remaining)))},
                )
                rows = json.loads(text)
                if not isinstance(rows, list):
                    raise ValueError("the answer is not a JSON array")
                failures = sql_errors(rows)
                if not failures:
                    return rows
                problem = _query_failure(self.host, view, failures)
            except looker_error.SDKError as exc:
                problem = self._classify(exc)
            except ValueError as exc:
                problem = f"Looker {self.host} sent an unreadable {view} answer ({exc.__class__.__name__})"
            if self._last.status == 401 and not self._last.path.endswith("/login") and not relogged:
                # The session ended early (token expired or revoked): log in again at once, once per query.
                relogged = True
                attempt -= 1
                log.info("%s; logging in again", problem)
                continue
            if not self._wait_to_retry(problem, attempt, deadline):
                break
        raise LookerUnavailable(f"{problem}; giving up after {attempt} attempts")

    def _wait_to_retry(self, problem: str, attempt: int, deadline: float) -> bool:
        """Sleep the jittered exponential backoff before another attempt (at least what ``Retry-After`` asked);
        False when the attempts or the time budget are spent."""
        if attempt >= _MAX_ATTEMPTS:
            return False
        delay = min(_BACKOFF_CAP_SECONDS, self.backoff_seconds * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        delay = max(delay, self._last.retry_after)  # a 429 or 503 may say how long to wait
        if time.monotonic() + delay >= deadline:
            return False
        log.warning("%s; retrying in %.1fs (attempt %d of %d)", problem, delay, attempt, _MAX_ATTEMPTS)
        self.sleep(delay)
        return True

    def _classify(self, exc: looker_error.SDKError) -> str:
        """Raise LookerError for a permanent failure; return a description of a transient one."""
        status, path = self._last.status, self._last.path
        detail = one_line(getattr(exc, "message", "") or str(exc))
        if status is None:
            unreachable = network.describe(self._session.last_error, self.base_url)
            if unreachable is not None:
                raise LookerUnreachable(unreachable) from None
        if path.endswith("/login"):
            if status == 404:  # Looker's answer to wrong credentials, and any other server's to a wrong URL
                looker, seen = network.looker_versions(self._session, self.base_url)
                if not looker:
                    raise NotLooker(
                        f"{self.base_url} is not a Looker API: POST /api/4.0/login answered HTTP 404 and {seen} "
                        "(Looker answers GET /versions without a login), so the credentials were not the problem",
                        "set LOOKER_BASE_URL to the Looker instance's URL, e.g. https://example.looker.com (a "
                        "self-hosted Looker's API may listen on port 19999)") from None
            if status in _AUTH_STATUSES:
                self.forget_credentials()
                raise LookerSetupError(
                    f"Looker {self.host} refused the API credentials (HTTP {status} on login): check the "
                    f"client_id and client_secret in {self.credentials_source} and that the API user is enabled"
                ) from None
        elif status == 401:  # the server ended the session early: log in again, unless another thread has
            with self._login_lock:
                if self.sdk().auth.token is self._last.token:
                    self.sdk().auth.token = auth_token.AuthToken()
            return f"Looker {self.host} ended the API session (HTTP 401)"
        return _http_failure(self.host, status, detail)


def _query_failure(host: str, view: str, failures: list[str]) -> str:
    """Raise LookerError for a query Looker answered with a permanent SQL error; describe a transient one.

    None of the answer's rows is used either way: a page is exported whole or not at all.
    """
    detail = one_line(" | ".join(dict.fromkeys(failures)))
    problem = f"Looker {host} answered the {view} query with an error (HTTP 200, {SQL_ERROR_KEY}): {detail}"
    if any(map(transient_sql_error, failures)):
        return problem
    raise LookerError(f"{problem}. Nothing of this page was exported and the cursor stays before it; "
                      "the next run asks again") from None


def _http_failure(host: str, status: int | None, detail: str) -> str:
    """Describe a transient failure of a call that is not a login nor a 401; raise LookerSetupError otherwise."""
    if status is None or status < 400 or status in _TRANSIENT_STATUSES:
        # No answer, a body cut off after a good status line (connection broken), or a transient status.
        what = "connection error" if status is None else "broken answer" if status < 400 else f"HTTP {status}"
        return f"Looker {host} failed ({what}): {detail}"
    raise LookerSetupError(
        f"Looker {host} rejected the System Activity query (HTTP {status}): {detail}. "
        "The API user needs the see_system_activity permission"
    ) from None


def transient_sql_error(text: str) -> bool:
    """Whether a ``looker_error`` text says the database timed out, was unreachable, busy or deadlocked."""
    return _TRANSIENT_SQL_ERROR.search(text) is not None


def sql_errors(rows: list[Any]) -> list[str]:
    """The texts of the ``looker_error`` rows of a ``json`` answer (empty when the query succeeded)."""
    return [str(row[SQL_ERROR_KEY]) for row in rows if isinstance(row, dict) and SQL_ERROR_KEY in row]
