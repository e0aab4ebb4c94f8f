"""Train a model: `python launch/train.py --config configs/quickstart.py --workdir runs/quickstart`.

Overrides: `--config.train.num_steps=50`. Multi-host: one process per host with
`--coordinator HOST:PORT --num-processes N --process-id I`, or `--distributed` to read the cluster's
environment (SLURM, TPU pods, ...).
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for data, checkpoints and metrics")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 for multi-host runs")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "number of processes (hosts)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "initialise jax.distributed from the cluster environment")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    import jax

    from seaice_jax.parallel import initialize_distributed

    # Before anything else touches JAX: the backend must not start before the processes are joined.
    initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _DISTRIBUTED.value)
    from seaice_jax.train import NonFiniteLossError, held_out_summary, train_and_evaluate

    try:
        result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (NonFiniteLossError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = held_out_summary(result, _WORKDIR.value)
    if summary and jax.process_index() == 0:
        print(summary)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process

    prepare_process()
    # absl spells multi-word flags with underscores; accept the dashed forms the docs use too.
    sys.argv = [a.replace("--num-processes", "--num_processes").replace("--process-id", "--process_id")
                for a in sys.argv]
    app.run(lambda argv: sys.exit(main(argv)))
