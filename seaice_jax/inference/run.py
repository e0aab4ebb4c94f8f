"""Files in, files out: every scene predicted with a workdir's latest checkpoint (`launch/infer.py`).

Per scene: the model's maps (`predict.predict_scene`), ALS and the concentration-preserving map
(`binarize.binary_maps`), written to `<out_dir>/<scene name>_pred.nc` on the scene's SAR grid
(`products`); optional quick-look PNG and the challenge submission file (`submission`).

Options from config.eval: `blend` ('core' window or 'average' of whole tiles, `tiling.core_window`)
and `land_mask` ('distance_map': the reader's land, distance 0 and chart land; 'sar_no_data': only
the pixels without SAR, i.e. isnan(HH) as the ALS authors' code, 0 in the standard-scaled channel).

A model trained on downsampled patches (config.data.downsample = f > 1) predicts on the scene
downsampled the same way (`data.shards.downsample_scene`: f x f block means); its maps come back on
the scene's own grid by block replication (the logit and the classes alike; the rows / columns past
the last whole block repeat it). ALS and the concentration-preserving binarization then run at full
resolution, on the scene's own validity and chart regions, so every region holds exactly its ice
count on the grid the file is on.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np

from seaice_jax.data.points import POINT_CHANNELS, point_channels
from seaice_jax.data.shards import downsampled_geometry
from seaice_jax.inference.binarize import binary_maps
from seaice_jax.inference.predict import TTA_VIEWS, predict_scene
from seaice_jax.inference.products import DISTANCE, HH, PRED_SUFFIX, QUICKLOOK_SUFFIX, write_prediction, write_quicklook
from seaice_jax.inference.submission import SubmissionWriter, submission_charts
from seaice_jax.inference.tiling import BLENDS, blend_margin, check_tiling, tile_alignment
from seaice_jax.trained_model import input_channels, restore_for_inference

LAND_MASKS = ("distance_map", "sar_no_data")


def apply_land_mask(scene, land_mask: str):
    """The scene with `valid` per `land_mask` (LAND_MASKS); 'sar_no_data' needs the HH channel."""
    if land_mask not in LAND_MASKS:
        raise ValueError(f"inference: land_mask must be one of {', '.join(LAND_MASKS)}, got {land_mask!r}")
    if land_mask == "distance_map":
        return scene
    return dataclasses.replace(scene, valid=scene.channels[HH] != 0)


def upsample_blocks(values: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """[h, w] map of f x f blocks -> `shape`: each block value repeated over its block; rows / columns
    past the last whole block take the last block's value."""
    if factor == 1:
        return values
    big = np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)
    h, w = shape
    pad = ((0, max(0, h - big.shape[0])), (0, max(0, w - big.shape[1])))
    return np.pad(big, pad, mode="edge")[:h, :w]


def predict_full_grid(fns, params, batch_stats, scene, channels, factor: int, points=None, needed=None,
                      **tiling) -> dict:
    """`predict_scene` on the scene downsampled by `factor`, maps back on the scene's own grid.

    points: the altimeter points given to a model with point channels (data.points.ScenePoints on the
    downsampled grid), rasterized into those channels; None: the channels are 0 (no track, SAR alone).
    needed: bool map on the scene's grid or None: only the tiles that reach these pixels are run (see
    `predict_scene`; the maps are undefined elsewhere).
    """
    from seaice_jax.data.points import POINT_CHANNELS, scene_point_planes
    from seaice_jax.data.shards import downsample_scene

    small = downsample_scene(scene, factor) if factor > 1 else scene
    planes = scene_point_planes(points, channels) if points is not None else {}
    zeros = np.zeros(small.shape, np.float32)
    inputs = [planes.get(n, zeros) if n in POINT_CHANNELS else small.channel(n) for n in channels]
    if needed is not None and factor > 1:  # a block is needed where any of its pixels is
        rr, cc = np.nonzero(needed)  # the last block also stands for the rows / columns past it
        needed = np.zeros(small.shape, bool)
        needed[np.minimum(rr // factor, small.shape[0] - 1), np.minimum(cc // factor, small.shape[1] - 1)] = True
    pred = predict_scene(fns, params, batch_stats, inputs, needed=needed, **tiling)
    return {k: upsample_blocks(v, factor, scene.shape) for k, v in pred.items()}


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How a trained config predicts a whole scene (config.eval and config.data.downsample)."""

    tiling: dict  # predict_scene keywords: tile, stride, batch_size, margin, align, blend, tta
    land_mask: str
    downsample: int

    @property
    def needs(self) -> tuple[str, ...]:
        """Channels the options read beyond the model's inputs."""
        return (HH,) if self.land_mask == "sar_no_data" else ()


def inference_options(config, *, tile: int | None = None, stride: int | None = None,
                      batch_size: int | None = None, where: str = "config") -> InferenceOptions:
    """Checked options of `config` (ValueError naming `where` otherwise); configs written before
    eval.blend / eval.land_mask / eval.tta existed get 'core' / 'distance_map' / 'none'."""
    tile = int(tile or config.eval.tile)
    stride = int(stride or config.eval.stride)
    batch_size = int(batch_size or config.eval.batch_size)
    blend = config.eval.get("blend", "core")
    land_mask = config.eval.get("land_mask", "distance_map")
    tta = config.eval.get("tta", "none")
    if tta not in TTA_VIEWS:
        raise ValueError(f"{where}: config.eval.tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    if land_mask not in LAND_MASKS:
        raise ValueError(f"{where}: config.eval.land_mask must be one of {', '.join(LAND_MASKS)}, got {land_mask!r}")
    if blend not in BLENDS:
        raise ValueError(f"{where}: config.eval.blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    align = tile_alignment(config.model)
    margin = blend_margin(tile, stride, align, blend)
    check_tiling(tile, stride, margin, align)
    factor = int(config.data.get("downsample", 1))
    tiling = dict(tile=tile, stride=stride, batch_size=batch_size, margin=margin, align=align, blend=blend, tta=tta)
    return InferenceOptions(tiling, land_mask, factor)


def predict_with_options(fns, params, batch_stats, scene, channels, options: InferenceOptions, points=None):
    """(scene with the options' land mask, model maps on the scene's grid, BinaryMaps)."""
    scene = apply_land_mask(scene, options.land_mask)
    pred = predict_full_grid(fns, params, batch_stats, scene, channels, options.downsample, points,
                             **options.tiling)
    return scene, pred, binary_maps(scene, pred)


def predict_files(
    workdir: str,
    scene_paths: list[str],
    out_dir: str,
    *,
    png: bool = False,
    submission: str | None = None,
    tile: int | None = None,
    stride: int | None = None,
    batch_size: int | None = None,
    errors: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    altimetry: Callable | None = None,
) -> list[str]:
    """Predict every scene with the latest checkpoint of `workdir`; returns the paths written
    (`_pred.nc`, quicklooks, the submission).

    scene_paths: scene files or folders of them (seaice_jax.data.scene.list_scene_files); scenes
    without a chart (unlabelled, or test-split `_prep.nc` paired with its `_prep_reference.nc`)
    work. tile / stride / batch_size default to config.eval. Writes `<out_dir>/<scene name>_pred.nc`
    (see `write_prediction`), with `png` also `<out_dir>/<scene name>_quicklook.png`, and with
    `submission` the challenge upload file there.
    errors: None: a bad scene (SceneError, a name given twice) raises and stops the run. A list: its
      one-line message is appended, the scene skipped and the others go on; the submission is then
      not written (it would lack a scene). progress: called with one line per scene.
    altimetry: for a model with point channels (freeboard_points / freeboard_mask), a callable
      (downsampled scene geometry) -> (data.points.ScenePoints, report), e.g.
      elevation.collocation.SceneAltimetry: each scene's collocated tracks become those inputs (the
      report's counts go into the file's attributes). None: the point channels are 0 (SAR alone).
    Raises FileNotFoundError (no workdir / checkpoint) and ValueError (bad tiling or options, a model
    without the ice head, or a submission from a model without chart heads) before writing anything;
    `out_dir` is created only when a file goes into it.
    """
    from seaice_jax.data.scene import list_scene_files, open_scene
    from seaice_jax.data.scene_types import SceneError

    files = list_scene_files(list(scene_paths))
    config, fns, params, batch_stats, step = restore_for_inference(workdir)
    channels = input_channels(config)
    options = inference_options(config, tile=tile, stride=stride, batch_size=batch_size, where=workdir)
    heads = config.model.heads
    if not heads.ice:
        raise ValueError(f"{workdir}: the model has no ice head; binary ice maps need it")
    if submission and heads.sic == "none" and not heads.sod and not heads.floe:
        raise ValueError(f"{workdir}: the model has no SIC / SOD / FLOE head for a submission")
    extra = options.needs + ((HH, DISTANCE) if png else ())
    uses_points = bool(point_channels(channels))
    # only what the model (and the PNG / mask) needs; point channels come from the tracks
    read = tuple(c for c in dict.fromkeys(channels + extra) if c not in POINT_CHANNELS)
    t = options.tiling

    writer = None
    written, names, failed = [], set(), 0
    try:
        for i, path in enumerate(files):
            try:
                scene = open_scene(path, channels=read, require_charts=False)
                if scene.name in names:
                    raise SceneError(f"{os.path.basename(path)}: scene name {scene.name} appears twice in the input")
            except SceneError as e:
                if errors is None:
                    raise
                failed += 1
                errors.append(" ".join(str(e).split()))
                if progress:
                    progress(f"[{i + 1}/{len(files)}] {os.path.basename(path)}: skipped ({errors[-1]})")
                continue
            names.add(scene.name)
            points, point_attrs = None, {}
            if altimetry is not None and uses_points:
                points, report = altimetry(downsampled_geometry(scene, options.downsample))
                point_attrs = {"altimetry_input_points": int(len(points)),
                               "altimetry_input_tracks": int(len(set(points.track.tolist()))),
                               "altimetry_report": json.dumps(report)}
            elif uses_points:
                point_attrs = {"altimetry_input_points": 0, "altimetry_input_tracks": 0}
            scene, pred, maps = predict_with_options(fns, params, batch_stats, scene, channels, options, points)
            os.makedirs(out_dir, exist_ok=True)
            written.append(write_prediction(
                os.path.join(out_dir, scene.name + PRED_SUFFIX), scene, pred, maps, step=step, config=config,
                attrs=dict(tile=t["tile"], stride=t["stride"], margin=t["margin"], blend=t["blend"], tta=t["tta"],
                           land_mask=options.land_mask, downsample=options.downsample,
                           source_workdir=os.path.abspath(workdir), **point_attrs)))
            if png:
                written.append(write_quicklook(os.path.join(out_dir, scene.name + QUICKLOOK_SUFFIX), scene, maps,
                                               freeboard=pred.get("freeboard")))
            if submission:
                if writer is None:
                    writer = SubmissionWriter(submission)
                writer.add(scene.name, submission_charts(scene.product, pred))
            if progress:
                progress(f"[{i + 1}/{len(files)}] {scene.name}: {scene.shape[0]} x {scene.shape[1]} px, "
                         f"ice {np.mean(maps.binary_als[scene.valid]) if scene.valid.any() else 0:.0%} (ALS)")
            del scene, pred, maps  # free the scene before reading the next
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        if failed:
            writer.abort()
        else:
            written.append(writer.close())
    return written
