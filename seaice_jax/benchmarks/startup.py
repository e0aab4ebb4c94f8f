"""Start-up: how long a researcher waits for the first train step and the first prediction file.

`run(config_path, repeats)` prepares the config's synthetic data once (scenes and shards, not timed),
then per repeat, each in a fresh process started the way a user starts it (`launch/train.py`,
`launch/infer.py`):
  train cold: one train step of the config on those shards with an empty compilation cache folder;
  train warm: the same into a new workdir, with the cache the cold run filled;
  infer cold: `infer.py` on one held-out scene with the cold run's checkpoint and another empty cache;
  infer warm: the same again with that cache.
Times are wall seconds from starting the process: to the 'step 1/1' line (the first step finished:
its loss was read back), to infer's '[1/1]' progress line (the _pred.nc file is written), to the
process's end; plus the compile time the train launcher prints ('compiled the train step in X s':
tracing, lowering and compiling, or reading the traced program and the executable from the caches;
`train_trace_read` says which), and the warm / cold ratios of that compile time and of infer's wall.
The figures are medians over the repeats, with each repeat's values under 'runs'. Every function the
run compiles for over the cache's threshold is cached (`seaice_jax.compile_cache`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from seaice_jax import compile_cache, trace_cache

_COMPILED = re.compile(r"compiled the train step in ([0-9.]+) s( \(traced program read from the cache\))?")
# The benchmark's own process may run with the cache off; its children choose their own folder.
_CACHE_VARIABLES = (compile_cache.JAX_DIR_ENV, compile_cache.CACHE_DIR_ENV, compile_cache.NO_CACHE_ENV,
                    compile_cache.JAX_ENABLE_ENV, trace_cache.NO_TRACE_CACHE_ENV)


def _launcher(name: str) -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "launch", f"{name}.py")


def timed_process(argv: list[str], cache: str, marks: dict[str, str]) -> dict:
    """Runs argv with the compilation cache in `cache`; returns {mark: seconds from the start to the
    first output line (stdout or stderr) starting with marks[mark]}, 'wall_s', and 'lines'.
    Raises RuntimeError with the output's tail when the process fails."""
    env = {k: v for k, v in os.environ.items() if k not in _CACHE_VARIABLES}
    env[compile_cache.JAX_DIR_ENV] = cache
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: dict = {}
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - start
        lines.append(line.rstrip("\n"))
        for mark, prefix in marks.items():
            if mark not in found and line.startswith(prefix):
                found[mark] = now
    proc.wait()
    found["wall_s"] = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{os.path.basename(argv[1])} failed:\n" + "\n".join(lines[-30:]))
    missing = set(marks) - set(found)
    if missing:
        raise RuntimeError(f"{os.path.basename(argv[1])} printed no {sorted(missing)} line:\n" + "\n".join(lines[-30:]))
    found["lines"] = lines
    return found


def train_once(config_path: str, shards: str, workdir: str, cache: str) -> dict:
    run = timed_process([sys.executable, _launcher("train"), f"--config={config_path}", f"--workdir={workdir}",
                         f"--config.data.shards={shards}", "--config.train.num_steps=1"],
                        cache, {"first_step_s": "step 1/1 "})
    compiled = [(float(m.group(1)), bool(m.group(2))) for line in run["lines"] if (m := _COMPILED.search(line))]
    return {"first_step_s": run["first_step_s"], "compile_s": compiled[0][0] if compiled else None,
            "trace_read": compiled[0][1] if compiled else None, "wall_s": run["wall_s"]}


def infer_once(workdir: str, scene: str, out: str, cache: str) -> dict:
    run = timed_process([sys.executable, _launcher("infer"), "--workdir", workdir, "--scenes", scene, "--out", out],
                        cache, {"first_file_s": "[1/1] "})
    if not any(name.endswith("_pred.nc") for name in os.listdir(out)):
        raise RuntimeError(f"infer.py wrote no _pred.nc into {out}")
    return {"first_file_s": run["first_file_s"], "wall_s": run["wall_s"]}


def _load_config(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("startup_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path}: not a Python config file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def run(config_path: str = "configs/quickstart.py", repeats: int = 1) -> dict:
    """{'startup': {...}}; see the module docstring."""
    from seaice_jax.prepare import synthesize_and_convert

    config_path = os.path.abspath(config_path)
    config = _load_config(config_path)
    runs = []
    with tempfile.TemporaryDirectory(prefix="seaice_jax_startup_") as tmp:
        shards, val_dir = synthesize_and_convert(config, os.path.join(tmp, "data"), val_scenes=True)
        scene = sorted(os.path.join(val_dir, f) for f in os.listdir(val_dir) if f.endswith(".nc"))[0]
        for r in range(repeats):
            train_cache, infer_cache = os.path.join(tmp, f"train_cache_{r}"), os.path.join(tmp, f"infer_cache_{r}")
            cold_dir = os.path.join(tmp, f"train_{r}_cold")
            train = {"cold": train_once(config_path, shards, cold_dir, train_cache),
                     "warm": train_once(config_path, shards, os.path.join(tmp, f"train_{r}_warm"), train_cache)}
            infer = {kind: infer_once(cold_dir, scene, os.path.join(tmp, f"pred_{r}_{kind}"), infer_cache)
                     for kind in ("cold", "warm")}
            runs.append({
                "train_first_step_s": {k: v["first_step_s"] for k, v in train.items()},
                "train_compile_s": {k: v["compile_s"] for k, v in train.items()},
                "train_trace_read": {k: v["trace_read"] for k, v in train.items()},
                "train_wall_s": {k: v["wall_s"] for k, v in train.items()},
                "infer_first_file_s": {k: v["first_file_s"] for k, v in infer.items()},
                "infer_wall_s": {k: v["wall_s"] for k, v in infer.items()},
                "cache_entries": {"train": len(os.listdir(train_cache)), "infer": len(os.listdir(infer_cache))},
            })
    out: dict = {name: {kind: float(np.median([r[name][kind] for r in runs])) for kind in ("cold", "warm")}
                 for name in ("train_first_step_s", "train_compile_s", "train_wall_s", "infer_first_file_s",
                              "infer_wall_s")}
    out["train_compile_ratio"] = out["train_compile_s"]["warm"] / out["train_compile_s"]["cold"]
    out["infer_wall_ratio"] = out["infer_wall_s"]["warm"] / out["infer_wall_s"]["cold"]
    out.update(repeats=repeats, config=os.path.basename(config_path), scene_shape=list(config.data.synthetic.size),
               cache_min_compile_time_s=compile_cache.MIN_COMPILE_TIME_SECS, runs=runs)
    return {"startup": out}
