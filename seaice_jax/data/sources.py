"""Where the training step gets its batch (`config.data.source`, `config.data.expand`).

* source 'shards' (default): grain reads compact patches (shard format 2) from the ArrayRecord shards.
  With expand 'device' (default) the batch crosses to the accelerator compact (float16 SAR grid,
  2 km cells, uint8 labels) and the jitted step upsamples the cells and flips / rotates it there
  (data/device_augment.py, augmentation key folded with the step, so a resumed run draws the same
  flips); with expand 'host' numpy does that work before the transfer (the format 1 behaviour).
  The grain iterator's position is checkpointed with the state.
* source 'device': the training scenes, compact and optionally downsampled, are put into device
  memory once (data/resident.py, after a check that they fit); each step draws its crops, scenes
  and flips from (key, step) inside the jitted step. No host work per step; the data position is
  the step, so nothing but the state is checkpointed.

`make_train_source` returns the wrapped step and a function giving its data argument per step, so
the training loop is the same for both.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax

from seaice_jax.data.points import PointOptions, point_channels

SOURCES = ("shards", "device")
EXPANDS = ("device", "host")


@dataclasses.dataclass
class TrainSource:
    """wrap_step(step(state, batch)) -> step(state, data); next_input() -> that step's data argument
    (host work, timed by the loop as data_wait_s); iterator: what to checkpoint (None: the step is
    the position); description: one line for the log."""

    wrap_step: Callable
    next_input: Callable[[], Any]
    iterator: Any
    description: str


def train_scene_files(config, shard_dir: str) -> list[str]:
    """Scene files of the device-resident source: `config.data.train_scenes` (files or folders), else
    the synthetic training scenes written beside the shards (`<workdir>/data/train_scenes`)."""
    from seaice_jax.data.scene import list_scene_files

    paths = list(config.data.train_scenes) or [os.path.join(os.path.dirname(shard_dir.rstrip("/")), "train_scenes")]
    files = list_scene_files(paths)
    if not files:
        raise ValueError(f"data.source='device' needs training scene files: none in {', '.join(paths)} "
                         "(set config.data.train_scenes)")
    return files


def point_options(config) -> PointOptions:
    """How the step hides tracks and rasterizes the point inputs (config.data)."""
    d = config.data
    for name in ("track_dropout", "all_tracks_hidden", "segment_dropout"):
        value = d.get(name, 0.0)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"data.{name} must be a probability in [0, 1], got {value!r}")
    if d.get("segment_km", 3.0) <= 0:
        raise ValueError(f"data.segment_km must be > 0, got {d.segment_km!r}")
    return PointOptions(track_dropout=float(d.get("track_dropout", 0.5)),
                        all_hidden=float(d.get("all_tracks_hidden", 0.25)),
                        segment_dropout=float(d.get("segment_dropout", 0.0)),
                        segment_m=1000.0 * float(d.get("segment_km", 3.0)))


def check_points(config, channels: tuple[str, ...], shards_have_points: bool, where: str) -> None:
    """Refuse, before any step, a config that needs altimeter points the data does not hold, or that
    could never put a point in the freeboard loss."""
    from seaice_jax.config import freeboard_kinds

    kinds, wanted = freeboard_kinds(config), point_channels(channels)
    if (kinds or wanted) and not shards_have_points:
        need = f"elevation.kinds {kinds}" if kinds else f"the point channels {wanted}"
        raise ValueError(f"{where}: holds no altimeter points, which {need} need; convert the scenes with "
                         "data_prep/convert.py --altimetry DIR")
    if kinds and not config.loss.weights.get("freeboard", 0.0):
        raise ValueError(f"loss.weights.freeboard is 0: the freeboard heads of elevation.kinds {kinds} would "
                         "never train")
    if wanted and kinds:
        opts = point_options(config)
        if opts.track_dropout == 0.0 and opts.all_hidden == 0.0 and opts.segment_dropout == 0.0:
            raise ValueError("data.track_dropout, data.all_tracks_hidden and data.segment_dropout are 0 while the "
                             "model sees the tracks "
                             f"({', '.join(wanted)}): no track is ever hidden, so the freeboard loss gets no point")


def resident_max_points(config, shard_dir: str, channels: tuple[str, ...]) -> int:
    """Points per crop of the device-resident source: 0 when the config needs none; else those of the
    shards' patches scaled to the crop's area. The points come from the shards' `<scene>.altimetry.npz`,
    so the shards must be cut at the resident data's downsampling."""
    from seaice_jax.config import freeboard_kinds
    from seaice_jax.data import pipeline

    if not (freeboard_kinds(config) or point_channels(channels)):
        return 0
    layout = None
    if shard_dir and os.path.exists(os.path.join(shard_dir, "manifest.json")):
        layout = pipeline.load_layout(shard_dir)
    check_points(config, channels, bool(layout and layout.max_points), shard_dir or "data.shards")
    if layout.downsample != config.data.downsample:
        raise ValueError(f"{shard_dir}: cut at downsample {layout.downsample}, data.downsample is "
                         f"{config.data.downsample}: the resident altimeter points come from the shards")
    area = (config.data.patch_size / layout.patch_size) ** 2
    return max(64, int(round(layout.max_points * area)))


def make_train_source(config, shard_dir: str, mesh, channels: tuple[str, ...]) -> TrainSource:
    """The configured source for the global batch `config.train.batch_size` on `mesh`."""
    from seaice_jax.data import device_augment, pipeline, resident
    from seaice_jax.parallel import global_batch

    d, gb = config.data, config.train.batch_size
    if d.source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {d.source!r}")
    if d.expand not in EXPANDS:
        raise ValueError(f"data.expand must be one of {EXPANDS}, got {d.expand!r}")
    seed = config.seed + 1
    batch_sharding = jax.NamedSharding(mesh, jax.P("data"))
    points = point_options(config)

    if d.source == "device":
        files = train_scene_files(config, shard_dir)
        max_points = resident_max_points(config, shard_dir, channels)
        spec = resident.ResidentSpec(d.patch_size, d.downsample, d.max_regions, tuple(channels), max_points=max_points)
        data = resident.load_resident(files, spec, sharding=jax.NamedSharding(mesh, jax.P()), points_dir=shard_dir)

        def wrap(step):
            def wrapped(state, data):
                # The key is made inside the trace: a constant of the program. A key array made outside
                # would be committed to this process's first device and enter the multi-process step as
                # an input of its own placement (the processes' programs then disagree and hang).
                key = jax.random.key(seed)
                return resident.with_resident_batches(step, spec=spec, batch_size=gb, key=key, channels=channels,
                                                      augment=d.augment, batch_sharding=batch_sharding,
                                                      points=points)(state, data)
            return wrapped

        return TrainSource(wrap, lambda: data, None,
                           f"device-resident data: {len(files)} scenes, crops of {d.patch_size} px drawn on device")

    layout = pipeline.load_layout(shard_dir)
    check_points(config, channels, layout.max_points > 0, shard_dir)
    n_proc = jax.process_count()
    dataset = pipeline.make_dataset(shard_dir, channels=channels, batch_size=gb // n_proc, seed=config.seed,
                                    augment=d.augment, worker_count=d.worker_count, expand=d.expand,
                                    read_threads=d.get("read_threads", 0),
                                    prefetch_batches=d.get("prefetch_batches", 8),
                                    process_index=jax.process_index(), process_count=n_proc)
    iterator = iter(dataset)
    if d.expand == "device":
        def wrap(step):
            def wrapped(state, batch):
                key = jax.random.key(seed)  # inside the trace, see above
                return device_augment.with_device_batches(step, layout=layout, channels=channels, key=key,
                                                          augment=d.augment, points=points)(state, batch)
            return wrapped
    else:
        def wrap(step):
            def wrapped(state, batch):
                key = jax.random.key(seed)  # inside the trace, see above
                return device_augment.with_host_batches(step, channels=channels, key=key, points=points)(state, batch)
            return wrapped

    return TrainSource(wrap, lambda: global_batch(next(iterator), mesh), iterator,
                       f"shards in {shard_dir}, expanded on the {'device' if d.expand == 'device' else 'host'}")
