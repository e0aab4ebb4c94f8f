"""grain input pipeline over the patch shards: shuffle, shard by process, decode, (augment), batch, prefetch.

Two forms of batch:
  * expand="device" (fast): the compact patches as stored (compact.py) are batched as they are; the
    train step brings the 2 km channels to the patch grid and flips / rotates on device
    (device_augment.prepare_batch_on_device). The host only decodes and copies ~0.93 MB per patch.
  * expand="host": the v1 training fields (`inputs` float32 [B, P, P, C] in the order of `channels`, int32
    region ids, bool validity), upsampled and augmented in numpy on the host.

The iterator returned by `iter(make_dataset(...))` has `get_state()` / `set_state()`, and the training
checkpoint stores that state with the model (grain.checkpoint.CheckpointSave).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import grain
import numpy as np

from seaice_jax.data import compact
from seaice_jax.data.compact import READABLE_FORMATS
from seaice_jax.data.points import POINT_CHANNELS, POINT_FIELDS
from seaice_jax.data.shards import MANIFEST

SPATIAL_FIELDS = ("inputs", "sic", "sod", "floe", "region_ids", "valid", "ice_truth")
BATCH_FIELDS = SPATIAL_FIELDS + ("region_conc",)
COMPACT_FIELDS = ("sar", "cells", "cell_origin", "pixel_origin", "grid_cells", "pixels_per_cell", "sic", "sod",
                  "floe", "region_ids", "region_conc", "valid", "ice_truth") + POINT_FIELDS


def load_manifest(shard_dir: str) -> dict:
    path = os.path.join(shard_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no manifest; run data_prep/convert.py first")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise ValueError(f"{path}: shard format {manifest.get('format_version')}, this code reads "
                         f"{', '.join(map(str, READABLE_FORMATS))}; convert the scenes again into a new folder")
    if not manifest.get("num_patches"):
        raise ValueError(f"{path}: the shards hold no patches")
    return manifest


def load_layout(shard_dir: str) -> compact.Layout:
    return compact.Layout.from_dict(load_manifest(shard_dir)["layout"])


def shard_paths(shard_dir: str, scenes: Sequence[str] | None = None, split: str | None = "train") -> list[str]:
    """Shard files of the manifest with patches, of one split (None = all), optionally only named scenes."""
    manifest = load_manifest(shard_dir)
    keep = set(scenes) if scenes is not None else None
    return [os.path.join(shard_dir, s["shard"]) for s in manifest["scenes"]
            if s["num_patches"] and (keep is None or s["scene"] in keep)
            and (split is None or s.get("split", "train") == split)]


class DecodeCompact(grain.transforms.Map):
    """Record bytes -> the compact patch's arrays (no strings), as stored."""

    def __init__(self, layout: compact.Layout):
        self.layout = layout

    def map(self, record: bytes) -> dict:
        patch = compact.decode_patch(record, self.layout)
        out = {k: patch[k] for k in COMPACT_FIELDS if k in patch}
        out["pixels_per_cell"] = np.int32(out["pixels_per_cell"])  # TFDS scalars decode as int64
        return out


class DecodePatch(grain.transforms.Map):
    """Record bytes -> v1 training fields with the selected input channels, upsampled on the host."""

    def __init__(self, layout: compact.Layout, channels: Sequence[str]):
        self.layout, self.channels = layout, tuple(channels)

    def map(self, record: bytes) -> dict:
        return compact.expand_patch(compact.decode_patch(record, self.layout), self.layout, self.channels)


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
    if "fb_pixel" in patch:  # altimeter footprints move with their pixels
        out["fb_pixel"] = flip_rotate_pixels(patch["fb_pixel"], patch["inputs"].shape[0], flip_h, flip_w,
                                             quarter_turns)
    return out


def flip_rotate_pixels(pixel: np.ndarray, size: int, flip_h: bool, flip_w: bool, quarter_turns: int) -> np.ndarray:
    """(row, col) coordinates [..., 2] moved as `flip_rotate` moves their pixels in a size x size patch."""
    r, c = pixel[..., 0].astype(np.int32), pixel[..., 1].astype(np.int32)
    if flip_h:
        r = size - 1 - r
    if flip_w:
        c = size - 1 - c
    for _ in range(quarter_turns % 4):  # np.rot90 (counter-clockwise): (r, c) -> (size - 1 - c, r)
        r, c = size - 1 - c, r
    return np.stack([r, c], -1).astype(pixel.dtype)


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
    split: str | None = "train",
    expand: str = "host",
    worker_count: int = 0,
    read_threads: int = 0,
    prefetch_batches: int = 8,
    process_index: int | None = None,
    process_count: int | None = None,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Batches of patches for this process.

    batch_size is the per-process batch; global batch g of a run is the concatenation of the processes'
    batch g (JAX process index and count by default). Shuffling is seeded and reshuffles each epoch;
    host augmentation is a seeded random map per patch index, so a restored iterator yields exactly the
    batches it would have. With expand="device" nothing is augmented here (`augment` is the device's
    job) and the batches are compact (see the module docstring).
    read_threads: grain's reading threads in this process (0: one per core, at most 16);
    prefetch_batches: batches read ahead (grain's defaults, 16 threads and 500 batches, kept every
    core of a small machine decoding long after the start).
    """
    import jax

    if expand not in ("host", "device"):
        raise ValueError(f"expand must be 'host' or 'device', got {expand!r}")
    manifest = load_manifest(shard_dir)
    layout = compact.Layout.from_dict(manifest["layout"])
    missing = [c for c in channels if c not in layout.channels and not (c in POINT_CHANNELS and layout.max_points)]
    if missing:
        raise ValueError(f"{shard_dir}: shards lack channels {missing}")
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count

    compact.warm_up(layout)  # TFDS's lazy imports resolved here, not in grain's threads
    paths = shard_paths(shard_dir, scenes, split)
    if not paths:
        raise ValueError(f"{shard_dir}: no patches in split {split!r}")
    source = grain.sources.ArrayRecordDataSource(paths)
    ds = grain.MapDataset.source(source)
    if len(ds) < batch_size * process_count and drop_remainder:
        raise ValueError(f"{shard_dir}: {len(ds)} patches, fewer than one global batch "
                         f"({batch_size} x {process_count} processes)")
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    if expand == "device":
        ds = ds.map(DecodeCompact(layout))
    else:
        ds = ds.map(DecodePatch(layout, channels))
        if augment:
            ds = ds.random_map(RandomFlipRotate(), seed=seed + 1)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Process p takes local batches p, p + P, ...: together they form exactly the global batches a
    # single process would read, so a multi-host run sees the same data as a one-host run.
    ds = ds[process_index::process_count]
    threads = read_threads or min(16, os.cpu_count() or 1)
    it = ds.to_iter_dataset(read_options=grain.ReadOptions(num_threads=threads,
                                                           prefetch_buffer_size=max(1, prefetch_batches)))
    if worker_count > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; library callers have none
            flags.FLAGS.mark_as_parsed()
        from seaice_jax.interrupts import ignore_stop_signals  # Ctrl-C is for the main process (it saves)

        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count),
                            worker_init_fn=ignore_stop_signals)
    return it
