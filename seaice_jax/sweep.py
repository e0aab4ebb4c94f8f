"""Hyper-parameter sweeps: a grid of config overrides, each point trained, predicted and evaluated.

    python launch/sweep.py --config configs/aspp_sweep.py --workdir runs/aspp [--devices-per-run N]

A sweep config (`get_config(arg)`) holds
  base          a full training config (seaice_jax.config.base_config() and changes)
  grid          nested like the config, leaves = lists of values, crossed: {'model': {'aspp_rates':
                [[], [6, 12, 18]]}} gives the override path 'model.aspp_rates' (plain dicts may also
                use dotted keys)
  order         (optional) dotted paths in the order they name points and group the plot
  short_names   (optional) nested like grid, leaves = the key used in point names ('aspp')
  value_labels  (optional) nested like grid, leaves = one label per value ('sar', 'sar+amsr2')
  eval          held-out scenes: `scenes` (files or folders) or, when empty, `num_scenes` synthetic
                scenes of `size` from `seed` (a seed the training set does not use); `table_metrics`
                and `plot_metrics`: dotted paths into the pooled evaluation ('methods.als.ice_f1')

Layout of the sweep folder:
  data/                 the shared synthetic training set (synthesized + converted once)
  heldout/              the held-out scenes (when synthesized)
  points/<name>/        one training workdir per point: config.json, point.json, log.txt,
                        checkpoints/, predictions/, eval.json, eval.md, results.json (= finished)
  jax_cache/             persistent compilation cache shared by the points (unless
                        JAX_COMPILATION_CACHE_DIR is set)
  results.csv, results.md, results.png

Each point runs in its own process (`python -m seaice_jax.sweep POINT_DIR`), so points can be
placed on accelerators: with `devices_per_run` N on a host of D GPUs / TPU chips, D // N points run
at once, each seeing only its own devices (CUDA_VISIBLE_DEVICES / TPU_VISIBLE_CHIPS). On CPU the
points run one after another (CPU "devices" share the same cores). The parent never initialises a
JAX backend (it would hold accelerator memory the children need); devices are counted in a
short-lived child process.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from seaice_jax import fileio

RESULTS_JSON = "results.json"
POINT_JSON = "point.json"
CONFIG_JSON = "config.json"
LOG_TXT = "log.txt"
# Fields that shape the shared shards: a point may not change them.
SHARD_FIELDS = ("data.shards", "data.patch_size", "data.stride", "data.downsample", "data.max_regions",
                "data.synthetic")
DEFAULT_TABLE_METRICS = ("methods.als.pixel_accuracy", "methods.als.polygon_mae", "methods.als.ice_f1",
                         "methods.als.lead_iou", "challenge.combined")
POLL_SECONDS = 0.2


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One grid point: `overrides` {dotted path: value}, `labels` {dotted path: label in the name},
    `keys` {dotted path: short key in the name}."""

    name: str
    overrides: dict[str, Any]
    labels: dict[str, str]
    keys: dict[str, str] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The grid.


def flatten_nested(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """{'model': {'aspp_rates': v}} -> {'model.aspp_rates': v}; leaves are the non-mapping values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, (Mapping, ml_collections.ConfigDict)):
            flat.update(flatten_nested(value, path + "."))
        else:
            flat[path] = value
    return flat


def value_label(value: Any) -> str:
    """A short label for a grid value: [6, 12, 18] -> '6-12-18', [] -> 'none', 'a' -> 'a'."""
    if isinstance(value, (list, tuple)):
        return "-".join(value_label(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _safe_name(text: str) -> str:
    """Keeps names usable as folder names on every file system."""
    return re.sub(r"[^A-Za-z0-9._+=,-]", "_", text)


def grid_points(
    grid: Mapping,
    *,
    order: Sequence[str] = (),
    short_names: Mapping | None = None,
    value_labels: Mapping | None = None,
) -> list[SweepPoint]:
    """The crossed grid, first axis slowest. Point names read like 'aspp=6-12-18,inputs=sar+amsr2'."""
    axes = flatten_nested(grid)
    if not axes:
        raise ValueError("sweep grid is empty")
    paths = list(order) + sorted(p for p in axes if p not in order)
    unknown = [p for p in order if p not in axes]
    if unknown:
        raise ValueError(f"sweep order names {unknown}, which are not grid paths {sorted(axes)}")
    keys = {p: p.split(".")[-1] for p in paths} | flatten_nested(short_names or {})
    labels = flatten_nested(value_labels or {})
    for path in paths:
        values = axes[path]
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"sweep grid {path}: expected a non-empty list of values, got {values!r}")
        if path in labels and len(labels[path]) != len(values):
            raise ValueError(f"sweep value_labels {path}: {len(labels[path])} labels for {len(values)} values")
    points = []
    for combo in itertools.product(*(range(len(axes[p])) for p in paths)):
        overrides = {p: axes[p][i] for p, i in zip(paths, combo)}
        point_labels = {p: str(labels[p][i]) if p in labels else value_label(axes[p][i]) for p, i in zip(paths, combo)}
        name = _safe_name(",".join(f"{keys[p]}={point_labels[p]}" for p in paths))
        points.append(SweepPoint(name, overrides, point_labels, {p: keys[p] for p in paths}))
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep point names collide ({names}); give value_labels")
    return points


def apply_overrides(base: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A copy of `base` with each dotted path set; an unknown path or a wrong type raises one line."""
    config = copy.deepcopy(base)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            if part not in node:
                raise KeyError(f"override {path}: config has no field {part!r}")
            node = node[part]
        if leaf not in node:
            raise KeyError(f"override {path}: config has no field {leaf!r}")
        try:
            node[leaf] = list(value) if isinstance(value, tuple) else value
        except TypeError as e:
            raise TypeError(f"override {path}={value!r}: {e}") from None
    return config


def check_grid_keeps_shards(points: Sequence[SweepPoint]) -> None:
    """Every point shares one shard folder, so the grid may not vary what shapes the shards."""
    for path in points[0].overrides:
        if any(path == f or path.startswith(f + ".") for f in SHARD_FIELDS):
            raise ValueError(f"sweep grid may not override {path}: all points share one set of training shards")


# ---------------------------------------------------------------------------------------------
# Shared data (no JAX backend is initialised here).


def shared_data_paths(base: ml_collections.ConfigDict, workdir: str) -> tuple[str, list[str]]:
    """(shard folder, in-training validation scenes) every point trains on; see prepare_training_data."""
    d = base.data
    if d.shards:
        return os.path.abspath(d.shards), [os.path.abspath(p) for p in d.val_scenes]
    return os.path.join(os.path.abspath(workdir), "data", "shards"), []


def prepare_training_data(base: ml_collections.ConfigDict, workdir: str) -> tuple[str, list[str]]:
    """(shard folder, validation scenes) shared by every point.

    With `base.data.shards` set, those shards (and base.data.val_scenes). Otherwise the synthetic
    training scenes of `base.data.synthetic` are written once into workdir/data and converted, as
    train.prepare_data would for one run; no in-training validation scenes (the held-out evaluation
    after training replaces it and costs one pass instead of one per eval step).
    """
    d = base.data
    if d.shards:
        return shared_data_paths(base, workdir)
    from seaice_jax.data import channels as ch
    from seaice_jax.data import synthetic
    from seaice_jax.data.shards import PatchSpec, convert_scenes

    s = d.synthetic
    scene_dir = os.path.join(workdir, "data", "train_scenes")
    shard_dir = os.path.join(workdir, "data", "shards")
    if _count_scenes(scene_dir) < s.train_scenes:
        os.makedirs(scene_dir, exist_ok=True)
        synthetic.write_synthetic_scenes(scene_dir, s.train_scenes, s.product, s.season, tuple(s.size), s.seed)
    spec = PatchSpec(d.patch_size, d.stride, d.downsample, d.max_regions, ch.ALL_CHANNELS)
    _, errors = convert_scenes([scene_dir], shard_dir, spec, workers=1, progress=False)
    if errors:
        raise RuntimeError("; ".join(errors))
    return shared_data_paths(base, workdir)


def _count_scenes(folder: str) -> int:
    if not os.path.isdir(folder):
        return 0
    return len([f for f in os.listdir(folder) if f.endswith(".nc") and not f.endswith("_pred.nc")])


def heldout_scenes(sweep: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """The held-out scene files: `eval.scenes` if given, else synthesized once into workdir/heldout."""
    from seaice_jax.data.scene import list_scene_files

    e = sweep.eval
    if e.scenes:
        return [os.path.abspath(p) for p in list_scene_files(list(e.scenes))]
    s = sweep.base.data.synthetic
    if not sweep.base.data.shards and e.seed in (s.seed, s.seed + 10_000):
        raise ValueError(f"sweep eval.seed {e.seed} is a seed of the training / validation scenes; pick another")
    folder = os.path.join(workdir, "heldout")
    if _count_scenes(folder) < e.num_scenes:
        from seaice_jax.data import synthetic

        os.makedirs(folder, exist_ok=True)
        synthetic.write_synthetic_scenes(folder, e.num_scenes, e.get("product", s.product),
                                         e.get("season", s.season), tuple(e.size), e.seed)
    return [os.path.abspath(p) for p in list_scene_files([folder])]


def point_config(base: ml_collections.ConfigDict, point: SweepPoint, shards: str,
                 val_scenes: Sequence[str]) -> ml_collections.ConfigDict:
    config = apply_overrides(base, point.overrides)
    config.data.shards = shards
    config.data.val_scenes = list(val_scenes)
    return config


# ---------------------------------------------------------------------------------------------
# Devices.


def detect_devices(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(platform, local device count) as a child process sees them ('cpu' | 'gpu' | 'tpu', n)."""
    code = "import jax; d = jax.local_devices(); print(d[0].platform, len(d))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(env if env is not None else os.environ), check=False)
    if out.returncode:
        raise RuntimeError(f"could not count devices: {out.stderr.strip().splitlines()[-1:]}")
    platform, count = out.stdout.split()[-2:]
    return ("gpu" if platform in ("cuda", "rocm") else platform), int(count)


def _tpu_chip_bounds(chips: int) -> str:
    """TPU_CHIPS_PER_PROCESS_BOUNDS of a sub-slice of `chips` chips on one host."""
    bounds = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1", 8: "2,4,1"}
    if chips not in bounds:
        raise ValueError(f"--devices-per-run {chips} on TPU: use 1, 2, 4 or 8 chips")
    return bounds[chips]


def device_slots(platform: str, count: int, devices_per_run: int, max_parallel: int = 0,
                 env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Environment additions of each parallel slot; one empty slot = one point at a time, all devices.

    GPU: CUDA_VISIBLE_DEVICES (and HIP_VISIBLE_DEVICES for ROCm) per slot, as indices into the
    parent's own CUDA_VISIBLE_DEVICES when that is set. TPU: TPU_VISIBLE_CHIPS (TPU_VISIBLE_DEVICES on
    older libtpu) with a one-process sub-slice topology and a port per slot; assumes one JAX device
    per chip (v4, v5e, v6e; on v2/v3 pass chips, not cores).
    """
    env = os.environ if env is None else env
    if devices_per_run <= 0 or platform == "cpu":
        return [{}]
    if devices_per_run > count:
        raise ValueError(f"--devices-per-run {devices_per_run} but this host has {count} {platform} device(s)")
    n_slots = count // devices_per_run
    if max_parallel > 0:
        n_slots = min(n_slots, max_parallel)
    physical = [x for x in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()] if platform == "gpu" else []
    slots = []
    for k in range(n_slots):
        ids = list(range(k * devices_per_run, (k + 1) * devices_per_run))
        if platform == "gpu":
            names = ",".join(physical[i] if physical else str(i) for i in ids)
            slots.append({"CUDA_VISIBLE_DEVICES": names, "HIP_VISIBLE_DEVICES": names})
        elif platform == "tpu":
            names = ",".join(str(i) for i in ids)
            port = str(8476 + k)
            slots.append({"TPU_VISIBLE_CHIPS": names, "TPU_VISIBLE_DEVICES": names,
                          "TPU_CHIPS_PER_PROCESS_BOUNDS": _tpu_chip_bounds(devices_per_run),
                          "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_PROCESS_PORT": port,
                          "TPU_MESH_CONTROLLER_ADDRESS": f"localhost:{port}", "TPU_MESH_CONTROLLER_PORT": port})
        else:
            raise ValueError(f"--devices-per-run: no device selection known for platform {platform!r}")
    return slots


# ---------------------------------------------------------------------------------------------
# One point (runs in the child process).


def _finite_or_none(tree: Any) -> Any:
    """JSON-safe copy: NaN / inf become None, numpy scalars become Python numbers."""
    if isinstance(tree, Mapping):
        return {str(k): _finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_finite_or_none(v) for v in tree]
    if hasattr(tree, "item") and not isinstance(tree, (str, bytes)):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def run_point(point_dir: str) -> dict:
    """Train (resuming), predict the held-out scenes, evaluate; writes results.json last."""
    from seaice_jax.evaluation import evaluate_predictions, format_markdown, write_json
    from seaice_jax.inference import predict_files
    from seaice_jax.train import load_config, train_and_evaluate

    with open(os.path.join(point_dir, POINT_JSON)) as f:
        point = json.load(f)
    config = load_config(point_dir)
    start = time.perf_counter()
    final = train_and_evaluate(config, point_dir)
    pred_dir = os.path.join(point_dir, "predictions")
    predict_files(point_dir, point["heldout"], pred_dir)
    evaluation = evaluate_predictions(pred_dir, point["heldout"], min_region_pixels=config.eval.min_region_pixels)
    write_json(_finite_or_none(evaluation), os.path.join(point_dir, "eval.json"))
    _write_text(os.path.join(point_dir, "eval.md"), format_markdown(evaluation))
    result = {
        "name": point["name"],
        "labels": point["labels"],
        "status": "ok",
        "seconds": time.perf_counter() - start,
        "train": final,
        "pooled": evaluation["pooled"],
    }
    write_json(_finite_or_none(result), os.path.join(point_dir, RESULTS_JSON))
    return result


def point_main(argv: Sequence[str]) -> int:
    """`python -m seaice_jax.sweep POINT_DIR`: the last line printed on failure is 'error: ...'."""
    if len(argv) != 1:
        print("usage: python -m seaice_jax.sweep POINT_DIR", file=sys.stderr)
        return 2
    try:
        run_point(argv[0])
    except Exception as e:  # the parent reports the last line; the traceback stays in the log
        traceback.print_exc()
        message = " ".join(str(e).split())
        print(f"error: {type(e).__name__}: {message}", file=sys.stderr, flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# The sweep (parent process).


_write_text = fileio.write_text


def last_error_line(log_path: str) -> str:
    """The child's final 'error: ...' line, else its last non-empty line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f.read().splitlines()[-200:] if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    return lines[-1] if lines else "no output"


def _load_result(point_dir: str) -> dict | None:
    path = os.path.join(point_dir, RESULTS_JSON)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _failed(point: SweepPoint, error: str, seconds: float | None = None) -> dict:
    return {"name": point.name, "labels": point.labels, "status": "failed", "error": error,
            "seconds": seconds, "pooled": None, "train": {}}


def _log(message: str) -> None:
    print(f"[sweep] {message}", flush=True)


def _launch(point: SweepPoint, point_dir: str, slot_env: dict[str, str]) -> tuple[subprocess.Popen, Any]:
    log = open(os.path.join(point_dir, LOG_TXT), "a")
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {point.name} {slot_env or ''}\n")
    log.flush()
    env = dict(os.environ, **slot_env)
    # Points of one architecture compile the same functions; a shared persistent cache spares the
    # recompiles (and a rerun's). The user's own cache setting wins.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(point_dir)), "jax_cache"))
    proc = subprocess.Popen([sys.executable, "-m", "seaice_jax.sweep", point_dir],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, log


def run_sweep(sweep: ml_collections.ConfigDict, workdir: str, *, devices_per_run: int = 0,
              max_parallel: int = 0) -> list[dict]:
    """Runs every unfinished point, then writes results.csv / .md / .png. Returns one row per point
    (grid order) with 'status' 'ok' or 'failed'; finished points are read back, not rerun."""
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    points = grid_points(sweep.grid, order=list(sweep.get("order", [])),
                         short_names=sweep.get("short_names"), value_labels=sweep.get("value_labels"))
    check_grid_keeps_shards(points)
    results: dict[str, dict] = {}
    todo = []
    for point in points:
        done = _load_result(os.path.join(workdir, "points", point.name))
        if done is not None:
            _log(f"skip {point.name} (finished)")
            _warn_if_config_changed(sweep.base, point, workdir)
            results[point.name] = done
        else:
            todo.append(point)
    if todo:
        shards, val = prepare_training_data(sweep.base, workdir)
        heldout = heldout_scenes(sweep, workdir)
        queue = []
        for point in todo:
            point_dir = os.path.join(workdir, "points", point.name)
            try:
                config = point_config(sweep.base, point, shards, val)
            except (KeyError, TypeError, ValueError) as e:
                _log(f"failed {point.name}: {e}")
                results[point.name] = _failed(point, " ".join(str(e).strip("'\"").split()))
                continue
            os.makedirs(point_dir, exist_ok=True)
            _write_text(os.path.join(point_dir, CONFIG_JSON), config.to_json_best_effort(indent=1))
            _write_text(os.path.join(point_dir, POINT_JSON), json.dumps(
                {"name": point.name, "labels": point.labels, "overrides": point.overrides, "heldout": heldout},
                indent=1))
            queue.append((point, point_dir))
        if queue:
            platform, count = detect_devices() if devices_per_run > 0 else ("any", 0)
            slots = device_slots(platform, count, devices_per_run, max_parallel)
            results.update(_run_queue(queue, slots))
    rows = [results[p.name] for p in points]
    write_reports(rows, points, sweep, workdir)
    return rows


def _warn_if_config_changed(base: ml_collections.ConfigDict, point: SweepPoint, workdir: str) -> None:
    """A finished point is never rerun; say so when the sweep config has changed under it."""
    point_dir = os.path.join(workdir, "points", point.name)
    try:
        with open(os.path.join(point_dir, CONFIG_JSON)) as f:
            stored = json.load(f)
        now = json.loads(point_config(base, point, *shared_data_paths(base, workdir)).to_json_best_effort())
    except (OSError, ValueError, KeyError, TypeError):
        return
    if stored != now:
        changed = sorted(p for p in set(flatten_nested(stored)) | set(flatten_nested(now))
                         if flatten_nested(stored).get(p) != flatten_nested(now).get(p))
        _log(f"warning: {point.name} finished with a different config ({', '.join(changed[:5])}); "
             f"its results are kept; delete {point_dir} to rerun it")


def _run_queue(queue: list[tuple[SweepPoint, str]], slots: list[dict[str, str]]) -> dict[str, dict]:
    """Runs the points, at most one per slot at a time; a failure does not stop the others."""
    pending = list(queue)
    running: dict[int, tuple[SweepPoint, str, subprocess.Popen, Any, float]] = {}
    results: dict[str, dict] = {}
    try:
        while pending or running:
            for k, slot_env in enumerate(slots):
                if k not in running and pending:
                    point, point_dir = pending.pop(0)
                    where = f" on {slot_env}" if slot_env else ""
                    _log(f"start {point.name}{where}")
                    proc, log = _launch(point, point_dir, slot_env)
                    running[k] = (point, point_dir, proc, log, time.perf_counter())
            for k, (point, point_dir, proc, log, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del running[k]
                seconds = time.perf_counter() - t0
                done = _load_result(point_dir) if code == 0 else None
                if done is not None:
                    results[point.name] = done
                    _log(f"done {point.name} ({seconds:.1f} s)")
                else:
                    error = last_error_line(os.path.join(point_dir, LOG_TXT))
                    if code < 0:
                        error = f"killed by signal {-code}: {error}"
                    results[point.name] = _failed(point, error, seconds)
                    _log(f"failed {point.name}: {error}")
            if running:
                time.sleep(POLL_SECONDS)
    finally:  # interrupted: stop the children this sweep started
        for point, _, proc, log, _ in running.values():
            proc.terminate()
            proc.wait()
            log.close()
    return results


# ---------------------------------------------------------------------------------------------
# Reports.


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
    _write_text(os.path.join(workdir, "results.csv"), buf.getvalue())
    _write_text(os.path.join(workdir, "results.md"), format_results_markdown(rows, points, table_metrics))
    plot_results(rows, points, plot_metrics, os.path.join(workdir, "results.png"))


def load_sweep_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a sweep config file (for tests and notebooks; the launcher uses absl)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()


if __name__ == "__main__":
    sys.exit(point_main(sys.argv[1:]))
