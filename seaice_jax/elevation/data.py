"""Altimeter files read by folder for evaluation, with what could not be used counted, and the synthetic
truth variables a scene may hold (evaluation only: training and inference never read them)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from seaice_jax.altimetry import open_altimetry
from seaice_jax.altimetry.kinds import freeboard_tracks
from seaice_jax.altimetry.track import AltimetryFormatError, Swath, Track

# The synthetic truth of each freeboard kind in a scene file (synthetic.freeboard.TRUTH_VARIABLES).
TRUTH_VARIABLE = {"laser": "freeboard_truth", "radar": "radar_freeboard_truth", "ice": "ice_freeboard_truth"}
HEAD_OF_KIND = {"laser": "freeboard", "radar": "radar_freeboard"}  # the prediction variable of each kind
MODEL_METHODS = ("model", "model_sar_only")
PRED_SUFFIX = "_pred.nc"


class EvaluationError(ValueError):
    """Nothing to evaluate (no track, no point, no prediction with the variable); one line."""


@dataclasses.dataclass
class AltimetryRead:
    """What `read_altimetry` found: tracks and swaths, and the files / lines it could not use."""

    tracks: list[Track]
    swaths: list[Swath]
    files: int = 0
    unreadable: list[str] = dataclasses.field(default_factory=list)  # one line per file
    notes: list[str] = dataclasses.field(default_factory=list)  # skipped beams, refused tracks

    def of_kind(self, kind: str) -> list[Track]:
        """The freeboard tracks of one kind (altimetry.kinds.freeboard_tracks: ATL07 heights through a
        local sea surface or refused, with a note each)."""
        return freeboard_tracks(self.tracks, kind, self.notes)


def altimetry_files(paths) -> list[str]:
    """The files (and `.SEN3` folders) of the given files or folders (folders recursively), sorted."""
    out = []
    for p in ([paths] if isinstance(paths, str) else list(paths)):
        if os.path.isdir(p) and not p.rstrip("/").endswith(".SEN3"):
            for folder, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [os.path.join(folder, d) for d in dirs if d.endswith(".SEN3")]
                dirs[:] = [d for d in dirs if not d.endswith(".SEN3")]
                out += [os.path.join(folder, f) for f in sorted(files) if not f.startswith(".")]
        else:
            out.append(p)
    return sorted(out)


def read_altimetry(paths) -> AltimetryRead:
    """Every track / swath in the given files or folders; files that are not a supported product are
    counted with their one-line reason (never silently dropped)."""
    files = altimetry_files(paths)
    got = AltimetryRead([], [], files=len(files))
    for f in files:
        try:
            items = open_altimetry(f, notes=got.notes)
        except AltimetryFormatError as e:
            got.unreadable.append(str(e))
            continue
        for item in items:
            (got.swaths if isinstance(item, Swath) else got.tracks).append(item)
    return got


def read_prediction(pred_dir: str, name: str, head: str = "freeboard") -> dict | None:
    """The maps of `<pred_dir>/<name>_pred.nc` the evaluation uses (the freeboard of `head` as
    `freeboard`, its uncertainty, the ice logit / ALS map) and the file's attributes; None without one."""
    import xarray as xr
    path = os.path.join(pred_dir, name + PRED_SUFFIX)
    if not os.path.exists(path):
        return None
    with xr.open_dataset(path, engine="netcdf4") as ds:
        out = {k: np.asarray(ds[k].values) for k in ("ice_logit", "ice_binary_als") if k in ds}
        if head in ds:
            out["freeboard"] = np.asarray(ds[head].values)
        if head + "_uncertainty" in ds:
            out["uncertainty"] = np.asarray(ds[head + "_uncertainty"].values)
        out["attrs"] = dict(ds.attrs)
        return out
