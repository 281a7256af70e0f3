"""End-to-end demo on the local emulators: one Pub/Sub tick through functions-framework.

Run it with ``scripts/demo.sh`` (which installs everything first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# gRPC's C core logs connection events (e.g. "chttp2_transport.cc ... Got goaway") at INFO through absl;
# set before grpc loads, here and in the emulators and function started below, it logs errors only.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("GLOG_minloglevel", "2")

import grpc
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.services.logging_service_v2.transports import (
    LoggingServiceV2GrpcTransport,
)
from google.protobuf import json_format

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emulators.harness import deliver_pubsub_event, free_port, read_json, start_emulators, start_function


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=12_000, help="synthetic System Activity events")
    parser.add_argument("--show", type=int, default=3, help="entries to print as JSON")
    return parser


def run_summary(log: Path) -> dict[str, Any] | None:
    """The ``summary`` of the function's ``Looker export finished`` (or ``failed``) log line."""
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"summary"' in line:
            return dict(json.loads(line)["summary"])
    return None


def in_words(summary: dict[str, Any]) -> str:
    """What the run did, for a person: read, written, and why some events wait for the next run."""
    read, written, held = summary["events_read"], summary["events_written"], summary["held_back_unsettled"]
    text = f"The run read {read:,} events from Looker and wrote {written:,} log entries to Cloud Logging."
    if held:
        text += (f" The {held:,} newest events were left for the next run: they are younger than SETTLE_SECONDS "
                 "(60 s by default), and Looker may still be writing their details. The cursor stays before them, "
                 "so the next tick (every 10 minutes when deployed) exports them once they have settled; nothing "
                 "is lost.")
    return text


def main() -> int:
    parser = arguments()
    args = parser.parse_args()

    print(f"Starting the local emulators (Looker API with {args.events:,} synthetic System Activity events over the "
          "last hour, Cloud Logging, Secret Manager, Cloud Storage) and the function under functions-framework ...",
          flush=True)
    emulators, env = start_emulators("--events", str(args.events), "--span-minutes", "60")
    state_dir = tempfile.mkdtemp(prefix="looker-export-demo-")
    function_env = {key: value for key, value in env.items() if key != "STATS_URL"}
    function_env.update(INITIAL_LOOKBACK_MINUTES="120", STATE_URI=env.get("STATE_URI") or f"{state_dir}/state.json")
    port = free_port()
    function_log = Path(state_dir) / "function.log"
    with function_log.open("w") as sink:
        function = start_function(function_env, port, stdout=sink)
    try:
        print(f"Delivering one Pub/Sub tick to http://127.0.0.1:{port}/ ...", flush=True)
        status = deliver_pubsub_event(f"http://127.0.0.1:{port}/", env["GOOGLE_CLOUD_PROJECT"], "looker-export-tick")
        print(f"The function answered HTTP {status} ({'done' if status == 200 else 'Pub/Sub would redeliver'}); "
              f"its log lines are in {function_log}")
        summary = run_summary(function_log)
        if summary is not None:
            print("Run summary:", json.dumps(summary))
            print(in_words(summary))
        stats = read_json(env["STATS_URL"])
        print("Emulator counters:", json.dumps(stats, indent=2))
        stored = dict(stats["logging"])  # type: ignore[call-overload]
        print(f"Cloud Logging stored {stored['entries_stored']:,} entries, {stored['duplicates_stored']:,} of them "
              "a second copy (same insertId and timestamp: hidden in Logs Explorer, but exported and billed)")
        client = LoggingServiceV2Client(
            transport=LoggingServiceV2GrpcTransport(channel=grpc.insecure_channel(env["LOGGING_EMULATOR_HOST"])))
        log_name = f"projects/{env['GOOGLE_CLOUD_PROJECT']}/logs/looker_system_activity_logs"
        pager = client.list_log_entries(request={"resource_names": [f"projects/{env['GOOGLE_CLOUD_PROJECT']}"],
                                                 "filter": f'logName="{log_name}"', "page_size": args.show})
        print(f"First {args.show} entries in {log_name}:")
        for index, entry in enumerate(pager):
            if index >= args.show:
                break
            print(json.dumps(json_format.MessageToDict(type(entry).pb(entry)), indent=2, ensure_ascii=False))
        return 0 if status == 200 else 1
    finally:
        function.terminate()
        emulators.terminate()
        function.wait(10)
        emulators.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())
