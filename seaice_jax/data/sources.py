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

    if d.source == "device":
        files = train_scene_files(config, shard_dir)
        spec = resident.ResidentSpec(d.patch_size, d.downsample, d.max_regions, tuple(channels))
        data = resident.load_resident(files, spec, sharding=jax.NamedSharding(mesh, jax.P()))

        def wrap(step):
            def wrapped(state, data):
                # The key is made inside the trace: a constant of the program. A key array made outside
                # would be committed to this process's first device and enter the multi-process step as
                # an input of its own placement (the processes' programs then disagree and hang).
                key = jax.random.key(seed)
                return resident.with_resident_batches(step, spec=spec, batch_size=gb, key=key, channels=channels,
                                                      augment=d.augment, batch_sharding=batch_sharding)(state, data)
            return wrapped

        return TrainSource(wrap, lambda: data, None,
                           f"device-resident data: {len(files)} scenes, crops of {d.patch_size} px drawn on device")

    n_proc = jax.process_count()
    dataset = pipeline.make_dataset(shard_dir, channels=channels, batch_size=gb // n_proc, seed=config.seed,
                                    augment=d.augment, worker_count=d.worker_count, expand=d.expand,
                                    process_index=jax.process_index(), process_count=n_proc)
    iterator = iter(dataset)
    if d.expand == "device":
        layout = pipeline.load_layout(shard_dir)

        def wrap(step):
            def wrapped(state, batch):
                key = jax.random.key(seed)  # inside the trace, see above
                return device_augment.with_device_batches(step, layout=layout, channels=channels, key=key,
                                                          augment=d.augment)(state, batch)
            return wrapped
    else:
        def wrap(step):
            return step

    return TrainSource(wrap, lambda: global_batch(next(iterator), mesh), iterator,
                       f"shards in {shard_dir}, expanded on the {'device' if d.expand == 'device' else 'host'}")
