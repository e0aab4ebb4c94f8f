"""Train a model: `python launch/train.py --config configs/quickstart.py --workdir runs/quickstart`.

Overrides: `--config.train.num_steps=50`, list fields as tuples: `--config.model.filters='(8,16,32)'`.
Rerunning the same command resumes (a finished run prints its final evaluation); a rerun may change
only the fields in `trained_model.RESUMABLE_FIELDS` (`train.num_steps`, ...). Library logs (Orbax,
JAX) are off unless asked for with `--verbosity 0`. Multi-host: one process per host with
`--coordinator HOST:PORT --num-processes N --process-id I`, or `--distributed` to read the cluster's
environment (SLURM, TPU pods, ...). Flags take hyphens or underscores.

One run per workdir: a second run on a workdir in use is refused in one line naming the holder
(seaice_jax.workdir_lock). SIGINT (Ctrl-C) or SIGTERM (preemption) during training finish the current
step, save a checkpoint there and exit 130 / 143; the same command resumes (seaice_jax.interrupts).
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from seaice_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for data, checkpoints and metrics")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 for multi-host runs")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "number of processes (hosts)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "initialise jax.distributed from the cluster environment")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    cli.quiet_logs()
    import jax

    from seaice_jax.parallel import initialize_distributed

    # Before anything else touches JAX: the backend must not start before the processes are joined.
    initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _DISTRIBUTED.value)
    from seaice_jax.config_checks import ConfigRangeError
    from seaice_jax.train import NonFiniteLossError, held_out_summary, train_and_evaluate
    from seaice_jax.trained_model import ConfigMismatchError
    from seaice_jax.workdir_lock import WorkdirLockedError

    try:
        result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (ConfigMismatchError, ConfigRangeError) as e:
        return cli.fail(e, cli.EXIT_USAGE)
    except (NonFiniteLossError, WorkdirLockedError, ValueError, OSError) as e:
        return cli.fail(e)
    summary = held_out_summary(result, _WORKDIR.value)
    if summary and jax.process_index() == 0:
        print(summary)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    from seaice_jax.interrupts import run_main

    setup(traced_programs=True)  # the persistent compilation cache, and traced programs beside it
    app.run(lambda argv: sys.exit(run_main(main, argv)), flags_parser=cli.parse_absl_flags)
