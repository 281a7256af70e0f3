"""Read System Activity from Looker with ``looker-sdk``: keyset pages, UTC, no cache, bounded retries."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from looker_sdk import error as looker_error
from looker_sdk.rtl import api_settings, auth_session, auth_token, requests_transport, serialize
from looker_sdk.sdk.api40 import methods as methods40
from looker_sdk.sdk.api40 import models as models40

from . import explore_fields
from .credentials import LookerCredentials
from .timezones import (
    TIME_FIELDS,
    TimeReading,
    TimeZoneError,
    WallClock,
    convert_rows,
    effective_zone,
    local_bound,
    utc_bound,
    zone_info,
)
from .values import LookerUser, whole_number

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
#: A new instance that meets a repeated (fall-back) hour first reads the rows before it, from this long
#: before, up to its cursor (ids and times only, at most CONTEXT_ROWS).
CONTEXT_HOURS = timedelta(hours=2)
CONTEXT_ROWS = 50_000


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
    neither). Per thread: runs that overlap in one instance share the session, each in its reader thread."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.path = ""
        self.retry_after = 0.0

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
    #: ``LOOKER_QUERY_TIMEZONE``: the zone Looker runs queries in, for an API user that cannot read the settings.
    declared_timezone: str | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _last: _LastResponse = field(default_factory=_LastResponse)
    _sdk: methods40.Looker40SDK | None = None
    _me: int | None = None
    _reading: TimeReading | None = None
    _fields: dict[str, frozenset[str]] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set)

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
        """One keyset page: rows with an id above ``after_id``, created before ``until``, in id order.

        Datetimes come back as UTC text whatever zone the instance reads them in; a page may end early at a
        time in a repeated (fall-back) hour that cannot be placed yet.
        """
        self.prepare(explore_fields.STREAM_EXPLORES["history" if explore.view == "history" else "events"],
                     deadline)
        upper = self._bound(until, widen="later")
        created = f"{self._bound(since, widen='earlier')} to {upper}" if since else f"before {upper}"
        filters = {explore.time_field: created}
        if after_id is not None:
            filters[explore.id_field] = f">{after_id}"
        rows = self._query(explore.view, self._have(explore.view, explore.fields), filters, [explore.id_field],
                           limit, deadline)
        return self._to_utc(rows, explore, after_id, deadline)

    def attributes(self, first_id: int, last_id: int, *, until: datetime,
                   deadline: float) -> dict[int, list[tuple[str, Any]]]:
        """Attributes of the events with ids in ``[first_id, last_id]``, by event id, in attribute id order."""
        found: dict[int, list[tuple[str, Any]]] = {}
        after: int | None = None
        while True:
            filters = {"event.id": f"[{first_id},{last_id}]",
                       "event.created_time": f"before {self._bound(until, widen='later')}"}
            if after is not None:
                filters["event_attribute.id"] = f">{after}"
            rows = self._query("event_attribute", self._have("event_attribute", ATTRIBUTE_FIELDS), filters,
                               ["event_attribute.id"], ATTRIBUTE_PAGE_ROWS, deadline)
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
        filters = {"user.id": ",".join(map(str, wanted))}
        if self._have("user", ("user.created_time",)):  # optional: it only makes each query's text unique
            filters["user.created_time"] = f"before {self._bound(until, widen='later')}"
        rows = self._query("user", self._have("user", USER_FIELDS), filters, ["user.id"], -1, deadline)
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

    # ------------------------------------------------- what the instance is like (once per instance life)
    def prepare(self, explores: Iterable[str], deadline: float) -> TimeReading:
        """Check the time zone and the fields of ``explores`` once; raise LookerError naming what is wrong.

        Missing required fields refuse the export (every run, with the same message); missing optional
        ones are left out of the queries, with one WARNING per instance life.
        """
        reading = self.time_reading(deadline)
        for explore in explores:
            if explore in self._checked:
                continue
            found = explore_fields.report(explore, self.explore_fields(explore, deadline))
            if found.missing_required:
                raise LookerError(explore_fields.refusal(found))
            if found.missing_optional:
                log.warning(explore_fields.warning(found))
            self._checked.add(explore)
        return reading

    def login(self, deadline: float) -> None:
        """Log in now (``check``); LookerError names the credentials' source when Looker refuses them."""
        self._call("the login", lambda timeout: self.sdk().auth.authenticate({"timeout": timeout}), deadline, set())

    def probe(self, deadline: float) -> list[dict[str, Any]]:
        """One row of the event explore (``check``): proves the API user may query System Activity."""
        return self._query("event", ("event.id",), {}, ["event.id"], 1, deadline)

    def time_reading(self, deadline: float) -> TimeReading:
        """How the instance reads filters and returns datetimes, from its settings (read once)."""
        if self._reading is None:
            answer = self._call("the time zone settings (GET /api/4.0/setting)", lambda timeout: self.sdk().get_setting(
                fields="timezone,allow_user_timezones", transport_options={"timeout": timeout}), deadline, {403})
            try:
                if isinstance(answer, int):
                    reading = effective_zone(None, None, self.declared_timezone, forbidden=True)
                else:
                    reading = effective_zone(answer.allow_user_timezones, answer.timezone, self.declared_timezone,
                                             forbidden=False)
            except TimeZoneError as exc:
                raise LookerError(f"Looker {self.host}: {exc}") from None
            log.info("Looker %s time zone: %s", self.host, reading.how)
            self._reading = reading
        return self._reading

    def explore_fields(self, explore: str, deadline: float) -> frozenset[str]:
        """The field names of a System Activity explore (metadata, not a query); empty if there is no such explore."""
        if explore not in self._fields:
            answer = self._call(f"the fields of explore {explore}", lambda timeout: self.sdk().lookml_model_explore(
                MODEL, explore, fields="fields", transport_options={"timeout": timeout}), deadline, {404})
            names: set[str] = set()
            if not isinstance(answer, int) and answer.fields is not None:
                groups = answer.fields
                for group in (groups.dimensions, groups.measures, groups.filters, groups.parameters):
                    names.update(item.name for item in group or () if item.name)
            self._fields[explore] = frozenset(names)
        return self._fields[explore]

    def _have(self, explore: str, fields: Iterable[str]) -> tuple[str, ...]:
        """The fields the instance has (all of them before its explores were read)."""
        known = self._fields.get(explore)
        return tuple(name for name in fields if known is None or name in known)

    def _bound(self, moment: datetime, *, widen: str) -> str:
        reading = self._reading
        if reading is None or not reading.converts:
            return utc_bound(moment)
        return local_bound(moment, zone_info(reading.zone), widen=widen)

    def _to_utc(self, rows: list[dict[str, Any]], explore: Explore, after_id: int | None,
                deadline: float) -> list[dict[str, Any]]:
        """Rows with their datetimes as UTC text; cut before a repeated-hour time nothing places yet."""
        reading = self._reading
        if reading is None or not reading.converts or not rows:
            return rows
        zone = zone_info(reading.zone)
        now = self.clock()
        # Each page is placed from its own rows (and, when it starts inside a repeated hour, from the rows
        # before it): never from rows converted earlier, which a redo, a held-back row or a read-ahead page
        # may read again.
        clocks = {name: WallClock(zone) for name in TIME_FIELDS}
        ready = convert_rows(rows, TIME_FIELDS, clocks, now, id_field=explore.id_field)
        if ready == 0 and after_id is not None:
            # Nothing in the page places its first time: read the ids and times from before that repeated
            # hour up to the cursor (one query), and place the hour in id order from there.
            clocks = {name: WallClock(zone) for name in TIME_FIELDS}
            context = self._context(explore, rows[0], after_id, zone, deadline)
            ready = max(0, convert_rows(context + rows, TIME_FIELDS, clocks, now,
                                        id_field=explore.id_field) - len(context))
        if ready < len(rows):
            problem = next(clock.problems.pop() for clock in clocks.values() if clock.problems)
            if ready == 0:
                raise LookerError(
                    f"Looker {self.host}: {problem}, so it is not exported with a guessed time. Turn on User "
                    "Specific Time Zones (Looker Admin > General > Settings) so the exporter's query_timezone UTC "
                    "applies; the rows are then read in UTC")
            log.warning("Holding back %d rows from %s: %s; a later run places them", len(rows) - ready,
                        rows[ready].get(explore.id_field), problem)
        return rows[:ready]

    def _context(self, explore: Explore, first: dict[str, Any], after_id: int, zone: ZoneInfo,
                 deadline: float) -> list[dict[str, Any]]:
        """Ids and times of the rows up to ``after_id`` since two hours before ``first``'s earlier reading."""
        try:
            wall = datetime.fromisoformat(str(first.get(explore.time_field)))
        except ValueError:
            return []
        start = wall.replace(tzinfo=zone, fold=0).astimezone(UTC) - CONTEXT_HOURS
        fields = self._have(explore.view, (explore.id_field, *(f for f in TIME_FIELDS if f in explore.fields)))
        filters = {explore.id_field: f"<={after_id}",
                   explore.time_field: f"after {self._bound(start, widen='earlier')}"}
        return self._query(explore.view, fields, filters, [explore.id_field], CONTEXT_ROWS, deadline)

    def _call(self, what: str, call: Callable[[int], _T], deadline: float, expected: set[int]) -> _T | int:
        """A metadata call (not a query) with the query's retries; a status in ``expected`` is returned."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                raise LookerUnavailable(f"time budget exhausted before reading {what} from {self.host}")
            self._last.status, self._last.path, self._last.retry_after = None, "", 0.0
            try:
                return call(max(1, int(min(self.timeout_seconds, remaining))))
            except (looker_error.SDKError, serialize.DeserializeError) as exc:
                status = self._last.status
                if status is not None and status in expected and not self._last.path.endswith("/login"):
                    return status
                if (status is not None and status >= 400 and status not in _TRANSIENT_STATUSES and status != 401
                        and not self._last.path.endswith("/login")):
                    raise LookerError(f"Looker {self.host} refused {what} (HTTP {status}): "
                                      f"{_short(getattr(exc, 'message', '') or str(exc))}") from None
                problem = self._classify(exc) if isinstance(exc, looker_error.SDKError) else (
                    f"Looker {self.host} sent an unreadable answer for {what}")
            if not self._wait_to_retry(problem, attempt, deadline):
                raise LookerUnavailable(f"{problem}; giving up after {attempt} attempts")

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
                failures = sql_errors(rows)
                if not failures:
                    return rows
                problem = self._failed_query(view, failures)
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

    def _failed_query(self, view: str, failures: list[str]) -> str:
        """Raise LookerError for a query Looker answered with a permanent SQL error; describe a transient one.

        None of the answer's rows is used either way: a page is exported whole or not at all.
        """
        detail = _short(" | ".join(dict.fromkeys(failures)))
        problem = f"Looker {self.host} answered the {view} query with an error (HTTP 200, {SQL_ERROR_KEY}): {detail}"
        if any(map(transient_sql_error, failures)):
            return problem
        raise LookerError(f"{problem}. Nothing of this page was exported and the cursor stays before it; "
                          "the next run asks again") from None

    def api_user_id(self, deadline: float) -> int:
        """The Looker user id of the API credentials (``GET /api/4.0/user``, ``me``), read once per instance.

        Its own System Activity queries show in the query history, and its logins may show as events.
        """
        if self._me is None:
            user = self._call("the API user (GET /api/4.0/user)", lambda timeout: self.sdk().me(
                fields="id", transport_options={"timeout": timeout}), deadline, set())
            number = None if isinstance(user, int) else whole_number(user.id)
            if number is None:
                raise LookerError(f"Looker {self.host} answered GET /api/4.0/user without a numeric user id")
            self._me = number
        return self._me

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


def transient_sql_error(text: str) -> bool:
    """Whether a ``looker_error`` text says the database timed out, was unreachable, busy or deadlocked."""
    return _TRANSIENT_SQL_ERROR.search(text) is not None


def sql_errors(rows: list[Any]) -> list[str]:
    """The texts of the ``looker_error`` rows of a ``json`` answer (empty when the query succeeded)."""
    return [str(row[SQL_ERROR_KEY]) for row in rows if isinstance(row, dict) and SQL_ERROR_KEY in row]


def _permission_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_TEXT_CHARS else text[:_ERROR_TEXT_CHARS] + "…"
