"""End-to-end training throughput: the real loop (`train_and_evaluate`) with each data source beside
the bare step on random device-resident batches, so the cost of the data path shows as their gap.

Each source trains the config's network on the same synthetic scenes (written and converted once into
a scratch folder) with patches of `size`; images/s come from the loop's own metrics rows after the
first log (which holds the compilation), and data_wait_s is the loop's time in fetching a batch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from seaice_jax.benchmarks import train as bare


def _steady_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("split") == "train"]
    return rows[1:]  # the first logged window includes the compilation


def run(config, train_and_evaluate, *, batch_size: int = 8, size: int = 256, steps: int = 16, log_every: int = 4,
        sources: tuple[str, ...] = ("shards", "device")) -> dict:
    """{'train_end_to_end': {source: {images_per_s, data_wait_s, step_s, data_fraction}, 'bare': ...}}.

    train_and_evaluate: the training loop (`seaice_jax.train.train_and_evaluate`), handed in by the
    entry point: the library does not import the loop."""
    base = bare.run(config, batch_size=batch_size, size=size)["train"]
    out: dict = {"bare": {"images_per_s": base["images_per_s"], "step_s": base["step_ms"] / 1e3},
                 "batch_size": batch_size, "patch_size": size, "steps": steps}
    root = tempfile.mkdtemp(prefix="seaice_e2e_")
    try:
        shared_data = None
        for source in sources:
            cfg = config.copy_and_resolve_references()
            with cfg.unlocked():
                cfg.data.source = source
                cfg.data.patch_size = size
                cfg.data.stride = size
                cfg.data.synthetic.size = (3 * size, 3 * size)
                cfg.data.synthetic.val_scenes = 0
                cfg.train.batch_size = batch_size
                cfg.train.num_steps = steps
                cfg.train.log_every = log_every
                cfg.train.eval_every = 10 * steps
                cfg.train.checkpoint_every = 10 * steps
            workdir = os.path.join(root, source)
            if shared_data is not None:  # the same scenes and shards for every source
                shutil.copytree(shared_data, os.path.join(workdir, "data"))
            train_and_evaluate(cfg, workdir)
            shared_data = shared_data or os.path.join(workdir, "data")
            rows = _steady_rows(workdir)
            ips = float(np.median([r["images_per_s"] for r in rows]))
            wait = float(np.median([r["data_wait_s"] for r in rows]))
            step_s = batch_size / ips
            out[source] = {"images_per_s": ips, "data_wait_s": wait, "step_s": step_s,
                           # the data path's share of a step: how much slower than the bare step
                           "data_fraction": max(0.0, 1.0 - ips / base["images_per_s"])}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"train_end_to_end": out}
