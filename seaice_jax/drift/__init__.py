"""Sea-ice drift between acquisitions and what it makes possible.

  estimation  pattern matching (normalised cross-correlation, coarse to fine, rotations, quality tests)
              and FFT phase correlation; `DriftConfig`, `DriftField`, `estimate_drift`
  images      scene B resampled onto scene A's pixel grid through both tie-point grids
  motion      ice fields warped along a flow, area ratio, tracks moved to another time (`move_tracks`)
  io          CF drift NetCDF files, scenes read for drift, the drift PNG
  evaluation  displacement error against a known drift
  temporal    neighbouring acquisitions warped onto a scene: agreement, fusion
  refine      refined prediction files for a time series (launch/refine_maps.py)

The synthetic world's known drift and sequences live in `seaice_jax.synthetic`, above this package.
"""
