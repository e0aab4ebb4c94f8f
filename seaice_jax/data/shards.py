"""NetCDF scenes -> ArrayRecord shards of training patches.

One shard per scene (`<scene>.array_record`, group_size 1) plus a sidecar `<scene>.json` with its patch
count and channel statistics; `manifest.json` and `normalisation.json` gather the sidecars. Every file is
written under a temporary name and renamed, so a killed run never leaves a partial shard under a final
name and a rerun skips the scenes whose shard and sidecar exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np
from flax import serialization

from seaice_jax import fileio
from seaice_jax.data import channels as ch
from seaice_jax.data.scene_types import Scene, SceneError

SHARD_SUFFIX = ".array_record"
MANIFEST = "manifest.json"
NORMALISATION = "normalisation.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    """How patches are cut: these must match across all shards of one output folder."""

    patch_size: int = 256
    stride: int = 256
    downsample: int = 1
    max_regions: int = 64
    channels: tuple[str, ...] = ch.STORED_CHANNELS  # the 24 standard channels + the derived ones

    def __post_init__(self):
        for flag, value in (("--patch-size", self.patch_size), ("--stride", self.stride),
                            ("--downsample", self.downsample), ("--max-regions", self.max_regions)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{flag} must be a whole number >= 1, got {value!r}")
        if not self.channels:
            raise ValueError("--channels selects no channel")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d


def encode_patch(patch: dict) -> bytes:
    """One patch dict (numpy arrays, str, int) -> msgpack bytes for one ArrayRecord record."""
    return serialization.msgpack_serialize(patch)


def decode_patch(record: bytes) -> dict:
    return serialization.msgpack_restore(record)


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

    tie_points = scene.tie_points
    if tie_points is not None:  # block i's centre is source pixel f i + (f - 1) / 2
        tie_points = dataclasses.replace(
            tie_points, lines=(tie_points.lines - (factor - 1) / 2) / factor,
            samples=(tie_points.samples - (factor - 1) / 2) / factor)
    return dataclasses.replace(
        scene,
        tie_points=tie_points,
        channels={k: mean(v).astype(np.float32) for k, v in scene.channels.items()},
        sic=sample(scene.sic), sod=sample(scene.sod), floe=sample(scene.floe),
        region_ids=sample(scene.region_ids), valid=sample(scene.valid),
        ice_truth=None if scene.ice_truth is None else sample(scene.ice_truth),
    )


def patch_origins(length: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one axis: a regular grid plus one flush with the far edge."""
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def _pad_to(a: np.ndarray, size: int, fill) -> np.ndarray:
    ph, pw = size - a.shape[0], size - a.shape[1]
    if ph <= 0 and pw <= 0:
        return a
    pad = [(0, max(ph, 0)), (0, max(pw, 0))] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, constant_values=fill)


def localise_regions(
    ids: np.ndarray, conc: np.ndarray, max_regions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scene region ids in a patch -> local ids 0..K-1 (largest regions first) and padded concentrations.

    ids: int32 [P, P] scene region ids (-1 none); conc: float32 [R] scene concentrations.
    Returns local ids int32 [P, P] (-1 none, and -1 for regions beyond `max_regions`) and
    float32 [max_regions] concentrations, NaN in unused slots.
    """
    inside = ids >= 0
    present, counts = np.unique(ids[inside], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:max_regions]
    kept = present[order]
    lookup = np.full(int(present.max()) + 2 if present.size else 1, -1, np.int32)
    lookup[kept] = np.arange(kept.size, dtype=np.int32)
    local = np.where(inside, lookup[np.where(inside, ids, 0)], -1).astype(np.int32)
    out_conc = np.full(max_regions, np.nan, np.float32)
    out_conc[: kept.size] = conc[kept]
    return local, out_conc


def extract_patches(scene: Scene, spec: PatchSpec) -> Iterator[dict]:
    """Patches of a (downsampled) scene that hold at least one valid pixel."""
    scene = downsample_scene(scene, spec.downsample)
    h, w = scene.shape
    p = spec.patch_size
    inputs = scene.stack(spec.channels)
    truth = scene.ice_truth if scene.ice_truth is not None else np.full((h, w), 255, np.uint8)
    for r in patch_origins(h, p, spec.stride):
        for c in patch_origins(w, p, spec.stride):
            win = (slice(r, r + p), slice(c, c + p))
            valid = _pad_to(scene.valid[win], p, False)
            if not valid.any():
                continue
            region_ids, region_conc = localise_regions(
                _pad_to(scene.region_ids[win], p, -1), scene.region_conc, spec.max_regions
            )
            yield {
                "inputs": _pad_to(inputs[win], p, 0.0).astype(np.float32),
                "sic": _pad_to(scene.sic[win], p, 255).astype(np.uint8),
                "sod": _pad_to(scene.sod[win], p, 255).astype(np.uint8),
                "floe": _pad_to(scene.floe[win], p, 255).astype(np.uint8),
                "region_ids": region_ids,
                "region_conc": region_conc,
                "valid": valid.astype(np.uint8),
                "ice_truth": _pad_to(truth[win], p, 255).astype(np.uint8),
                "scene": scene.name,
                "row": int(r * spec.downsample),
                "col": int(c * spec.downsample),
            }


def write_json_atomic(path: str, obj) -> None:
    fileio.write_json(path, obj)


def write_shard(path: str, patches, num_channels: int) -> tuple[int, dict]:
    """Write patches to one ArrayRecord file (group_size 1) via a temporary name.

    Returns (patch count, per-channel sums over valid pixels for the normalisation statistics).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    tmp = f"{path}.tmp.{os.getpid()}"
    count = 0
    stats = {"count": 0, "sum": np.zeros(num_channels), "sumsq": np.zeros(num_channels)}
    writer = ArrayRecordWriter(tmp, "group_size:1")
    try:
        for patch in patches:
            writer.write(encode_patch(patch))
            x = patch["inputs"][patch["valid"].astype(bool)].astype(np.float64)  # [N, C]
            stats["count"] += int(x.shape[0])
            stats["sum"] += x.sum(0)
            stats["sumsq"] += (x * x).sum(0)
            count += 1
        writer.close()
    except BaseException:
        writer.close()
        os.remove(tmp)
        raise
    os.replace(tmp, path)
    return count, {"count": stats["count"], "sum": stats["sum"].tolist(), "sumsq": stats["sumsq"].tolist()}


def unusable_message(source: str, report: dict) -> str:
    """One line naming what a scene's chart held that could not be used (see scene.chart_report)."""
    codes = ", ".join(f"{code} ({n} polygon{'s' if n != 1 else ''})" for code, n in report["codes"].items())
    dropped = len(report["unused_polygons"])
    return (f"{os.path.basename(source)}: unknown SIGRID codes {codes}: {len(report['polygons'])} polygon(s), "
            f"{report['pixels']} pixel(s) affected, {dropped} polygon(s) without a concentration dropped "
            "from the regions")


def write_sidecar(output: str, scene: Scene, source: str, count: int, stats: dict, spec: PatchSpec) -> dict:
    sidecar = {
        "scene": scene.name, "source": os.path.basename(source), "product": scene.product,
        "shape": list(scene.shape), "num_patches": count, "shard": scene.name + SHARD_SUFFIX,
        "has_truth": scene.ice_truth is not None, "spec": spec.as_dict(), "channel_stats": stats,
        # What the chart held that could not be used: {} or codes / polygons / pixels.
        "unusable": scene.chart_report,
    }
    write_json_atomic(os.path.join(output, scene.name + ".json"), sidecar)
    return sidecar


def convert_scene(path: str, output: str, spec: PatchSpec, strict: bool = False) -> dict:
    """Write one scene's shard and sidecar; returns the sidecar dict. Raises SceneError on bad input,
    and with `strict` for a chart with codes the rules cannot use (then nothing is written)."""
    from seaice_jax.data.scene import open_scene

    scene = open_scene(path, channels=spec.channels)
    if strict and scene.chart_report:
        raise SceneError(unusable_message(path, scene.chart_report) + " (--strict)")
    shard = os.path.join(output, scene.name + SHARD_SUFFIX)
    for stale in os.listdir(output):  # left by a run that was killed while writing this scene
        if stale.startswith(scene.name + SHARD_SUFFIX + ".tmp."):
            os.remove(os.path.join(output, stale))
    count, stats = write_shard(shard, extract_patches(scene, spec), len(spec.channels))
    return write_sidecar(output, scene, path, count, stats, spec)


def _scene_name(path: str) -> str:
    return os.path.basename(path)[: -len(".nc")] if path.endswith(".nc") else os.path.basename(path)


def is_converted(path: str, output: str, spec: PatchSpec) -> bool:
    name = _scene_name(path)
    side = os.path.join(output, name + ".json")
    if not (os.path.exists(side) and os.path.exists(os.path.join(output, name + SHARD_SUFFIX))):
        return False
    with open(side) as f:
        return json.load(f).get("spec") == spec.as_dict()


def _convert_worker(args):
    path, output, spec, strict = args
    try:
        return path, convert_scene(path, output, spec, strict), None
    except SceneError as e:
        return path, None, str(e)
    except Exception as e:  # noqa: BLE001 - any unreadable scene is reported and skipped
        return path, None, f"{os.path.basename(path)}: {type(e).__name__}: {e}".replace("\n", " ")


def write_manifest(output: str) -> dict:
    """Gather every sidecar of `output` into manifest.json and normalisation.json."""
    sides = []
    for name in sorted(os.listdir(output)):
        if name.endswith(".json") and name not in (MANIFEST, NORMALISATION):
            with open(os.path.join(output, name)) as f:
                side = json.load(f)
            if "scene" in side and os.path.exists(os.path.join(output, side["shard"])):
                sides.append(side)
    specs = {json.dumps(s["spec"], sort_keys=True) for s in sides}
    if len(specs) > 1:
        raise SceneError(f"{output}: holds shards cut with different patch settings; use a new folder")
    spec = sides[0]["spec"] if sides else None
    manifest = {
        "format_version": FORMAT_VERSION,
        "spec": spec,
        "channels": spec["channels"] if spec else [],
        "patch_shape": [spec["patch_size"], spec["patch_size"]] if spec else None,
        "num_patches": sum(s["num_patches"] for s in sides),
        "scenes": [{k: s[k] for k in ("scene", "source", "product", "shape", "num_patches", "shard", "has_truth")}
                   for s in sides],
        "fields": {
            "inputs": "float32 [P, P, C] standard-scaled, channel order of 'channels'",
            "sic/sod/floe": "uint8 [P, P] chart classes, 255 masked",
            "region_ids": "int32 [P, P] local region index, -1 none",
            "region_conc": "float32 [max_regions] region concentration in [0, 1], NaN unused",
            "valid": "uint8 [P, P] not land and not SAR no-data",
            "ice_truth": "uint8 [P, P] 1 ice, 0 water, 255 land or unknown",
            "scene/row/col": "origin of the patch in the scene, in source pixels",
        },
    }
    write_json_atomic(os.path.join(output, MANIFEST), manifest)
    if spec:
        write_json_atomic(os.path.join(output, NORMALISATION), _normalisation(sides, spec["channels"]))
    return manifest


def _normalisation(sides: list[dict], names: list[str]) -> dict:
    """Published statistics and those measured on this data set, in unscaled units."""
    n = sum(s["channel_stats"]["count"] for s in sides)
    total = np.sum([s["channel_stats"]["sum"] for s in sides], axis=0)
    totsq = np.sum([s["channel_stats"]["sumsq"] for s in sides], axis=0)
    # Derived channels (latitude, sin / cos) report the scaling this project gives them.
    out = {"published": {k: list(ch.channel_stats(k)) for k in names}, "measured": {}, "pixels": n}
    if n:
        m = total / n
        sd = np.sqrt(np.maximum(totsq / n - m * m, 0.0))
        for i, k in enumerate(names):
            pm, ps = ch.channel_stats(k)
            out["measured"][k] = [float(pm + ps * m[i]), float(ps * sd[i])]
    return out


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
        if not name.endswith(".json") or name in (MANIFEST, NORMALISATION):
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


def convert_scenes(
    inputs: Sequence[str],
    output: str,
    spec: PatchSpec = PatchSpec(),
    *,
    workers: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    strict: bool = False,
) -> tuple[list[dict], list[str]]:
    """Convert scenes (files or folders) to shards in `output`.

    A scene whose chart holds codes the rules cannot use is converted with one `warning:` line on
    stderr (its sidecar's `unusable` says what); with `strict` it is an error and is not written.

    Scenes are split round-robin by `shard_index` / `num_shards` for cluster fan-out; scenes already
    converted with the same spec are skipped. Returns (sidecars of this run's scenes, error lines);
    bad files are reported and skipped while the others convert. An output that is a file, cannot be
    written or holds shards cut with another spec raises SceneError before anything is written; a
    folder this call creates is removed again when no scene converts.
    """
    from seaice_jax.data.scene import list_scene_files

    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} must be in [0, {num_shards})")
    # Everything that can be refused is refused before the first file is written.
    check_output(output, spec)
    files = list_scene_files(list(inputs))[shard_index::num_shards]
    created = _make_output(output)
    todo = [p for p in files if not is_converted(p, output, spec)]
    skipped = len(files) - len(todo)
    done, errors = [], []
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="scenes", unit="scene", disable=not progress, file=sys.stderr)
    jobs = [(p, output, spec, strict) for p in todo]
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once JAX threads exist
        with ctx.Pool(min(workers, len(jobs))) as pool:
            results = pool.imap_unordered(_convert_worker, jobs)
            for path, side, err in results:
                (done.append(side) if side else errors.append(err))
                bar.update()
    else:
        for job in jobs:
            path, side, err = _convert_worker(job)
            (done.append(side) if side else errors.append(err))
            bar.update()
    bar.close()
    for side in done:
        if side.get("unusable"):
            print(f"warning: {unusable_message(side['source'], side['unusable'])}", file=sys.stderr)
    if skipped and progress:
        print(f"skipped {skipped} scene(s) already converted", file=sys.stderr)
    if done or skipped:
        write_manifest(output)
    elif created:  # nothing converted into a folder made for it: no empty folder, no 0-patch manifest
        with contextlib.suppress(OSError):  # only if empty: a cluster peer may be writing into it
            os.rmdir(output)
    return done, errors
