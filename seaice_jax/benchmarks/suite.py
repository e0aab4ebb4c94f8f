"""Runs the benchmarks by name and records the machine, versions and config beside the figures."""

from __future__ import annotations

import json
import os
import platform


def machine_info() -> dict:
    import flax
    import jax
    import jaxlib
    import numpy

    dev = jax.devices()[0]
    return {
        "device_kind": dev.device_kind, "platform": dev.platform, "device_count": jax.device_count(),
        "process_count": jax.process_count(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "flax": flax.__version__, "numpy": numpy.__version__,
    }


def run(what: str, config, *, batch_size: int = 8, size: int | None = None, devices: int | None = None,
        end_to_end=None, repeats: int = 3, startup_config: str = "configs/quickstart.py") -> dict:
    """end_to_end: the training loop (train_and_evaluate) to also run end to end with each data source.
    repeats: rounds of the interleaved ALS timing and of the start-up benchmark (which 'all' leaves
    out: it starts 4 processes per round, minutes on a CPU)."""
    results: dict = {}
    if what == "startup":
        from seaice_jax.benchmarks import startup

        results.update(startup.run(startup_config, repeats=repeats))
    if what in ("pipeline", "all"):
        from seaice_jax.benchmarks import pipeline

        results.update(pipeline.run())
    if what in ("train", "all"):
        from seaice_jax.benchmarks import train

        results.update(train.run(config, batch_size=batch_size))
        if end_to_end is not None:  # the real loop with each data source beside the bare step
            from seaice_jax.benchmarks import end_to_end as e2e

            results.update(e2e.run(config, end_to_end, batch_size=batch_size))
    if what in ("inference", "all"):
        from seaice_jax.benchmarks import inference

        results.update(inference.run(config, size=size or 1024))
    if what in ("als", "all"):
        from seaice_jax.benchmarks import als

        results.update(als.run(size or 5000 if what == "als" else 5000, rounds=repeats))
    if devices:
        import jax

        from seaice_jax.benchmarks import scaling

        results.update(scaling.run(config, devices, batch_size, platform=jax.default_backend()))
    results["meta"] = dict(machine_info(), what=what, config=json.loads(config.to_json_best_effort()))
    return results


def merge_json(path: str, results: dict) -> None:
    """Merge into an existing JSON file (other benchmarks keep their keys); write-then-rename."""
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    old.update(results)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(old, f, indent=1)
    os.replace(tmp, path)
