"""Freeboard maps from a few altimeter tracks (issue 12): ice head (region loss) + freeboard head (masked
footprint Huber loss on ICESat-2 tracks), on synthetic winter scenes with altimetry, a few CPU minutes.

  python launch/train.py --config configs/elevation.py --workdir runs/elevation
  python launch/infer.py --workdir runs/elevation --scenes D/*_prep.nc --out P
  python launch/evaluate_elevation.py --pred P --scenes D/*_prep.nc --tracks D/altimetry --json E.json
"""

import ml_collections

from seaice_jax.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.data.synthetic.train_scenes = 8
    c.data.synthetic.size = (384, 384)
    c.data.patch_size = 128
    c.model.filters = [16, 32, 32]
    c.model.heads.freeboard = True
    c.train.batch_size = 8
    c.train.num_steps = 200
    c.train.log_every = 25
    c.train.checkpoint_every = 100
    c.eval.stride = 128
    c.elevation = e = ml_collections.ConfigDict()
    e.kind = "laser"  # laser (total) freeboard: ICESat-2 tracks, SWOT; radar: CryoSat-2 / Sentinel-3
    e.missions = "all"  # what the training scenes' synthesizer writes
    e.weight = 10.0  # freeboard loss weight against the ice head's region loss
    e.huber_delta = 0.3  # m
    e.sigma_floor = 0.02  # m
    e.points_per_crop = 1024
    e.max_pixels = 8  # footprint pixels kept per point
    e.max_time_gap_h = 6.0
    e.calibrate = "none"  # none | offset | scale_offset: per-scene calibration on the scene's tracks (evaluation)
    return c
