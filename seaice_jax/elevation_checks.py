"""What launch/evaluate_elevation.py checks before and after its work.

Before (`check_inputs`), each failure one line naming the flag or file: the output (`--json` and the
`.md` / `.png` beside it) can be written; `--pred` is a folder; `--scenes` lists scenes; every
`--tracks` path exists and holds altimeter files of a known product that read (each file that does
not is counted and named: a truncated file, a file of another kind); at least one track is of the
asked `--kind`; when `--pred` holds predictions of the scenes, at least one has the `freeboard`
variable the model is scored on (a folder without any prediction of them scores the baselines alone,
with a warning line).

After (`nothing_to_analyse`): an evaluation in which no altimeter point fell on any scene within the
time gap has nothing to say; it is refused with the counts and the reason instead of tables of "-".
"""

from __future__ import annotations

import dataclasses
import os

from seaice_jax.output_paths import check_output_file

PRED_SUFFIX = "_pred.nc"


@dataclasses.dataclass
class ElevationInputs:
    scenes: list[str]
    tracks: int  # tracks of the asked kind read
    other_kinds: int  # tracks of other kinds read (not used)
    skipped: list[str]  # "<file>: <reason>" of every altimeter file that could not be used
    without_freeboard: list[str]  # scenes whose prediction is missing or has no freeboard

    def warnings(self) -> list[str]:
        """One line each: altimeter files skipped, scenes whose model map is missing."""
        out = []
        if self.skipped:
            out.append(f"warning: --tracks: {len(self.skipped)} file(s) skipped: " + "; ".join(self.skipped[:5])
                       + ("; ..." if len(self.skipped) > 5 else ""))
        if self.without_freeboard and len(self.without_freeboard) == len(self.scenes):
            out.append(f"warning: --pred: no prediction of the {len(self.scenes)} scene(s): the baselines are "
                       "scored alone (no model, no lead mask)")
        elif self.without_freeboard:
            out.append(f"warning: --pred: {len(self.without_freeboard)} of {len(self.scenes)} scene(s) without a "
                       f"prediction holding 'freeboard' ({', '.join(self.without_freeboard[:5])}"
                       + (", ..." if len(self.without_freeboard) > 5 else "") + "): the model is scored on the others")
        return out


def _altimetry_files(paths) -> list[str]:
    """The files (and Sentinel-3 .SEN3 folders) under the --tracks paths, as elevation.data reads them."""
    files = []
    for p in paths:
        if not os.path.exists(p):
            raise ValueError(f"--tracks {p}: no such file or folder")
        if os.path.isdir(p) and not p.rstrip(os.sep).endswith(".SEN3"):
            found = [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
            if not found:
                raise ValueError(f"--tracks {p}: folder holds no altimeter files")
            files += found
        else:
            files.append(p)
    return files


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_tracks(paths, kind: str) -> tuple[int, int, list[str]]:
    """(tracks of `kind`, tracks of other kinds, skipped files with their reason) of the --tracks paths."""
    from seaice_jax.altimetry import open_altimetry
    from seaice_jax.altimetry.kinds import freeboard_tracks
    from seaice_jax.altimetry.track import Swath

    ours = others = 0
    skipped = []
    for f in _altimetry_files(paths):
        try:
            items = open_altimetry(f)
        except Exception as e:  # noqa: BLE001 - a file that does not read is named and counted, not fatal
            reason = _short(e)
            skipped.append(reason if reason.startswith(f) else f"{f}: {reason}")
            continue
        tracks = [t for t in items if not isinstance(t, Swath)]
        mine = len(freeboard_tracks(tracks, kind))
        ours, others = ours + mine, others + len(tracks) - mine
    return ours, others, skipped


def _has_freeboard(path: str) -> bool:
    import netCDF4

    try:
        with netCDF4.Dataset(path) as ds:
            return "freeboard" in ds.variables
    except OSError:
        return False


def check_inputs(pred_dir: str, scene_paths, track_paths, *, kind: str, json_path: str,
                 drift_paths=None, compensation=None, truth_drift: str | None = None) -> ElevationInputs:
    """Raise ValueError (one line, the flag or file named) for inputs the evaluation cannot use."""
    from seaice_jax.data.scene import list_scene_files

    check_output_file(json_path, "--json")
    base = json_path[: -len(".json")] if json_path.endswith(".json") else json_path
    for beside in (base + ".md", base + "_rmse_vs_tracks.png", base + "_rmse_vs_distance.png"):
        check_output_file(beside, "--json")
    if not os.path.isdir(pred_dir):
        raise ValueError(f"--pred {pred_dir}: prediction folder not found")
    scenes = list_scene_files(list(scene_paths))
    if compensation and "estimated" in compensation:
        if not drift_paths:
            raise ValueError("--drift-compensation estimated needs --drift files (launch/drift.py)")
        for p in drift_paths:
            if not os.path.isfile(p):
                raise ValueError(f"--drift {p}: no such file")
    if truth_drift and not os.path.exists(truth_drift):
        raise ValueError(f"--truth-drift {truth_drift}: no such file or folder")
    without, found = [], 0
    for path in scenes:
        name = os.path.basename(path)[: -len(".nc")] if path.endswith(".nc") else os.path.basename(path)
        pred = os.path.join(pred_dir, name + PRED_SUFFIX)
        found += os.path.isfile(pred)
        if not (os.path.isfile(pred) and _has_freeboard(pred)):
            without.append(name)
    if found and len(without) == len(scenes):
        raise ValueError(
            f"--pred {pred_dir}: none of the {found} prediction(s) of the {len(scenes)} scene(s) holds 'freeboard': "
            "predict with a model that has a freeboard head (configs/elevation.py)")
    ours, others, skipped = read_tracks(track_paths, kind)
    if not ours:
        detail = f"{len(skipped)} file(s) unreadable or of no known product" + (f" ({skipped[0]})" if skipped else "")
        raise ValueError(f"--tracks: no {kind} altimeter track read ({detail}; {others} track(s) of other kinds)")
    return ElevationInputs(scenes, ours, others, skipped, without)


def nothing_to_analyse(result: dict, inputs: ElevationInputs, max_time_gap_h: float) -> str | None:
    """The one-line reason when no altimeter point was collocated with any scene, else None."""
    points = sum(int(entry.get("points", 0)) for entry in result.get("scenes", {}).values())
    if points:
        return None
    tracks = result.get("settings", {}).get("tracks_read", inputs.tracks)
    return (f"no altimeter point collocated: 0 points from {tracks} track(s) fall on any of the "
            f"{len(inputs.scenes)} scene(s) within --max-time-gap-h {max_time_gap_h:g} h; nothing written")
