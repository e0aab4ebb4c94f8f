"""Device-resident training data (`config.data.source = "device"`): no host work per step.

The (optionally downsampled) scenes are put into accelerator memory once, in compact form, replicated
over the mesh:

  sar          float16 [Hc, Wc, Cs]   SAR-grid channels of every scene, scenes stacked down one canvas
  sic/sod/floe uint8 [Hc, Wc]; valid uint8; ice_truth uint8 (only when a scene has truth)
  region_ids   int32 [Hc, Wc]         scene region ids (-1 none); region_conc float32 [sum of R]
  cells        float32 [Hcc, Wcc, Cc] 2 km cells of every scene, stacked the same way
  per scene    canvas row, height, width, cell-canvas row, grid rows / cols, pixels per cell, weight

Scene s occupies canvas rows [row[s], row[s] + max(H_s, P)) and columns [0, max(W_s, P)); the rest is
padding (invalid, 255, -1). Every step draws scenes (probability by area) and crop positions inside
them with `jax.random` from (key, step), cuts the crops with dynamic slices, maps each crop's scene
region ids to `max_regions` local slots (largest first, as shards.localise_regions does on the host,
static shapes), then upsamples the 2 km cells and flips / rotates with device_augment. The batch is a
pure function of (data, key, step): resuming at a step gives the same batches.

Before loading, `estimate_bytes` sizes the canvases from the files' dimensions and `check_fits` fails
with one line when they do not fit the device.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax.data import cells as cl
from seaice_jax.data import channels as ch
from seaice_jax.data import compact, device_augment
from seaice_jax.data import points as pts
from seaice_jax.data.scene_types import Scene

LABELS = ("sic", "sod", "floe")
# bytes per canvas pixel besides the SAR channels: 3 charts + validity (uint8) + region ids (int32)
PIXEL_BYTES = 3 + 1 + 4


@dataclasses.dataclass(frozen=True)
class ResidentSpec:
    patch_size: int = 256
    downsample: int = 2
    max_regions: int = 64
    channels: tuple[str, ...] = ch.ALL_CHANNELS
    max_points: int = 0  # altimeter points per crop (0: none resident)
    footprint_pixels: int = 8

    @property
    def layout(self) -> compact.Layout:
        sar, cells = compact.split_channels(tuple(c for c in self.channels if c not in pts.POINT_CHANNELS))
        return compact.Layout(self.patch_size, self.max_regions, sar, cells, min(ch.PIXELS_PER_2KM.values()),
                              self.downsample, max_points=self.max_points, footprint_pixels=self.footprint_pixels)


def scene_sizes(shape: tuple[int, int], product: str, spec: ResidentSpec) -> tuple[tuple[int, int], tuple[int, int]]:
    """((H, W) after downsampling, (rows, cols) of the 2 km grid) of a scene of source `shape`."""
    f = ch.PIXELS_PER_2KM[product]
    return (shape[0] // spec.downsample, shape[1] // spec.downsample), (shape[0] // f, shape[1] // f)


def canvas_shapes(sizes: Sequence[tuple[tuple[int, int], tuple[int, int]]], spec: ResidentSpec):
    """(pixel canvas (Hc, Wc), cell canvas (Hcc, Wcc), per-scene pixel rows, per-scene cell rows)."""
    p, m = spec.patch_size, spec.layout.cells
    rows, cell_rows, r, cr = [], [], 0, 0
    for (h, _), (n, _) in sizes:
        rows.append(r)
        cell_rows.append(cr)
        r += max(h, p)
        cr += max(n, m)
    wc = max([max(w, p) for (_, w), _ in sizes] or [p])
    wcc = max([max(c, m) for _, (_, c) in sizes] or [m])
    return (r, wc), (cr, wcc), rows, cell_rows


def estimate_bytes(sizes, spec: ResidentSpec, with_truth: bool = False) -> int:
    """Device bytes of the resident data for scenes of these (downsampled) sizes (see canvas_shapes)."""
    (hc, wc), (hcc, wcc), _, _ = canvas_shapes(sizes, spec)
    layout = spec.layout
    per_pixel = 2 * len(layout.sar_channels) + PIXEL_BYTES + (1 if with_truth else 0)
    regions_guess = 4 * 10_000 * len(sizes)  # region concentrations: far below the canvases
    return hc * wc * per_pixel + hcc * wcc * 4 * len(layout.cell_channels) + regions_guess


def available_bytes(devices: Sequence[jax.Device] | None = None) -> int:
    """Free memory of the smallest device (memory_stats), or the host's physical memory on CPU."""
    devices = list(devices or jax.local_devices())
    free = []
    for d in devices:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if stats and "bytes_limit" in stats:
            free.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    if free:
        return min(free)
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(needed: int, available: int, what: str = "device-resident data", fraction: float = 0.8) -> None:
    """Raise MemoryError (one line) when `needed` exceeds `fraction` of `available` bytes."""
    if needed > fraction * available:
        raise MemoryError(
            f"{what} needs {needed / 1e9:.1f} GB but the device has {available / 1e9:.1f} GB free "
            f"(at most {fraction:.0%} may be data); use a larger data.downsample, fewer scenes or "
            f"data.source='shards'")


# ----------------------------------------------------------------------------------------------
# Loading


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ResidentData:
    """The resident arrays (a pytree: pass it to the jitted step as an argument, never close over it)."""

    sar: jax.Array
    sic: jax.Array
    sod: jax.Array
    floe: jax.Array
    valid: jax.Array
    ice_truth: jax.Array
    region_ids: jax.Array
    region_conc: jax.Array
    cells: jax.Array
    scene_row: jax.Array
    scene_shape: jax.Array  # int32 [S, 2]
    cell_row: jax.Array
    grid_cells: jax.Array  # int32 [S, 2]
    pixels_per_cell: jax.Array
    region_offset: jax.Array
    weight: jax.Array  # float32 [S], sampling probability
    # altimeter points of every scene, padded to the largest count N (kind NO_POINT): rows / cols int32
    # [S, N, K] on the (downsampled) scene grid, weight float32 [S, N, K], centre float32 [S, N, 2], value /
    # sigma / time_gap float32 [S, N], kind / surface / mission uint8 [S, N], track int32 [S, N]; {} when none
    points: dict = dataclasses.field(default_factory=dict)

    @property
    def num_scenes(self) -> int:
        return int(self.scene_row.shape[0])

    def nbytes(self) -> int:
        return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(self))


def resident_points(points: Sequence[pts.ScenePoints], footprint_pixels: int = 8) -> dict:
    """The scenes' altimeter points padded to one count (see ResidentData.points), host arrays."""
    n = max([len(p) for p in points] + [1])
    s, k = len(points), footprint_pixels
    out = {"rows": np.zeros((s, n, k), np.int32), "cols": np.zeros((s, n, k), np.int32),
           "weight": np.zeros((s, n, k), np.float32), "centre": np.full((s, n, 2), -1e6, np.float32),
           "value": np.zeros((s, n), np.float32), "sigma": np.ones((s, n), np.float32),
           "time_gap": np.zeros((s, n), np.float32), "along": np.zeros((s, n), np.float32),
           "kind": np.full((s, n), pts.NO_POINT, np.uint8),
           "surface": np.zeros((s, n), np.uint8), "mission": np.zeros((s, n), np.uint8),
           "track": np.zeros((s, n), np.int32)}
    for i, p in enumerate(points):
        m = len(p)
        out["rows"][i, :m], out["cols"][i, :m], out["weight"][i, :m] = p.rows, p.cols, p.weight
        out["centre"][i, :m] = np.stack([p.centre_row, p.centre_col], -1)
        for f in ("value", "sigma", "time_gap", "along", "kind", "surface", "mission", "track"):
            out[f][i, :m] = getattr(p, f)
    return out


def from_scenes(scenes: Iterable[tuple[Scene, np.ndarray]], sizes, spec: ResidentSpec,
                with_truth: bool = False, *, devices_or_sharding=None,
                points: Sequence[pts.ScenePoints] | None = None) -> ResidentData:
    """Build the canvases on the host, one scene at a time, and put them on device.

    scenes: (scene on its source grid, 2 km cells float32 [n, m, Cc]) in the order of `sizes`
    (scene_sizes of each). devices_or_sharding: a jax.sharding (e.g. replicated over the mesh) or None.
    points: the scenes' altimeter points on the downsampled grids (spec.max_points > 0).
    """
    from seaice_jax.data.shards import downsample_scene

    layout = spec.layout
    (hc, wc), (hcc, wcc), rows, cell_rows = canvas_shapes(sizes, spec)
    cs, cc = len(layout.sar_channels), len(layout.cell_channels)
    sar = np.zeros((hc, wc, cs), np.float16)
    labels = {k: np.full((hc, wc), 255, np.uint8) for k in LABELS}
    valid = np.zeros((hc, wc), np.uint8)
    truth = np.full((hc, wc) if with_truth else (1, 1), 255, np.uint8)
    ids = np.full((hc, wc), -1, np.int32)
    cells = np.zeros((hcc, wcc, cc), np.float32)
    conc, offsets, shapes, grids, ppc = [], [], [], [], []
    n_regions = 0
    for i, (scene, grid) in enumerate(scenes):
        f = ch.PIXELS_PER_2KM[scene.product]
        small = downsample_scene(dataclasses.replace(
            scene, channels={k: scene.channels[k] for k in layout.sar_channels}), spec.downsample)
        h, w = small.shape
        if (h, w) != tuple(sizes[i][0]) or grid.shape[:2] != tuple(sizes[i][1]):
            raise ValueError(f"{scene.name}: sizes {(h, w)}, {grid.shape[:2]} differ from the estimate {sizes[i]}")
        r = rows[i]
        for j, n in enumerate(layout.sar_channels):
            sar[r : r + h, :w, j] = small.channels[n]
        for k in LABELS:
            labels[k][r : r + h, :w] = getattr(small, k)
        valid[r : r + h, :w] = small.valid
        if with_truth and small.ice_truth is not None:
            truth[r : r + h, :w] = small.ice_truth
        ids[r : r + h, :w] = small.region_ids
        cells[cell_rows[i] : cell_rows[i] + grid.shape[0], : grid.shape[1]] = grid
        conc.append(np.asarray(small.region_conc, np.float32))
        offsets.append(n_regions)
        n_regions += len(small.region_conc)
        shapes.append((h, w))
        grids.append(grid.shape[:2])
        ppc.append(f)
        del small
    area = np.array([h * w for h, w in shapes], np.float64)
    host = ResidentData(
        sar=sar, sic=labels["sic"], sod=labels["sod"], floe=labels["floe"], valid=valid, ice_truth=truth,
        region_ids=ids, region_conc=np.concatenate(conc + [np.zeros(1, np.float32)]),
        cells=cells, scene_row=np.array(rows, np.int32), scene_shape=np.array(shapes, np.int32).reshape(-1, 2),
        cell_row=np.array(cell_rows, np.int32), grid_cells=np.array(grids, np.int32).reshape(-1, 2),
        pixels_per_cell=np.array(ppc, np.int32), region_offset=np.array(offsets, np.int32),
        weight=(area / area.sum()).astype(np.float32),
        points=resident_points(points, spec.footprint_pixels) if spec.max_points and points is not None else {})
    return jax.device_put(host, devices_or_sharding)


def load_resident(paths: Sequence[str], spec: ResidentSpec, *, sharding=None, available: int | None = None,
                  fraction: float = 0.8, points_dir: str | None = None) -> ResidentData:
    """Read the scene files (one at a time) into device memory; fails first if they cannot fit.
    spec.max_points > 0: each scene's altimeter points from `<points_dir>/<scene>.altimetry.npz` (the
    shards converted with altimetry at the same downsampling)."""
    points = None
    if spec.max_points:
        points = []
        for p in paths:
            name = os.path.basename(p)[: -len(".nc")] if p.endswith(".nc") else os.path.basename(p)
            path = os.path.join(points_dir or "", name + ".altimetry.npz")
            if not os.path.exists(path):
                raise ValueError(f"{path}: no altimeter points for {os.path.basename(p)} (data.source='device' "
                                 "takes them from shards converted with --altimetry: set data.shards)")
            points.append(pts.ScenePoints.load(path))
    import xarray as xr

    from seaice_jax.data.scene import open_scene

    sizes, products, truth = [], [], False
    for p in paths:  # dimensions only: nothing is read
        with xr.open_dataset(p, engine="netcdf4", decode_times=False, cache=False) as ds:
            shape = (int(ds.sizes["sar_lines"]), int(ds.sizes["sar_samples"]))
            product = "raw" if "polygon_icechart" in ds.variables else "rtt"
            truth |= "ice_truth" in ds.variables
            grid = tuple(int(ds.sizes[k]) for k in ch.GRID_2KM_DIMS) if ch.GRID_2KM_DIMS[0] in ds.sizes else None
        pixels, cells = scene_sizes(shape, product, spec)
        sizes.append((pixels, grid or cells))
        products.append(product)
    need = estimate_bytes(sizes, spec, truth)
    if points:
        need += len(points) * max(len(p) for p in points) * (spec.footprint_pixels * 12 + 32)
    check_fits(need, available_bytes() if available is None else available, fraction=fraction)
    names = spec.layout.cell_channels

    def scenes():
        for p in paths:
            s = open_scene(p, channels=list(spec.layout.sar_channels) + list(names))
            grid = compact.scene_cell_grids(s, names)
            s = dataclasses.replace(s, channels={k: s.channels[k] for k in spec.layout.sar_channels})
            yield s, grid

    return from_scenes(scenes(), sizes, spec, truth, devices_or_sharding=sharding, points=points)


# ----------------------------------------------------------------------------------------------
# Drawing a batch on device


def localise_regions(ids: jax.Array, conc: jax.Array, max_regions: int) -> tuple[jax.Array, jax.Array]:
    """Device twin of shards.localise_regions for one crop: scene ids [P, P] (-1 none) -> local slot ids
    [P, P] (largest regions first, ties to the smaller id; -1 none or beyond max_regions) and float32
    [max_regions] concentrations (NaN unused). conc: the scene's concentrations, indexed by scene id."""
    flat = jnp.sort(ids.reshape(-1))
    n = flat.shape[0]
    start = jnp.concatenate([jnp.ones((1,), bool), flat[1:] != flat[:-1]])
    run = jnp.cumsum(start) - 1  # run index of each sorted element
    counts = jax.ops.segment_sum(jnp.ones(n, jnp.int32), run, num_segments=n)
    value = jax.ops.segment_max(flat, run, num_segments=n)
    counts = jnp.where((counts > 0) & (value >= 0), counts, -1)
    top, idx = jax.lax.top_k(counts, max_regions)  # equal counts: lower run (smaller id) first
    kept = jnp.where(top > 0, value[idx], -2)
    match = ids[..., None] == kept
    local = jnp.where(match.any(-1) & (ids >= 0), jnp.argmax(match, -1), -1).astype(jnp.int32)
    slot_conc = jnp.where(kept >= 0, conc[jnp.maximum(kept, 0)], jnp.nan).astype(jnp.float32)
    return local, slot_conc


def crop_positions(data: ResidentData, key: jax.Array, batch_size: int, patch_size: int):
    """(scene [B], row [B], col [B]) uniform over crops inside each scene; scenes by area."""
    ks, kr, kc = jax.random.split(key, 3)
    scene = jax.random.choice(ks, data.weight.shape[0], (batch_size,), p=data.weight)
    shape = data.scene_shape[scene]
    row = jax.random.randint(kr, (batch_size,), 0, jnp.maximum(shape[:, 0] - patch_size, 0) + 1)
    col = jax.random.randint(kc, (batch_size,), 0, jnp.maximum(shape[:, 1] - patch_size, 0) + 1)
    return scene, row, col


def compact_batch(data: ResidentData, scene, row, col, spec: ResidentSpec) -> dict:
    """The crops as a compact batch (the fields of compact.py), cut on device."""
    layout = spec.layout
    p, m = spec.patch_size, layout.cells
    d = spec.downsample

    def one(s, r, c):
        top = data.scene_row[s] + r

        def cut(a):
            return jax.lax.dynamic_slice(a, (top, c) + (0,) * (a.ndim - 2), (p, p) + a.shape[2:])

        n_r, n_c = data.grid_cells[s, 0], data.grid_cells[s, 1]
        f = data.pixels_per_cell[s]
        first_r = cl.axis_weights(r, 1, n_r, f, d, jnp)[0][0]
        first_c = cl.axis_weights(c, 1, n_c, f, d, jnp)[0][0]
        o_r = jnp.clip(first_r, 0, jnp.maximum(n_r - m, 0))
        o_c = jnp.clip(first_c, 0, jnp.maximum(n_c - m, 0))
        cells = jax.lax.dynamic_slice(data.cells, (data.cell_row[s] + o_r, o_c, 0), (m, m, data.cells.shape[2]))
        scene_ids = cut(data.region_ids)
        shifted = jnp.where(scene_ids >= 0, scene_ids + data.region_offset[s], -1)
        local, slot_conc = localise_regions(shifted, data.region_conc, spec.max_regions)
        truth = cut(data.ice_truth) if data.ice_truth.shape[0] > 1 else jnp.full((p, p), 255, jnp.uint8)
        fb = crop_points(data.points, s, r, c, p, spec.max_points) if spec.max_points and data.points else {}
        return fb | {
            "sar": cut(data.sar), "cells": cells,
            "cell_origin": jnp.stack([o_r, o_c]).astype(jnp.int32),
            "pixel_origin": jnp.stack([r, c]).astype(jnp.int32),
            "grid_cells": data.grid_cells[s], "pixels_per_cell": f,
            "sic": cut(data.sic), "sod": cut(data.sod), "floe": cut(data.floe),
            "region_ids": local, "region_conc": slot_conc, "valid": cut(data.valid), "ice_truth": truth,
        }

    return jax.vmap(one)(scene, row, col)


def crop_points(points: dict, s, r, c, p: int, max_points: int) -> dict:
    """The point fields (data/points.py) of the crop [r, r + p) x [c, c + p) of scene s, cut on device as
    points.patch_points cuts them on the host: centre in the crop, at least MIN_INSIDE of the footprint
    weight inside (pixels outside dropped, weights renormalised); more than `max_points`: a spread-out
    subset (a fixed pseudo-random order, so every track keeps points)."""
    points = {k: v[s] for k, v in points.items()}  # this scene's
    rows, cols, w = points["rows"], points["cols"], points["weight"]
    centre, kind = points["centre"], points["kind"]
    cr, cc = jnp.rint(centre[:, 0]), jnp.rint(centre[:, 1])
    inside = (kind != pts.NO_POINT) & (cr >= r) & (cr < r + p) & (cc >= c) & (cc < c + p)
    pin = (rows >= r) & (rows < r + p) & (cols >= c) & (cols < c + p) & (w > 0)
    w_in = jnp.where(pin, w, 0.0)
    keep = inside & (w_in.sum(1) >= pts.MIN_INSIDE * jnp.maximum(w.sum(1), 1e-12))
    n = kind.shape[0]
    spread = jnp.mod(jnp.arange(n, dtype=jnp.float32) * 0.6180339887, 1.0)
    priority, idx = jax.lax.top_k(jnp.where(keep, 1.0 + spread, 0.0), min(max_points, n))
    used = priority > 0
    ww = w_in[idx] / jnp.maximum(w_in[idx].sum(1, keepdims=True), 1e-12)
    out = {
        "fb_pixel": jnp.stack([jnp.where(ww > 0, rows[idx] - r, 0), jnp.where(ww > 0, cols[idx] - c, 0)],
                              -1).astype(jnp.int16),
        "fb_weight": jnp.where(used[:, None], ww, 0.0),
        "fb_value": jnp.where(used, points["value"][idx], 0.0),
        "fb_sigma": jnp.where(used, points["sigma"][idx], 1.0),
        "fb_surface": points["surface"][idx], "fb_mission": points["mission"][idx],
        "fb_kind": jnp.where(used, kind[idx], pts.NO_POINT).astype(jnp.uint8),
        "fb_track": jnp.where(used, points["track"][idx] % pts.PointOptions().max_tracks, -1).astype(jnp.int16),
        "fb_time_gap": jnp.where(used, points["time_gap"][idx], 0.0),
        "fb_along": jnp.where(used, points["along"][idx], 0.0),
    }
    if max_points > n:  # fewer points resident than slots: pad to the static count
        pad = max_points - n
        out = {k: jnp.concatenate([v, jnp.broadcast_to(jnp.asarray(pts.NO_POINT if k == "fb_kind" else
                                                                   (-1 if k == "fb_track" else 0), v.dtype),
                                                       (pad,) + v.shape[1:])]) for k, v in out.items()}
    return out


def draw_batch(data: ResidentData, key: jax.Array, step, *, spec: ResidentSpec, batch_size: int,
               channels: Sequence[str] | None = None, augment: bool = True,
               points: pts.PointOptions | None = None) -> dict:
    """The training batch of `step`: a pure function of (data, key, step). Call inside the jitted step."""
    k_pos, k_aug = jax.random.split(jax.random.fold_in(key, step))
    scene, row, col = crop_positions(data, k_pos, batch_size, spec.patch_size)
    batch = compact_batch(data, scene, row, col, spec)
    return device_augment.prepare_batch_on_device(batch, k_aug, layout=spec.layout,
                                                  channels=spec.channels if channels is None else channels,
                                                  augment=augment, points=points)


def figure_for_ai4arctic(num_scenes: int = 513, side_80m: int = 5000, downsample: int = 2,
                         channels: Sequence[str] = ch.ALL_CHANNELS, with_truth: bool = False) -> int:
    """Bytes of the AI4Arctic train split resident at 80 m x downsample (square scenes of side_80m)."""
    spec = ResidentSpec(downsample=downsample, channels=tuple(channels))
    sizes = [scene_sizes((side_80m, side_80m), "rtt", spec)] * num_scenes
    return estimate_bytes(sizes, spec, with_truth)


def with_resident_batches(step_fn, *, spec: ResidentSpec, batch_size: int, key: jax.Array,
                          channels: Sequence[str] | None = None, augment: bool = True, batch_sharding=None,
                          points: pts.PointOptions | None = None):
    """step_fn(state, batch) -> step(state, data): the batch of state.step drawn on device from the
    resident `data` (pass it as an argument of the jitted step; it is not copied)."""

    def step(state, data: ResidentData):
        batch = draw_batch(data, key, state.step, spec=spec, batch_size=batch_size, channels=channels,
                           augment=augment, points=points)
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return step_fn(state, batch)

    return step
