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

        # The handle lives as long as the writer (appended to by write(), closed in close()): no with-block.
        self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115
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


def read_rows(workdir: str, split: str | None = None) -> list[dict]:
    """The rows of workdir's metrics.jsonl (of one split: 'train' or 'eval'), oldest first."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split is None or r.get("split") == split]
