"""Run a sweep: `python launch/sweep.py --config configs/aspp_sweep.py --workdir runs/aspp`.

Every grid point trains in its own process, then predicts and evaluates the held-out scenes; the
results go to WORKDIR/results.csv, results.md and results.png. A rerun skips finished points and
retries failed ones. `--devices-per-run N` runs (accelerators // N) points at once, each on its own N
devices (`--max-parallel K` caps that); on CPU points run one after another. Config overrides reach
the training config through `base`: `--config.base.train.num_steps=50`. Exit code 1 if a point failed.
Flags take hyphens or underscores.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from seaice_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "sweep config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "sweep folder (data, points/, results.*)")
_DEVICES_PER_RUN = flags.DEFINE_integer("devices_per_run", 0, "accelerators per point; 0 = all, one point at a time",
                                        lower_bound=0)
_MAX_PARALLEL = flags.DEFINE_integer("max_parallel", 0, "most points at once; 0 = as many as the devices allow",
                                     lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> int:
    del argv
    cli.quiet_logs()
    from seaice_jax import compile_cache
    from seaice_jax.interrupts import Interrupted
    from seaice_jax.sweep import run_sweep

    if compile_cache.current() is not None:  # the points compile; the parent says once where they cache
        print(f"[sweep] {compile_cache.current().line}", flush=True)
    try:
        rows = run_sweep(_CONFIG.value, _WORKDIR.value, devices_per_run=_DEVICES_PER_RUN.value,
                         max_parallel=_MAX_PARALLEL.value)
    except (ValueError, KeyError, OSError, RuntimeError) as e:  # WorkdirLockedError is a RuntimeError
        return cli.fail(e)
    except Interrupted as e:  # the running points got SIGTERM: each saved a checkpoint at its step
        raise Interrupted(e.signum, f"{e}: the running points saved a checkpoint and stopped; rerun the same "
                                    "command to resume") from None
    failed = [r["name"] for r in rows if r["status"] != "ok"]
    print(f"{len(rows) - len(failed)} of {len(rows)} point(s) finished; results in {_WORKDIR.value}/results.md")
    if failed:
        print("failed: " + " ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    from seaice_jax.interrupts import run_main

    setup(announce=False)  # the persistent compilation cache (the points' processes inherit its folder)
    app.run(lambda argv: sys.exit(run_main(main, argv)), flags_parser=cli.parse_absl_flags)
