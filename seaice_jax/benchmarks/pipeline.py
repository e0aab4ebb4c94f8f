"""Input pipeline throughput: 256 x 256 patches with the 24 channels, through decode, augment, batch."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from seaice_jax.data import channels as ch
from seaice_jax.data import shards
from seaice_jax.data.pipeline import make_dataset
from seaice_jax.data.scene_types import Scene


def fake_patches(num: int, patch: int, name: str, rng: np.random.Generator):
    """Random patches with the real record layout (the pipeline's cost does not depend on values)."""
    for i in range(num):
        yield {
            "inputs": rng.standard_normal((patch, patch, len(ch.ALL_CHANNELS)), np.float32),
            "sic": rng.integers(0, 11, (patch, patch), np.uint8),
            "sod": rng.integers(0, 6, (patch, patch), np.uint8),
            "floe": rng.integers(0, 7, (patch, patch), np.uint8),
            "region_ids": rng.integers(-1, 8, (patch, patch)).astype(np.int32),
            "region_conc": np.where(np.arange(64) < 8, 0.5, np.nan).astype(np.float32),
            "valid": np.ones((patch, patch), np.uint8),
            "ice_truth": rng.integers(0, 2, (patch, patch), np.uint8),
            "scene": name, "row": 0, "col": i * patch,
        }


def write_fake_shards(folder: str, num_patches: int, patch: int = 256, num_scenes: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    spec = shards.PatchSpec(patch, patch, 1, 64, ch.ALL_CHANNELS)
    per = num_patches // num_scenes
    for s in range(num_scenes):
        name = f"bench{s:02d}"
        shard = os.path.join(folder, name + shards.SHARD_SUFFIX)
        count, stats = shards.write_shard(shard, fake_patches(per, patch, name, rng), len(ch.ALL_CHANNELS))
        scene = Scene(name, name + ".nc", "rtt", {}, np.zeros((patch, patch * per), np.uint8),
                      None, None, None, None, None, np.zeros(1))
        shards.write_sidecar(folder, scene, scene.path, count, stats, spec)
    shards.write_manifest(folder)


def run(num_patches: int = 64, batch_size: int = 8, worker_count: int = 0, patch: int = 256,
        num_batches: int = 60) -> dict:
    """{'pipeline': {'patches_per_s', 'mb_per_s', ...}} for the 24-channel training pipeline."""
    with tempfile.TemporaryDirectory() as folder:
        write_fake_shards(folder, num_patches, patch)
        ds = make_dataset(folder, channels=ch.ALL_CHANNELS, batch_size=batch_size, seed=0,
                          worker_count=worker_count, process_index=0, process_count=1)
        it = iter(ds)
        batch = next(it)  # warm-up (and worker start-up)
        nbytes = sum(v.nbytes for v in batch.values())
        # Many more batches than any read-ahead buffer holds, so this is the steady rate.
        n_batches = num_batches
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        dt = time.perf_counter() - t0
    return {"pipeline": {
        "patches_per_s": n_batches * batch_size / dt,
        "mb_per_s": n_batches * nbytes / dt / 1e6,
        "patch_size": patch, "channels": len(ch.ALL_CHANNELS), "batch_size": batch_size,
        "worker_count": worker_count,
    }}
