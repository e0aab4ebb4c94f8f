"""Whole-scene prediction: overlapping tiles, blended, in row bands so memory stays bounded.

Tiles of a fixed shape go through one jitted function (so a scene of any size compiles once); each
tile's outputs are weighted by a smooth window that never reaches zero and accumulated in a rolling
band buffer of `tile` rows; rows that no later tile touches are normalised and written out. Peak memory
is the band buffer (tile x W x outputs, float32) plus the output maps, so a 10 000 x 10 000 raw scene fits.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from seaice_jax.data.shards import patch_origins

def window_weights(tile: int, floor: float = 1e-2) -> np.ndarray:
    """[tile, tile] blending window: sine-squared taper, floored so border pixels still count."""
    w = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    w = np.maximum(w, floor)
    return np.outer(w, w).astype(np.float32)


def head_layout(outputs: dict) -> list[tuple[str, int]]:
    """[(head name, channels)] in output order; 'ice' and regression heads have 1 channel."""
    return [(k, 1 if v.ndim == 3 else v.shape[-1]) for k, v in sorted(outputs.items())
            if not k.startswith("features/")]


def tile_predictor(fns, tile: int, channels: int):
    """Jitted (params, batch_stats, tiles [B, T, T, C]) -> weighted outputs [B, T, T, K], and layout."""
    cache = fns.__dict__.setdefault("_tile_predictors", {})  # one compile per model, tile and width
    key = (tile, channels)
    if key not in cache:
        weights = jnp.asarray(window_weights(tile))

        def predict(params, batch_stats, x):
            out = fns.apply_eval(params, batch_stats, x)
            parts = [out[k][..., None] if out[k].ndim == 3 else out[k]
                     for k, _ in head_layout(out)]
            return jnp.concatenate(parts, axis=-1).astype(jnp.float32) * weights[None, :, :, None]

        cache[key] = jax.jit(predict)
    return cache[key]


def _finalise(acc: np.ndarray, wsum: np.ndarray, layout, out: dict, rows: slice) -> None:
    """Normalise accumulated rows and write logits / class maps into the output arrays."""
    mean = acc / wsum[..., None]
    i = 0
    for name, k in layout:
        part = mean[..., i : i + k]
        i += k
        if name == "ice":
            out["ice_logit"][rows] = part[..., 0]
        elif k == 1:  # SIC regression predicts class / 10
            out[name][rows] = np.clip(np.rint(part[..., 0] * 10), 0, 10).astype(np.uint8)
        else:
            out[name][rows] = np.argmax(part, axis=-1).astype(np.uint8)


def predict_scene(
    fns, params, batch_stats, inputs: np.ndarray, *, tile: int = 256, stride: int = 192, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """Whole-scene outputs from overlapping tiles.

    inputs: float32 [H, W, C] standard-scaled channels in the model's order.
    Returns 'ice_logit' float32 [H, W] (if the model has the ice head) and uint8 [H, W] class maps
    'SIC', 'SOD', 'FLOE' for the heads it has (no masking: the caller applies land / no-data).
    """
    h, w, c = inputs.shape
    ph, pw = max(h, tile), max(w, tile)
    if (ph, pw) != (h, w):  # scenes smaller than a tile: pad with no-data (0) and crop at the end
        inputs = np.pad(inputs, ((0, ph - h), (0, pw - w), (0, 0)))
    predict = tile_predictor(fns, tile, c)
    probe = jax.eval_shape(fns.apply_eval, params, batch_stats, jax.ShapeDtypeStruct((1, tile, tile, c), jnp.float32))
    layout = head_layout(probe)
    k_total = sum(k for _, k in layout)
    out: dict[str, np.ndarray] = {}
    for name, k in layout:
        if name == "ice":
            out["ice_logit"] = np.zeros((ph, pw), np.float32)
        else:
            out[name] = np.zeros((ph, pw), np.uint8)
    weights = window_weights(tile)
    rows, cols = patch_origins(ph, tile, stride), patch_origins(pw, tile, stride)
    acc = np.zeros((tile, pw, k_total), np.float32)  # rolling band buffer, row 0 = scene row `top`
    wsum = np.zeros((tile, pw), np.float32)
    top = 0
    for r in rows:
        shift = r - top
        if shift:  # rows above r are final: no later tile reaches them
            _finalise(acc[:shift], wsum[:shift], layout, out, slice(top, r))
            acc[:-shift], wsum[:-shift] = acc[shift:].copy(), wsum[shift:].copy()
            acc[-shift:], wsum[-shift:] = 0.0, 0.0
            top = r
        for b in range(0, len(cols), batch_size):
            chunk = cols[b : b + batch_size]
            tiles = np.stack([inputs[r : r + tile, cc : cc + tile] for cc in chunk])
            if len(chunk) < batch_size:  # one compiled shape for every call
                tiles = np.concatenate([tiles, np.zeros((batch_size - len(chunk),) + tiles.shape[1:], np.float32)])
            pred = np.asarray(predict(params, batch_stats, jnp.asarray(tiles)))
            for j, cc in enumerate(chunk):
                acc[:, cc : cc + tile] += pred[j]
                wsum[:, cc : cc + tile] += weights
    _finalise(acc[: ph - top], wsum[: ph - top], layout, out, slice(top, ph))
    return {k: v[:h, :w] for k, v in out.items()}


def evaluate_binary_maps(config, fns, params, batch_stats, scene_paths: list[str]) -> dict:
    """Pooled pixel accuracy against ice_truth (sigmoid and ALS maps) and the ALS polygon MAE."""
    from seaice_jax import scaling
    from seaice_jax.data.scene import open_scene
    from seaice_jax.metrics import polygon_metric
    from seaice_jax.train import input_channels

    channels = input_channels(config)
    correct = {"sigmoid": 0, "als": 0}
    total = 0
    maes = []
    for path in scene_paths:
        scene = open_scene(path)
        pred = predict_scene(fns, params, batch_stats, scene.stack(channels),
                             tile=config.eval.tile, stride=config.eval.stride, batch_size=config.eval.batch_size)
        logits = pred["ice_logit"]
        als = scaling.analytical_logit_scaling(jnp.asarray(logits), jnp.asarray(scene.valid))
        binary_als = np.asarray(als.binary)
        if scene.ice_truth is not None:
            m = scene.valid & (scene.ice_truth != 255)
            truth = scene.ice_truth[m] == 1
            correct["sigmoid"] += int(((logits[m] >= 0) == truth).sum())
            correct["als"] += int((binary_als[m] == truth).sum())
            total += int(m.sum())
        pm = polygon_metric(binary_als, scene.region_ids, scene.region_conc, scene.valid)
        if pm["polygon_mae"] is not None:
            maes.append(pm["polygon_mae"])
    return {
        "pixel_accuracy_sigmoid": correct["sigmoid"] / total if total else None,
        "pixel_accuracy_als": correct["als"] / total if total else None,
        "polygon_mae_als": float(np.mean(maes)) if maes else None,
    }
