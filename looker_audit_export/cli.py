"""Command line: one export (``export``, ``--dry-run``), a resumable export of a past range (``backfill``),
or a preflight checklist of the configuration and the instance (``check``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from . import logs, preflight
from .config import SDK_CLIENT_SECRET, STREAMS, Config, ConfigError
from .credentials import (
    CredentialsError,
    LookerCredentials,
    conventional_credentials,
    parse_payload,
    read_looker_ini,
)
from .errors import EXIT_CODES, FAILED, FIX_FIRST, INTERRUPTED, OK, exit_code
from .export.run import Window
from .export.summary import ExportError, StreamSummary
from .sink import JsonLinesSink
from .state import sibling_uri
from .wiring import build_exporter

#: Cloud Logging's ``_Default`` bucket keeps entries 30 days; older timestamps are not kept.
DEFAULT_RETENTION_DAYS = 30
#: A backfill runs back to back exports of this budget each until it has caught up.
BACKFILL_RUN_SECONDS = 3600


_EXIT_EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m looker_audit_export",
        description="Export Looker System Activity to Cloud Logging. Configuration comes from the same "
                    "environment variables as the Cloud Function (see README).",
    )
    credentials = argparse.ArgumentParser(add_help=False)
    credentials.add_argument("--credentials-file", type=Path,
                             help="read the Looker credentials from this JSON file "
                                  '({"client_id": "...", "client_secret": "..."}) instead of Secret Manager. '
                                  "Without it, export --dry-run, backfill and check also take LOOKERSDK_CLIENT_ID "
                                  "and LOOKERSDK_CLIENT_SECRET, or a looker.ini, when LOOKER_CREDENTIALS_SECRET "
                                  "is not set (docs/local.md)")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export", parents=[credentials], help="run one export now",
        description="Run one export now, as one tick of the Cloud Function does: read the System Activity events "
                    "after the cursor, write them to Cloud Logging, move the cursor past them and print the run "
                    "summary as JSON. With --dry-run, print the entries as JSON lines instead, and move nothing.",
        epilog=_EXIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--dry-run", action="store_true",
                        help="print the entries as JSON lines on stdout instead of writing them; "
                             "the cursor is read but not moved")
    check = commands.add_parser(
        "check", parents=[credentials],
        help="check the credentials, Looker, Cloud Logging and the cursor location; changes nothing",
    )
    check.add_argument("--schedule", default=os.environ.get("SCHEDULE") or None,
                       help="cron schedule of the runs, for the query budget (default: $SCHEDULE, else the "
                            f"Terraform default {preflight.DEFAULT_SCHEDULE!r}, said as assumed)")
    backfill = commands.add_parser(
        "backfill", parents=[credentials],
        help="export a past range, with progress; run the same command again to resume",
    )
    backfill.add_argument("--since", required=True, type=_day, help="first day to export, YYYY-MM-DD (UTC)")
    backfill.add_argument("--until", type=_day, help="day after the last one to export, YYYY-MM-DD (default: now)")
    backfill.add_argument("--streams", default=None,
                          help=f"comma-separated streams to export ({', '.join(STREAMS)}; default EXPORT_STREAMS)")
    backfill.add_argument("--state", help="where the backfill's own cursor lives (default: beside STATE_URI, "
                                          "or ./.backfill-SINCE-UNTIL.json; UNTIL is 'open' without --until)")
    backfill.add_argument("--retention-days", type=int, default=DEFAULT_RETENTION_DAYS,
                          help="retention of the log bucket the entries land in (default 30, as _Default)")
    backfill.add_argument("--yes", action="store_true",
                          help="go on even though part of the range falls outside that retention")
    return parser


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2026-01-31") from None


def _file_credentials(path: Path) -> LookerCredentials:
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"Cannot read the credentials file {path}: {exc.strerror}") from None
    return parse_payload(f"The credentials file {path}", payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit code is one of ``errors.EXIT_CODES`` (docs/configuration.md)."""
    args = build_parser().parse_args(argv)
    quiet = args.command == "check"  # its ✓/✗ lines say everything; no JSON log line among them
    logs.configure(stream=sys.stderr, level=logging.ERROR if quiet else logging.INFO, plain=quiet)
    try:
        return _run(args)
    except BrokenPipeError:
        return _closed_pipe()
    except (ConfigError, CredentialsError) as exc:
        for problem in str(exc).splitlines():
            print(f"error: {logs.redact(problem)}", file=sys.stderr)
        return exit_code(exc)
    except ExportError as exc:
        if _caused_by(exc, BrokenPipeError):
            return _closed_pipe()
        print(logs.redact(json.dumps({"error": str(exc), "summary": exc.summary.as_dict()})), file=sys.stderr)
        return exit_code(exc)


def _run(args: argparse.Namespace) -> int:
    dry_run = getattr(args, "dry_run", False)
    # A local run also follows looker-sdk's conventions (docs/local.md has the order): LOOKER_BASE_URL, else
    # LOOKERSDK_BASE_URL, else base_url in looker.ini; --credentials-file, else LOOKER_CREDENTIALS_SECRET, else
    # LOOKERSDK_CLIENT_ID and LOOKERSDK_CLIENT_SECRET, else looker.ini. The deployed function keeps the secret.
    conventions = dry_run or args.command in ("check", "backfill")
    ini_path, ini = read_looker_ini(Path.cwd()) if conventions else (None, {})
    for value in (os.environ.get(SDK_CLIENT_SECRET, ""), ini.get("client_secret", "")):
        logs.mask_secret(value.strip())  # never in a log line, whether it is used or not
    credentials: LookerCredentials | None = None
    source = None
    if args.credentials_file is not None:
        credentials = _file_credentials(args.credentials_file)
        source = f"the credentials file {args.credentials_file}"
    elif conventions and not os.environ.get("LOOKER_CREDENTIALS_SECRET", "").strip():
        credentials, source = conventional_credentials(os.environ, ini, ini_path) or (None, None)
    if credentials is not None:
        logs.mask_secret(credentials.client_secret)
    config = Config.from_env(os.environ, local=credentials is not None or dry_run, conventions=conventions,
                             looker_ini=ini)
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.command == "backfill":
        return _backfill(args, config, credentials, source)
    if args.command == "check":
        return _check(args, config, credentials, source)
    exporter = build_exporter(config, sink=JsonLinesSink(sys.stdout) if dry_run else None,
                              credentials=credentials, read_only_state=dry_run, credentials_source=source)
    summary = exporter.run()
    print(json.dumps(summary.as_dict()), file=sys.stderr if dry_run else sys.stdout)
    return OK


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__
    return seen is not None


def _closed_pipe() -> int:
    """The reader of stdout went away (``... | head -n 3``): end quietly, as Unix tools do.

    Python's own recipe (https://docs.python.org/3/library/signal.html#note-on-sigpipe): point stdout at
    devnull so that the interpreter's last flush does not fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return OK


def _check(args: argparse.Namespace, config: Config, credentials: LookerCredentials | None,
           source: str | None) -> int:
    """Print the checklist; 0 when every required check passed, 1 when not."""
    print(f"Checking {config.looker_base_url} (from {config.base_url_source}) for project {config.project} "
          f"(streams: {', '.join(config.streams)})")
    print(f"Looker credentials from {source or f'secret {config.credentials_secret}'}")
    for note in config.notes:
        print(f"note: {note}")
    checks = preflight.run_checks(config, credentials=credentials, schedule=args.schedule,
                                  credentials_source=source)
    print(logs.redact(preflight.render(checks)))
    if preflight.passed(checks):
        print("All required checks passed.")
        return OK
    print(preflight.tally(checks))
    return FAILED


def backfill_state_uri(state_uri: str | None, since: datetime, until: datetime | None) -> str:
    """The backfill's own cursor: beside the live cursor (never the live one itself), one per command.

    It is named by the command's own ``--since`` and ``--until`` (``open`` without one), never by the time
    it runs, so the same command finds its cursor whenever it is run again; another range gets another.
    """
    name = f"backfill-{since:%Y%m%d}-{f'{until:%Y%m%d}' if until else 'open'}.json"
    return f".{name}" if state_uri is None else sibling_uri(state_uri, name)


def retention_warning(since: datetime, until: datetime, now: datetime, retention_days: int) -> str | None:
    """What Cloud Logging would not keep of ``[since, until)``, or None when it keeps everything."""
    kept_from = now - timedelta(days=retention_days)
    if since >= kept_from:
        return None
    if until <= kept_from:
        kept = "nothing of this range would be kept"
    else:
        kept = f"only events from {kept_from:%Y-%m-%d %H:%M} UTC on would be kept"
    return (f"Cloud Logging keeps an entry only if its time falls inside the retention of the log bucket it "
            f"lands in ({retention_days} days here; 30 for _Default). Of {since:%Y-%m-%d} to {until:%Y-%m-%d}, "
            f"{kept}: older entries are accepted but not stored. For a longer trail, route the log to a bucket "
            "with longer retention (Terraform: enable_long_retention = true) and pass --retention-days; "
            "or pass --yes to export the whole range anyway.")


def _backfill(args: argparse.Namespace, config: Config, credentials: LookerCredentials | None,
              source: str | None) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    until = min(args.until or now, now)
    if args.since >= until:
        print("error: --since must be before --until (and before now)", file=sys.stderr)
        return FIX_FIRST
    warning = retention_warning(args.since, until, now, args.retention_days)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
        if not args.yes:
            return FIX_FIRST
    streams = config.streams if args.streams is None else Config.from_env(
        {**os.environ, "EXPORT_STREAMS": args.streams, "LOOKER_BASE_URL": config.looker_base_url}, local=True).streams
    state = args.state or backfill_state_uri(config.state_uri, args.since, args.until)
    config = replace(config, streams=streams, state_uri=state, run_budget_seconds=BACKFILL_RUN_SECONDS)
    exporter = build_exporter(config, credentials=credentials, credentials_source=source)
    progress = Progress(sys.stderr, args.since, until)
    print(f"Backfilling {', '.join(streams)} from {args.since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M} UTC; "
          f"resumable cursor at {state}", file=sys.stderr)
    try:
        while True:
            summary = exporter.run(Window(args.since, until), on_page=progress.update)
            progress.end_run()
            if summary.caught_up:
                break
    except ExportError as exc:
        progress.finish()
        print(logs.redact(f"error: {exc}. Run the same command again to resume from {state}."), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        progress.finish()
        print(f"Interrupted. Run the same command again to resume from {state}.", file=sys.stderr)
        return INTERRUPTED
    progress.finish(complete=True)
    print(json.dumps({"backfill": "done", "written": progress.written(), "state": state}))
    return OK


class Progress:
    """A one-line progress bar on a terminal (a line every few seconds elsewhere): done, rate, time left."""

    def __init__(self, out: TextIO, since: datetime, until: datetime) -> None:
        self.out, self.since, self.until = out, since, until
        self.started = time.monotonic()
        self.last_line = 0.0
        self.earlier_runs = 0
        self.this_run: dict[str, int] = {}
        self.reached: dict[str, datetime] = {}
        self.tty = out.isatty()

    def written(self) -> int:
        return self.earlier_runs + sum(self.this_run.values())

    def update(self, stream: str, summary: StreamSummary, newest: datetime | None) -> None:
        """After each page: ``summary`` counts what this run wrote for ``stream`` so far."""
        self.this_run[stream] = summary.written
        if newest is not None:
            self.reached[stream] = newest
        if self.tty or time.monotonic() - self.last_line >= 5:
            self._draw()

    def end_run(self) -> None:
        self.earlier_runs = self.written()
        self.this_run.clear()

    def _draw(self, complete: bool = False) -> None:
        self.last_line = time.monotonic()
        elapsed = max(self.last_line - self.started, 1e-6)
        span = (self.until - self.since).total_seconds()
        reached = min(self.reached.values(), default=None)
        fraction = min(1.0, max(0.0, (reached - self.since).total_seconds() / span)) if reached else 0.0
        fraction = 1.0 if complete else fraction
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        width = 24
        bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
        eta = f"{timedelta(seconds=round(left))} left" if left is not None else "time left unknown"
        line = (f"[{bar}] {fraction:6.1%}  {self.written():,} entries  {self.written() / elapsed:,.0f}/s  {eta}")
        self.out.write(("\r" + line) if self.tty else line + "\n")
        self.out.flush()

    def finish(self, complete: bool = False) -> None:
        self._draw(complete)
        if self.tty:
            self.out.write("\n")
