"""Draw the layout of the Terraform stack's Cloud Monitoring dashboard as a PNG (docs/dashboard.png).

The layout is local.dashboard (dashboard_layout.tf of terraform/modules/looker_audit_export/), evaluated with
`terraform console` on the locals-only files for a tfvars file (no provider, no cloud account), or read from a
JSON file (`terraform output`-free: any dashboard JSON of the Cloud Monitoring API). Each tile is drawn where the
mosaic layout puts it, with its title, what it reads and a glyph of its chart type; the glyphs show the
kind of chart, not data.

    python scripts/draw_dashboard.py                                   # example tfvars -> docs/dashboard.png
    python scripts/draw_dashboard.py --tfvars terraform/terraform.tfvars -o /tmp/mine.png
    python scripts/draw_dashboard.py --json dashboard.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "terraform" / "modules" / "looker_audit_export"

#: The files `terraform console` needs to evaluate local.dashboard: variables and locals only.
LOCALS_ONLY = ("variables.tf", "instances.tf", "signals.tf", "health.tf", "dashboard_layout.tf")


def console(expression: str, tfvars: str, workdir: Path, terraform: str = "terraform") -> Any:
    """Evaluate a Terraform expression over the locals-only files with these tfvars; raise ValueError on errors."""
    for name in LOCALS_ONLY:
        shutil.copy(TF / name, workdir / name)
    (workdir / "input.tfvars").write_text(tfvars)
    result = subprocess.run(
        [terraform, "console", "-var-file=input.tfvars"],
        input=f"jsonencode({expression})\n",
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1"),
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(re.sub(r"\x1b\[[0-9;]*m", "", result.stderr))
    return json.loads(json.loads(result.stdout.strip().splitlines()[-1]))


def describe(widget: dict[str, Any]) -> tuple[str, str]:
    """(chart kind, one line on what the tile reads) of a dashboard widget."""
    if "text" in widget:
        return "text", widget["text"].get("content", "")
    if "scorecard" in widget:
        return "scorecard", _query_line(widget["scorecard"]["timeSeriesQuery"])
    if "xyChart" in widget:
        data_set = widget["xyChart"]["dataSets"][0]
        return data_set.get("plotType", "LINE"), _query_line(data_set["timeSeriesQuery"])
    return "other", ""


def _query_line(query: dict[str, Any]) -> str:
    if "prometheusQuery" in query:
        promql = query["prometheusQuery"]
        return re.sub(r'\{"[^"]*/([^"/]+)"[^}]*\}', r"\1", promql)  # the metric's short name, no selector
    series = query["timeSeriesFilter"]
    metric = re.search(r'metric\.type="[^"]*/([^"/]+)"', series["filter"])
    agg = series.get("aggregation", {})
    by = ", ".join(f.rsplit(".", 1)[-1] for f in agg.get("groupByFields", []))
    aligner = agg.get("perSeriesAligner", "").removeprefix("ALIGN_").lower()
    period = agg.get("alignmentPeriod", "")
    return f"{metric.group(1) if metric else '?'}: {aligner} per {period}" + (f", by {by}" if by else "")


def draw(dashboard: dict[str, Any], out: Path, note: str) -> None:
    """Draw the mosaic layout of a dashboard to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    layout = dashboard["mosaicLayout"]
    columns = layout["columns"]
    tiles = layout["tiles"]
    rows = max(t["yPos"] + t["height"] for t in tiles)
    unit = 0.3  # inches per grid cell
    fig = plt.figure(figsize=(columns * unit, rows * unit * 0.62 + 1.2), dpi=100)
    ax = fig.add_axes((0.01, 0.06, 0.98, 0.88))
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    fig.suptitle(dashboard.get("displayName", "dashboard"), fontsize=15, fontweight="bold")
    fig.text(0.01, 0.015, note, fontsize=8, color="#555555")

    for tile in tiles:
        x, y, w, h = tile["xPos"], tile["yPos"], tile["width"], tile["height"]
        widget = tile["widget"]
        kind, detail = describe(widget)
        header = kind == "text"
        ax.add_patch(Rectangle((x + 0.2, y + 0.2), w - 0.4, h - 0.4, facecolor="#e8eef7" if header else "white",
                               edgecolor="#7a8ba6", linewidth=1.2))
        title = "\n".join(textwrap.wrap(widget.get("title", ""), width=int(w * 2.2)))
        ax.text(x + 0.8, y + 1.0, title, fontsize=11 if header else 9, fontweight="bold", va="top")
        ax.text(x + 0.8, y + (2.2 if header else 2.0 + 1.1 * title.count("\n")),
                "\n".join(textwrap.wrap(detail, width=int(w * 2.6))), fontsize=7.5, color="#333333", va="top")
        if not header:
            _glyph(ax, kind, x + 1.5, y + h * 0.45, w - 3.0, h * 0.45, widget)
    fig.savefig(out)
    plt.close(fig)


def _glyph(ax: Any, kind: str, x: float, y: float, w: float, h: float, widget: dict[str, Any]) -> None:
    """A grey sketch of the chart type inside (x, y, w, h); thresholds as a dashed red line."""
    grey = "#9aa7b8"
    bottom = y + h
    if kind == "scorecard":
        ax.text(x + w / 2, y + h / 2, "Σ  n", fontsize=22, color=grey, ha="center", va="center")
        return
    ax.plot([x, x + w], [bottom, bottom], color=grey, linewidth=0.8)
    shape = [0.35, 0.5, 0.3, 0.65, 0.45, 0.55, 0.4, 0.7, 0.5, 0.6]
    if kind == "STACKED_BAR":
        step = w / len(shape)
        for i, v in enumerate(shape):
            ax.add_patch(_bar(x + i * step + step * 0.15, bottom, step * 0.7, h * v * 0.6, "#b8c4d6"))
            ax.add_patch(_bar(x + i * step + step * 0.15, bottom - h * v * 0.6, step * 0.7, h * v * 0.3, "#d6deea"))
    else:
        xs = [x + i * w / (len(shape) - 1) for i in range(len(shape))]
        ax.plot(xs, [bottom - h * v * 0.8 for v in shape], color=grey, linewidth=1.5)
    for threshold in widget.get("xyChart", {}).get("thresholds", []):
        level = bottom - h * 0.9
        ax.plot([x, x + w], [level, level], color="#c0392b", linestyle="--", linewidth=1)
        ax.text(x + w, level - 0.2, f"{threshold.get('label', '')} ({threshold['value']:g})", fontsize=7,
                color="#c0392b", ha="right", va="bottom")


def _bar(x: float, bottom: float, width: float, height: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, bottom - height), width, height, facecolor=color, edgecolor="none")


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tfvars", type=Path, default=ROOT / "terraform" / "terraform.tfvars.example",
                        help="evaluate local.dashboard for this tfvars file (default: the example)")
    source.add_argument("--json", type=Path, help="draw this dashboard JSON instead")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)

    if args.json:
        dashboard = json.loads(args.json.read_text())
        note = f"Drawn from {args.json.name}."
    else:
        terraform = shutil.which("terraform")
        if terraform is None:
            print("draw_dashboard: no terraform binary on PATH (or pass --json)", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as workdir:
            try:
                dashboard = console("local.dashboard", args.tfvars.read_text(), Path(workdir), terraform)
            except ValueError as err:
                print(f"draw_dashboard: terraform console failed:\n{err}", file=sys.stderr)
                return 1
        shown = args.tfvars.relative_to(ROOT) if args.tfvars.is_relative_to(ROOT) else args.tfvars
        note = (f"Layout of local.dashboard (the module's dashboard_layout.tf) for {shown}, drawn by "
                "scripts/draw_dashboard.py. Glyphs show each chart's type, not data.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw(dashboard, args.out, note)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
