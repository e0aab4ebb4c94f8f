"""Finishing a shard folder: every scene's sidecar gathered into manifest.json, normalisation.json and
the TFDS metadata (`write_manifest`), with an empty shard for each scene that failed so that TFDS finds
every file its metadata names. The shards themselves are written by data.shards, which calls it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from seaice_jax import fileio
from seaice_jax.data import channels as ch
from seaice_jax.data import compact
from seaice_jax.data.scene_types import SceneError
from seaice_jax.data.shard_spec import (
    ALTIMETRY_INDEX,
    FORMAT_VERSION,
    MANIFEST,
    NORMALISATION,
    SPLITS,
    shard_name,
    spec_from_dict,
)


def write_manifest(output: str) -> dict:
    """Gather every sidecar of `output` into manifest.json, normalisation.json and the TFDS metadata.

    A split's shard indices without a sidecar (a scene that failed) get an empty shard, so TFDS finds
    every file its metadata names.
    """
    from seaice_jax.data import tfds_format

    sides = []
    for name in sorted(os.listdir(output)):
        not_sidecars = (MANIFEST, NORMALISATION, ALTIMETRY_INDEX) + tfds_format.METADATA_FILES
        if name.endswith(".json") and name not in not_sidecars:
            with open(os.path.join(output, name)) as f:
                side = json.load(f)
            if isinstance(side, dict) and "scene" in side and os.path.exists(os.path.join(output, side["shard"])):
                sides.append(side)
    specs = {json.dumps(s["spec"], sort_keys=True) for s in sides}
    if len(specs) > 1:
        raise SceneError(f"{output}: holds shards cut with different patch settings; use a new folder")
    claimed: dict[str, str] = {}
    for side in sides:
        if side["shard"] in claimed:
            raise SceneError(f"{output}: scenes {claimed[side['shard']]} and {side['scene']} both claim "
                             f"{side['shard']} (the scene list changed); use a new folder")
        claimed[side["shard"]] = side["scene"]
    spec_d = sides[0]["spec"] if sides else None
    spec = spec_from_dict(spec_d) if spec_d else None
    splits: dict[str, list[int]] = {}
    for split in SPLITS:
        mine = {s["index"]: s["num_patches"] for s in sides if s.get("split", "train") == split}
        if not mine:
            continue
        lengths = [mine.get(i, 0) for i in range(max(mine) + 1)]
        for i, _n in enumerate(lengths):
            if i not in mine:
                write_empty_shard(os.path.join(output, shard_name(split, i)))
        splits[split] = lengths
    layout = spec.layout if spec else None
    manifest = {
        "format_version": FORMAT_VERSION,
        "spec": spec_d,
        "layout": layout.as_dict() if layout else None,
        "channels": spec_d["channels"] if spec_d else [],
        "patch_shape": [spec_d["patch_size"], spec_d["patch_size"]] if spec_d else None,
        "num_patches": sum(s["num_patches"] for s in sides),
        "splits": {k: [shard_name(k, i) for i in range(len(v))] for k, v in splits.items()},
        "scenes": [{k: s.get(k) for k in ("scene", "source", "product", "shape", "num_patches", "shard", "split",
                                          "has_truth")} for s in sides],
        "fields": {
            "sar": "float16 [P, P, Cs] standard-scaled SAR-grid channels, order of layout.sar_channels",
            "cells": "float32 [M, M, Cc] standard-scaled 2 km cells covering the patch, order of layout.cell_channels",
            "cell_origin/pixel_origin/grid_cells/pixels_per_cell": "where the patch sits on the 2 km grid",
            "sic/sod/floe": "uint8 [P, P] chart classes, 255 masked",
            "region_ids": f"{compact.region_dtype(spec.max_regions).name if spec else 'int'} [P, P] "
                          "local region index, -1 none",
            "region_conc": "float32 [max_regions] region concentration in [0, 1], NaN unused",
            "valid": "uint8 [P, P] not land and not SAR no-data",
            "ice_truth": "uint8 [P, P] 1 ice, 0 water, 255 land or unknown",
            "scene/row/col": "origin of the patch in the scene, in source pixels",
        } | ({"fb_*": "altimeter points of the patch (data/points.py): footprint pixels (row, col) and weights, "
                      "value, stated uncertainty, surface, mission, kind (laser / radar), track slot, time gap"}
             if spec and spec.max_points else {}),
    }
    if spec and spec.max_points:
        manifest["altimetry"] = _altimetry_totals(sides)
    fileio.write_json(os.path.join(output, MANIFEST), manifest)
    if spec:
        norm = _normalisation(sides, spec_d["channels"])
        fileio.write_json(os.path.join(output, NORMALISATION), norm)
        tfds_format.write_metadata(output, layout, splits, norm, spec.as_dict())
    return manifest


def _altimetry_totals(sides: list[dict]) -> dict:
    """The scenes' altimetry counts summed (numbers, and the refusals by reason)."""
    total: dict = {}
    for side in sides:
        for k, v in (side.get("altimetry") or {}).items():
            if isinstance(v, dict):
                into = total.setdefault(k, {})
                for kk, vv in v.items():
                    if isinstance(vv, (int, float)):
                        into[kk] = into.get(kk, 0) + vv
            elif isinstance(v, int) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
    return total


def write_empty_shard(path: str) -> None:
    from array_record.python.array_record_module import ArrayRecordWriter

    tmp = f"{path}.tmp.{os.getpid()}"
    ArrayRecordWriter(tmp, "group_size:1").close()
    try:  # never over a shard another job has just written: link, which fails if the name exists
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.remove(tmp)


def _normalisation(sides: list[dict], names: list[str]) -> dict:
    """Published statistics and those measured on this data set, in unscaled units.

    The shards store channels grouped (SAR-grid first, then 2 km); stats are reported by name.
    """
    sar, cells = compact.split_channels(names)
    order = list(sar + cells)
    n = np.sum([np.broadcast_to(s["channel_stats"]["count"], (len(order),)) for s in sides], axis=0)
    total = np.sum([s["channel_stats"]["sum"] for s in sides], axis=0)
    totsq = np.sum([s["channel_stats"]["sumsq"] for s in sides], axis=0)
    # Derived channels (latitude, sin / cos) report the scaling this project gives them.
    out = {"published": {k: list(ch.channel_stats(k)) for k in names}, "measured": {},
           "pixels": int(n[0]) if len(sar) else 0}
    for i, k in enumerate(order):
        if n[i]:
            m = total[i] / n[i]
            sd = np.sqrt(max(totsq[i] / n[i] - m * m, 0.0))
            pm, ps = ch.channel_stats(k)
            out["measured"][k] = [float(pm + ps * m), float(ps * sd)]
    return out
