"""Training data for a run: the configured shards, or synthetic scenes written and converted once.

With `config.data.shards` set, those shards and `config.data.val_scenes`. Otherwise
`config.data.synthetic` scenes go into `<root>/train_scenes` (and `<root>/val_scenes`), converted to
`<root>/shards`; a rerun reuses what is there (conversion skips scenes already done).
"""

from __future__ import annotations

import os

import ml_collections

from seaice_jax.config import freeboard_kinds
from seaice_jax.data import channels as ch

ALTIMETRY_DIR = "altimetry"  # synthetic.tracks.ALTIMETRY_DIR: the tracks beside a scene folder


def count_scenes(folder: str) -> int:
    """Scene files in `folder` (prediction files `*_pred.nc` not counted)."""
    if not os.path.isdir(folder):
        return 0
    return len([f for f in os.listdir(folder) if f.endswith(".nc") and not f.endswith("_pred.nc")])


def synthesize_and_convert(config: ml_collections.ConfigDict, root: str, *, val_scenes: bool) -> tuple[str, str]:
    """(shard folder, validation scene folder): the synthetic scenes of `config.data.synthetic`
    written under `root` (validation ones from seed + 10 000 when `val_scenes`) and the training
    ones converted. No JAX: the sweep's parent process calls it too."""
    from seaice_jax import synthetic
    from seaice_jax.data.scene import list_scene_files
    from seaice_jax.data.scene_types import SceneError
    from seaice_jax.data.shards import PatchSpec, convert_scenes, is_converted

    d, s = config.data, config.data.synthetic
    e = config.get("elevation") if freeboard_kinds(config) else None
    missions = e.missions if e is not None else None  # altimeter tracks beside the scenes
    train_dir, val_dir, shard_dir = (os.path.join(root, n) for n in ("train_scenes", "val_scenes", "shards"))
    todo = [(train_dir, s.train_scenes, s.seed)] + ([(val_dir, s.val_scenes, s.seed + 10_000)] if val_scenes else [])
    for folder, n, seed in todo:
        if count_scenes(folder) < n or (missions and not os.path.isdir(os.path.join(folder, ALTIMETRY_DIR))):
            print(f"synthesizing {n} {s.season} {s.product} scene(s) of {s.size[0]} x {s.size[1]} px "
                  f"{'with ' + missions + ' altimetry ' if missions else ''}into {folder} ...", flush=True)
            os.makedirs(folder, exist_ok=True)
            synthetic.write_synthetic_scenes(folder, n, s.product, s.season, tuple(s.size), seed, altimetry=missions)
    spec = PatchSpec(d.patch_size, d.stride, d.downsample, d.max_regions, ch.STORED_CHANNELS,
                     max_points=int(e.max_points) if e is not None else 0,
                     max_time_gap_h=float(e.max_time_gap_h) if e is not None else 0.0)
    altimetry = None
    if e is not None:  # the same conversion as data_prep/convert.py --altimetry
        from seaice_jax.elevation.collocation import SceneAltimetry

        altimetry = SceneAltimetry([os.path.join(train_dir, ALTIMETRY_DIR)], max_time_gap_h=e.max_time_gap_h,
                                   index_cache=os.path.join(root, "altimetry_index.json"))
    if not all(is_converted(p, shard_dir, spec) for p in list_scene_files([train_dir])):
        print(f"converting the training scenes to {d.patch_size} px patches in {shard_dir} ...", flush=True)
    done, errors = convert_scenes([train_dir], shard_dir, spec, workers=1, progress=False, altimetry=altimetry)
    if errors:
        raise SceneError("; ".join(errors))
    if done:
        print(f"converted {len(done)} scene(s), {sum(x['num_patches'] for x in done)} patches", flush=True)
    return shard_dir, val_dir


def prepare_data(config: ml_collections.ConfigDict, workdir: str) -> tuple[str, list[str]]:
    """(shard folder, validation scene files) of a training run; process 0 writes, the others wait."""
    import jax

    d = config.data
    if d.shards:
        return d.shards, list(d.val_scenes)
    root = os.path.join(workdir, "data")
    val_dir = os.path.join(root, "val_scenes")
    shard_dir = os.path.join(root, "shards")
    if jax.process_index() == 0:
        shard_dir, val_dir = synthesize_and_convert(config, root, val_scenes=True)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("prepare_data")
    if not os.path.isdir(val_dir):  # synthetic.val_scenes = 0: no held-out scenes
        return shard_dir, []
    val = sorted(os.path.join(val_dir, f) for f in os.listdir(val_dir) if f.endswith(".nc"))
    return shard_dir, val
