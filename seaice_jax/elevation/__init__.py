"""Freeboard maps at SAR resolution from a few altimeter tracks (issue 12, method.md section 8).

  data       scenes + collocated track footprints, training crops with re-indexed footprints
  train      the elevation training run (ice head with the region loss + freeboard head with the
             masked footprint Huber loss), called by seaice_jax.train when the config has `elevation`
  calibrate  per-scene scale / offset of a freeboard map on that scene's tracks
  evaluate   the model against quantile mapping, GP and nearest-track baselines (launch/evaluate_elevation.py)
"""
