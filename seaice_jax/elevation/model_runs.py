"""The trained freeboard model run again by the evaluation: with all, some or none of a scene's tracks as
its inputs (held-out tracks, track subsets, the SAR alone), each run cached by its set of input tracks.
"""

from __future__ import annotations

import os

import numpy as np

from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.elevation.calibrate import calibrated
from seaice_jax.elevation.data import HEAD_OF_KIND, MODEL_METHODS, EvaluationError, read_prediction


class ModelRunner:
    """The trained model of a workdir run on a scene with a chosen set of tracks as its inputs:
    (freeboard [H, W], uncertainty [H, W] or None) of the freeboard kind `kind`."""

    def __init__(self, workdir: str, kind: str = "laser", step: int | None = None):
        from seaice_jax.config import freeboard_kinds
        from seaice_jax.data.points import point_channels
        from seaice_jax.inference.run import inference_options
        from seaice_jax.trained_model import input_channels, restore_for_inference

        config, self.fns, self.params, self.batch_stats, self.step = restore_for_inference(workdir, step)
        if kind not in freeboard_kinds(config):
            raise EvaluationError(f"{workdir}: the model has no {kind} freeboard head "
                                  f"(its elevation.kinds: {freeboard_kinds(config)})")
        self.workdir, self.kind, self.head = workdir, kind, HEAD_OF_KIND[kind]
        self.channels = input_channels(config)
        self.uses_points = bool(point_channels(self.channels))
        self.options = inference_options(config, where=workdir)
        self.runs = 0

    @property
    def read_channels(self) -> tuple[str, ...]:
        from seaice_jax.data.points import POINT_CHANNELS
        return tuple(c for c in self.channels if c not in POINT_CHANNELS)

    def __call__(self, scene, points=None, needed=None):
        """needed: bool map or None; only the tiles reaching these pixels are run (the maps are NaN
        elsewhere)."""
        from seaice_jax.inference.run import predict_full_grid

        self.runs += 1
        pred = predict_full_grid(self.fns, self.params, self.batch_stats, scene, self.channels,
                                 self.options.downsample, points, needed, **self.options.tiling)
        return pred[self.head], pred.get(self.head + "_uncertainty")


class SceneModel:
    """The model on one scene: runs cached by the set of input tracks (leave-one-track-out and the
    track subsets reuse them)."""

    def __init__(self, runner: ModelRunner, scene, tracks, gap_s: float, colloc):
        from seaice_jax.altimetry.track import to_unix_seconds
        from seaice_jax.data import points as pts
        from seaice_jax.data.shards import downsampled_geometry

        self.runner, self.scene, self.cache = runner, scene, {}
        self.tracks = frozenset(int(t) for t in np.unique(colloc.track_index))
        f = runner.options.downsample
        grid = colloc if f == 1 else collocate(downsampled_geometry(scene, f), tracks, gap_s, max_pixels=8)
        kinds = [runner.kind] * len(tracks)
        self.points = (pts.from_collocation(grid, tracks, kinds, to_unix_seconds(scene.start_time)) if len(grid)
                       else pts.ScenePoints.empty(grid.shape))

    def run(self, track_indices, needed=None) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's maps with these tracks as inputs (None: none, the SAR alone). needed: bool map
        or None; a run for a few pixels (leave-one-track-out scores one track's footprints) runs only
        the tiles that reach them, is NaN elsewhere and is not kept (a whole run is, and serves it)."""
        key = None if track_indices is None else frozenset(int(t) for t in track_indices)
        if key in self.cache:
            return self.cache[key]
        points = None
        if key is not None and self.runner.uses_points:
            points = self.points.select(np.isin(self.points.track, sorted(key)))
        result = self.runner(self.scene, points, needed)
        if needed is None:
            self.cache[key] = result
        return result

    def is_every_track(self, track_indices) -> bool:
        """Whether `track_indices` hold every track collocated with the scene."""
        return frozenset(int(t) for t in np.unique(track_indices)) == self.tracks

    def sar_only(self):
        return self.run(None)


def model_loo(scene_model: SceneModel, colloc, calibrate: str, lead) -> tuple[np.ndarray, np.ndarray]:
    """(footprint-mean freeboard, total sigma) at every point, from the model run without the point's
    own track (NaN sigma without an uncertainty head)."""
    preds, sig = np.full(len(colloc), np.nan), np.full(len(colloc), np.nan)
    tracks = np.unique(colloc.track_index)
    for ti in tracks:
        held = colloc.track_index == ti
        rest = colloc.select(~held)
        on = colloc.select(held)
        fb, unc = scene_model.run(np.unique(rest.track_index), needed=footprint_pixels(on, colloc.shape)
                                  if calibrate == "none" else None)  # calibration reads the rest's pixels
        fb = calibrated(fb, rest, calibrate, lead)
        preds[held] = am.footprint_means(fb, on)
        if unc is not None:
            s = am.footprint_means(unc, on)
            sig[held] = np.sqrt(s ** 2 + np.nan_to_num(on.uncertainty.astype(np.float64), nan=0.0) ** 2)
    return preds, sig


def footprint_pixels(colloc, shape) -> np.ndarray:
    """bool [H, W]: the pixels that the footprints of `colloc` weigh."""
    mask = np.zeros(shape[0] * shape[1], bool)
    mask[colloc.index[colloc.weight > 0]] = True
    return mask.reshape(shape)


def model_runner(pred_dir, files, workdir, kind, methods):
    """(ModelRunner or None, a note saying why none): --workdir, else the workdir the prediction files
    name (attribute source_workdir) when it still holds the model."""
    if not any(m in MODEL_METHODS for m in methods):
        return None, ""
    if workdir is None and pred_dir:
        for path in files:
            pred = read_prediction(pred_dir, os.path.basename(path)[: -len(".nc")])
            if pred and pred["attrs"].get("source_workdir"):
                workdir = str(pred["attrs"]["source_workdir"])
                break
    if workdir is None:
        return None, "no model workdir (pass --workdir): model_sar_only and the model's held-out figures left out"
    if not os.path.isdir(workdir):
        return None, (f"{workdir}: the model's workdir (named by the predictions) is not here; pass --workdir: "
                      "model_sar_only and the model's held-out figures left out")
    return ModelRunner(workdir, kind), ""
