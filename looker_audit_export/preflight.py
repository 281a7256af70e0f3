"""``python -m looker_audit_export check``: what a Looker admin verifies before deploying, and after a change.

Each check is one line, ✓ or ✗, and every ✗ says how to fix it. Nothing is changed: the Cloud Logging
write is a dry run (``WriteLogEntriesRequest.dry_run``: "the entries won't be persisted nor exported",
https://cloud.google.com/logging/docs/reference/v2/rpc/google.logging.v2#writelogentriesrequest), the
cursor is only read, and the write test writes the probe beside it that every run writes before it sends
(``.probe-state.json`` for ``state.json``: a store that cannot be written must cost no entry). The Looker
checks that decide correctness (time zone, fields) are the very code the
function runs once per instance (``looker.reader.Instance.prepare``), so both fail with the same messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions

from . import logs
from .config import Config
from .credentials import CredentialsError, LookerCredentials, SecretManagerUnreachable
from .entries.head import RESOURCE_TYPE, SERVICE_NAME
from .looker import explores
from .looker.client import LookerError, LookerUnavailable, LookerUnreachable, NotLooker
from .looker.reader import LookerSource
from .sink import logging_client
from .state import StateError, StateUnwritable, state_store
from .wiring import build_source

#: Looker Standard includes "up to 1,000 query-based API calls per month, along with 1,000 administrative API
#: calls per month" (https://cloud.google.com/terms/looker/legal/customers/licensing).
STANDARD_EDITION_QUERY_CALLS = 1_000
DEFAULT_SCHEDULE = "*/10 * * * *"
DAYS_A_MONTH = 30
_LOOKER_SECONDS = 120.0


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: An advisory check (the query budget: the edition is not known) never fails the command.
    required: bool = True
    #: Not run because a check it needs failed: neither passed nor failed.
    skipped: bool = False


def render(checks: Iterable[Check]) -> str:
    """The checklist as printed: one line per check, and the fix under each ✗."""
    lines = []
    for check in checks:
        advisory = "" if check.required else " (advisory)"
        mark = "-" if check.skipped else "✓" if check.ok else "✗"
        lines.append(f"{mark} {check.name}{advisory}: {check.detail}")
        if not check.ok and not check.skipped and check.fix:
            lines.append(f"    fix: {check.fix}")
    return "\n".join(lines)


def tally(checks: Iterable[Check]) -> str:
    """The closing line when a required check failed: failed and not run, counted apart."""
    required = [check for check in checks if check.required and not check.ok]
    failed = sum(not check.skipped for check in required)
    skipped = len(required) - failed
    line = f"{failed} required check{'s' * (failed != 1)} failed"
    return line + (f"; {skipped} not run until {'they pass' if failed != 1 else 'it passes'}." if skipped else ".")


def passed(checks: Iterable[Check]) -> bool:
    """Whether every required check passed."""
    return all(check.ok for check in checks if check.required)


def run_checks(config: Config, *, credentials: LookerCredentials | None = None,
               credentials_source: str | None = None, schedule: str | None = None) -> list[Check]:
    """Every check, in order; Looker checks after a failed login are reported as not run."""
    checks: list[Check] = []
    source = build_source(config, credentials=credentials, credentials_source=credentials_source)
    checks.extend(_looker_checks(config, source))
    checks.append(_budget(config, schedule))
    checks.append(_guarded("Cloud Logging write", _logging, config))
    checks.append(_guarded("Cursor location", _cursor, config))
    return checks


def _guarded(name: str, check: Callable[[Config], Check], config: Config) -> Check:
    """Run one check; a failure nobody foresaw is its ✗ line, never a traceback that hides the other lines."""
    try:
        return check(config)
    except Exception as exc:  # every check must print its line
        return Check(name, False, f"{exc.__class__.__name__}: {logs.redact(str(exc))}",
                     "an unexpected failure: please report it with this line")


def _looker_checks(config: Config, source: LookerSource) -> list[Check]:
    checks: list[Check] = []
    deadline = time.monotonic() + _LOOKER_SECONDS
    where = source.client.credentials_source
    try:
        source.client.credentials()
        checks.append(Check("Credentials", True, f"{where} is readable and holds a client_id and client_secret"))
    except SecretManagerUnreachable as exc:
        checks.append(Check("Credentials", False, str(exc), "check the network path to Secret Manager "
                            "(docs/networking.md#google-apis-from-the-subnetwork), or SECRET_MANAGER_EMULATOR_HOST "
                            "for the emulator, then check again"))
        return checks + _not_run(config, "the credentials cannot be read")
    except CredentialsError as exc:
        checks.append(Check("Credentials", False, str(exc), "see the message; the payload must be "
                            '{"client_id": "...", "client_secret": "..."}'))
        return checks + _not_run(config, "the credentials cannot be read")
    login = _attempt("Looker login", lambda: source.client.login(deadline),
                     f"logged in to {source.host} with the API3 key from {where}",
                     "create an API3 key for an enabled user on Looker's Admin > Users page and store it there")
    checks.append(login)
    if not login.ok:
        return checks + _not_run(config, "the Looker login failed")
    checks.append(_attempt("API user", lambda: source.instance.api_user_id(deadline),
                           "GET /api/4.0/user (me) answers; its own logins and System Activity queries are "
                           "labelled looker_exporter=self",
                           "the API user must be able to read itself (GET /api/4.0/user); check its role"))
    checks.append(_attempt("System Activity query", lambda: source.probe(deadline),
                           "a one-row query on system__activity/event works (1 query call)",
                           "give the API user a role with the see_system_activity permission"))
    for stream in config.streams:
        for explore in explores.STREAM_EXPLORES[stream]:
            checks.append(_fields(source, explore, deadline))
    try:  # measured from the probe query's row in the History explore, as the function measures (1 query call)
        reading = source.time_reading(deadline)
        checks.append(Check("Time zone", True, f"{reading.how}; times are converted from {reading.zone} "
                                               "(measured: 1 query call)"))
    except (LookerError, LookerUnavailable) as exc:
        checks.append(Check("Time zone", False, str(exc), "set LOOKER_QUERY_TIMEZONE to the zone System Activity "
                            "shows times in, as the message says, or correct Looker's time zone settings "
                            "(Looker Admin > General > Settings); then check again"))
    return checks


_UNREACHABLE = "check LOOKER_BASE_URL and that Looker answers from here (network, allowlist), then check again"


def _attempt(name: str, call: Callable[[], Any], success: str, fix: str) -> Check:
    try:
        call()
    except (LookerUnreachable, NotLooker) as exc:  # DNS, refused, timed out, TLS, not Looker: each its own fix
        return Check(name, False, exc.cause, exc.fix)
    except LookerUnavailable as exc:
        return Check(name, False, str(exc), _UNREACHABLE)
    except LookerError as exc:
        return Check(name, False, str(exc), fix)
    return Check(name, True, success)


def _fields(source: LookerSource, explore: str, deadline: float) -> Check:
    name = f"Fields of {explore}"
    try:
        found = explores.report(explore, source.instance.explore_fields(explore, deadline))
    except (LookerError, LookerUnavailable) as exc:
        return Check(name, False, str(exc), "give the API user access to the system__activity model")
    used = len(explores.USED[explore])
    if found.missing_required:
        return Check(name, False, explores.refusal(found),
                     "the export refuses to run without them; update Looker or the API user's role")
    if found.missing_optional:
        present = used - len(found.missing_optional)
        return Check(name, True, f"{present} of the {used} fields used exist, every required one; lacks optional "
                                 f"{', '.join(found.missing_optional)}: exported without, with one WARNING")
    return Check(name, True, f"all {used} fields the exporter uses exist")


def _not_run(config: Config, why: str) -> list[Check]:
    names = ["API user", "System Activity query", *(f"Fields of {explore}" for stream in config.streams
                                         for explore in explores.STREAM_EXPLORES[stream]), "Time zone"]
    return [Check(name, False, f"not run: {why}", skipped=True) for name in names]


# ------------------------------------------------------------------------------------------ query budget
def runs_per_day(schedule: str) -> int:
    """Runs a day of a cron schedule (minute and hour fields; every day assumed). ValueError if unreadable."""
    parts = schedule.split()
    if len(parts) != 5:
        raise ValueError(f"{schedule!r} is not a five-field cron schedule")
    return _count(parts[0], 0, 59) * _count(parts[1], 0, 23)


def _count(text: str, low: int, high: int) -> int:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(part) for part in span.split("-", 1))
        else:
            first = int(span)
            last = high if step_text else first
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(f"{item!r} is out of range {low}-{high}")
        values.update(range(first, last + 1, step))
    return len(values)


def _budget(config: Config, schedule: str | None) -> Check:
    name = "Looker query budget"
    assumed = schedule is None
    schedule = schedule or DEFAULT_SCHEDULE
    try:
        runs = runs_per_day(schedule) * DAYS_A_MONTH
    except ValueError as exc:
        return Check(name, False, f"cannot read the schedule: {exc}", "pass --schedule like '*/30 * * * *'",
                     required=False)
    per_run = _calls_per_run(config.streams)
    low, high = runs * len(config.streams), runs * per_run
    said = f"{schedule!r}{' (assumed: the Terraform default; pass --schedule)' if assumed else ''}"
    detail = (f"{said} is {runs:,} runs a month; with {', '.join(config.streams)} that is {low:,} query calls "
              f"(nothing new) to {high:,} (new events every run, each on a new function instance, which first "
              "measures how System Activity shows time: 1 query call, and 1 more after a DST change), against the "
              f"{STANDARD_EDITION_QUERY_CALLS:,} a month of Looker (Google Cloud core) Standard edition; each new "
              f"function instance also makes "
              f"{3 + sum(len(explores.STREAM_EXPLORES[s]) for s in config.streams if s != 'history')} "
              "metadata calls (settings, the API user, the fields of each explore read and of History): not "
              "queries, but they may count against the edition's 1,000 administrative API calls")
    if high > STANDARD_EDITION_QUERY_CALLS:
        hours = _fitting_hours(per_run)
        return Check(name, False, detail, f"on Standard edition, run every {hours} hours or less often (Terraform: "
                     f"schedule = \"0 */{hours} * * *\"); Enterprise and Embed editions include more",
                     required=False)
    return Check(name, True, detail, required=False)


def _calls_per_run(streams: Iterable[str]) -> int:
    """Query calls of one run at most (one page each): events with attributes and users, history, and the
    measurement of a new function instance (a long schedule starts one for most runs)."""
    return 1 + sum(3 if stream == "events" else 1 for stream in streams)


def _fitting_hours(per_run: int) -> int:
    """The shortest whole-hour interval whose runs stay within the Standard budget even when busy."""
    hours = 1
    while DAYS_A_MONTH * (24 // hours) * per_run > STANDARD_EDITION_QUERY_CALLS:
        hours += 1
    while 24 % hours:  # "*/h" in cron's hour field restarts at midnight: keep the interval even
        hours += 1
    return hours


# ------------------------------------------------------------------------------------------ Cloud Logging
def _logging(config: Config) -> Check:
    name = "Cloud Logging write"
    log_name = config.log_resource_name
    entry = {"log_name": log_name, "text_payload": "looker_audit_export check (dry run, not stored)",
             "resource": {"type": RESOURCE_TYPE, "labels": {"service": SERVICE_NAME, "method": "check"}}}
    try:
        client = logging_client(config.logging_emulator_host)
        client.write_log_entries(request={"entries": [entry], "dry_run": True}, timeout=30)
    except gexc.PermissionDenied as exc:
        return Check(name, False, f"WriteLogEntries to {log_name} was refused: {exc.message}",
                     f"grant this identity roles/logging.logWriter on project {config.project} (Terraform grants "
                     "it to the function's service account)")
    except auth_exceptions.DefaultCredentialsError:
        return Check(name, False, "no Google credentials found",
                     "run `gcloud auth application-default login`, or run check as the function's service account")
    except gexc.GoogleAPICallError as exc:
        return Check(name, False, f"WriteLogEntries to {log_name} failed: {exc.code} {exc.message}",
                     "check the project ID and that the Cloud Logging API is enabled")
    return Check(name, True, f"WriteLogEntries (dry run, nothing stored) accepted for {log_name}")


# ------------------------------------------------------------------------------------------ the cursor
def _cursor(config: Config) -> Check:
    """The cursor is read, and the probe beside it written (what every run does before it sends)."""
    name = "Cursor location"
    if config.state_uri is None:
        return Check(name, True, "STATE_URI is not set: this local run keeps no cursor")
    emulator = bool(config.storage_emulator_host)
    try:
        store = state_store(config.state_uri, config.project, emulator=emulator,
                            retry_initial_seconds=config.retry_initial_seconds)
        stored, _ = store.load()
        store.probe()
    except StateUnwritable as exc:
        return Check(name, False, exc.cause, exc.fix)
    except StateError as exc:
        return Check(name, False, str(exc), "check that the bucket or folder exists and that this identity may "
                                           "write there, then check again")
    except auth_exceptions.DefaultCredentialsError:
        return Check(name, False, "no Google credentials found",
                     "run `gcloud auth application-default login`, or run check as the function's service account")
    state = "no cursor yet, the first run starts it" if stored is None else "a cursor is there"
    return Check(name, True, f"{config.state_uri} is readable ({state}) and can be saved: the probe beside it, "
                             "which every run writes before it sends, was written")
