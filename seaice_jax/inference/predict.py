"""Whole-scene prediction on device: scene arrays in, ice logits and class maps out (no files).

Tiling (`predict_scene`, geometry in `tiling`). Tiles of one fixed shape go through one jitted function
(a scene of any size compiles once); their window-weighted cores are blended on the host (see
`tiling`; exact for a translation-equivariant model; the align-corners bilinear upsampling of the
baseline U-Net is not quite, see `tiled_vs_untiled` in the tests).
A scene that one tile covers skips the blending: its tile is one forward pass whose class argmax runs
on the device (`single_tile_predictor`); only the finished maps come back to the host.
Memory: scene rows are read one tile-row band at a time ([tile, W, C]) and the blend is accumulated
in a rolling band of `core` rows ([core, W, K] float32); only the output maps are scene-sized.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax.inference.tiling import check_tiling, core_window, default_margin, tile_origins
from seaice_jax.models.freeboard import FREEBOARD_HEADS, UNCERTAINTY_SUFFIX

METRE_HEADS = FREEBOARD_HEADS + tuple(h + UNCERTAINTY_SUFFIX for h in FREEBOARD_HEADS)


def head_layout(outputs: dict) -> list[tuple[str, int]]:
    """[(head name, channels)] in output order; 'ice' and regression heads have 1 channel."""
    return [(k, 1 if v.ndim == 3 else v.shape[-1]) for k, v in sorted(outputs.items())
            if not k.startswith("features/")]


def tile_predictor(fns, tile: int, margin: int, channels: int, blend: str = "core"):
    """Jitted (params, batch_stats, tiles [B, T, T, C]) -> window-weighted core outputs [B, c, c, K].

    Only the core leaves the device (c = T - 2 margin): the margin's weight is 0 anyway.
    """
    cache = fns.__dict__.setdefault("_tile_predictors", {})  # one compile per model and geometry
    layouts = fns.__dict__.setdefault("_tile_layouts", {})
    key = (tile, margin, channels, blend)
    if key not in cache:
        core = tile - 2 * margin
        weights = jnp.asarray(core_window(core, blend))

        def predict(params, batch_stats, x):
            out = fns.apply_eval(params, batch_stats, x)
            layouts[key] = head_layout(out)  # for `tile_layout`, recorded while tracing
            parts = [out[k][..., None] if out[k].ndim == 3 else out[k] for k, _ in head_layout(out)]
            stacked = jnp.concatenate(parts, axis=-1).astype(jnp.float32)
            return stacked[:, margin : margin + core, margin : margin + core] * weights[None, :, :, None]

        cache[key] = jax.jit(predict)
    return cache[key]


def tile_layout(fns, predict, params, batch_stats, tiles: jax.ShapeDtypeStruct, key: tuple) -> list[tuple[str, int]]:
    """`head_layout` of the outputs that `tile_predictor`'s `predict` stacks, for tiles like `tiles`.

    Found by tracing `predict` itself (jax.eval_shape of the jitted function: the call that follows
    reuses the trace), not the model a second time: a trace of the model costs about a second.
    """
    jax.eval_shape(predict, params, batch_stats, tiles)
    return fns.__dict__["_tile_layouts"][key]


def _as_planes(inputs) -> list[np.ndarray]:
    """[H, W, C] array or a sequence of C [H, W] arrays -> list of C [H, W] views (no copy)."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 3:
        return [inputs[..., i] for i in range(inputs.shape[-1])]
    planes = [np.asarray(p) for p in inputs]
    if not planes or any(p.ndim != 2 or p.shape != planes[0].shape for p in planes):
        raise ValueError("inference: inputs must be [H, W, C] or a sequence of equal [H, W] channel maps")
    return planes


def _row_band(planes: list[np.ndarray], top: int, tile: int, left: int, width: int) -> np.ndarray:
    """float32 [tile, width, C]: scene rows top..top+tile, cols left..left+width; 0 outside the scene."""
    h, w = planes[0].shape
    band = np.zeros((tile, width, len(planes)), np.float32)
    r0, r1 = max(top, 0), min(top + tile, h)
    c0, c1 = max(left, 0), min(left + width, w)
    if r1 > r0 and c1 > c0:
        for i, plane in enumerate(planes):
            band[r0 - top : r1 - top, c0 - left : c1 - left, i] = plane[r0:r1, c0:c1]
    return band


def output_maps(stacked, layout, xp=np) -> dict:
    """Head outputs stacked on the last axis ([..., K], in `layout` order) -> the scene maps:
    'ice_logit' float32, and uint8 classes for the chart heads (argmax; a 1-channel SIC head is a
    regression of class / 10). `xp` is numpy on host or jax.numpy inside a jitted function."""
    maps, i = {}, 0
    for name, k in layout:
        part = stacked[..., i : i + k]
        i += k
        if name == "ice":
            maps["ice_logit"] = part[..., 0].astype(xp.float32)
        elif name in METRE_HEADS:  # freeboards and their uncertainties, metres (models/freeboard.py)
            maps[name] = part[..., 0].astype(xp.float32)
        elif k == 1:
            maps[name] = xp.clip(xp.rint(part[..., 0] * 10), 0, 10).astype(xp.uint8)
        else:
            maps[name] = xp.argmax(part, axis=-1).astype(xp.uint8)
    return maps


def _finalise(acc: np.ndarray, wsum: np.ndarray, layout, out: dict, rows: slice) -> None:
    """Normalise accumulated rows and write logits / class maps into the output arrays."""
    for name, values in output_maps(acc / wsum[..., None], layout).items():
        out[name][rows] = values


def single_tile_predictor(fns, tile: int, margin: int, channels: int):
    """Jitted (params, batch_stats, tile [1, T, T, C]) -> the core's finished maps (see `output_maps`).

    For a scene that one tile covers: no blending is needed (one tile's window weights cancel), so the
    class argmax runs on the device and only the uint8 maps and the ice logit come back.
    """
    cache = fns.__dict__.setdefault("_single_tile_predictors", {})
    key = (tile, margin, channels)
    if key not in cache:
        core = tile - 2 * margin

        def predict(params, batch_stats, x):
            out = fns.apply_eval(params, batch_stats, x)
            layout = head_layout(out)
            parts = [out[k][..., None] if out[k].ndim == 3 else out[k] for k, _ in layout]
            stacked = jnp.concatenate(parts, axis=-1)[0, margin : margin + core, margin : margin + core]
            return output_maps(stacked, layout, jnp)

        cache[key] = jax.jit(predict)
    return cache[key]


def _single_tile_input(planes, inputs, tile: int, margin: int) -> np.ndarray:
    """[1, T, T, C] float32: the scene at (margin, margin), zeros around it. A C-contiguous [T, T, C]
    float32 scene with no margin is used as it is (no copy; on CPU not even to the device when it is
    64-byte aligned)."""
    h, w = planes[0].shape
    if (margin == 0 and h == tile and w == tile and isinstance(inputs, np.ndarray) and inputs.ndim == 3
            and inputs.dtype == np.float32 and inputs.flags.c_contiguous):
        return inputs[None]
    return _row_band(planes, -margin, tile, -margin, tile)[None]


def predict_scene(
    fns,
    params,
    batch_stats,
    inputs,
    *,
    tile: int = 256,
    stride: int = 64,
    batch_size: int = 8,
    margin: int | None = None,
    align: int = 1,
    blend: str = "core",
) -> dict[str, np.ndarray]:
    """Whole-scene outputs from overlapping tiles (see the module docstring).

    inputs: float32 [H, W, C] standard-scaled channels in the model's order, or a sequence of C
      [H, W] maps (spares the stacked copy of a large scene).
    margin: tile border with weight 0 (None: `default_margin`); align: the model's pooling period
      (`tile_alignment`); tile, stride and margin must be multiples of it.
    blend: 'core' (sine-squared window on each core) or 'average' (every core pixel weight 1: a
      plain mean; with margin 0 the ALS authors' averaged whole tiles), see `tiling.core_window`.
    Returns 'ice_logit' float32 [H, W] (if the model has the ice head) and uint8 [H, W] class maps
    'SIC', 'SOD', 'FLOE' for the heads it has (no masking: the caller applies land / no-data).
    """
    planes = _as_planes(inputs)
    h, w = planes[0].shape
    margin = default_margin(tile, stride, align) if margin is None else margin
    check_tiling(tile, stride, margin, align)
    weights = core_window(tile - 2 * margin, blend)  # checks `blend`
    core = tile - 2 * margin
    rows, cols = tile_origins(h, tile, stride, margin), tile_origins(w, tile, stride, margin)
    if len(rows) == 1 and len(cols) == 1:  # one tile covers the scene: finish on the device
        x = _single_tile_input(planes, inputs, tile, margin)
        maps = single_tile_predictor(fns, tile, margin, len(planes))(params, batch_stats, x)
        return {name: np.array(values[:h, :w]) for name, values in maps.items()}
    predict = tile_predictor(fns, tile, margin, len(planes), blend)
    layout = tile_layout(fns, predict, params, batch_stats,
                         jax.ShapeDtypeStruct((batch_size, tile, tile, len(planes)), jnp.float32),
                         (tile, margin, len(planes), blend))
    out = {("ice_logit" if name == "ice" else name):
           np.zeros((h, w), np.float32 if name == "ice" or name in METRE_HEADS else np.uint8) for name, _ in layout}
    band_width = cols[-1] + tile + margin  # band column j is scene column j - margin
    acc = np.zeros((core, w, sum(k for _, k in layout)), np.float32)  # acc row 0 = scene row `top`
    wsum = np.zeros((core, w), np.float32)
    top = rows[0] + margin  # = 0

    def accumulate(pred: np.ndarray, chunk: list[int]) -> None:
        n = min(core, h - top)  # core rows inside the scene
        for j, c in enumerate(chunk):
            c0, c1 = c + margin, min(c + margin + core, w)
            acc[:n, c0:c1] += pred[j, :n, : c1 - c0]
            wsum[:n, c0:c1] += weights[:n, : c1 - c0]

    for r in rows:
        shift = r + margin - top
        if shift:  # scene rows above this tile row's core are final: no later core reaches them
            _finalise(acc[:shift], wsum[:shift], layout, out, slice(top, top + shift))
            acc[:-shift], wsum[:-shift] = acc[shift:].copy(), wsum[shift:].copy()
            acc[-shift:], wsum[-shift:] = 0.0, 0.0
            top += shift
        band = _row_band(planes, r, tile, -margin, band_width)
        pending = None  # one batch in flight while the host accumulates the previous one
        for b in range(0, len(cols), batch_size):
            chunk = cols[b : b + batch_size]
            tiles = np.zeros((batch_size, tile, tile, len(planes)), np.float32)  # one compiled shape
            for j, c in enumerate(chunk):
                tiles[j] = band[:, c + margin : c + margin + tile]
            result = predict(params, batch_stats, jnp.asarray(tiles))
            if pending is not None:
                accumulate(np.asarray(pending[0]), pending[1])
            pending = (result, chunk)
        accumulate(np.asarray(pending[0]), pending[1])
    last = min(core, h - top)
    _finalise(acc[:last], wsum[:last], layout, out, slice(top, top + last))
    return out
