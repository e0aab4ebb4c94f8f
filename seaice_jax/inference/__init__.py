"""Whole-scene inference, in the order the data flows:

  tiling      tile origins, margins and the blending window (geometry only)
  predict     scene arrays in, ice logits and class maps out, on device (`predict_scene`)
  binarize    ALS and the concentration-preserving map of one predicted scene (`binary_maps`)
  products    the per-scene files: `<scene>_pred.nc` and the quicklook PNG
  submission  the challenge upload file
  run         files in, files out with a workdir's checkpoint (`predict_files`, launch/infer.py)
  validate    evaluation during training: prediction and metrics, no files (`evaluate_scenes`)

The names below are the package's public API.
"""

from seaice_jax.inference.binarize import (
    BinaryMaps,
    binary_maps,
    cell_regions,
    conc_targets,
    region_ice_counts,
    region_means,
    trim_threshold_ties,
)
from seaice_jax.inference.predict import head_layout, output_maps, predict_scene, single_tile_predictor, tile_predictor
from seaice_jax.inference.products import (
    HH,
    PRED_SUFFIX,
    QUICKLOOK_SUFFIX,
    masked_uint8,
    write_prediction,
    write_quicklook,
)
from seaice_jax.inference.run import predict_files
from seaice_jax.inference.submission import (
    SubmissionWriter,
    block_max_2x2,
    submission_charts,
    submission_key,
    write_submission,
)
from seaice_jax.inference.tiling import (
    check_tiling,
    core_window,
    default_margin,
    receptive_radius,
    tile_alignment,
    tile_origins,
)
from seaice_jax.inference.validate import evaluate_binary_maps, evaluate_scenes

__all__ = [
    "BinaryMaps", "HH", "PRED_SUFFIX", "QUICKLOOK_SUFFIX", "SubmissionWriter", "binary_maps",
    "block_max_2x2", "cell_regions", "check_tiling", "conc_targets", "core_window", "default_margin",
    "evaluate_binary_maps", "evaluate_scenes", "head_layout", "masked_uint8", "output_maps",
    "predict_files", "predict_scene", "receptive_radius", "region_ice_counts", "region_means",
    "single_tile_predictor", "submission_charts", "submission_key", "tile_alignment", "tile_origins",
    "tile_predictor", "trim_threshold_ties", "write_prediction", "write_quicklook", "write_submission",
]
