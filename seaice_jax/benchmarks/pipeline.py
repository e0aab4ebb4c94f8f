"""Input pipeline throughput: 256 x 256 compact patches with the 24 channels, read, decoded and batched.

Reports, for the compact batches the train step expands on device (pipeline expand='device'):
bytes_per_patch (in a batch, and on disk), patches_per_s with `workers` grain workers (0 = in-process),
patches_per_s_per_core, and images_per_s_fed: the accelerator images/s the host can feed with every
core of this machine reading (per-core rate x cores). Also the host-expanded batches (expand='host',
numpy upsampling and flips) for comparison.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from seaice_jax.data import channels as ch
from seaice_jax.data import manifest, shards
from seaice_jax.data.pipeline import make_dataset
from seaice_jax.data.scene_types import Scene


def _blocky(rng, shape, values, block=32):
    """Piecewise-constant field (charts and regions are polygons, not noise)."""
    small = rng.integers(0, values, (shape[0] // block + 1, shape[1] // block + 1))
    return np.kron(small, np.ones((block, block), np.int64))[: shape[0], : shape[1]]


def fake_patches(num: int, layout, name: str, rng: np.random.Generator):
    """Random patches with the real compact layout; SAR as noise (the worst case for compression)."""
    p, m = layout.patch_size, layout.cells
    for i in range(num):
        yield {
            "sar": rng.standard_normal((p, p, len(layout.sar_channels)), np.float32).astype(np.float16),
            "cells": rng.standard_normal((m, m, len(layout.cell_channels)), np.float32),
            "cell_origin": np.zeros(2, np.int32), "pixel_origin": np.zeros(2, np.int32),
            "grid_cells": np.array([m, m], np.int32), "pixels_per_cell": np.int32(25),
            "sic": _blocky(rng, (p, p), 11).astype(np.uint8), "sod": _blocky(rng, (p, p), 6).astype(np.uint8),
            "floe": _blocky(rng, (p, p), 7).astype(np.uint8),
            "region_ids": _blocky(rng, (p, p), 8).astype(np.int8) - 1,
            "region_conc": np.where(np.arange(layout.max_regions) < 8, 0.5, np.nan).astype(np.float32),
            "valid": (_blocky(rng, (p, p), 10) > 0).astype(np.uint8),
            "ice_truth": _blocky(rng, (p, p), 2).astype(np.uint8),
            "scene": name, "row": 0, "col": i * p,
        }


def write_fake_shards(folder: str, num_patches: int, patch: int = 256, num_scenes: int = 4, seed: int = 0,
                      options: str = shards.RECORD_OPTIONS) -> None:
    rng = np.random.default_rng(seed)
    spec = shards.PatchSpec(patch, patch, 1, 64, ch.ALL_CHANNELS)
    per = num_patches // num_scenes
    for s in range(num_scenes):
        name = f"bench{s:02d}"
        count, stats = shards.write_shard(os.path.join(folder, shards.shard_name("train", s)),
                                          fake_patches(per, spec.layout, name, rng), spec.layout, options)
        scene = Scene(name=name, path=name + ".nc", product="rtt", channels={},
                      sic=np.zeros((patch, patch * per), np.uint8), sod=None, floe=None, region_ids=None,
                      region_conc=None, valid=None)
        shards.write_sidecar(folder, scene, scene.path, count, stats, spec, "train", s)
    manifest.write_manifest(folder)


def _rate(folder: str, expand: str, batch_size: int, worker_count: int, num_batches: int) -> tuple[float, int]:
    ds = make_dataset(folder, channels=ch.ALL_CHANNELS, batch_size=batch_size, seed=0, expand=expand,
                      worker_count=worker_count, process_index=0, process_count=1)
    it = iter(ds)
    batch = next(it)  # warm-up (and worker start-up)
    for _ in range(min(5, num_batches)):
        next(it)
    nbytes = sum(v.nbytes for v in batch.values())
    t0 = time.perf_counter()
    for _ in range(num_batches):
        next(it)
    dt = time.perf_counter() - t0
    return num_batches * batch_size / dt, nbytes // batch_size


def run(num_patches: int = 64, batch_size: int = 8, worker_count: int = 0, patch: int = 256,
        num_batches: int = 60, host_batches: int = 30, options: str = shards.RECORD_OPTIONS) -> dict:
    """{'pipeline': {...}} for the 24-channel training pipeline (compact batches, host expansion too)."""
    with tempfile.TemporaryDirectory() as folder:
        write_fake_shards(folder, num_patches, patch, options=options)
        disk = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                   if shards.SHARD_SUFFIX in f) / (num_patches // 4 * 4)
        rate, nbytes = _rate(folder, "device", batch_size, worker_count, num_batches)
        host_rate, host_bytes = _rate(folder, "host", batch_size, worker_count, host_batches)
    cores = max(worker_count, 1)
    return {"pipeline": {
        "bytes_per_patch": int(nbytes), "disk_bytes_per_patch": int(disk),
        "patches_per_s": rate, "patches_per_s_per_core": rate / cores, "workers": worker_count,
        "images_per_s_fed": rate / cores * (os.cpu_count() or 1),
        "mb_per_s": rate * nbytes / 1e6,
        "host_expanded": {"patches_per_s": host_rate, "bytes_per_patch": int(host_bytes)},
        "patch_size": patch, "channels": len(ch.ALL_CHANNELS), "batch_size": batch_size,
        "record_options": options, "cpu_count": os.cpu_count(),
    }}
