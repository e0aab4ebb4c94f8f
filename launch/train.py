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

    if _COORDINATOR.value:
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif _DISTRIBUTED.value:
        jax.distributed.initialize()
    from seaice_jax.train import NonFiniteLossError, train_and_evaluate

    try:
        result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (NonFiniteLossError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result.get("pixel_accuracy_als") is not None and jax.process_index() == 0:
        print("held-out pixel accuracy of the binary ice map vs ice_truth: "
              f"ALS {result['pixel_accuracy_als']:.4f}, concentration-preserving {result['pixel_accuracy_conc']:.4f}, "
              f"sigmoid>=0.5 {result['pixel_accuracy_sigmoid']:.4f} (all-ice baseline "
              f"{result['pixel_accuracy_all_ice']:.4f}); checkpoint in {_WORKDIR.value}/checkpoints")
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process

    prepare_process()
    # absl spells multi-word flags with underscores; accept the dashed forms the docs use too.
    sys.argv = [a.replace("--num-processes", "--num_processes").replace("--process-id", "--process_id")
                for a in sys.argv]
    app.run(lambda argv: sys.exit(main(argv)))
