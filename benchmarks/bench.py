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
    python benchmarks/bench.py --deployed           # also the deployed shape: 1M events, 0.167 vCPU, latency, 480 s
    python benchmarks/bench.py --compare main       # every export also with the code of a git ref, alternately

Every N is exported with a ``gs://`` cursor on the GCS emulator and with a local-file one (``--cursors``).
``--deployed`` adds one export shaped like the deployed function: 0.167 vCPU (the share of a 256 MiB
function, https://cloud.google.com/functions/docs/configuring/memory) enforced by a cgroup CPU quota on
the export child where the machine allows one (else it says so and computes the bound from CPU seconds),
the ``--latency`` model in the emulators, a ``gs://`` cursor, ``RUN_BUDGET_SECONDS=480``; it prints how
many events one 480 s run exported.

Results go to ``benchmarks/results/results[-latency].json`` and ``benchmarks/results/bench.png``.
It times nothing in CI: the test suite only runs ``--quick`` to check that it works.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
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
TARGET_EVENTS_PER_SECOND_LOCAL = 20_000
#: The deployed shape: a 256 MiB function has 0.167 vCPU (https://cloud.google.com/functions/docs/configuring/memory)
#: and the default RUN_BUDGET_SECONDS is 480.
DEPLOYED_VCPU = 0.167
DEPLOYED_BUDGET_SECONDS = 480
DEPLOYED_EVENTS = 1_000_000
TARGET_DEPLOYED_EVENTS = 1_000_000
CFS_PERIOD_US = 100_000
CURSORS = ("gs", "local")
#: Minutes the lookback reaches beyond the synthetic span: longer than all the exports against one set of
#: emulators take (at 1M, a gs:// cursor at 2,000 events/s took 500 s before the oldest events fell out).
LOOKBACK_MARGIN_MINUTES = 240


# ------------------------------------------------------------------------------------------ child
def child(profile_to: str | None) -> int:
    """One export in this process, configured by the environment; prints one JSON line."""
    imported_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from looker_audit_export.config import Config
    from looker_audit_export.wiring import build_exporter

    libraries_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    procs = os.environ.get("BENCH_CGROUP_PROCS")
    if procs:  # the instance's start (imports) is not part of a run: the quota applies from here on
        Path(procs).write_text(str(os.getpid()))
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
                emulator_pid: int | None = None, code: Path = ROOT) -> dict[str, Any]:
    """Run one export in a fresh child process (of the exporter in ``code``: this tree, or a ``--compare``
    checkout) and add the emulators' view of it (and their CPU time)."""
    before = read_json(env["STATS_URL"])
    emulator_cpu_before = process_cpu_seconds(emulator_pid)
    command = [sys.executable, str(code / "benchmarks" / "bench.py"), "--child"]
    if profile_to:
        command += ["--profile-to", profile_to]
    done = subprocess.run(command, cwd=code, env={**os.environ, **env}, capture_output=True, text=True,
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


def exporter_env(emulators: dict[str, str], events: int, label: str, batch: int | None,
                 cursor: str = "gs", state_dir: Path | None = None) -> dict[str, str]:
    """The export child's environment: a fresh cursor (``gs://`` on the GCS emulator, or a local file in
    ``state_dir``) so that each run is a backfill of all N events."""
    span = max(60, math.ceil(events / 1_000_000 * 600))
    env = {key: value for key, value in emulators.items()}
    name = f"{label}-{time.time_ns()}.json"
    if cursor == "gs":
        state_uri = f"gs://{BUCKET}/bench/{name}"
    elif state_dir is not None:
        state_uri = str(state_dir / name)
    else:
        raise ValueError("a local cursor needs a state_dir")
    env.update({
        "STATE_URI": state_uri,
        # the data's times are fixed when the emulators start: the margin covers every export made on them
        "INITIAL_LOOKBACK_MINUTES": str(span + END_MINUTES_AGO + LOOKBACK_MARGIN_MINUTES),
        "SETTLE_SECONDS": "0",
        "RUN_BUDGET_SECONDS": "3600",
    })
    if batch is not None:
        env["WRITE_BATCH_ENTRIES"] = str(batch)
    return env


def measure(emulators: dict[str, str], events: int, runs: int, label: str, batch: int | None,
            emulator_pid: int | None = None, cursor: str = "gs", state_dir: Path | None = None,
            code: Path = ROOT) -> dict[str, Any]:
    """``runs`` exports of all ``events``; the median wall time and what each run did."""
    results = []
    for run in range(runs):
        env = exporter_env(emulators, events, f"{label}-{run}", batch, cursor, state_dir)
        result = export_once(env, emulator_pid=emulator_pid, code=code)
        summary = result["summary"]
        complete = summary["caught_up"] and summary["events_written"] == events - summary["held_back_unsettled"]
        if not complete or summary["error"]:
            raise RuntimeError(f"{label} run {run} did not export all {events} events: {summary}")
        results.append(result)
        print(f"  {label} run {run + 1}/{runs}: {summary['events_written']:,} events in "
              f"{result['wall_seconds']:.2f} s, peak RSS {result['peak_rss_kb'] / 1024:.1f} MB, exporter CPU "
              f"{result['cpu_seconds'] * 10_000 / events:.3f} s per 10,000 events", flush=True)
    median_wall = statistics.median(r["wall_seconds"] for r in results)
    first = results[0]["summary"]
    written = first["events_written"]
    write_calls = first["write_calls"]
    return {
        "events": events,
        "cursor": cursor,
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
        "cursor_writes": first["cursor_writes"],
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


# --------------------------------------------------------------------------------- deployed shape
def cpu_quota_group(vcpu: float) -> tuple[Path | None, str]:
    """A new cgroup whose processes get at most ``vcpu`` CPUs: its directory and how it is limited, or None
    and why no quota could be set (cgroup v2 ``cpu.max`` first, then v1 ``cpu.cfs_quota_us``)."""
    quota = round(vcpu * CFS_PERIOD_US)
    name = f"looker-bench-{os.getpid()}-{time.time_ns()}"
    problems: list[str] = []
    try:
        mounts = [line.split()[:4] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError as exc:
        return None, f"no /proc/mounts ({exc.strerror})"
    for kind in ("cgroup2", "cgroup"):
        for _, mount, fstype, options in mounts:
            if fstype != kind or (kind == "cgroup" and "cpu" not in options.split(",")):
                continue
            root, group = Path(mount), Path(mount) / name
            try:
                if kind == "cgroup2":
                    if "cpu" not in (root / "cgroup.controllers").read_text().split():
                        problems.append(f"{mount}: cgroup v2 without the cpu controller")
                        continue
                    if "cpu" not in (root / "cgroup.subtree_control").read_text().split():
                        (root / "cgroup.subtree_control").write_text("+cpu")
                    group.mkdir()
                    (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
                    return group, f"cgroup v2 {group}/cpu.max = {quota} {CFS_PERIOD_US}"
                group.mkdir()
                (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
                return group, f"cgroup v1 {group}: cpu.cfs_quota_us {quota} per cpu.cfs_period_us {CFS_PERIOD_US}"
            except OSError as exc:
                problems.append(f"{mount}: {exc.strerror or exc}")
                if group.exists():
                    group.rmdir()
    return None, "; ".join(problems) or "no cgroup file system with the cpu controller is mounted"


def throttling(group: Path) -> dict[str, int]:
    """The group's ``cpu.stat`` counters (periods, throttled periods and time)."""
    try:
        lines = (group / "cpu.stat").read_text().splitlines()
    except OSError:
        return {}
    return {key: int(value) for key, value in (line.split() for line in lines if len(line.split()) == 2)}


def measure_deployed(events: int, latency: dict[str, float], budget: int, vcpu: float,
                     code: Path = ROOT) -> dict[str, Any]:
    """One export shaped like the deployed function: ``vcpu`` CPUs, the latency model, a ``gs://`` cursor and
    a ``budget`` second run over ``events`` waiting events; how many it exported in that one run."""
    process, emulators = start_emulators(*emulator_args(events, latency))
    group, how = cpu_quota_group(vcpu)
    try:
        print(f"deployed shape, {events:,} events waiting: emulators ready; CPU limit: "
              f"{how if group else 'NONE, ' + how}", flush=True)
        env = exporter_env(emulators, events, "deployed", None)
        env["RUN_BUDGET_SECONDS"] = str(budget)
        if group is not None:
            env["BENCH_CGROUP_PROCS"] = str(group / "cgroup.procs")
        result = export_once(env, emulator_pid=process.pid, code=code)
        throttled = throttling(group) if group is not None else {}
    finally:
        process.terminate()
        process.wait(timeout=60)
        if group is not None:
            group.rmdir()
    summary = result["summary"]
    written, wall, cpu = summary["events_written"], result["wall_seconds"], result["cpu_seconds"]
    found: dict[str, Any] = {
        "events_waiting": events, "vcpu": vcpu, "budget_seconds": budget, "latency": latency,
        "cpu_limit": how if group is not None else None,
        "events_written": written, "wall_seconds": round(wall, 1), "caught_up": summary["caught_up"],
        "events_per_second": round(written / wall, 1) if wall else None,
        "exporter_cpu_seconds": round(cpu, 1), "cpu_share_used": round(cpu / wall, 3) if wall else None,
        "cursor_writes": summary["cursor_writes"], "query_calls": summary["query_calls"],
        "pages": summary["pages"], "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
        "throttled": throttled,
    }
    if group is None:  # not limited: what the CPU share alone would allow, computed and labelled as such
        found["no_cpu_limit_because"] = how
        found["computed_cpu_bound_events_per_run"] = round(budget * vcpu / cpu * written) if cpu else None
    which = "" if code == ROOT else f" ({code.name})"
    print(f"  deployed shape{which}: {written:,} events exported in one {budget} s run ({wall:.1f} s, "
          f"{found['events_per_second']:,} events/s, caught up: {summary['caught_up']}), exporter CPU "
          f"{cpu:.1f} s, peak RSS {found['peak_rss_mb']} MB", flush=True)
    return found


def checkout(ref: str) -> tuple[Path, str]:
    """The tree of git ref ``ref`` of this repository, extracted into a new directory; and its commit."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", f"{ref}^{{commit}}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], check=True,
                             capture_output=True).stdout
    where = Path(tempfile.mkdtemp(prefix=f"bench-{commit}-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where, commit


def mapping_speed(rows: int) -> dict[str, Any]:
    """The pure row-to-entry mapping on its own, over varied synthetic rows with their users: ``event_entry``,
    the serialised entry the export writes (not a message parsed back from it)."""
    from emulators.looker_data import SystemActivity
    from looker_audit_export.entries.events import event_entry
    from looker_audit_export.entries.head import EntryContext
    from looker_audit_export.values import LookerEvent, LookerUser

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
            event_entry(looker_event, context)
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
        for cursor in dict.fromkeys(r.get("cursor", "gs") for r in found["exports"]):
            ours = [r for r in found["exports"] if r.get("cursor", "gs") == cursor]
            marker, where = ("o", "gs:// cursor") if cursor == "gs" else ("^", "local cursor")
            axes.plot([r["events"] for r in ours], [r["events_per_second"] for r in ours], line, marker=marker,
                      color=colour if cursor == "gs" else "tab:purple", label=f"batched export, {where} ({what})")
            for r in ours:
                above = cursor == "gs"  # gs:// labels above their points, local-cursor ones below
                axes.annotate(f"{r['events_per_second']:,.0f}", (r["events"], r["events_per_second"]),
                              textcoords="offset points", xytext=(0, 7) if above else (0, -12),
                              ha="center", fontsize=8)
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
    axes.set_title(f"Looker System Activity to Cloud Logging, against the emulators ({os.cpu_count()} cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    out = results_dir / "bench.png"
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def verdicts(found: dict[str, Any]) -> dict[str, Any]:
    every = found["exports"]
    exports = {(r["events"], r.get("cursor", "gs")): r for r in every}
    checks: dict[str, Any] = {
        "ratio_vs_one_entry_per_call": (found["ratio"], found["ratio"] >= TARGET_RATIO),
        "min_entries_per_call": (min(r["entries_per_call"] for r in every),
                                 all(r["entries_per_call"] >= TARGET_ENTRIES_PER_CALL for r in every)),
        "max_query_calls_per_10k_events": (max(r["query_calls_per_10k_events"] for r in every),
                                           all(r["query_calls_per_10k_events"] <= TARGET_QUERIES_PER_10K
                                               for r in every)),
        "mapping_rows_per_second": (found["mapping"]["rows_per_second"],
                                    found["mapping"]["rows_per_second"] >= TARGET_MAPPING_ROWS_PER_SECOND),
    }
    for cursor, target in (("gs", TARGET_EVENTS_PER_SECOND), ("local", TARGET_EVENTS_PER_SECOND_LOCAL)):
        if (100_000, cursor) in exports:
            eps = exports[100_000, cursor]["events_per_second"]
            checks[f"events_per_second_at_100k_{cursor}_cursor"] = (eps, eps >= target)
    at_1m = [r for r in every if r["events"] == 1_000_000]
    if at_1m:
        peak = max(r["peak_rss_mb"] for r in at_1m)
        checks["peak_rss_mb_at_1m"] = (peak, peak <= TARGET_PEAK_RSS_MB)
        at_100k = [r for r in every if r["events"] == 100_000]
        if at_100k:
            growth = peak / max(r["peak_rss_mb"] for r in at_100k) - 1
            checks["rss_growth_100k_to_1m"] = (round(growth, 3), growth < TARGET_RSS_GROWTH)
    deployed = found.get("deployed")
    if deployed:
        if deployed["cpu_limit"]:
            value = deployed["events_written"]
            checks["events_in_one_480s_run_at_0.167_vcpu"] = (value, value >= TARGET_DEPLOYED_EVENTS)
        else:  # no quota: the bound computed from CPU seconds, never reported as met
            value = min(deployed["events_written"], deployed["computed_cpu_bound_events_per_run"] or 0)
            checks["events_in_one_480s_run_at_0.167_vcpu_COMPUTED_no_quota"] = (value, False)
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
    parser.add_argument("--cursors", default=",".join(CURSORS),
                        help="cursor kinds each N is exported with: gs (GCS emulator), local (a file); %(default)s")
    parser.add_argument("--deployed", action="store_true",
                        help=f"also one export in the deployed shape: {DEPLOYED_VCPU} vCPU, the --latency model, "
                             "a gs:// cursor, one RUN_BUDGET_SECONDS run")
    parser.add_argument("--deployed-events", type=int, default=DEPLOYED_EVENTS,
                        help="with --deployed: events waiting (default %(default)s)")
    parser.add_argument("--deployed-budget", type=int, default=DEPLOYED_BUDGET_SECONDS,
                        help="with --deployed: RUN_BUDGET_SECONDS of its run (default %(default)s)")
    parser.add_argument("--compare", metavar="REF",
                        help="also export with the code of git ref REF (before), alternately with this tree's (after), "
                             "on the same emulators, and print the two side by side")
    parser.add_argument("--profile", type=int, metavar="N", help="also profile one export of N events (cProfile)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and PNG (%(default)s)")
    parser.add_argument("--no-chart", action="store_true", help="write the JSON only")
    return parser


def print_comparison(found: dict[str, Any]) -> None:
    """Before (``--compare REF``) and after (this tree), side by side, with the ratios of this one run."""
    before = found["before"]
    print(f"\nbefore = {before['ref']} ({before['commit']}), after = this tree; exported alternately in this run "
          f"on {found['machine']['cpus']} shared cores:")
    print(f"{'N':>10} {'cursor':>6} {'events/s before':>16} {'after':>8} {'after/before':>12} "
          f"{'CPU/10k before':>15} {'after':>6} {'peak RSS before':>16} {'after':>6}")
    for old, new in zip(before["exports"], found["exports"], strict=True):
        print(f"{new['events']:>10,} {new['cursor']:>6} {old['events_per_second']:>16,.0f} "
              f"{new['events_per_second']:>8,.0f} {new['events_per_second'] / old['events_per_second']:>11.2f}x "
              f"{old['cpu_per_10k_events']['exporter']:>15.3f} {new['cpu_per_10k_events']['exporter']:>6.3f} "
              f"{old['peak_rss_mb']:>16.1f} {new['peak_rss_mb']:>6.1f}")
    old_run, new_run = before["deployed"], found.get("deployed")
    if old_run and new_run:
        print(f"deployed shape ({DEPLOYED_VCPU} vCPU{'' if new_run['cpu_limit'] else ', NOT LIMITED'}, latency, "
              f"one {new_run['budget_seconds']} s run): before {old_run['events_written']:,} events "
              f"({old_run['events_per_second']:,} events/s), after {new_run['events_written']:,} "
              f"({new_run['events_per_second']:,} events/s, "
              f"{new_run['events_per_second'] / old_run['events_per_second']:.2f}x the events a second)"
              f"; peak RSS {old_run['peak_rss_mb']} and {new_run['peak_rss_mb']} MB")


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.child:
        return child(args.profile_to)

    # the ratio compares ours and the baseline at N = 10,000 in the same run: that N is always measured
    sizes = [BASELINE_EVENTS] if args.quick else sorted({BASELINE_EVENTS, *(int(n) for n in args.sizes.split(","))})
    runs = 1 if args.quick else args.runs
    baseline_runs = args.baseline_runs or (1 if args.latency or args.quick else runs)
    latency_model = {"logging_ms": args.logging_latency_ms, "looker_ms": args.looker_latency_ms,
                     "looker_row_us": args.looker_row_latency_us}
    latency = latency_model if args.latency else {"logging_ms": 0.0, "looker_ms": 0.0, "looker_row_us": 0.0}
    cursors = [c for c in args.cursors.split(",") if c]
    if not cursors or set(cursors) - set(CURSORS):
        parser.error(f"--cursors takes a comma-separated list of {', '.join(CURSORS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="bench-cursors-"))
    before_code, before_commit = checkout(args.compare) if args.compare else (None, None)
    before_exports: list[dict[str, Any]] = []
    print(f"machine: {os.cpu_count()} cores (shared with whatever else runs); latency: {latency}; sizes: {sizes}; "
          f"cursors: {cursors}; runs: {runs}; baseline runs: {baseline_runs}", flush=True)

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
            for cursor in cursors:
                if before_code is not None:
                    before_exports.append(measure(emulators, events, runs, f"before-{cursor}-{events}", None,
                                                  process.pid, cursor, state_dir, before_code))
                exports.append(measure(emulators, events, runs, f"ours-{cursor}-{events}", None, process.pid,
                                       cursor, state_dir))
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
    shutil.rmtree(state_dir, ignore_errors=True)
    before_deployed = (measure_deployed(args.deployed_events, latency_model, args.deployed_budget, DEPLOYED_VCPU,
                                        before_code) if args.deployed and before_code is not None else None)
    deployed = (measure_deployed(args.deployed_events, latency_model, args.deployed_budget, DEPLOYED_VCPU)
                if args.deployed else None)
    if before_code is not None:
        shutil.rmtree(before_code, ignore_errors=True)

    ours_10k = next(r for r in exports if r["events"] == BASELINE_EVENTS and r["cursor"] == cursors[0])
    found = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        "latency": latency,
        "mapping": mapping,
        "exports": exports,
        "baseline": baseline,
        "ratio": round(ours_10k["events_per_second"] / baseline["events_per_second"], 1),
    }
    if deployed:
        found["deployed"] = deployed
    if args.compare:
        found["before"] = {"ref": args.compare, "commit": before_commit, "exports": before_exports,
                           "deployed": before_deployed}
    found["targets"] = verdicts(found)
    if profile:
        found["profile_top"] = profile
    name = "results-latency.json" if args.latency else "results.json"
    (args.out / name).write_text(json.dumps(found, indent=2) + "\n")

    print()
    print(f"machine: {os.cpu_count()} cores, shared with whatever else ran meanwhile")
    print(f"{'N':>10} {'cursor':>6} {'wall s':>8} {'events/s':>10} {'writes':>7} {'entries/call':>12} "
          f"{'queries':>8} {'cursor writes':>13} {'MB sent':>8} {'peak RSS MB':>11}")
    rows = [*exports, {**baseline, "events": f"{baseline['events']} (1/call)"}]
    for r in rows:
        print(f"{r['events']!s:>10} {r['cursor']:>6} {r['median_wall_seconds']:>8.2f} {r['events_per_second']:>10,.0f} "
              f"{r['write_calls']:>7,} {r['entries_per_call']:>12,.1f} {r['query_calls']:>8} "
              f"{r['cursor_writes']:>13,} {r['bytes_sent'] / 1e6:>8.1f} {r['peak_rss_mb']:>11.1f}")
    print(f"ratio at N = {BASELINE_EVENTS:,}: {found['ratio']}x the one-entry-per-call baseline")
    for r in rows:
        cpu = r["cpu_per_10k_events"]
        emulators_cpu = "n/a" if cpu["emulators"] is None else f"{cpu['emulators']:.3f} s"
        print(f"CPU per 10,000 events at N = {r['events']} ({r['cursor']} cursor): exporter {cpu['exporter']:.3f} s, "
              f"emulators {emulators_cpu}")
    if deployed:
        limit = deployed["cpu_limit"] or f"NOT LIMITED ({deployed['no_cpu_limit_because']})"
        print(f"deployed shape ({DEPLOYED_VCPU} vCPU: {limit}; latency {latency_model}; gs:// cursor): "
              f"{deployed['events_written']:,} of {deployed['events_waiting']:,} events in one "
              f"{deployed['budget_seconds']} s run ({deployed['wall_seconds']} s, {deployed['events_per_second']:,} "
              f"events/s, caught up: {deployed['caught_up']}; exporter CPU {deployed['exporter_cpu_seconds']} s, "
              f"{deployed['cursor_writes']} cursor writes, peak RSS {deployed['peak_rss_mb']} MB)")
        if not deployed["cpu_limit"]:
            print(f"  COMPUTED, not measured: the CPU seconds used would allow "
                  f"{deployed['computed_cpu_bound_events_per_run']:,} events in {deployed['budget_seconds']} s "
                  f"at {DEPLOYED_VCPU} vCPU")
    if args.compare:
        print_comparison(found)
    print(f"mapping alone: {mapping['rows_per_second']:,.0f} rows/s")
    for check, verdict in found["targets"].items():
        print(f"target {check}: {verdict['value']} {'met' if verdict['met'] else 'NOT MET'}")
    print(f"results: {args.out / name}")
    if not args.no_chart:
        print(f"chart: {chart(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
