"""``python -m emulators``: run the Looker, Cloud Logging, Secret Manager and GCS
emulators in one process.

Prints one JSON line with the environment a client needs (never the client
secret, which only lives inside the emulated secret), then serves until
SIGTERM or SIGINT.  ``STATS_URL`` returns every emulator's counters.

``--env`` starts them in the background instead and prints that environment as
``export NAME=value`` lines, with ``EMULATORS_PID`` to stop them, for one line
in a shell: ``eval "$(python -m emulators --env)"``, later ``kill $EMULATORS_PID``.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from emulators.cloud_logging import LoggingEmulator
from emulators.gcs import GcsEmulator
from emulators.looker import LookerEmulator
from emulators.looker_data import API_USER_ID, SystemActivity
from emulators.secret_manager import SecretManagerEmulator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="synthetic System Activity events")
    parser.add_argument("--history", type=int, default=0,
                        help="synthetic query history rows (System Activity's history explore) over the same span")
    parser.add_argument("--span-minutes", type=float, default=60.0, help="the events cover this many minutes up to now")
    parser.add_argument("--end-minutes-ago", type=float, default=0.0,
                        help="the last event is this many minutes old (so a backfill finds every event settled)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--client-id", default="demo-client-id", help="Looker API client ID")
    parser.add_argument("--client-secret", default=None, help="Looker API client secret (default: random)")
    parser.add_argument("--project", default="demo-project", help="Google Cloud project ID")
    parser.add_argument("--secret-name", default="looker-api-credentials", help="secret holding the credentials")
    parser.add_argument("--bucket", default="demo-state", help="GCS bucket for the cursor")
    parser.add_argument("--logging-latency-ms", type=float, default=0.0, help="added to each WriteLogEntries")
    parser.add_argument("--looker-latency-ms", type=float, default=0.0, help="added to each Looker query")
    parser.add_argument("--looker-row-latency-us", type=float, default=0.0, help="added per Looker row returned")
    parser.add_argument("--no-store-entries", action="store_true", help="count log entries without keeping them")
    parser.add_argument("--looker-timezone", metavar="ZONE", default=None,
                        help="turn Looker's user time zones off: every query runs in ZONE, query_timezone ignored")
    parser.add_argument("--looker-runs-in", metavar="ZONE", default=None,
                        help="with --looker-timezone: queries really run in ZONE, not the zone the settings report")
    parser.add_argument("--looker-unconverted", metavar="ZONE", default=None,
                        help="show System Activity times unconverted, in the system time zone ZONE (filters are "
                             "still read in the query's zone)")
    parser.add_argument("--looker-settings-forbidden", action="store_true",
                        help="answer GET /api/4.0/setting with 403, as for an API user without admin rights")
    parser.add_argument("--looker-lack-field", metavar="FIELD", action="append", default=[],
                        help="serve System Activity without this field (e.g. permission_set.permissions); repeatable")
    parser.add_argument("--logging-forbidden", action="store_true",
                        help="answer every WriteLogEntries with PERMISSION_DENIED")
    parser.add_argument("--env", action="store_true",
                        help='start in the background and print `export NAME=value` lines for '
                             '`eval "$(python -m emulators --env)"`; stop them with `kill $EMULATORS_PID`')
    return parser.parse_args(argv)


def export_lines(env: dict[str, str], pid: int) -> str:
    """The environment as shell ``export`` lines (values quoted), with the process to stop."""
    lines = [f"export {name}={shlex.quote(value)}" for name, value in {**env, "EMULATORS_PID": str(pid)}.items()]
    return "\n".join([*lines, "# stop the emulators with: kill $EMULATORS_PID"]) + "\n"


def in_background(argv: list[str]) -> int:
    """Start the emulators as a process of their own (a new session, so the shell's command substitution
    returns at once), wait for their environment line, and print it as ``export`` lines."""
    command = [sys.executable, "-m", "emulators", *(arg for arg in argv if arg != "--env")]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             text=True, start_new_session=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    child.stdout.close()  # the emulators print nothing more
    if not line:
        print("error: the emulators exited before printing their endpoints", file=sys.stderr)
        return 1
    sys.stdout.write(export_lines({key: str(value) for key, value in json.loads(line).items()}, child.pid))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Start the emulators, print the environment line, serve until signalled."""
    args = parse_args(argv)
    if args.env:
        return in_background(list(sys.argv[1:] if argv is None else argv))
    client_secret = args.client_secret or secrets.token_urlsafe(24)
    data = SystemActivity.synthetic(
        args.events,
        end=datetime.now(UTC) - timedelta(minutes=args.end_minutes_ago),
        span=timedelta(minutes=args.span_minutes),
        seed=args.seed,
        n_history=args.history,
        api_user_id=API_USER_ID,
    )
    # The synthetic data lives as long as the process: keep the collector, which every answer's many rows
    # set off, from scanning it again and again.
    gc.freeze()
    looker = LookerEmulator(
        data,
        client_id=args.client_id,
        client_secret=client_secret,
        query_latency_seconds=args.looker_latency_ms / 1e3,
        per_row_latency_seconds=args.looker_row_latency_us / 1e6,
    )
    if args.looker_timezone:
        looker.set_time_zones(False, args.looker_timezone, runs_in=args.looker_runs_in)
    looker.show_unconverted(args.looker_unconverted)
    looker.forbid_settings(args.looker_settings_forbidden)
    for name in args.looker_lack_field:
        looker.lack_field(name)
    logging = LoggingEmulator(store_entries=not args.no_store_entries, latency_seconds=args.logging_latency_ms / 1e3)
    if args.logging_forbidden:
        logging.inject(grpc.StatusCode.PERMISSION_DENIED, times=-1,
                       message="Permission 'logging.logEntries.create' denied on resource (or it may not exist).")
    secret = f"projects/{args.project}/secrets/{args.secret_name}"
    credentials = json.dumps({"client_id": args.client_id, "client_secret": client_secret}).encode()
    secret_manager = SecretManagerEmulator({secret: credentials})

    def all_stats() -> dict[str, Any]:
        return {"logging": logging.stats(), "secret_manager": secret_manager.stats(), "looker": looker.stats()}

    gcs = GcsEmulator(extra_stats=all_stats)
    gcs.create_bucket(args.bucket)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        env = {
            "LOOKER_BASE_URL": looker.start(),
            "LOGGING_EMULATOR_HOST": logging.start(),
            "SECRET_MANAGER_EMULATOR_HOST": secret_manager.start(),
            "STORAGE_EMULATOR_HOST": gcs.start(),
            "GOOGLE_CLOUD_PROJECT": args.project,
            "LOOKER_CREDENTIALS_SECRET": f"{secret}/versions/latest",
            "STATE_URI": f"gs://{args.bucket}/looker/state.json",
        }
        env["STATS_URL"] = f"{env['STORAGE_EMULATOR_HOST']}/_emulator/stats"
        print(json.dumps(env), flush=True)
        stop.wait()
    finally:
        for emulator in (gcs, secret_manager, logging, looker):
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
