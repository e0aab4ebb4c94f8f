"""Sweep reports: results.csv (every metric), results.md (the table metrics), results.png (the plot)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from seaice_jax import fileio
from seaice_jax.sweep.grid import SweepPoint, flatten_nested

DEFAULT_TABLE_METRICS = ("methods.als.pixel_accuracy", "methods.als.polygon_mae", "methods.als.ice_f1",
                         "methods.als.lead_iou", "challenge.combined")


def metric_value(pooled: Mapping | None, path: str) -> float | None:
    """pooled['methods']['als']['ice_f1'] for 'methods.als.ice_f1'; None when absent."""
    node: Any = pooled
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node is None else float(node)


def _all_metric_paths(rows: Sequence[dict]) -> list[str]:
    paths: list[str] = []
    for row in rows:
        if row.get("pooled"):
            for p in flatten_nested(row["pooled"]):
                if p not in paths:
                    paths.append(p)
    return paths


def results_table(rows: Sequence[dict], points: Sequence[SweepPoint]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of results.csv: name, status, one column per grid path, seconds, every pooled
    metric, error."""
    axes = list(points[0].overrides)
    metrics = _all_metric_paths(rows)
    header = ["name", "status"] + axes + ["seconds"] + metrics + ["error"]
    table = []
    for row in rows:
        seconds = row.get("seconds")
        table.append([row["name"], row["status"]] + [row["labels"].get(a, "") for a in axes]
                     + [None if seconds is None else round(float(seconds), 1)]
                     + [metric_value(row.get("pooled"), m) for m in metrics] + [row.get("error", "")])
    return header, table


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_results_markdown(rows: Sequence[dict], points: Sequence[SweepPoint], metrics: Sequence[str]) -> str:
    axes = list(points[0].overrides)
    header = ["point", "status"] + axes + list(metrics) + ["seconds", "error"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * (2 + len(axes)) + "---:|" * (len(metrics) + 1) + "---|"]
    for row in rows:
        seconds = row.get("seconds")
        cells = ([row["name"], row["status"]] + [row["labels"].get(a, "") for a in axes]
                 + [_fmt(metric_value(row.get("pooled"), m)) for m in metrics]
                 + ["n/a" if seconds is None else f"{float(seconds):.0f}", row.get("error", "").replace("|", "/")])
        lines.append("| " + " | ".join(cells) + " |")
    failed = sum(r["status"] != "ok" for r in rows)
    lines += ["", f"{len(rows) - failed} of {len(rows)} point(s) finished, {failed} failed."]
    return "\n".join(lines) + "\n"


def plot_results(rows: Sequence[dict], points: Sequence[SweepPoint], metrics: Sequence[str], path: str) -> None:
    """Grouped bars, one panel per metric: groups = the first grid axis, bars = the other axes."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    axes = list(points[0].overrides)
    first, rest = axes[0], axes[1:]
    groups = list(dict.fromkeys(p.labels[first] for p in points))
    hues = list(dict.fromkeys(",".join(p.labels[a] for a in rest) for p in points))
    by_key = {(r["labels"][first], ",".join(r["labels"][a] for a in rest)): r for r in rows}
    fig = Figure(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(hues)) / 2 + 2), 3.2 * len(metrics)))
    FigureCanvasAgg(fig)
    width = 0.8 / max(1, len(hues))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, i + 1)
        for j, hue in enumerate(hues):
            values = [metric_value(by_key.get((g, hue), {}).get("pooled"), metric) for g in groups]
            heights = np.array([np.nan if v is None else v for v in values], float)
            bars = ax.bar(np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width, heights, width,
                          label=hue or None)
            ax.bar_label(bars, fmt="%.3f", fontsize="x-small")
        ax.set_xticks(np.arange(len(groups)), [f"{points[0].keys.get(first, first)}={g}" for g in groups])
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
        if rest and i == 0:
            ax.legend(title=",".join(points[0].keys.get(a, a) for a in rest), fontsize="small")
    fig.tight_layout()
    fileio.save_figure(fig, path)


def write_reports(rows: Sequence[dict], points: Sequence[SweepPoint], sweep: ml_collections.ConfigDict,
                  workdir: str) -> None:
    """results.csv (every metric), results.md (the table metrics) and results.png (the plot metrics)."""
    e = sweep.eval
    table_metrics = list(e.get("table_metrics", None) or DEFAULT_TABLE_METRICS)
    plot_metrics = list(e.get("plot_metrics", None) or table_metrics[:1])
    header, table = results_table(rows, points)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in r] for r in table])
    fileio.write_text(os.path.join(workdir, "results.csv"), buf.getvalue())
    fileio.write_text(os.path.join(workdir, "results.md"), format_results_markdown(rows, points, table_metrics))
    plot_results(rows, points, plot_metrics, os.path.join(workdir, "results.png"))
