"""NetCDF scenes -> ArrayRecord shards of compact training patches (format version 3), a TFDS dataset.

One shard per scene, named as TFDS names shards: `seaice-<split>.array_record-<index>` where index is
the scene's position among the sorted scene files of its split (so parallel and cluster-split runs agree
without talking), plus a sidecar `<scene>.json` with its patch count and channel statistics. Finishing
(`write_manifest`, data/manifest.py) gathers the sidecars into `manifest.json`, `normalisation.json`
and the TFDS metadata (`dataset_info.json`, `features.json`, see tfds_format), writing an empty shard for any scene that
failed, so `tfds.builder_from_directory(folder)` and grain read the same files. Every file is written
under a temporary name and renamed, so a killed run never leaves a partial shard under a final name and
a rerun skips the scenes whose shard and sidecar exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import multiprocessing
import os
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace

import numpy as np

from seaice_jax import fileio
from seaice_jax.data import channels as ch
from seaice_jax.data import compact
from seaice_jax.data.manifest import write_empty_shard, write_manifest  # noqa: F401 (write_manifest re-exported)
from seaice_jax.data.patches import localise_regions, patch_origins  # noqa: F401 (re-exported)
from seaice_jax.data.scene_types import Scene, SceneError
from seaice_jax.data.shard_spec import (  # noqa: F401 (re-exported: the shard folder's names and settings)
    ALTIMETRY_INDEX,
    DATASET_NAME,
    FORMAT_VERSION,
    MANIFEST,
    NORMALISATION,
    SHARD_SUFFIX,
    SHARD_TEMPLATE,
    SPLITS,
    PatchSpec,
    shard_name,
    spec_from_dict,
)


def encode_patch(patch: dict, layout: compact.Layout) -> bytes:
    """One compact patch dict -> a tf.train.Example record (see compact.Layout.features)."""
    return compact.encode_patch(patch, layout)


def decode_patch(record: bytes, layout: compact.Layout) -> dict:
    return compact.decode_patch(record, layout)


def downsampled_geometry(scene: Scene, factor: int) -> SimpleNamespace:
    """What collocation needs of the scene as `downsample_scene(scene, factor)` makes it (shape, tie
    points, validity, start time), without touching the channels."""
    h, w = scene.shape
    hc, wc, c = h // factor, w // factor, factor // 2
    tie_points = scene.tie_points
    if tie_points is not None and factor > 1:  # block i's centre is source pixel f i + (f - 1) / 2
        tie_points = dataclasses.replace(
            tie_points, lines=(tie_points.lines - (factor - 1) / 2) / factor,
            samples=(tie_points.samples - (factor - 1) / 2) / factor)
    valid = scene.valid[c : hc * factor : factor, c : wc * factor : factor] if factor > 1 else scene.valid
    return SimpleNamespace(name=scene.name, shape=(hc, wc), tie_points=tie_points, valid=valid,
                           start_time=scene.start_time)


def downsample_scene(scene: Scene, factor: int) -> Scene:
    """Block mean of inputs, block-centre sample of labels, region ids, truth and validity.

    Labels are sampled, not averaged, so classes stay classes and region ids stay ids.
    """
    if factor == 1:
        return scene
    h, w = scene.shape
    hc, wc = h // factor, w // factor
    c = factor // 2

    def mean(a):
        return a[: hc * factor, : wc * factor].reshape(hc, factor, wc, factor).mean(axis=(1, 3))

    def sample(a):
        return a[c : hc * factor : factor, c : wc * factor : factor]

    return dataclasses.replace(
        scene,
        tie_points=downsampled_geometry(scene, factor).tie_points,
        channels={k: mean(v).astype(np.float32) for k, v in scene.channels.items()},
        sic=sample(scene.sic), sod=sample(scene.sod), floe=sample(scene.floe),
        region_ids=sample(scene.region_ids), valid=sample(scene.valid),
        ice_truth=None if scene.ice_truth is None else sample(scene.ice_truth),
    )


def extract_patches(scene: Scene, spec: PatchSpec, grids: dict | None = None, points=None) -> Iterator[dict]:
    """Compact patches (compact.extract_compact_patches) of a scene that hold at least one valid pixel.

    The 2 km channels are taken at 2 km (compact.scene_cell_grids) and dropped from the scene before
    downsampling, so no full-resolution copy of them is made here. points: the scene's altimeter points
    (data.points.ScenePoints) on the downsampled grid, when spec.max_points > 0.
    """
    layout = spec.layout
    grid = compact.scene_cell_grids(scene, layout.cell_channels, grids)
    sar_only = dataclasses.replace(scene, channels={k: scene.channels[k] for k in layout.sar_channels})
    yield from compact.extract_compact_patches(downsample_scene(sar_only, spec.downsample), spec, grid, layout,
                                               ch.PIXELS_PER_2KM[scene.product], points)


def write_json_atomic(path: str, obj) -> None:
    fileio.write_json(path, obj)


RECORD_OPTIONS = "group_size:1,snappy"  # benchmarks/pipeline.py: reads as fast as uncompressed, labels shrink


def write_shard(path: str, patches, layout: compact.Layout, options: str = RECORD_OPTIONS) -> tuple[int, dict]:
    """Write patches to one ArrayRecord file (group_size 1) via a temporary name.

    Returns (patch count, per-channel counts, sums and sums of squares for the normalisation statistics:
    SAR-grid channels over the valid pixels, 2 km channels over the distinct cells the patches hold).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    tmp = f"{path}.tmp.{os.getpid()}"
    count = 0
    nc = len(layout.channels)
    stats = {"count": np.zeros(nc), "sum": np.zeros(nc), "sumsq": np.zeros(nc)}
    ns = len(layout.sar_channels)
    seen_cells: dict[tuple[int, int], np.ndarray] = {}
    writer = ArrayRecordWriter(tmp, options)
    try:
        for patch in patches:
            writer.write(encode_patch(patch, layout))
            x = patch["sar"][patch["valid"].astype(bool)].astype(np.float64)  # [N, Cs]
            stats["count"][:ns] += x.shape[0]
            stats["sum"][:ns] += x.sum(0)
            stats["sumsq"][:ns] += (x * x).sum(0)
            o_r, o_c = (int(v) for v in patch["cell_origin"])
            n_r, n_c = (int(v) for v in patch["grid_cells"])
            cells = patch["cells"]
            for a in range(min(cells.shape[0], n_r - o_r)):
                for b in range(min(cells.shape[1], n_c - o_c)):
                    seen_cells.setdefault((o_r + a, o_c + b), cells[a, b])
            count += 1
        writer.close()
    except BaseException as e:
        error = fileio.write_error(e, path) if isinstance(e, (OSError, RuntimeError)) else e  # before freeing
        with contextlib.suppress(Exception):  # closing a writer whose write failed fails again (full disk)
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise error from None
    if seen_cells and nc > ns:
        y = np.stack(list(seen_cells.values())).astype(np.float64)  # [cells, Cc]
        stats["count"][ns:] += y.shape[0]
        stats["sum"][ns:] += y.sum(0)
        stats["sumsq"][ns:] += (y * y).sum(0)
    os.replace(tmp, path)
    return count, {k: v.tolist() for k, v in stats.items()}


def unusable_message(source: str, report: dict) -> str:
    """One line naming what a scene's chart held that could not be used (see scene.chart_report)."""
    codes = ", ".join(f"{code} ({n} polygon{'s' if n != 1 else ''})" for code, n in report["codes"].items())
    dropped = len(report["unused_polygons"])
    return (f"{os.path.basename(source)}: unknown SIGRID codes {codes}: {len(report['polygons'])} polygon(s), "
            f"{report['pixels']} pixel(s) affected, {dropped} polygon(s) without a concentration dropped "
            "from the regions")


def write_sidecar(output: str, scene: Scene, source: str, count: int, stats: dict, spec: PatchSpec,
                  split: str = "train", index: int = 0, altimetry: dict | None = None) -> dict:
    sidecar = {
        "scene": scene.name, "source": os.path.basename(source), "product": scene.product,
        "shape": list(scene.shape), "num_patches": count, "shard": shard_name(split, index),
        "split": split, "index": index, "has_truth": scene.ice_truth is not None, "spec": spec.as_dict(),
        "channel_stats": stats,
        # What the chart held that could not be used: {} or codes / polygons / pixels.
        "unusable": scene.chart_report,
    }
    if altimetry is not None:  # counts of the altimeter points and the file holding the scene's points
        sidecar["altimetry"] = altimetry
    write_json_atomic(os.path.join(output, scene.name + ".json"), sidecar)
    return sidecar


POINTS_SUFFIX = ".altimetry.npz"  # beside the sidecar: every collocated point of the scene


def convert_scene(path: str, output: str, spec: PatchSpec, strict: bool = False, split: str = "train",
                  index: int = 0, altimetry: Callable | None = None) -> dict:
    """Write one scene's shard and sidecar; returns the sidecar dict. Raises SceneError on bad input,
    and with `strict` for a chart with codes the rules cannot use (then nothing is written).

    altimetry (spec.max_points > 0): a callable (geometry of the downsampled scene) -> (ScenePoints,
    counts dict) that collocates the altimeter tracks with the scene (elevation.collocation); the
    points go into the patches and `<scene>.altimetry.npz`, the counts into the sidecar."""
    from seaice_jax.data.scene import open_scene

    # Only the SAR-grid channels at full resolution: the 2 km channels are stored as cells, read from
    # the file at 2 km, and the derived inputs are computed at the cell centres (compact.scene_cell_grids),
    # so no full-resolution float32 plane of them is ever made (a 10 000 x 10 000 raw scene: 20 x 400 MB).
    scene = open_scene(path, channels=spec.layout.sar_channels)
    if strict and scene.chart_report:
        raise SceneError(unusable_message(path, scene.chart_report) + " (--strict)")
    shard = os.path.join(output, shard_name(split, index))
    for stale in os.listdir(output):  # left by a run that was killed while writing this scene
        if stale.startswith(shard_name(split, index) + ".tmp."):
            os.remove(os.path.join(output, stale))
    points = report = None
    if spec.max_points:
        if altimetry is None:
            raise ValueError("spec.max_points > 0 needs the altimetry collocation (convert --altimetry)")
        points, report = altimetry(downsampled_geometry(scene, spec.downsample))
        report = dict(report, points_file=scene.name + POINTS_SUFFIX)
        points.save(os.path.join(output, scene.name + POINTS_SUFFIX))
    count, stats = write_shard(shard, extract_patches(scene, spec, points=points), spec.layout)
    return write_sidecar(output, scene, path, count, stats, spec, split, index, report)


def split_of(name: str, validation_scenes: Sequence[str] = (), validation_percent: float = 0.0) -> str:
    """'validation' for a scene named in validation_scenes (name or file name) or, by a stable hash of
    its name, for about validation_percent % of the scenes; else 'train'."""
    name = _scene_name(name)
    if name in {_scene_name(v) for v in validation_scenes}:
        return "validation"
    if validation_percent > 0 and zlib.crc32(name.encode()) % 10000 < validation_percent * 100:
        return "validation"
    return "train"


def assign_shards(files: Sequence[str], validation_scenes: Sequence[str] = (),
                  validation_percent: float = 0.0) -> dict[str, tuple[str, int]]:
    """file -> (split, shard index): the index is the file's position among its split's sorted files."""
    out, counts = {}, dict.fromkeys(SPLITS, 0)
    for f in sorted(files, key=_scene_name):
        split = split_of(f, validation_scenes, validation_percent)
        out[f] = (split, counts[split])
        counts[split] += 1
    return out


def _scene_name(path: str) -> str:
    return os.path.basename(path)[: -len(".nc")] if path.endswith(".nc") else os.path.basename(path)


def is_converted(path: str, output: str, spec: PatchSpec, split: str = "train", index: int = 0) -> bool:
    name = _scene_name(path)
    side = os.path.join(output, name + ".json")
    if not (os.path.exists(side) and os.path.exists(os.path.join(output, shard_name(split, index)))):
        return False
    with open(side) as f:
        side = json.load(f)
    return side.get("spec") == spec.as_dict() and side.get("shard") == shard_name(split, index)


def _convert_worker(args):
    path, output, spec, strict, split, index, altimetry = args
    try:
        return path, convert_scene(path, output, spec, strict, split, index, altimetry), None
    except SceneError as e:
        return path, None, str(e)
    except fileio.WriteError as e:  # a full disk stops the run (convert_scenes): every next scene would fail
        return path, None, f"{DISK_FULL_MARK}{e}" if e.errno == errno.ENOSPC else str(e)
    except Exception as e:  # noqa: BLE001 - any unreadable scene is reported and skipped
        return path, None, f"{os.path.basename(path)}: {type(e).__name__}: {e}".replace("\n", " ")


DISK_FULL_MARK = "\0disk full\0"  # a worker's error that stops the run (see _convert_worker)


def _remove_temporary_shards(output: str) -> None:
    """Shards a stopped run was writing (`<shard>.tmp.<pid>`; pool workers killed mid-write leave them)."""
    for name in os.listdir(output):
        if name.startswith(f"{DATASET_NAME}-") and ".tmp." in name:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(output, name))


SPEC_FLAGS = {"patch_size": "--patch-size", "stride": "--stride", "downsample": "--downsample",
              "max_regions": "--max-regions", "channels": "--channels"}


def check_output(output: str, spec: PatchSpec) -> None:
    """Raise SceneError, before anything is written, when `output` cannot take shards cut with `spec`:
    a file, a folder that cannot be written, or one that holds shards cut with other settings."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise SceneError(f"--output {output}: is a file, not a folder")
    if not os.path.isdir(output):
        return
    for name in sorted(os.listdir(output)):
        if not name.endswith(".json") or name in (MANIFEST, NORMALISATION, ALTIMETRY_INDEX):
            continue
        with open(os.path.join(output, name)) as f:
            stored = json.load(f).get("spec")
        if stored is not None and stored != spec.as_dict():
            diffs = ", ".join(f"{SPEC_FLAGS.get(k, k)} {stored.get(k)} here, {v} asked"
                              for k, v in spec.as_dict().items() if stored.get(k) != v)
            raise SceneError(f"--output {output}: holds shards cut with other patch settings ({diffs}); "
                             "use a new folder or the same settings")
    try:
        fd, probe = tempfile.mkstemp(dir=output, prefix=".write_test.")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise SceneError(f"--output {output}: cannot write in this folder ({e.strerror})") from None


def _make_output(output: str) -> bool:
    """Create `output`; True when this call created it (then a run that converts nothing removes it)."""
    if os.path.isdir(output):
        return False
    try:
        os.makedirs(output)
    except OSError as e:
        raise SceneError(f"--output {output}: cannot create the folder ({e.strerror})") from None
    return True


DEFAULT_SPEC = PatchSpec()


def convert_scenes(
    inputs: Sequence[str],
    output: str,
    spec: PatchSpec = DEFAULT_SPEC,
    *,
    workers: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    strict: bool = False,
    validation_scenes: Sequence[str] = (),
    validation_percent: float = 0.0,
    finish: bool = True,
    altimetry: Callable | None = None,
) -> tuple[list[dict], list[str]]:
    """Convert scenes (files or folders) to shards in `output`.

    altimetry: with spec.max_points > 0, the picklable collocation callable of `convert_scene` (it
    travels to the worker processes).

    A scene whose chart holds codes the rules cannot use is converted with one `warning:` line on
    stderr (its sidecar's `unusable` says what); with `strict` it is an error and is not written.

    Scenes are split round-robin by `shard_index` / `num_shards` for cluster fan-out; each scene's split
    and shard file follow from the whole sorted file list, so every job names them alike. Scenes already
    converted with the same spec are skipped. `finish` writes the manifest and TFDS metadata (with
    several cluster jobs: pass finish=False and call write_manifest once after all are done).
    Returns (sidecars of this run's scenes, error lines); bad files are reported and skipped while the
    others convert. An output that is a file, cannot be written or holds shards cut with another spec
    raises SceneError before anything is written; a folder this call creates is removed again when no
    scene converts.
    """
    from seaice_jax.data.scene import list_scene_files

    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} must be in [0, {num_shards})")
    # Everything that can be refused is refused before the first file is written.
    check_output(output, spec)
    all_files = list_scene_files(list(inputs))
    where = assign_shards(all_files, validation_scenes, validation_percent)
    files = all_files[shard_index::num_shards]
    created = _make_output(output)
    todo = [p for p in files if not is_converted(p, output, spec, *where[p])]
    skipped = len(files) - len(todo)
    done, errors = [], []
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="scenes", unit="scene", disable=not progress, file=sys.stderr)
    jobs = [(p, output, spec, strict) + where[p] + (altimetry,) for p in todo]
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once JAX threads exist
        with ctx.Pool(min(workers, len(jobs))) as pool:
            results = pool.imap_unordered(_convert_worker, jobs)
            for _path, side, err in results:
                (done.append(side) if side else errors.append(err))
                bar.update()
                if err and err.startswith(DISK_FULL_MARK):
                    pool.terminate()  # the others would fail alike; their temporary shards are removed below
                    break
    else:
        for job in jobs:
            path, side, err = _convert_worker(job)
            (done.append(side) if side else errors.append(err))
            bar.update()
            if err and err.startswith(DISK_FULL_MARK):
                break
    bar.close()
    full = next((e[len(DISK_FULL_MARK):] for e in errors if e.startswith(DISK_FULL_MARK)), None)
    if full is not None:
        _remove_temporary_shards(output)
        if not (done or skipped) and created:
            with contextlib.suppress(OSError):
                os.rmdir(output)
        raise fileio.WriteError(f"{full} ({len(done)} of {len(todo)} scene(s) converted before; rerun once there "
                                "is space: converted scenes are kept and skipped)", output, errno.ENOSPC)
    for side in done:
        if side.get("unusable"):
            print(f"warning: {unusable_message(side['source'], side['unusable'])}", file=sys.stderr)
    if skipped and progress:
        print(f"skipped {skipped} scene(s) already converted", file=sys.stderr)
    if finish and (done or skipped):
        write_manifest(output)
    elif not (done or skipped) and created:  # nothing converted into a folder made for it: no debris
        with contextlib.suppress(OSError):  # only if empty: a cluster peer may be writing into it
            os.rmdir(output)
    return done, errors
