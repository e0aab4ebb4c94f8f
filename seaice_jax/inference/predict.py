"""Whole-scene prediction on device: scene arrays in, ice logits and class maps out (no files).

Tiling (`predict_scene`, geometry in `tiling`). Tiles of one fixed shape go through one jitted function
(compiled once per batch shape, below); their window-weighted cores are blended on the host (see
`tiling`; exact for a translation-equivariant model; the align-corners bilinear upsampling of the
baseline U-Net is not quite, see `tiled_vs_untiled` in the tests).
A scene that one tile covers skips the blending: its tile is one forward pass whose class argmax runs
on the device (`single_tile_predictor`); only the finished maps come back to the host.
Tiles go to the device in batches of one shape per scene, filled across tile rows and of equal size
(at most `batch_size`; a scene of N tiles pads fewer than ceil(N / batch_size) of them: a scene a few
tiles wide wastes no tiles per row). Scenes of different tile counts can compile a few batch shapes
(at most `batch_size`, each once per machine with the compilation cache).
Memory: scene rows are read one tile-row band at a time ([tile, W, C];
two while a batch spans rows) and the blend is accumulated in a rolling band of `core` rows
([core, W, K] float32); only the output maps are scene-sized.
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


# Test-time augmentation: the views a tile is predicted in, each (transpose, flip rows, flip columns),
# their outputs mapped back and averaged (logits, freeboards and sigmas alike). 'flips': the four
# mirror images; 'd4': those and their transposes (every flip and 90-degree rotation the training's
# augmentation draws, `data.augment`).
TTA_VIEWS = {
    "none": ((False, False, False),),
    "flips": tuple((False, r, c) for r in (False, True) for c in (False, True)),
    "d4": tuple((t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)),
}


def _view(x, transpose: bool, flip_rows: bool, flip_cols: bool, inverse: bool = False):
    """[B, T, T, ...] tiles seen in one TTA view (inverse=True maps a view's output back)."""
    if transpose and not inverse:
        x = jnp.swapaxes(x, 1, 2)
    if flip_rows:
        x = x[:, ::-1]
    if flip_cols:
        x = x[:, :, ::-1]
    if transpose and inverse:
        x = jnp.swapaxes(x, 1, 2)
    return x


def stacked_outputs(fns, params, batch_stats, x, tta: str = "none"):
    """(heads stacked on the last axis [B, T, T, K] float32, `head_layout`) of tiles x [B, T, T, C],
    averaged over the `TTA_VIEWS[tta]` views."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"inference: tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    total, layout = None, None
    for view in TTA_VIEWS[tta]:
        out = fns.apply_eval(params, batch_stats, _view(x, *view))
        layout = head_layout(out)
        parts = [out[k][..., None] if out[k].ndim == 3 else out[k] for k, _ in layout]
        stacked = _view(jnp.concatenate(parts, axis=-1).astype(jnp.float32), *view, inverse=True)
        total = stacked if total is None else total + stacked
    return total / len(TTA_VIEWS[tta]), layout


def tile_predictor(fns, tile: int, margin: int, channels: int, blend: str = "core", tta: str = "none"):
    """Jitted (params, batch_stats, tiles [B, T, T, C]) -> window-weighted core outputs [B, c, c, K],
    the heads stacked on the last axis in `.static` order (`head_layout`, known from the first call).

    Only the core leaves the device (c = T - 2 margin): the margin's weight is 0 anyway. A model built
    from a config (`fns.fingerprint`) keeps its traced program where the process allows it
    (`trace_cache`): a later process reads it back (the layout with it) and does not trace the model.
    """
    from seaice_jax import trace_cache

    cache = fns.__dict__.setdefault("_tile_predictors", {})  # one compile per model and geometry
    key = (tile, margin, channels, blend, tta)
    if key not in cache:
        core = tile - 2 * margin
        weights = core_window(core, blend)

        def predict(params, batch_stats, x):
            stacked, layout = stacked_outputs(fns, params, batch_stats, x, tta)
            cores = stacked[:, margin : margin + core, margin : margin + core] * jnp.asarray(weights)[None, :, :, None]
            return cores, layout

        model = getattr(fns, "fingerprint", "")  # "": not built from a config, its program is not kept
        cache[key] = trace_cache.cached_jit(predict, name="tile-predict", static_out=True,
                                            fingerprint=f"{model} {key!r}" if model else None)
    return cache[key]


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
    """Normalise accumulated rows and write logits / class maps into the output arrays (rows no tile
    core reached, in a partial run, come out NaN for logits and metres)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, values in output_maps(acc / wsum[..., None], layout).items():
            out[name][rows] = values


def single_tile_predictor(fns, tile: int, margin: int, channels: int, tta: str = "none"):
    """Jitted (params, batch_stats, tile [1, T, T, C]) -> the core's finished maps (see `output_maps`).

    For a scene that one tile covers: no blending is needed (one tile's window weights cancel), so the
    class argmax runs on the device and only the uint8 maps and the ice logit come back.
    """
    cache = fns.__dict__.setdefault("_single_tile_predictors", {})
    key = (tile, margin, channels, tta)
    if key not in cache:
        core = tile - 2 * margin

        def predict(params, batch_stats, x):
            stacked, layout = stacked_outputs(fns, params, batch_stats, x, tta)
            return output_maps(stacked[0, margin : margin + core, margin : margin + core], layout, jnp)

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
    tta: str = "none",
    needed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Whole-scene outputs from overlapping tiles (see the module docstring).

    inputs: float32 [H, W, C] standard-scaled channels in the model's order, or a sequence of C
      [H, W] maps (spares the stacked copy of a large scene).
    margin: tile border with weight 0 (None: `default_margin`); align: the model's pooling period
      (`tile_alignment`); tile, stride and margin must be multiples of it.
    blend: 'core' (sine-squared window on each core) or 'average' (every core pixel weight 1: a
      plain mean; with margin 0 the ALS authors' averaged whole tiles), see `tiling.core_window`.
    tta: test-time augmentation, a key of `TTA_VIEWS` ('none', 'flips': 4 views, 'd4': 8); the
      outputs of the views are averaged before blending (the work grows with the views).
    needed: bool [H, W] or None; only the tiles whose cores hold a needed pixel are predicted (the
      values there are those of the whole-scene run; elsewhere the maps are undefined: NaN logits and
      metres). For scoring a few pixels, e.g. one held-out track's footprints.
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
        maps = single_tile_predictor(fns, tile, margin, len(planes), tta)(params, batch_stats, x)
        return {name: np.array(values[:h, :w]) for name, values in maps.items()}
    predict = tile_predictor(fns, tile, margin, len(planes), blend, tta)
    band_width = cols[-1] + tile + margin  # band column j is scene column j - margin
    out: dict[str, np.ndarray] = {}
    acc = wsum = None  # the rolling band of accumulated core rows; acc row 0 = scene row `top`
    top = rows[0] + margin  # = 0

    def accumulate(pred: np.ndarray, chunk: list[tuple[int, int]], layout) -> None:
        nonlocal acc, wsum, top
        if acc is None:  # the layout is known from the first call on
            for name, _ in layout:
                out["ice_logit" if name == "ice" else name] = np.zeros(
                    (h, w), np.float32 if name == "ice" or name in METRE_HEADS else np.uint8)
            acc = np.zeros((core, w, sum(k for _, k in layout)), np.float32)
            wsum = np.zeros((core, w), np.float32)
        for j, (r, c) in enumerate(chunk):
            shift = r + margin - top
            while shift:  # scene rows above this tile row's core are final: no later core reaches them
                step = min(shift, core)  # more than a core only where a partial run skips tile rows
                _finalise(acc[:step], wsum[:step], layout, out, slice(top, top + step))
                acc[:-step], wsum[:-step] = acc[step:].copy(), wsum[step:].copy()
                acc[-step:], wsum[-step:] = 0.0, 0.0
                top += step
                shift -= step
            n = min(core, h - top)  # core rows inside the scene
            c0, c1 = c + margin, min(c + margin + core, w)
            acc[:n, c0:c1] += pred[j, :n, : c1 - c0]
            wsum[:n, c0:c1] += weights[:n, : c1 - c0]

    # Tiles in row-major order, batched across tile rows (a narrow scene fills every batch), each
    # tile row's band read once; one batch in flight while the host accumulates the previous one.
    # Calls of equal size: N tiles take ceil(N / batch_size) calls of ceil(N / calls) tiles, so fewer
    # than one tile per call is padding (9 tiles: 2 calls of 5, not 8 + 1 and 7 zero tiles).
    order = [(r, c) for r in rows for c in cols]
    calls = -(-len(order) // batch_size)
    per_call = -(-len(order) // calls)  # from every tile, so a partial run reuses the compiled shape
    if needed is not None:
        order = _needed_tiles(order, needed, core, margin) or order[:1]
    bands: dict[int, np.ndarray] = {}
    pending = None
    for b in range(0, len(order), per_call):
        chunk = order[b : b + per_call]
        tiles = np.zeros((per_call, tile, tile, len(planes)), np.float32)  # one compiled shape per scene
        for j, (r, c) in enumerate(chunk):
            if r not in bands:
                bands = {k: v for k, v in bands.items() if k >= chunk[0][0]}
                bands[r] = _row_band(planes, r, tile, -margin, band_width)
            tiles[j] = bands[r][:, c + margin : c + margin + tile]
        result = predict(params, batch_stats, jnp.asarray(tiles))
        if pending is not None:
            accumulate(np.asarray(pending[0]), pending[1], predict.static)
        pending = (result, chunk)
    accumulate(np.asarray(pending[0]), pending[1], predict.static)
    last = min(core, h - top)
    _finalise(acc[:last], wsum[:last], predict.static, out, slice(top, top + last))
    if top + last < h:  # a partial run (`needed`) may end above the last rows
        for values in out.values():
            if values.dtype.kind == "f":
                values[top + last :] = np.nan
    return out


def _needed_tiles(order, needed: np.ndarray, core: int, margin: int) -> list[tuple[int, int]]:
    """The tile origins of `order` whose cores hold a pixel of the bool map `needed`."""
    needed = np.asarray(needed, bool)
    h, w = needed.shape
    # Summed-area table: the count of needed pixels in any core in O(1).
    sat = np.zeros((h + 1, w + 1), np.int64)
    sat[1:, 1:] = needed.cumsum(0).cumsum(1)
    out = []
    for r, c in order:
        r0, c0 = min(max(r + margin, 0), h), min(max(c + margin, 0), w)
        r1, c1 = min(r + margin + core, h), min(c + margin + core, w)
        if sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0] > 0:
            out.append((r, c))
    return out
