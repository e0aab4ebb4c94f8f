"""Files in, files out: every scene predicted with a workdir's latest checkpoint (`launch/infer.py`).

Per scene: the ice logit map (`predict.predict_scene`), ALS and the concentration-preserving map
(`binarize.binary_maps`), written to `<out_dir>/<scene name>_pred.nc` on the scene's SAR grid
(`products`); optional quick-look PNG and the challenge submission file (`submission`).
"""

from __future__ import annotations

import os

from seaice_jax.inference.binarize import binary_maps
from seaice_jax.inference.predict import predict_scene
from seaice_jax.inference.products import HH, PRED_SUFFIX, QUICKLOOK_SUFFIX, write_prediction, write_quicklook
from seaice_jax.inference.submission import SubmissionWriter, submission_charts
from seaice_jax.inference.tiling import check_tiling, default_margin, tile_alignment
from seaice_jax.trained_model import input_channels, restore_for_inference


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
) -> list[str]:
    """Predict every scene with the latest checkpoint of `workdir`; returns the `_pred.nc` paths.

    scene_paths: scene files or folders of them (seaice_jax.data.scene.list_scene_files); scenes
    without a chart (unlabelled) work. tile / stride / batch_size default to config.eval. Writes
    `<out_dir>/<scene name>_pred.nc` (see `write_prediction`), with `png` also
    `<out_dir>/<scene name>_quicklook.png`, and with `submission` the challenge upload file there.
    Raises FileNotFoundError (no workdir / checkpoint), SceneError (a bad scene, which stops the
    run; scenes done before it keep their files) and ValueError (bad tiling, a model without the
    ice head, or a submission from a model without chart heads) before writing anything broken.
    """
    from seaice_jax.data.scene import list_scene_files, open_scene

    files = list_scene_files(list(scene_paths))
    config, fns, params, batch_stats, step = restore_for_inference(workdir)
    channels = input_channels(config)
    tile = int(tile or config.eval.tile)
    stride = int(stride or config.eval.stride)
    batch_size = int(batch_size or config.eval.batch_size)
    align = tile_alignment(config.model)
    margin = default_margin(tile, stride, align)
    check_tiling(tile, stride, margin, align)
    heads = config.model.heads
    if not heads.ice:
        raise ValueError(f"{workdir}: the model has no ice head; binary ice maps need it")
    if submission and heads.sic == "none" and not heads.sod and not heads.floe:
        raise ValueError(f"{workdir}: the model has no SIC / SOD / FLOE head for a submission")
    read = tuple(dict.fromkeys(channels + ((HH,) if png else ())))  # only what the model (and the PNG) needs

    os.makedirs(out_dir, exist_ok=True)
    writer = SubmissionWriter(submission) if submission else None
    written, names = [], set()
    try:
        for path in files:
            scene = open_scene(path, channels=read, require_charts=False)
            if scene.name in names:
                raise ValueError(f"{path}: scene name {scene.name} appears twice in the input")
            names.add(scene.name)
            pred = predict_scene(fns, params, batch_stats, [scene.channels[n] for n in channels],
                                 tile=tile, stride=stride, batch_size=batch_size, margin=margin, align=align)
            maps = binary_maps(scene, pred)
            written.append(write_prediction(
                os.path.join(out_dir, scene.name + PRED_SUFFIX), scene, pred, maps, step=step,
                attrs=dict(tile=tile, stride=stride, margin=margin)))
            if png:
                write_quicklook(os.path.join(out_dir, scene.name + QUICKLOOK_SUFFIX), scene, maps)
            if writer is not None:
                writer.add(scene.name, submission_charts(scene.product, pred))
            del scene, pred, maps  # free the scene before reading the next
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    return written
