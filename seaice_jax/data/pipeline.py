"""grain input pipeline over the patch shards: shuffle, shard by process, augment, batch, prefetch.

The iterator returned by `iter(make_dataset(...))` has `get_state()` / `set_state()`, and the training
checkpoint stores that state with the model (grain.checkpoint.CheckpointSave).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import grain
import numpy as np

from seaice_jax.data.shards import MANIFEST, decode_patch

SPATIAL_FIELDS = ("inputs", "sic", "sod", "floe", "region_ids", "valid", "ice_truth")
BATCH_FIELDS = SPATIAL_FIELDS + ("region_conc",)


def load_manifest(shard_dir: str) -> dict:
    path = os.path.join(shard_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no manifest; run data_prep/convert.py first")
    with open(path) as f:
        manifest = json.load(f)
    if not manifest.get("num_patches"):
        raise ValueError(f"{path}: the shards hold no patches")
    return manifest


def shard_paths(shard_dir: str, scenes: Sequence[str] | None = None) -> list[str]:
    """Shard files of the manifest, optionally only those of the named scenes."""
    manifest = load_manifest(shard_dir)
    keep = set(scenes) if scenes is not None else None
    return [os.path.join(shard_dir, s["shard"]) for s in manifest["scenes"]
            if s["num_patches"] and (keep is None or s["scene"] in keep)]


class DecodePatch(grain.transforms.Map):
    """Record bytes -> dict of numpy arrays with the selected input channels (no strings)."""

    def __init__(self, channel_index: Sequence[int]):
        index = [int(i) for i in channel_index]
        contiguous = index == list(range(index[0], index[0] + len(index)))
        # A run of channels is a view; numpy's fancy indexing on the last axis is ~7x slower.
        self.channel_index = slice(index[0], index[0] + len(index)) if contiguous else np.asarray(index)

    def map(self, record: bytes) -> dict:
        patch = decode_patch(record)
        out = {k: patch[k] for k in BATCH_FIELDS}
        out["inputs"] = out["inputs"][..., self.channel_index]
        out["valid"] = out["valid"].astype(bool)
        return out


def flip_rotate(patch: dict, flip_h: bool, flip_w: bool, quarter_turns: int) -> dict:
    """The same flips and 90-degree rotation on every spatial field (region_conc is untouched).

    One copy per field: the flips and rotation are views, made contiguous once.
    """
    out = dict(patch)
    for k in SPATIAL_FIELDS:
        a = patch[k]
        if flip_h:
            a = a[::-1]
        if flip_w:
            a = a[:, ::-1]
        a = np.rot90(a, quarter_turns, axes=(0, 1))
        out[k] = np.ascontiguousarray(a)
    return out


class RandomFlipRotate(grain.transforms.RandomMap):
    def random_map(self, patch: dict, rng: np.random.Generator) -> dict:
        flips = rng.integers(0, 2, size=2)
        return flip_rotate(patch, bool(flips[0]), bool(flips[1]), int(rng.integers(0, 4)))


def make_dataset(
    shard_dir: str,
    *,
    channels: Sequence[str],
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    augment: bool = True,
    num_epochs: int | None = None,
    scenes: Sequence[str] | None = None,
    worker_count: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Batches of patches for this process.

    batch_size is the per-process batch; global batch g of a run is the concatenation of the processes'
    batch g (JAX process index and count by default). Shuffling is seeded and reshuffles each epoch;
    augmentation is a seeded random map per patch index, so a restored iterator yields exactly the
    batches it would have.
    """
    import jax

    manifest = load_manifest(shard_dir)
    missing = [c for c in channels if c not in manifest["channels"]]
    if missing:
        raise ValueError(f"{shard_dir}: shards lack channels {missing}")
    index = [manifest["channels"].index(c) for c in channels]
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count

    source = grain.sources.ArrayRecordDataSource(shard_paths(shard_dir, scenes))
    ds = grain.MapDataset.source(source)
    if len(ds) < batch_size * process_count and drop_remainder:
        raise ValueError(f"{shard_dir}: {len(ds)} patches, fewer than one global batch "
                         f"({batch_size} x {process_count} processes)")
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    ds = ds.map(DecodePatch(index))
    if augment:
        ds = ds.random_map(RandomFlipRotate(), seed=seed + 1)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Process p takes local batches p, p + P, ...: together they form exactly the global batches a
    # single process would read, so a multi-host run sees the same data as a one-host run.
    ds = ds[process_index::process_count]
    it = ds.to_iter_dataset()
    if worker_count > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; library callers have none
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return it
