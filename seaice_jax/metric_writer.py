"""Training metrics to `metrics.jsonl` and TensorBoard event files (tensorboardX: no TensorFlow)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np


class MetricsWriter:
    """metrics.jsonl + TensorBoard event files, written by process 0 only."""

    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        from tensorboardX import SummaryWriter

        self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: (None if v is None else float(v)) for k, v in scalars.items()}
        self.jsonl.write(json.dumps({"step": step, "split": prefix, **clean}) + "\n")
        self.jsonl.flush()
        for k, v in clean.items():
            if v is not None and np.isfinite(v):
                self.tb.add_scalar(f"{prefix}/{k}", v, step)
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()
