"""Read System Activity from Looker with ``looker-sdk``: keyset pages, UTC, no cache, bounded retries."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from looker_sdk import error as looker_error
from looker_sdk.rtl import api_settings, auth_session, auth_token, requests_transport, serialize
from looker_sdk.sdk.api40 import methods as methods40
from looker_sdk.sdk.api40 import models as models40

from .credentials import LookerCredentials
from .mapping import LookerUser, whole_number

log = logging.getLogger(__name__)

MODEL = "system__activity"
EVENT_FIELDS = (
    "event.id", "event.name", "event.category", "event.created_time", "event.user_id",
    "event.sudo_user_id", "event.is_api_call", "user.email", "user.name",
)
ATTRIBUTE_FIELDS = ("event_attribute.id", "event_attribute.event_id", "event_attribute.name",
                    "event_attribute.value")
HISTORY_FIELDS = (
    "history.id", "history.created_time", "history.completed_time", "history.status", "history.source",
    "history.runtime", "history.result_source", "history.message", "history.dashboard_id", "history.look_id",
    "query.id", "query.model", "query.view", "user.id", "user.email", "user.name",
)
USER_FIELDS = ("user.id", "user.email", "user.name", "permission_set.name", "permission_set.permissions")
ATTRIBUTE_PAGE_ROWS = 20_000
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_AUTH_STATUSES = frozenset({401, 403, 404})
_MAX_ATTEMPTS = 6
_BACKOFF_SECONDS = 1.0
_BACKOFF_CAP_SECONDS = 30.0
_ERROR_TEXT_CHARS = 300


@dataclass(frozen=True)
class Explore:
    """A System Activity explore read with a keyset on its id."""

    view: str
    fields: tuple[str, ...]
    id_field: str
    time_field: str


EVENTS = Explore("event", EVENT_FIELDS, "event.id", "event.created_time")
HISTORY = Explore("history", HISTORY_FIELDS, "history.id", "history.created_time")


class LookerError(RuntimeError):
    """Looker refused a request for good; the message says what to fix."""


class LookerUnavailable(RuntimeError):
    """Looker kept failing with transient errors until the retries or the time budget ran out."""


def looker_time(moment: datetime) -> str:
    """A UTC datetime as Looker filters and returns it: ``YYYY-MM-DD HH:MM:SS``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


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


@dataclass
class _LastResponse:
    """The HTTP status and path of the SDK's last response (the SDK's errors carry neither)."""

    status: int | None = None
    path: str = ""
    retry_after: float = 0.0

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.status = response.status_code
        self.path = requests.utils.urlparse(response.url).path
        raw = response.headers.get("Retry-After", "")
        self.retry_after = min(float(raw), _BACKOFF_CAP_SECONDS) if raw.strip().isdigit() else 0.0


@dataclass
class LookerSource:
    """System Activity reader over one authenticated SDK session, shared by the runs of an instance."""

    base_url: str
    verify_ssl: bool
    timeout_seconds: int
    credentials: Callable[[], LookerCredentials]
    forget_credentials: Callable[[], None] = lambda: None
    #: Where the credentials come from, named in errors: e.g. ``secret projects/P/secrets/S/versions/latest``.
    credentials_source: str = "the credentials secret"
    #: First delay of the jittered exponential backoff between attempts (``RETRY_INITIAL_SECONDS``).
    backoff_seconds: float = _BACKOFF_SECONDS
    #: Queries sent, per calling thread: each run reads Looker from a thread of its own, so runs that
    #: overlap in one instance count apart (``query_calls``).
    _calls: threading.local = field(default_factory=threading.local, repr=False)
    sleep: Callable[[float], None] = time.sleep
    _last: _LastResponse = field(default_factory=_LastResponse)
    _sdk: methods40.Looker40SDK | None = None

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
            session = requests.Session()
            session.hooks["response"].append(self._last.hook)
            transport = requests_transport.RequestsTransport(settings, session)
            self._sdk = methods40.Looker40SDK(
                auth_session.AuthSession(settings, transport, serialize.deserialize40, "4.0"),
                serialize.deserialize40, serialize.serialize40, transport, "4.0",
            )
        return self._sdk

    def page(self, explore: Explore, *, after_id: int | None, since: datetime | None, until: datetime,
             limit: int, deadline: float) -> list[dict[str, Any]]:
        """One keyset page: rows with an id above ``after_id``, created before ``until``, in id order."""
        created = f"{looker_time(since)} to {looker_time(until)}" if since else f"before {looker_time(until)}"
        filters = {explore.time_field: created}
        if after_id is not None:
            filters[explore.id_field] = f">{after_id}"
        return self._query(explore.view, explore.fields, filters, [explore.id_field], limit, deadline)

    def attributes(self, first_id: int, last_id: int, *, until: datetime,
                   deadline: float) -> dict[int, list[tuple[str, Any]]]:
        """Attributes of the events with ids in ``[first_id, last_id]``, by event id, in attribute id order."""
        found: dict[int, list[tuple[str, Any]]] = {}
        after: int | None = None
        while True:
            filters = {"event.id": f"[{first_id},{last_id}]", "event.created_time": f"before {looker_time(until)}"}
            if after is not None:
                filters["event_attribute.id"] = f">{after}"
            rows = self._query("event_attribute", ATTRIBUTE_FIELDS, filters, ["event_attribute.id"],
                               ATTRIBUTE_PAGE_ROWS, deadline)
            for row in rows:
                owner = row.get("event_attribute.event_id")
                if type(owner) is not int:  # the usual JSON integer needs no conversion
                    owner = whole_number(owner)
                    if owner is None:
                        continue
                name = row.get("event_attribute.name")
                found.setdefault(owner, []).append((name if type(name) is str else str(name),
                                                    row.get("event_attribute.value")))
            if len(rows) < ATTRIBUTE_PAGE_ROWS:
                return found
            next_after = whole_number(rows[-1].get("event_attribute.id"))
            if next_after is None or (after is not None and next_after <= after):
                raise LookerError("Looker returned event_attribute rows without increasing numeric ids")
            after = next_after

    def users(self, ids: Iterable[int], *, until: datetime, deadline: float) -> dict[int, LookerUser]:
        """Email, name and permissions of the given users (one query; rows are per permission set)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        filters = {"user.id": ",".join(map(str, wanted)), "user.created_time": f"before {looker_time(until)}"}
        rows = self._query("user", USER_FIELDS, filters, ["user.id"], -1, deadline)
        permissions: dict[int, set[str]] = {}
        users: dict[int, LookerUser] = {}
        for row in rows:
            number = whole_number(row.get("user.id"))
            if number is None:
                continue
            permissions.setdefault(number, set()).update(_permission_list(row.get("permission_set.permissions")))
            users[number] = LookerUser(number, row.get("user.email"), row.get("user.name"))
        return {number: LookerUser(user.id, user.email, user.name, tuple(sorted(permissions[number])))
                for number, user in users.items()}

    def _query(self, view: str, fields: Iterable[str], filters: dict[str, str], sorts: list[str],
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
                text = self.sdk().run_inline_query(
                    "json", body, cache=False,
                    transport_options={"timeout": max(1, int(min(self.timeout_seconds, remaining)))},
                )
                rows = json.loads(text)
                if not isinstance(rows, list):
                    raise ValueError("the answer is not a JSON array")
                return rows
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
            if attempt == _MAX_ATTEMPTS:
                break
            delay = min(_BACKOFF_CAP_SECONDS, self.backoff_seconds * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            delay = max(delay, self._last.retry_after)  # a 429 or 503 may say how long to wait
            if time.monotonic() + delay >= deadline:
                break
            log.warning("%s; retrying in %.1fs (attempt %d of %d)", problem, delay, attempt, _MAX_ATTEMPTS)
            self.sleep(delay)
        raise LookerUnavailable(f"{problem}; giving up after {attempt} attempts")

    def _classify(self, exc: looker_error.SDKError) -> str:
        """Raise LookerError for a permanent failure; return a description of a transient one."""
        status, path = self._last.status, self._last.path
        detail = _short(getattr(exc, "message", "") or str(exc))
        if path.endswith("/login"):
            if status in _AUTH_STATUSES:
                self.forget_credentials()
                raise LookerError(
                    f"Looker {self.host} refused the API credentials (HTTP {status} on login): check the "
                    f"client_id and client_secret in {self.credentials_source} and that the API user is enabled"
                ) from None
        elif status == 401:
            self.sdk().auth.token = auth_token.AuthToken()  # the server ended the session early: log in again
            return f"Looker {self.host} ended the API session (HTTP 401)"
        if status is None or status < 400 or status in _TRANSIENT_STATUSES:
            # No answer, a body cut off after a good status line (connection broken), or a transient status.
            what = "connection error" if status is None else "broken answer" if status < 400 else f"HTTP {status}"
            return f"Looker {self.host} failed ({what}): {detail}"
        raise LookerError(
            f"Looker {self.host} rejected the System Activity query (HTTP {status}): {detail}. "
            "The API user needs the see_system_activity permission"
        ) from None


def _permission_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_TEXT_CHARS else text[:_ERROR_TEXT_CHARS] + "…"
