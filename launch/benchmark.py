"""Benchmarks: `python launch/benchmark.py --what {pipeline,train,als,inference,startup,all} --json OUT`.

Results are merged into OUT (each benchmark owns its top-level key), with the device, versions and
config recorded under "meta". 'all' is every benchmark but 'startup' (minutes: 4 fresh processes per
repeat). Flags take hyphens or underscores (`--batch-size`).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from seaice_jax import cli

_WHAT = flags.DEFINE_enum("what", "all", ["pipeline", "train", "als", "inference", "startup", "all"],
                          "benchmark to run ('all': all but startup)")
_CONFIG = config_flags.DEFINE_config_file("config", "configs/autoice_baseline.py", "network config", lock_config=True)
_BATCH = flags.DEFINE_integer("batch_size", 8, "train-step batch", lower_bound=1)
_SIZE = flags.DEFINE_integer("size", None, "scene side: ALS default 5000, inference default 1024", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "JSON file to write (merged with what is there)")
_END_TO_END = flags.DEFINE_bool(
    "end_to_end", False, "with --what train/all: also run the real training loop with each data source "
    "(shards, device) on synthetic scenes and report images/s beside the bare step")
_REPEATS = flags.DEFINE_integer("repeats", 3, "als: interleaved rounds (launcher, plain process, numpy); "
                                "startup: rounds of cold and warm processes", lower_bound=1)
_STARTUP_CONFIG = flags.DEFINE_string("startup_config", "configs/quickstart.py", "startup: the training config")
_DEVICES = flags.DEFINE_integer(
    "devices", None, "also measure data-parallel scaling of the train step on 1, 2, 4, ... N devices "
    "(simulated CPU devices on CPU, one process per count)", lower_bound=1)


def main(argv):
    del argv
    cli.quiet_logs()
    if _WHAT.value == "startup" and not os.path.isfile(_STARTUP_CONFIG.value):
        return cli.fail(f"--startup-config {_STARTUP_CONFIG.value}: no such file", cli.EXIT_USAGE)
    from seaice_jax.benchmarks import suite
    from seaice_jax.train import train_and_evaluate  # the entry point hands the loop to the benchmark

    results = suite.run(_WHAT.value, _CONFIG.value, batch_size=_BATCH.value, size=_SIZE.value,
                        end_to_end=train_and_evaluate if _END_TO_END.value else None,
                        devices=_DEVICES.value, repeats=_REPEATS.value, startup_config=_STARTUP_CONFIG.value)
    print(json.dumps(results, indent=1))
    if _JSON.value:
        suite.merge_json(_JSON.value, results)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    # Without the persistent cache, so compile_s figures are compilations; --what startup runs its
    # own processes with a cache folder of its own.
    setup(compilation_cache=False)
    from seaice_jax.interrupts import run_main

    app.run(lambda argv: sys.exit(run_main(main, argv)), flags_parser=cli.parse_absl_flags)
