"""Training metrics to `metrics.jsonl` and TensorBoard event files (tensorboardX: no TensorFlow).

A resumed run (`resume_step`) first cuts both back to the restored step: rows of `metrics.jsonl`
past it (written by a run killed after its last checkpoint) are dropped, and the new TensorBoard
event file starts with a purge at `resume_step + 1`, so TensorBoard hides the old events from there
on. Each step then appears once, with the values of the run that the checkpoints continue.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np


class MetricsWriter:
    """metrics.jsonl + TensorBoard event files, written by process 0 only."""

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        from tensorboardX import SummaryWriter

        path = os.path.join(workdir, "metrics.jsonl")
        if resume_step is not None:
            truncate_rows(path, resume_step)
        # The handle lives as long as the writer (appended to by write(), closed in close()): no with-block.
        self.jsonl = open(path, "a")  # noqa: SIM115
        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                purge_step=None if resume_step is None else int(resume_step) + 1)

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


def truncate_rows(path: str, last_step: int) -> int:
    """Drop the rows of the metrics file `path` with a step past `last_step` (and a torn last line);
    rewritten atomically. Returns how many were dropped."""
    from seaice_jax import fileio

    if not os.path.exists(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # the half-written last line of a killed run
            continue
        if isinstance(row, dict) and row.get("step", 0) <= last_step:
            kept.append(line)
    dropped = len([x for x in lines if x.strip()]) - len(kept)
    if dropped:
        fileio.write_text(path, "".join(line + "\n" for line in kept))
    return dropped


def read_rows(workdir: str, split: str | None = None) -> list[dict]:
    """The rows of workdir's metrics.jsonl (of one split: 'train' or 'eval'), oldest first."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:  # blank, or the torn last line of a killed run
                continue
    return [r for r in rows if isinstance(r, dict) and (split is None or r.get("split") == split)]
