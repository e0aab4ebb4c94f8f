"""Compact training patches (shard format version 2).

A patch keeps every field at its own resolution and in the smallest type that holds it:

  sar           float16 [P, P, Cs]  SAR-grid channels (HH, HV, incidence angle, distance map, and any
                                    further SAR-grid channel by name), order of `Layout.sar_channels`
  cells         float32 [M, M, Cc]  the 2 km cells covering the patch plus a margin, order of
                                    `Layout.cell_channels`; cells[a, b] = scene cell cell_origin + (a, b)
  cell_origin   int32 [2]           scene cell of cells[0, 0]
  pixel_origin  int32 [2]           patch origin in (downsampled) scene pixels: where the patch sits on
                                    the cell grid, for the cell-centred interpolation
  grid_cells    int32 [2]           the scene's whole 2 km grid (rows, cols), for the edge clamp
  pixels_per_cell int32             source pixels per cell side of this scene (25 RTT, 50 raw)
  sic/sod/floe  uint8 [P, P]        chart classes, 255 masked
  region_ids    int8|int16|int32 [P, P]  local region slot 0..K-1, -1 none (smallest type holding K)
  region_conc   float32 [K]         slot concentration, NaN unused
  valid         uint8 [P, P]; ice_truth uint8 [P, P] (255 unknown)
  scene (text), row, col (int32)    origin in source pixels
  fb_*                              (format 3, shards converted with altimetry: `Layout.max_points` > 0)
                                    the altimeter footprint points of the patch, see data/points.py:
                                    fb_pixel int16 [N, K, 2] (row, col in the patch), fb_weight float16
                                    [N, K], fb_value / fb_sigma / fb_time_gap float32 [N], fb_surface /
                                    fb_kind / fb_mission uint8 [N], fb_track int16 [N]; padding kind 255

The 2 km channels reach the patch grid on device (`device_augment.prepare_batch_on_device`) or on the
host (`expand_patch`) by `cells.upsample_window`: the same numbers as the reader's full-scene upsampling.
Records are tf.train.Example protos described by a TFDS FeaturesDict (`Layout.features()`), so the same
files are read by grain (`decode_patch`) and by `tfds.data_source`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence

import numpy as np

from seaice_jax.data import cells as cl
from seaice_jax.data import channels as ch
from seaice_jax.data.points import (
    POINT_CHANNELS,
    POINT_FIELDS,
    ScenePoints,
    empty_patch_points,
    patch_points,
    point_field_shapes,
)
from seaice_jax.data.scene_types import Scene

FORMAT_VERSION = 3  # 3: altimeter points per patch (when converted with altimetry); 2 reads as 3 without
READABLE_FORMATS = (2, 3)
# Shard files are named as TFDS names them, so the folder is a TFDS dataset as it is.
DATASET_NAME = "seaice"
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}"
LABEL_FIELDS = ("sic", "sod", "floe", "valid", "ice_truth")
SPATIAL_FIELDS = ("sar",) + LABEL_FIELDS + ("region_ids",)


def region_dtype(max_regions: int) -> np.dtype:
    """Smallest signed integer type holding local ids -1 .. max_regions - 1."""
    for dt in (np.int8, np.int16, np.int32):
        if max_regions - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"max_regions {max_regions} too large")


CELL_CHANNELS = frozenset(ch.GRID_2KM_CHANNELS) | frozenset(ch.DERIVED_CHANNELS)


def split_channels(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(SAR-grid channels, 2 km cell channels) of `names`, each in the given order. The cell channels
    are AMSR2 / ERA5 and the derived inputs (smooth or constant over a scene, see data/derived.py)."""
    cells = tuple(n for n in names if n in CELL_CHANNELS)
    return tuple(n for n in names if n not in CELL_CHANNELS), cells


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static shapes of the compact patches of one shard folder."""

    patch_size: int
    max_regions: int
    sar_channels: tuple[str, ...]
    cell_channels: tuple[str, ...]
    pixels_per_cell: int = 25  # the smallest source pixels per 2 km cell the window is sized for
    downsample: int = 1
    margin: int = 1
    max_points: int = 0  # altimeter points per patch (0: the shards hold none)
    footprint_pixels: int = 8  # pixels kept per point footprint

    @property
    def cells(self) -> int:
        return cl.window_cells(self.patch_size, self.pixels_per_cell, self.downsample, self.margin)

    @property
    def channels(self) -> tuple[str, ...]:
        return self.sar_channels + self.cell_channels

    @classmethod
    def from_spec(cls, spec, pixels_per_cell: int = min(ch.PIXELS_PER_2KM.values())) -> Layout:
        sar, cells = split_channels(spec.channels)
        return cls(spec.patch_size, spec.max_regions, sar, cells, pixels_per_cell, spec.downsample,
                   max_points=int(getattr(spec, "max_points", 0)),
                   footprint_pixels=int(getattr(spec, "footprint_pixels", 8)))

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(sar_channels=list(self.sar_channels), cell_channels=list(self.cell_channels), cells=self.cells)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        return cls(int(d["patch_size"]), int(d["max_regions"]), tuple(d["sar_channels"]),
                   tuple(d["cell_channels"]), int(d["pixels_per_cell"]), int(d.get("downsample", 1)),
                   int(d.get("margin", 1)), int(d.get("max_points", 0)), int(d.get("footprint_pixels", 8)))

    def field_shapes(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        p, m = self.patch_size, self.cells
        u8 = np.dtype(np.uint8)
        return {
            "sar": ((p, p, len(self.sar_channels)), np.dtype(np.float16)),
            "cells": ((m, m, len(self.cell_channels)), np.dtype(np.float32)),
            "sic": ((p, p), u8), "sod": ((p, p), u8), "floe": ((p, p), u8),
            "region_ids": ((p, p), region_dtype(self.max_regions)),
            "region_conc": ((self.max_regions,), np.dtype(np.float32)),
            "valid": ((p, p), u8), "ice_truth": ((p, p), u8),
        } | (point_field_shapes(self.max_points, self.footprint_pixels) if self.max_points else {})

    def patch_bytes(self) -> int:
        """Bytes of the arrays of one patch (what a batch holds per example)."""
        return sum(int(np.prod(s)) * dt.itemsize for s, dt in self.field_shapes().values()) + 3 * 2 * 4

    def features(self):
        """The TFDS FeaturesDict of one record (raw bytes encoding: no TensorFlow needed)."""
        return _features(self)


@functools.lru_cache(maxsize=8)
def _features(layout: Layout):
    import tensorflow_datasets as tfds

    f = tfds.features
    spec = {k: f.Tensor(shape=s, dtype=dt, encoding=f.Encoding.BYTES) for k, (s, dt) in layout.field_shapes().items()}
    for k in ("cell_origin", "pixel_origin", "grid_cells"):
        spec[k] = f.Tensor(shape=(2,), dtype=np.int32)
    spec.update(pixels_per_cell=f.Scalar(dtype=np.int32), row=f.Scalar(dtype=np.int32), col=f.Scalar(dtype=np.int32),
                scene=f.Text())
    return f.FeaturesDict(spec)


def warm_up(layout: Layout) -> None:
    """Encode and decode one zero patch in the calling thread. TFDS imports its feature and parsing
    modules lazily (etils); left to grain's prefetch threads, those first imports can block on the
    import lock while the main thread imports too (seen as a hung multi-process run)."""
    patch = {k: np.zeros(shape, dt) for k, (shape, dt) in layout.field_shapes().items()}
    if layout.max_points:
        patch.update(empty_patch_points(layout.max_points, layout.footprint_pixels))
    patch.update(cell_origin=np.zeros(2, np.int32), pixel_origin=np.zeros(2, np.int32),
                 grid_cells=np.ones(2, np.int32), pixels_per_cell=np.int32(layout.pixels_per_cell),
                 row=np.int32(0), col=np.int32(0), scene="warm-up")
    decode_patch(encode_patch(patch, layout), layout)


@functools.lru_cache(maxsize=8)
def _serializer(layout: Layout):
    from tensorflow_datasets.core import example_serializer

    return example_serializer.ExampleSerializer(layout.features().get_serialized_info())


def encode_patch(patch: dict, layout: Layout) -> bytes:
    """One patch -> tf.train.Example bytes, its features in sorted order (`deterministic`: protobuf
    otherwise writes a map in an order that changes from process to process, so two conversions of
    the same scenes would give shards with the same records but other bytes)."""
    example = _serializer(layout).get_tf_example(layout.features().encode_example(patch))
    return example.SerializeToString(deterministic=True)


def decode_patch(record: bytes, layout: Layout) -> dict:
    """Record -> dict of numpy arrays (read-only views of the record where possible); scene as str."""
    out = dict(layout.features().deserialize_example_np(record))
    scene = out["scene"]
    out["scene"] = scene.decode() if isinstance(scene, bytes) else str(scene)
    return out


# ----------------------------------------------------------------------------------------------
# Patch extraction


def _window(a: np.ndarray, r: int, c: int, p: int, fill) -> np.ndarray:
    """a[r:r+p, c:c+p] padded with `fill` to p x p (a view when no padding is needed)."""
    w = a[r : r + p, c : c + p]
    if w.shape[0] == p and w.shape[1] == p:
        return w
    pad = [(0, p - w.shape[0]), (0, p - w.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(w, pad, constant_values=fill)


def read_cell_grids(path: str, names: Sequence[str], product: str) -> dict[str, np.ndarray]:
    """2 km channels of a scene file at 2 km, prepared as the reader prepares them before upsampling:
    standard-scaled (raw files hold physical units), NaN -> 0. float32 [h, w] each."""
    import xarray as xr

    out = {}
    with xr.open_dataset(path, engine="netcdf4", mask_and_scale=True, decode_times=False, cache=False) as ds:
        for n in names:
            v = np.asarray(ds[n].values, np.float32)
            if product == "raw":
                mean, std = ch.NORM_STATS[n]
                v = (v - np.float32(mean)) / np.float32(std)
            out[n] = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return out


def scene_cell_grids(scene: Scene, names: Sequence[str], grids: dict | None = None) -> np.ndarray:
    """2 km channels of a scene as float32 [h, w, Cc] at 2 km.

    From `grids` (name -> [h, w]), the scene's `grids_2km` when the reader provides them, or its file
    (`read_cell_grids`). Otherwise (an in-memory scene) they are read back from the reader's upsampled
    channels at the cell centres, which is exact for RTT (f = 25 is odd: pixel 25 i + 12 is cell i's
    centre, weight 0); a raw scene (f = 50) must come with its grids.
    """
    names = list(names)
    if not names:
        return np.zeros((1, 1, 0), np.float32)
    from seaice_jax.data.derived import derived_cell_grid

    f = ch.PIXELS_PER_2KM[scene.product]
    derived = {n: derived_cell_grid(n, scene.tie_points, scene.start_time, scene.shape, f)
               for n in names if n in ch.DERIVED_CHANNELS}
    read = [n for n in names if n not in derived]
    grids = grids if grids is not None else getattr(scene, "grids_2km", None)
    if read and grids is None and scene.path and os.path.isfile(scene.path):
        grids = read_cell_grids(scene.path, read, scene.product)
    if read and grids is None:
        if f % 2 == 0:
            raise ValueError(f"{scene.name}: a {scene.product} scene needs its 2 km grids (grids_2km) "
                             "for compact patches")
        h, w = scene.shape
        rows = np.arange(h // f) * f + (f - 1) // 2
        cols = np.arange(w // f) * f + (f - 1) // 2
        grids = {n: scene.channels[n][np.ix_(rows, cols)] for n in read}
    values = dict(derived)
    for n in read:
        values[n] = np.asarray(grids[n], np.float32)
    shapes = {v.shape for v in values.values()}
    if len(shapes) > 1:  # a file grid one cell larger than floor(H / f) (older files): crop to the common grid
        h = min(s_[0] for s_ in shapes)
        w = min(s_[1] for s_ in shapes)
        values = {n: v[:h, :w] for n, v in values.items()}
    return np.stack([values[n] for n in names], -1).astype(np.float32)


def extract_compact_patches(scene: Scene, spec, grid: np.ndarray, layout: Layout,
                            pixels_per_cell: int | None = None, points: ScenePoints | None = None) -> Iterator[dict]:
    """Compact patches of a scene (already downsampled by spec.downsample) that hold a valid pixel.

    grid: float32 [h, w, Cc] 2 km cells of the scene (not downsampled: cells stay 2 km).
    points: the scene's altimeter points on this (downsampled) grid, when layout.max_points > 0.
    No full-scene copy is made: each field is cut from the scene's own arrays patch by patch.
    """
    from seaice_jax.data.patches import localise_regions, patch_origins

    h, w = scene.shape
    p, m = spec.patch_size, layout.cells
    n_rows, n_cols = grid.shape[:2]
    grid_pad = np.pad(grid, ((0, max(0, m - n_rows)), (0, max(0, m - n_cols)), (0, 0)))
    ids_dtype = region_dtype(spec.max_regions)
    sar = [scene.channels[n] for n in layout.sar_channels]
    f = ch.PIXELS_PER_2KM[scene.product] if pixels_per_cell is None else int(pixels_per_cell)
    if f < layout.pixels_per_cell:
        raise ValueError(f"{scene.name}: {f} pixels per cell, the layout is sized for >= {layout.pixels_per_cell}")
    d = layout.downsample
    for r in patch_origins(h, p, spec.stride):
        for c in patch_origins(w, p, spec.stride):
            valid = _window(scene.valid, r, c, p, False)
            if not valid.any():
                continue
            ids, conc = localise_regions(_window(scene.region_ids, r, c, p, -1), scene.region_conc, spec.max_regions)
            o_r = cl.window_origin(r, p, n_rows, m, f, d)
            o_c = cl.window_origin(c, p, n_cols, m, f, d)
            sar_patch = np.empty((p, p, len(sar)), np.float16)
            for i, a in enumerate(sar):
                sar_patch[..., i] = _window(a, r, c, p, 0.0)
            truth = (_window(scene.ice_truth, r, c, p, 255) if scene.ice_truth is not None
                     else np.full((p, p), 255, np.uint8))
            fb = {}
            if layout.max_points:
                fb = (patch_points(points, r, c, p, layout.max_points) if points is not None
                      else empty_patch_points(layout.max_points, layout.footprint_pixels))
            yield fb | {
                "sar": sar_patch,
                "cells": np.ascontiguousarray(grid_pad[o_r : o_r + m, o_c : o_c + m]),
                "cell_origin": np.array([o_r, o_c], np.int32),
                "pixel_origin": np.array([r, c], np.int32),
                "grid_cells": np.array([n_rows, n_cols], np.int32),
                "pixels_per_cell": np.int32(f),
                "sic": _window(scene.sic, r, c, p, 255).astype(np.uint8),
                "sod": _window(scene.sod, r, c, p, 255).astype(np.uint8),
                "floe": _window(scene.floe, r, c, p, 255).astype(np.uint8),
                "region_ids": ids.astype(ids_dtype),
                "region_conc": conc,
                "valid": valid.astype(np.uint8),
                "ice_truth": truth.astype(np.uint8),
                "scene": scene.name,
                "row": int(r * d),
                "col": int(c * d),
            }


# ----------------------------------------------------------------------------------------------
# Back to full-resolution channels (host side; the device side is device_augment)


def expand_patch(patch: dict, layout: Layout, channels: Sequence[str] | None = None) -> dict:
    """Compact patch -> the v1 training fields: inputs float32 [P, P, C] (order of `channels`, point
    channels left out: the step makes them), int32 region ids, bool validity, the other fields unchanged."""
    channels = layout.channels if channels is None else tuple(c for c in channels if c not in POINT_CHANNELS)
    p = layout.patch_size
    wanted = [n for n in channels if n in layout.cell_channels]
    cells = patch["cells"][..., [layout.cell_channels.index(n) for n in wanted]]
    if wanted:
        cells = cl.upsample_window(cells, int(patch["pixel_origin"][0]), int(patch["pixel_origin"][1]),
                                   (p, p), int(patch["pixels_per_cell"]), layout.downsample,
                                   cell_origin=tuple(int(x) for x in patch["cell_origin"]),
                                   grid_cells=tuple(int(x) for x in patch["grid_cells"]))
    planes = []
    for n in channels:
        if n in layout.sar_channels:
            planes.append(patch["sar"][..., layout.sar_channels.index(n)].astype(np.float32))
        else:
            planes.append(cells[..., wanted.index(n)])
    out = {k: patch[k] for k in ("sic", "sod", "floe", "region_conc", "ice_truth")}
    out.update(inputs=np.stack(planes, -1), region_ids=patch["region_ids"].astype(np.int32),
               valid=patch["valid"].astype(bool))
    out.update({k: patch[k] for k in POINT_FIELDS if k in patch})  # made into inputs in the step
    return out
