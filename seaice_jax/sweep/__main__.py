"""`python -m seaice_jax.sweep POINT_DIR`: one sweep point, the child process `sweep.run` starts.

An entry point like the launchers in launch/: argv in, one library call (`point.point_main` with the
training loop), exit code out.
"""

import sys

from absl import logging

from seaice_jax.sweep.point import point_main
from seaice_jax.train import train_and_evaluate

if __name__ == "__main__":
    from seaice_jax.runtime import setup

    # The persistent compilation cache and traced programs; the parent's environment holds the CPU tweaks.
    setup(traced_programs=True)
    logging.use_absl_handler()  # the training log lines go to the point's log.txt, as under app.run
    logging.set_verbosity(logging.INFO)
    from seaice_jax.interrupts import run_main

    # SIGTERM (the sweep stopping) or SIGINT: the point saves a checkpoint at its step, exits 143 / 130
    sys.exit(run_main(point_main, sys.argv[1:], train_and_evaluate))
