"""Configuration from environment variables, validated once at start."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .errors import NeedsFix
from .timezones import TimeZoneError, zone_info

DEFAULT_LOG_NAME = "looker_system_activity_logs"
DEFAULT_HISTORY_LOG_NAME = "looker_query_history"
#: The System Activity streams the exporter knows: events (always useful) and query history (opt-in).
STREAMS = ("events", "history")
_SECRET_VERSION = re.compile(r"^projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/(latest|[1-9][0-9]*)$")
_LOG_ID = re.compile(r"^[A-Za-z0-9_.\-/]{1,512}$")
_PROJECT_ID = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: ``MAX_MESSAGE_AGE_SECONDS``: its default and bounds.
_MAX_MESSAGE_AGE = ("MAX_MESSAGE_AGE_SECONDS", 3600, 60, 7 * 24 * 3600)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(NeedsFix, ValueError):
    """Configuration variables are missing or invalid; the message names each one, one per line."""


_T = TypeVar("_T")
#: Where a local run (``export --dry-run``, ``backfill``, ``check``) may also find the Looker URL, after
#: ``LOOKER_BASE_URL``: looker-sdk's own variable, then ``base_url`` in a ``looker.ini``.
SDK_BASE_URL = "LOOKERSDK_BASE_URL"
#: looker-sdk's credentials variables, which a local run takes after LOOKER_CREDENTIALS_SECRET (credentials.py).
SDK_CLIENT_ID, SDK_CLIENT_SECRET = "LOOKERSDK_CLIENT_ID", "LOOKERSDK_CLIENT_SECRET"


@dataclass(frozen=True)
class Config:
    """Everything one export run needs to know, already validated."""

    project: str
    looker_base_url: str
    credentials_secret: str | None
    state_uri: str | None
    log_name: str = DEFAULT_LOG_NAME
    streams: tuple[str, ...] = ("events",)
    history_log_name: str = DEFAULT_HISTORY_LOG_NAME
    history_max_running_minutes: int = 60
    #: Export the exporter's own System Activity queries in the history stream too (left out by default).
    history_include_own_queries: bool = False
    initial_lookback_minutes: int = 10
    settle_seconds: int = 60
    looker_verify_ssl: bool = True
    looker_timeout_seconds: int = 120
    page_size: int = 5000
    write_batch_entries: int = 1000
    run_budget_seconds: int = 480
    max_message_age_seconds: int = 3600
    #: First delay of the jittered exponential backoff for transient faults (Looker and Cloud Logging).
    retry_initial_seconds: float = 1.0
    logging_emulator_host: str | None = None
    secret_manager_emulator_host: str | None = None
    #: The zone Looker runs queries in, for an API user that may not read the settings (HTTP 403); see
    #: https://cloud.google.com/looker/docs/using-time-zone-settings and looker_audit_export/timezones.py.
    looker_query_timezone: str | None = None
    #: ``STORAGE_EMULATOR_HOST``: the cursor lives in a Cloud Storage emulator (anonymous credentials); the
    #: storage client reads the variable itself for the endpoint.
    storage_emulator_host: str | None = None
    #: Where ``looker_base_url`` came from: LOOKER_BASE_URL, or for a local run LOOKERSDK_BASE_URL or looker.ini.
    base_url_source: str = "LOOKER_BASE_URL"
    #: What a person should know about how the configuration was read (e.g. a URL normalised).
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def looker_host(self) -> str:
        """The Looker host name, e.g. ``example.looker.com`` (with the port if one is set)."""
        return urlsplit(self.looker_base_url).netloc

    @property
    def log_resource_name(self) -> str:
        """The full ``logName`` the event entries are written to."""
        return self.log_resource(self.log_name)

    def log_resource(self, log_id: str) -> str:
        """The full ``logName`` of a log ID in this project (the ID URL-encoded, as the API wants)."""
        return f"projects/{self.project}/logs/{log_id.replace('/', '%2F')}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, local: bool = False, conventions: bool = False,
                 looker_ini: Mapping[str, str] | None = None) -> Config:
        """Read and validate the configuration; raise ConfigError naming every bad variable at once.

        ``local`` (the CLI with credentials of its own) makes the secret and the state optional.
        ``conventions`` (a local run) also takes the Looker URL from LOOKERSDK_BASE_URL, then from
        ``looker_ini`` (the ``base_url`` of a looker.ini), when LOOKER_BASE_URL is not set.
        """
        problems: list[str] = []
        notes: list[str] = []

        def valid(read: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
            try:
                return read(*args, **kwargs)
            except ConfigError as exc:
                problems.append(str(exc))
                return None  # type: ignore[return-value]  # never used: the problems are raised below

        secret_what = "a secret version like projects/P/secrets/S/versions/latest"
        base_url, source = valid(_base_url, env, notes, looker_ini if conventions else None) or (None, "")
        values = dict(
            project=valid(_project, env),
            looker_base_url=base_url,
            base_url_source=source,
            credentials_secret=None if local and not _value(env, "LOOKER_CREDENTIALS_SECRET") else
            valid(_matching, env, "LOOKER_CREDENTIALS_SECRET", _SECRET_VERSION, secret_what),
            state_uri=None if local and not _value(env, "STATE_URI") else valid(_state_uri, env),
            log_name=valid(_matching, env, "LOG_NAME", _LOG_ID, "a log ID of letters, digits, '_', '-', '.', '/'",
                           default=DEFAULT_LOG_NAME),
            streams=valid(_streams, env),
            history_log_name=valid(_matching, env, "HISTORY_LOG_NAME", _LOG_ID,
                                   "a log ID of letters, digits, '_', '-', '.', '/'", default=DEFAULT_HISTORY_LOG_NAME),
            history_max_running_minutes=valid(_integer, env, "HISTORY_MAX_RUNNING_MINUTES", 60, 1, 24 * 60),
            history_include_own_queries=valid(_boolean, env, "HISTORY_INCLUDE_OWN_QUERIES", False),
            initial_lookback_minutes=valid(_integer, env, "INITIAL_LOOKBACK_MINUTES", 10, 1, 60 * 24 * 30),
            settle_seconds=valid(_integer, env, "SETTLE_SECONDS", 60, 0, 3600),
            looker_verify_ssl=valid(_boolean, env, "LOOKER_VERIFY_SSL", True),
            looker_timeout_seconds=valid(_integer, env, "LOOKER_TIMEOUT_SECONDS", 120, 1, 3600),
            page_size=valid(_integer, env, "PAGE_SIZE", 5000, 1, 50_000),
            write_batch_entries=valid(_integer, env, "WRITE_BATCH_ENTRIES", 1000, 1, 1000),  # ≤ 10 chunks in flight
            run_budget_seconds=valid(_integer, env, "RUN_BUDGET_SECONDS", 480, 10, 3600),
            max_message_age_seconds=valid(_integer, env, *_MAX_MESSAGE_AGE),
            retry_initial_seconds=valid(_number, env, "RETRY_INITIAL_SECONDS", 1.0, 0.01, 30.0),
            logging_emulator_host=valid(_host_port, env, "LOGGING_EMULATOR_HOST"),
            secret_manager_emulator_host=valid(_host_port, env, "SECRET_MANAGER_EMULATOR_HOST"),
            looker_query_timezone=valid(_time_zone, env, "LOOKER_QUERY_TIMEZONE"),
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
        )
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(**values, notes=tuple(notes))  # type: ignore[arg-type]

    @classmethod
    def max_message_age(cls, env: Mapping[str, str]) -> int:
        """``MAX_MESSAGE_AGE_SECONDS`` alone, for a tick that comes while the rest of the configuration is
        invalid: its value when valid, else the default."""
        try:
            return _integer(env, *_MAX_MESSAGE_AGE)
        except ConfigError:
            return cls.max_message_age_seconds


def _streams(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _value(env, "EXPORT_STREAMS") or "events"
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in STREAMS]
    if unknown or not names:
        raise ConfigError(f"EXPORT_STREAMS={raw!r} is invalid: it must list some of {', '.join(STREAMS)}")
    return names


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = _value(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set: it must be {what}")
    return value


def _matching(env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str,
              default: str | None = None) -> str:
    value = _value(env, name) or default
    if value is None:
        raise ConfigError(f"{name} is not set: it must be {what}")
    if not pattern.match(value):
        raise ConfigError(f"{name}={value!r} is invalid: it must be {what}")
    return value


def _project(env: Mapping[str, str]) -> str:
    return _matching(env, "GOOGLE_CLOUD_PROJECT", _PROJECT_ID, "a Google Cloud project ID")


def _base_url(env: Mapping[str, str], notes: list[str],
              looker_ini: Mapping[str, str] | None) -> tuple[str, str]:
    """The instance URL and where it came from; one ending in /api/4.0 is cut back to the instance, with a note."""
    name, value = "LOOKER_BASE_URL", _value(env, "LOOKER_BASE_URL")
    if value is None and looker_ini is not None:
        if _value(env, SDK_BASE_URL):
            name, value = SDK_BASE_URL, _value(env, SDK_BASE_URL)
        elif (looker_ini.get("base_url") or "").strip():
            name, value = "base_url in looker.ini", looker_ini["base_url"].strip()
    if value is None:
        also = f" (a local run also takes {SDK_BASE_URL}, or base_url in looker.ini)" if looker_ini is not None else ""
        raise ConfigError(f"LOOKER_BASE_URL is not set: it must be the Looker URL, e.g. https://example.looker.com"
                          f"{also}")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"{name}={value!r} is invalid: it must be a URL like https://example.looker.com")
    if parts.query or parts.fragment or parts.path.strip("/") not in ("", "api/4.0"):
        raise ConfigError(f"{name}={value!r} is invalid: give the instance URL only, e.g. https://example.looker.com")
    base = f"{parts.scheme}://{parts.netloc}"
    if parts.path.strip("/"):
        notes.append(f"{name} ends in /{parts.path.strip('/')}: using {base}, the instance URL (the exporter adds "
                     "/api/4.0 itself); set it to that to silence this note")
    return base, name


def _state_uri(env: Mapping[str, str]) -> str:
    name = "STATE_URI"
    value = _required(env, name, "gs://bucket/path/state.json or a local file path")
    if value.startswith("gs://"):
        bucket, _, path = value[5:].partition("/")
        if not bucket or not path or path.endswith("/"):
            raise ConfigError(f"{name}={value!r} is invalid: it must name an object, e.g. gs://bucket/looker/state.json")
    elif "://" in value and not value.startswith("file://"):
        raise ConfigError(f"{name}={value!r} is invalid: use gs://bucket/object, file:///path or a plain path")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _value(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: it must be a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range: it must be between {low} and {high}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = _value(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: it must be a number of seconds") from None
    if not low <= value <= high:  # also refuses NaN
        raise ConfigError(f"{name}={value} is out of range: it must be between {low} and {high}")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _value(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is invalid: it must be true or false")


def _time_zone(env: Mapping[str, str], name: str) -> str | None:
    raw = _value(env, name)
    if raw is None:
        return None
    try:
        zone_info(raw)
    except TimeZoneError:
        raise ConfigError(f"{name}={raw!r} is invalid: it must be an IANA time zone such as UTC or "
                          "America/New_York") from None
    return raw


def _host_port(env: Mapping[str, str], name: str) -> str | None:
    raw = _value(env, name)
    if raw is None:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{name}={raw!r} is invalid: it must be host:port")
    return raw
