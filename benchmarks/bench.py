"""End-to-end export benchmark: the real pipeline against the project's emulators, over their real wires.

For each N, the emulators (``python -m emulators``, their own process) hold N synthetic System Activity
events (about 3 attributes each) that ended 5 minutes ago; each measured export is a fresh child process
(``bench.py --child``) that runs ``build_exporter(Config.from_env(env)).run()`` exactly as the function
does, backfilling all N events, and reports its own peak RSS. The same exporter with
``WRITE_BATCH_ENTRIES=1`` (one entry per Cloud Logging call, the starting example's write pattern) is
the baseline, measured at N = 10,000 against the same emulators.

    python benchmarks/bench.py                      # N = 10k, 100k, 1M; 3 runs each
    python benchmarks/bench.py --latency            # 30 ms per Cloud Logging call, 1 s + 10 us/row per query
    python benchmarks/bench.py --quick              # N = 10k, 1 run: proves the script works
    python benchmarks/bench.py --profile 100000     # also a cProfile of one export of 100k events

Results go to ``benchmarks/results/results[-latency].json`` and ``benchmarks/results/bench.png``.
It times nothing in CI: the test suite only runs ``--quick`` to check that it works.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emulators.harness import read_json, start_emulators  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SIZES = (10_000, 100_000, 1_000_000)
BASELINE_EVENTS = 10_000
END_MINUTES_AGO = 5
BUCKET = "demo-state"
#: Targets of the issue, for the verdicts printed at the end.
TARGET_EVENTS_PER_SECOND = 10_000
TARGET_RATIO = 20
TARGET_ENTRIES_PER_CALL = 500
TARGET_QUERIES_PER_10K = 10
TARGET_PEAK_RSS_MB = 256
TARGET_RSS_GROWTH = 0.20
TARGET_MAPPING_ROWS_PER_SECOND = 30_000


# ------------------------------------------------------------------------------------------ child
def child(profile_to: str | None) -> int:
    """One export in this process, configured by the environment; prints one JSON line."""
    imported_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from looker_audit_export.config import Config
    from looker_audit_export.pipeline import build_exporter

    libraries_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_started = _own_cpu_seconds()
    started = time.perf_counter()
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    summary = build_exporter(Config.from_env(os.environ)).run()
    if profile_to:
        profiler.disable()
        profiler.dump_stats(profile_to)
    wall = time.perf_counter() - started
    print(json.dumps({
        "wall_seconds": wall,
        "cpu_seconds": _own_cpu_seconds() - cpu_started,
        "summary": summary.as_dict(),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_after_imports_kb": libraries_kb,
        "rss_interpreter_kb": imported_kb,
    }))
    return 0


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export_once(env: dict[str, str], *, profile_to: str | None = None,
                emulator_pid: int | None = None) -> dict[str, Any]:
    """Run one export in a fresh child process and add the emulators' view of it (and their CPU time)."""
    before = read_json(env["STATS_URL"])
    emulator_cpu_before = process_cpu_seconds(emulator_pid)
    command = [sys.executable, str(Path(__file__).resolve()), "--child"]
    if profile_to:
        command += ["--profile-to", profile_to]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the export child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    emulator_cpu_after = process_cpu_seconds(emulator_pid)
    after = read_json(env["STATS_URL"])
    logging_before, logging_after = before["logging"], after["logging"]
    looker_before, looker_after = before["looker"], after["looker"]
    assert isinstance(logging_before, dict) and isinstance(logging_after, dict)
    assert isinstance(looker_before, dict) and isinstance(looker_after, dict)
    result["emulators"] = {
        "write_calls": logging_after["write_calls"] - logging_before["write_calls"],
        "entries_received": logging_after["entries_received"] - logging_before["entries_received"],
        "bytes_received": logging_after["bytes_received"] - logging_before["bytes_received"],
        "query_calls": looker_after["query_calls"] - looker_before["query_calls"],
        "rows_returned": looker_after["rows_returned"] - looker_before["rows_returned"],
        "cpu_seconds": (None if emulator_cpu_before is None or emulator_cpu_after is None
                        else round(emulator_cpu_after - emulator_cpu_before, 2)),
    }
    return result


# ----------------------------------------------------------------------------------------- parent
def emulator_args(events: int, latency: dict[str, float]) -> list[str]:
    # about 28 events a second over the span, whole seconds; all inside the 30-day retention
    span = max(60, math.ceil(events / 1_000_000 * 600))
    return ["--events", str(events), "--no-store-entries", "--span-minutes", str(span),
            "--end-minutes-ago", str(END_MINUTES_AGO), "--seed", "1",
            "--logging-latency-ms", str(latency["logging_ms"]), "--looker-latency-ms", str(latency["looker_ms"]),
            "--looker-row-latency-us", str(latency["looker_row_us"])]


def exporter_env(emulators: dict[str, str], events: int, label: str, batch: int | None) -> dict[str, str]:
    span = max(60, math.ceil(events / 1_000_000 * 600))
    env = {key: value for key, value in emulators.items()}
    env.update({
        # a fresh cursor for every run: each run is a backfill of all N events
        "STATE_URI": f"gs://{BUCKET}/bench/{label}-{time.time_ns()}.json",
        "INITIAL_LOOKBACK_MINUTES": str(span + END_MINUTES_AGO + 10),
        "SETTLE_SECONDS": "0",
        "RUN_BUDGET_SECONDS": "3600",
    })
    if batch is not None:
        env["WRITE_BATCH_ENTRIES"] = str(batch)
    return env


def measure(emulators: dict[str, str], events: int, runs: int, label: str, batch: int | None,
            emulator_pid: int | None = None) -> dict[str, Any]:
    """``runs`` exports of all ``events``; the median wall time and what each run did."""
    results = []
    for run in range(runs):
        result = export_once(exporter_env(emulators, events, f"{label}-{run}", batch), emulator_pid=emulator_pid)
        summary = result["summary"]
        complete = summary["caught_up"] and summary["events_written"] == events - summary["held_back_unsettled"]
        if not complete or summary["error"]:
            raise RuntimeError(f"{label} run {run} did not export all {events} events: {summary}")
        results.append(result)
        print(f"  {label} run {run + 1}/{runs}: {summary['events_written']:,} events in "
              f"{result['wall_seconds']:.2f} s, peak RSS {result['peak_rss_kb'] / 1024:.1f} MB", flush=True)
    median_wall = statistics.median(r["wall_seconds"] for r in results)
    first = results[0]["summary"]
    written = first["events_written"]
    write_calls = first["write_calls"]
    return {
        "events": events,
        "runs": runs,
        "write_batch_entries": batch,
        "wall_seconds": [round(r["wall_seconds"], 3) for r in results],
        "median_wall_seconds": round(median_wall, 3),
        "events_per_second": round(written / median_wall, 1),
        "events_written": written,
        "write_calls": write_calls,
        "entries_per_call": round(written / write_calls, 1) if write_calls else None,
        "query_calls": first["query_calls"],
        "query_calls_per_10k_events": round(first["query_calls"] * 10_000 / written, 2) if written else None,
        "pages": first["pages"],
        "bytes_sent": first["bytes_sent"],
        "peak_rss_mb": round(max(r["peak_rss_kb"] for r in results) / 1024, 1),
        "rss_after_imports_mb": round(results[0]["rss_after_imports_kb"] / 1024, 1),
        "emulators": results[0]["emulators"],
        # CPU seconds per 10,000 events (medians of the runs): the export child during run(), and the
        # emulators' process (Looker, Cloud Logging, Secret Manager and GCS under one GIL) meanwhile
        "cpu_per_10k_events": {
            "exporter": round(statistics.median(r["cpu_seconds"] for r in results) * 10_000 / events, 3),
            "emulators": (None if any(r["emulators"]["cpu_seconds"] is None for r in results) else
                          round(statistics.median(r["emulators"]["cpu_seconds"] for r in results)
                                * 10_000 / events, 3)),
        },
    }


def mapping_speed(rows: int) -> dict[str, Any]:
    """The pure row-to-entry mapping on its own, over varied synthetic rows with their users."""
    from emulators.looker_data import SystemActivity
    from looker_audit_export.mapping import EntryContext, LookerEvent, LookerUser, to_log_entry

    data = SystemActivity.synthetic(rows, end=datetime.now(UTC), span=timedelta(minutes=60), seed=1)
    users = {user.id: LookerUser(user.id, user.email, user.name,
                                 tuple(sorted({p for _, perms in user.permission_sets for p in perms})))
             for user in data.users.values()}
    events = []
    for event in data.events_after(-1):
        user = data.users.get(event.user_id) if event.user_id is not None else None
        row = {"event.id": event.id, "event.name": event.name, "event.category": event.category,
               "event.created_time": event.created.strftime("%Y-%m-%d %H:%M:%S"), "event.user_id": event.user_id,
               "event.sudo_user_id": event.sudo_user_id, "event.is_api_call": "Yes" if event.is_api_call else "No",
               "user.email": user.email if user else None, "user.name": user.name if user else None}
        events.append(LookerEvent(row, [(name, value) for _, name, value in event.attributes]))
    context = EntryContext("projects/demo-project/logs/looker_system_activity_logs", "looker.example.com", users,
                           fallback_time=datetime.now(UTC))
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        for looker_event in events:
            to_log_entry(looker_event, context)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    return {"rows": len(events), "rows_per_second": round(len(events) / best, 1),
            "seconds": [round(t, 3) for t in timings]}


def print_profile(path: str, top: int) -> list[str]:
    import io
    import pstats

    lines = []
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(path, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        text = out.getvalue()
        text = text[text.index("   ncalls"):] if "   ncalls" in text else text
        lines.append(f"-- by {order} --\n{text.rstrip()}")
    print("\n".join(lines))
    return lines


def chart(results_dir: Path) -> Path:
    """Events per second against N, ours against the baseline; with the latency run if there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    styles = {"results.json": ("loopback", "-", "tab:blue", "tab:red"),
              "results-latency.json": ("with simulated latency", "--", "tab:green", "tab:orange")}
    for name, (what, line, colour, baseline_colour) in styles.items():
        path = results_dir / name
        if not path.exists():
            continue
        found = json.loads(path.read_text())
        ours = found["exports"]
        axes.plot([r["events"] for r in ours], [r["events_per_second"] for r in ours], line, marker="o",
                  color=colour, label=f"batched export ({what})")
        for r in ours:
            above = line == "-"  # the loopback labels above their points, the latency ones to the left
            axes.annotate(f"{r['events_per_second']:,.0f}", (r["events"], r["events_per_second"]),
                          textcoords="offset points", xytext=(0, 7) if above else (-10, -3),
                          ha="center" if above else "right", fontsize=8)
        base = found["baseline"]
        axes.plot([base["events"]], [base["events_per_second"]], marker="s", linestyle="none",
                  color=baseline_colour,
                  label=f"one entry per write call ({what}): {found['ratio']:.0f}x slower")
        axes.annotate(f"{base['events_per_second']:,.0f}", (base["events"], base["events_per_second"]),
                      textcoords="offset points", xytext=(12, -3), ha="left", fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("events exported (N)")
    axes.set_ylabel("events per second, end to end (median of runs)")
    axes.set_title("Looker System Activity to Cloud Logging, against the emulators (2 cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    out = results_dir / "bench.png"
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def verdicts(found: dict[str, Any]) -> dict[str, Any]:
    exports = {r["events"]: r for r in found["exports"]}
    checks: dict[str, Any] = {
        "ratio_vs_one_entry_per_call": (found["ratio"], found["ratio"] >= TARGET_RATIO),
        "min_entries_per_call": (min(r["entries_per_call"] for r in exports.values()),
                                 all(r["entries_per_call"] >= TARGET_ENTRIES_PER_CALL for r in exports.values())),
        "max_query_calls_per_10k_events": (max(r["query_calls_per_10k_events"] for r in exports.values()),
                                           all(r["query_calls_per_10k_events"] <= TARGET_QUERIES_PER_10K
                                               for r in exports.values())),
        "mapping_rows_per_second": (found["mapping"]["rows_per_second"],
                                    found["mapping"]["rows_per_second"] >= TARGET_MAPPING_ROWS_PER_SECOND),
    }
    if 100_000 in exports:
        eps = exports[100_000]["events_per_second"]
        checks["events_per_second_at_100k"] = (eps, eps >= TARGET_EVENTS_PER_SECOND)
    if 1_000_000 in exports:
        peak = exports[1_000_000]["peak_rss_mb"]
        checks["peak_rss_mb_at_1m"] = (peak, peak < TARGET_PEAK_RSS_MB)
        if 100_000 in exports:
            growth = peak / exports[100_000]["peak_rss_mb"] - 1
            checks["rss_growth_100k_to_1m"] = (round(growth, 3), growth < TARGET_RSS_GROWTH)
    return {name: {"value": value, "met": met} for name, (value, met) in checks.items()}


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated N (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs per N; the median is reported")
    parser.add_argument("--baseline-runs", type=int, default=None,
                        help="runs of the one-entry-per-call baseline (default: --runs, or 1 with --latency)")
    parser.add_argument("--quick", action="store_true", help="N = 10,000 only, one run: proves the script works")
    parser.add_argument("--latency", action="store_true", help="simulate the network latency of the real services")
    parser.add_argument("--logging-latency-ms", type=float, default=30.0, help="with --latency: per write call")
    parser.add_argument("--looker-latency-ms", type=float, default=1000.0, help="with --latency: per Looker query")
    parser.add_argument("--looker-row-latency-us", type=float, default=10.0, help="with --latency: per row returned")
    parser.add_argument("--profile", type=int, metavar="N", help="also profile one export of N events (cProfile)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and PNG (%(default)s)")
    parser.add_argument("--no-chart", action="store_true", help="write the JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.child:
        return child(args.profile_to)

    # the ratio compares ours and the baseline at N = 10,000 in the same run: that N is always measured
    sizes = [BASELINE_EVENTS] if args.quick else sorted({BASELINE_EVENTS, *(int(n) for n in args.sizes.split(","))})
    runs = 1 if args.quick else args.runs
    baseline_runs = args.baseline_runs or (1 if args.latency or args.quick else runs)
    latency = ({"logging_ms": args.logging_latency_ms, "looker_ms": args.looker_latency_ms,
                "looker_row_us": args.looker_row_latency_us} if args.latency else
               {"logging_ms": 0.0, "looker_ms": 0.0, "looker_row_us": 0.0})
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"latency: {latency}; sizes: {sizes}; runs: {runs}; baseline runs: {baseline_runs}", flush=True)

    mapping = mapping_speed(2_000 if args.quick else 50_000)
    print(f"mapping alone: {mapping['rows_per_second']:,.0f} rows/s ({mapping['rows']:,} varied rows, best of 3)",
          flush=True)

    exports: list[dict[str, Any]] = []
    baseline: dict[str, Any] = {}
    profile: list[str] = []
    for events in sizes:
        process, emulators = start_emulators(*emulator_args(events, latency))
        try:
            print(f"N = {events:,}: emulators ready", flush=True)
            exports.append(measure(emulators, events, runs, f"ours-{events}", None, process.pid))
            if events == BASELINE_EVENTS:
                baseline = measure(emulators, events, baseline_runs, f"baseline-{events}", 1, process.pid)
            if args.profile == events:
                path = str(args.out / f"profile-{events}{'-latency' if args.latency else ''}.prof")
                export_once(exporter_env(emulators, events, f"profile-{events}", None), profile_to=path)
                print(f"cProfile of one export of N = {events:,} (in-process time; waits show as I/O):")
                profile = print_profile(path, 25)
        finally:
            process.terminate()
            process.wait(timeout=60)

    ours_10k = next(r for r in exports if r["events"] == BASELINE_EVENTS)
    found = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        "latency": latency,
        "mapping": mapping,
        "exports": exports,
        "baseline": baseline,
        "ratio": round(ours_10k["events_per_second"] / baseline["events_per_second"], 1),
    }
    found["targets"] = verdicts(found)
    if profile:
        found["profile_top"] = profile
    name = "results-latency.json" if args.latency else "results.json"
    (args.out / name).write_text(json.dumps(found, indent=2) + "\n")

    print()
    print(f"{'N':>10} {'wall s':>8} {'events/s':>10} {'writes':>7} {'entries/call':>12} {'queries':>8} "
          f"{'MB sent':>8} {'peak RSS MB':>11}")
    for r in [*exports, {**baseline, "events": f"{baseline['events']} (1/call)"}]:
        print(f"{r['events']!s:>10} {r['median_wall_seconds']:>8.2f} {r['events_per_second']:>10,.0f} "
              f"{r['write_calls']:>7,} {r['entries_per_call']:>12,.1f} {r['query_calls']:>8} "
              f"{r['bytes_sent'] / 1e6:>8.1f} {r['peak_rss_mb']:>11.1f}")
    print(f"ratio at N = {BASELINE_EVENTS:,}: {found['ratio']}x the one-entry-per-call baseline")
    for r in [*exports, {**baseline, "events": f"{baseline['events']} (1/call)"}]:
        cpu = r["cpu_per_10k_events"]
        emulators_cpu = "n/a" if cpu["emulators"] is None else f"{cpu['emulators']:.3f} s"
        print(f"CPU per 10,000 events at N = {r['events']}: exporter {cpu['exporter']:.3f} s, "
              f"emulators {emulators_cpu}")
    print(f"mapping alone: {mapping['rows_per_second']:,.0f} rows/s")
    for check, verdict in found["targets"].items():
        print(f"target {check}: {verdict['value']} {'met' if verdict['met'] else 'NOT MET'}")
    print(f"results: {args.out / name}")
    if not args.no_chart:
        print(f"chart: {chart(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
