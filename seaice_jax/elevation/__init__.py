"""Freeboard maps at SAR resolution from a few altimeter tracks (docs/method.md).

  collocation  a scene's altimeter points: the granules that can overlap it (altimetry.index), their
               freeboard tracks by kind, collocated on the patch grid, with counts (conversion, inference)
  data         altimeter files read by folder, the synthetic truth variables
  calibrate    per-scene scale / offset of a freeboard map on that scene's tracks
  evaluate     the model (with and without its track inputs) against quantile mapping, GP and
               nearest-track baselines (launch/evaluate_elevation.py)
  compensation tracks from other days moved to the SAR time along the drift
Training is the main loop (seaice_jax.train) with the freeboard loss switched on (configs/elevation.py).
"""
