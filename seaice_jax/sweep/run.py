"""The sweep's parent process: shared data, one child process per unfinished point, the reports.

No JAX backend is initialised here (it would hold accelerator memory the children need).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import ml_collections

from seaice_jax import fileio, workdir_lock
from seaice_jax.prepare import count_scenes, synthesize_and_convert
from seaice_jax.sweep.devices import detect_devices, device_slots
from seaice_jax.sweep.grid import SweepPoint, check_grid_keeps_shards, flatten_nested, grid_points, point_config
from seaice_jax.sweep.point import CONFIG_JSON, LOG_TXT, POINT_JSON, RESULTS_JSON
from seaice_jax.sweep.reports import write_reports

POLL_SECONDS = 0.2


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
    data.prepare.prepare_data would for one run; no in-training validation scenes (the held-out
    evaluation after training replaces it and costs one pass instead of one per eval step).
    """
    if not base.data.shards:
        synthesize_and_convert(base, os.path.join(workdir, "data"), val_scenes=False)
    return shared_data_paths(base, workdir)


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
    if count_scenes(folder) < e.num_scenes:
        from seaice_jax import synthetic

        os.makedirs(folder, exist_ok=True)
        synthetic.write_synthetic_scenes(folder, e.num_scenes, e.get("product", s.product),
                                         e.get("season", s.season), tuple(e.size), e.seed)
    return [os.path.abspath(p) for p in list_scene_files([folder])]


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
    # The log is the child process's stdout: it stays open as long as the process runs and is closed by
    # run_sweep when the process has ended (returned with it), so no with-block here.
    log = open(os.path.join(point_dir, LOG_TXT), "a")  # noqa: SIM115
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {point.name} {slot_env or ''}\n")
    log.flush()
    # The child sets up the persistent compilation cache itself (runtime.setup in __main__): the user's
    # one folder, or the one this process's setup put in the environment.
    env = dict(os.environ, **slot_env)
    proc = subprocess.Popen([sys.executable, "-m", "seaice_jax.sweep", point_dir],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, log


@workdir_lock.locked_folder  # one sweep per folder; each point's training locks its own point folder
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
            fileio.write_text(os.path.join(point_dir, CONFIG_JSON), config.to_json_best_effort(indent=1))
            fileio.write_text(os.path.join(point_dir, POINT_JSON), json.dumps(
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
        for _point, _, proc, log, _ in running.values():
            proc.terminate()
            proc.wait()
            log.close()
    return results


def load_sweep_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a sweep config file (for tests and notebooks; the launcher uses absl)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()
