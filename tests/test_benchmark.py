"""The benchmark script works (quick mode, N = 10,000, one run per cursor kind, a small export in the deployed
shape, each also with the committed code for comparison). Nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_exports_every_event_and_writes_its_results(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(tmp_path),
                           "--deployed", "--deployed-events", "3000", "--deployed-budget", "60", "--compare", "HEAD"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert {"generated_at", "machine", "latency", "mapping", "exports", "baseline", "ratio", "targets"} <= found.keys()
    ours, local = found["exports"]
    assert (ours["cursor"], local["cursor"]) == ("gs", "local")
    baseline = found["baseline"]
    for result in (ours, local, baseline):
        assert result["events"] == result["events_written"] == 10_000
        assert {"median_wall_seconds", "events_per_second", "write_calls", "entries_per_call", "query_calls",
                "bytes_sent", "peak_rss_mb"} <= result.keys()
        assert result["emulators"]["entries_received"] == 10_000
        assert result["bytes_sent"] > 0 and result["peak_rss_mb"] > 0
    assert baseline["write_calls"] == 10_000 and baseline["entries_per_call"] == 1
    assert ours["write_calls"] < baseline["write_calls"]
    assert found["ratio"] > 0 and found["mapping"]["rows_per_second"] > 0
    assert "ratio at N = 10,000" in done.stdout
    deployed = found["deployed"]  # every waiting event in one run, at the deployed CPU share if a quota could be set
    assert deployed["events_written"] == deployed["events_waiting"] == 3000 and deployed["caught_up"]
    assert deployed["vcpu"] == 0.167 and deployed["latency"]["looker_ms"] == 1000
    if deployed["cpu_limit"]:
        assert deployed["throttled"].get("nr_periods", 0) > 0
    else:
        assert deployed["no_cpu_limit_because"] and "COMPUTED, not measured" in done.stdout
    assert "in one 60 s run" in done.stdout
    before = found["before"]  # --compare: the same exports with the code of a git ref, side by side
    assert [r["cursor"] for r in before["exports"]] == ["gs", "local"] and before["commit"]
    assert all(r["events_written"] == 10_000 for r in before["exports"])
    assert before["deployed"]["events_written"] == 3000
    assert "after/before" in done.stdout
