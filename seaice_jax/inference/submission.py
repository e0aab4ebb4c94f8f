"""The challenge upload file: one uint8 variable per scene and chart, written scene by scene."""

from __future__ import annotations

import contextlib
import os
import re

import numpy as np

from seaice_jax import fileio
from seaice_jax.data.channels import CHART_NAMES

SUBMISSION_COMPRESSION = dict(zlib=True, complevel=1)  # the challenge's upload format

_RAW_NAME = re.compile(r"_(\d{8}T\d{6})_.*icechart_(cis|dmi)_")


def submission_key(scene_name: str) -> str:
    """Variable prefix of a scene in the upload file: the first 19 characters of its name.

    RTT `20190430T101830_cis_prep` -> `20190430T101830_cis`. A raw name's first 19 characters are
    the same for every scene (`S1A_EW_GRDM_1SDH_20`), so a raw scene uses the RTT form
    `<start time>_<service>` read from its name (the name of the same scene in the RTT product).
    """
    match = _RAW_NAME.search(scene_name)
    if scene_name.startswith("S1") and match:
        return f"{match.group(1)}_{match.group(2)}"
    return scene_name[:19]


def block_max_2x2(classes: np.ndarray) -> np.ndarray:
    """uint8 [H, W] -> [ceil(H/2), ceil(W/2)]: 2x2 max, as RTT charts were made from raw ones.

    An odd last row / column is its own block (edge-replicated).
    """
    h, w = classes.shape
    padded = np.pad(classes, ((0, h % 2), (0, w % 2)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).max(axis=(1, 3))


def submission_charts(product: str, pred: dict) -> dict[str, np.ndarray]:
    """uint8 chart maps at 80 m for the upload file: RTT as predicted, raw (40 m) by `block_max_2x2`.

    The maps are not masked: the challenge drops pixels where its reference is 255, and a 255 on a
    pixel it scores would count as a (wrong, for SIC far off) class.
    """
    charts = {c: pred[c].astype(np.uint8, copy=False) for c in CHART_NAMES if c in pred}
    if product == "raw":
        charts = {c: block_max_2x2(v) for c, v in charts.items()}
    return charts


class SubmissionWriter:
    """The challenge upload file, written scene by scene (memory: one scene) to a temporary file.

    One uint8 variable `<key>_<chart>` with dims (`<key>_<chart>_dim0`, `<key>_<chart>_dim1`) per
    scene and chart, zlib level 1 (the format of the challenge's test_upload notebook).
    `close()` renames it into place; `abort()` removes it.
    """

    def __init__(self, path: str):
        import netCDF4

        self.path = path
        self.tmp = fileio.temporary_path(path, ".nc.part")
        self.ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        self.keys: set[str] = set()

    def add(self, scene_name: str, charts: dict[str, np.ndarray]) -> None:
        key = submission_key(scene_name)
        if key in self.keys:
            raise ValueError(f"{self.path}: two scenes share the submission name {key} ({scene_name})")
        self.keys.add(key)
        for chart, values in charts.items():
            name = f"{key}_{chart}"
            dims = (f"{name}_dim0", f"{name}_dim1")
            for dim, size in zip(dims, values.shape, strict=True):
                self.ds.createDimension(dim, size)
            var = self.ds.createVariable(name, "u1", dims, fill_value=False, **SUBMISSION_COMPRESSION)
            try:
                var[:] = values
            except (OSError, RuntimeError) as e:
                raise fileio.write_error(e, self.path) from None

    def close(self) -> str:
        try:
            self.ds.close()
            fileio.publish(self.tmp, self.path)
        except (OSError, RuntimeError) as e:  # NetCDF's "HDF error" on a full disk: one line, no .part left
            error = fileio.write_error(e, self.path)
            self.abort()
            raise error from None
        return self.path

    def abort(self) -> None:
        if self.ds.isopen():
            with contextlib.suppress(OSError, RuntimeError):  # closing a file whose writes failed fails too
                self.ds.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def write_submission(path: str, scenes: dict[str, tuple[str, dict]]) -> str:
    """Upload file from {scene name: (product, predictions with SIC / SOD / FLOE)}."""
    writer = SubmissionWriter(path)
    try:
        for name, (product, pred) in scenes.items():
            writer.add(name, submission_charts(product, pred))
    except BaseException:
        writer.abort()
        raise
    return writer.close()
