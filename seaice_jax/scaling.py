"""Post-inference scaling of logit maps: ALS and concentration-preserving binarization.

Everything here runs on device, jitted, batched over scenes (leading axis B; a single [H, W]
scene works too), with static shapes and without sorting the pixels: percentiles come from an
exact radix select on order-preserving integer keys (`seaice_jax.quantiles`, method.md section 6).

Conventions:
  * valid pixels must hold finite values; invalid pixels are ignored by every statistic.
  * `gaussian_blur` mixes invalid pixels' logits into their neighbours, as the ALS authors blur
    the whole logit map before masking land, so logits must be finite everywhere.
  * invalid pixels get soft = NaN and binary = False.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from seaice_jax import platforms, trace_cache
from seaice_jax.quantiles import (
    BLOCK_ROWS,
    DIGIT_BITS,
    blocks_pay,
    check_quantiles,
    float_to_key,
    key_to_float,
    masked_quantiles,
    quantiles_from_top_histogram,
    quantiles_of_keys,
    row_block,
    segmented_select,
)

__all__ = [
    "ALSResult", "als_reference_numpy", "analytical_logit_scaling", "concentration_preserving_binarization",
    "float_to_key", "gaussian_blur", "gaussian_weights", "key_to_float", "masked_quantiles",
]

Array = jax.Array


# --------------------------------------------------------------------------------------------
# Gaussian blur (scipy.ndimage.gaussian_filter, mode='reflect')
# --------------------------------------------------------------------------------------------


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy's 1-D Gaussian kernel: radius int(truncate * sigma + 0.5), normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / float(sigma) ** 2 * offsets**2)
    return weights / weights.sum()


def _correlate_valid(x: Array, weights: np.ndarray, axis: int) -> Array:
    """Sum of weighted shifted slices along `axis` ('valid' correlation: length shrinks by 2r)."""
    length = x.shape[axis] - (len(weights) - 1)
    total = None
    for offset, weight in enumerate(weights.astype(np.float32)):
        term = weight * jax.lax.slice_in_dim(x, offset, offset + length, axis=axis)
        total = term if total is None else total + term
    return total


def _blur_band(band: Array, weights: np.ndarray) -> Array:
    """The blur of rows r..R+r-1 of `band` [..., R + 2r, W] (rows already reflected at the scene's
    edges; columns reflected here): the vertical pass, then the horizontal one.

    The band is materialised first (optimization_barrier): then the vertical pass reads a plain
    array whichever way the band was made (a padded scene, a slice, a gather of reflected rows), XLA
    compiles the same arithmetic for all of them, and the whole-scene and row-blocked blurs agree
    bit for bit (fused with a pad or a gather, XLA:CPU rounds some taps differently).
    """
    radius = (len(weights) - 1) // 2
    x = _correlate_valid(lax.optimization_barrier(band), weights, axis=band.ndim - 2)
    pad = [(0, 0)] * (x.ndim - 1) + [(radius, radius)]
    return _correlate_valid(jnp.pad(x, pad, mode="symmetric"), weights, axis=x.ndim - 1)


def _gaussian_blur_whole(x: Array, weights: np.ndarray) -> Array:
    """[..., H, W]: the blur as whole-array passes (scipy's 'reflect' is numpy's 'symmetric' pad)."""
    radius = (len(weights) - 1) // 2
    pad = [(0, 0)] * (x.ndim - 2) + [(radius, radius), (0, 0)]
    return _blur_band(jnp.pad(x, pad, mode="symmetric"), weights)


def _reflect(index: Array, size: int) -> Array:
    """scipy's 'reflect' border (d c b a | a b c d | d c b a) for -size <= index < 2 size."""
    index = jnp.where(index < 0, -index - 1, index)
    return jnp.where(index >= size, 2 * size - 1 - index, index)


def _blurred_rows(flat: Array, scene: Array, top: Array, height: int, weights: np.ndarray) -> Array:
    """The blur of rows top..top + BLOCK_ROWS - 1 of one scene of `flat` [B * H, W] (scenes stacked)."""
    radius = (len(weights) - 1) // 2
    rows, width = BLOCK_ROWS + 2 * radius, flat.shape[1]
    first = scene * height + top - radius

    def reflected():  # a block at the scene's top or bottom edge (a gather: slow on CPU, 2-3 per scene)
        return jnp.take(flat, scene * height + _reflect(top - radius + jnp.arange(rows), height), axis=0,
                        mode="clip")

    def inside():
        return lax.dynamic_slice(flat, (first, 0), (rows, width))

    band = lax.cond((top < radius) | (top + BLOCK_ROWS + radius > height), reflected, inside)
    return _blur_band(band, weights)


def _gaussian_blur_blocked(x: Array, weights: np.ndarray) -> Array:
    """[..., H, W]: `_gaussian_blur_whole` block by block into the output (equal bit for bit)."""
    height, width = x.shape[-2:]
    batch = math.prod(x.shape[:-2])
    blocks = -(-height // BLOCK_ROWS)
    flat = x.reshape(batch * height, width)

    def body(j, out):
        scene, top, _ = row_block(j, blocks, height)
        return lax.dynamic_update_slice(out, _blurred_rows(flat, scene, top, height, weights),
                                        (scene * height + top, 0))

    out = lax.fori_loop(0, batch * blocks, body, jnp.zeros_like(flat))
    return out.reshape(x.shape)


@trace_cache.kept_jit(name="gaussian-blur", static_argnames=("sigma", "truncate"))
def gaussian_blur(x: Array, sigma: float = 1.5, truncate: float = 4.0) -> Array:
    """Separable Gaussian blur of the last two axes, equal to
    `scipy.ndimage.gaussian_filter(x, sigma, mode='reflect', truncate=truncate)` per scene.

    x: float32 [..., H, W] -> [..., H, W] float32. mode='reflect' is scipy's default
    (d c b a | a b c d | d c b a), numpy's / jnp's 'symmetric' padding. Each pass pads only
    its own axis: measured on CPU, this is twice as fast as padding both axes up front. On CPU a
    large scene is blurred in blocks of rows (same result, bit for bit; see BLOCK_ROWS).
    """
    x = jnp.asarray(x, jnp.float32)
    weights = gaussian_weights(sigma, truncate)
    radius = (len(weights) - 1) // 2
    if radius == 0:
        return x
    if not blocks_pay(x.shape, radius):
        return _gaussian_blur_whole(x, weights)
    return platforms.choose("row_blocked_scaling", x, special=lambda v: _gaussian_blur_blocked(v, weights),
                            plain=lambda v: _gaussian_blur_whole(v, weights))


# --------------------------------------------------------------------------------------------
# Analytical Logit Scaling (method.md section 4)
# --------------------------------------------------------------------------------------------


class ALSResult(NamedTuple):
    """ALS output for [..., H, W] logits (a pytree: it passes through jit).

    soft: float32 [..., H, W] sigmoid((z - b) / T); NaN on invalid pixels.
    binary: bool [..., H, W] soft >= 0.5, tested as (z - b) / T >= 0 (the same up to the
      float rounding of a sigmoid at its midpoint); False on invalid.
    z_low, z_high: float32 [...] the q_low / q_high quantiles of z over valid pixels (z2, z98).
    b: float32 [...] (z_high + z_low) / 2.
    T: float32 [...] max((z_high - z_low) / (2 k), t_floor).
    """

    soft: Array
    binary: Array
    z_low: Array
    z_high: Array
    b: Array
    T: Array


def _als_parameters(z_low, z_high, k, t_floor) -> tuple[Array, Array]:
    """(b, T) from the quantiles."""
    return (z_high + z_low) / 2, jnp.maximum((z_high - z_low) / (2 * k), t_floor)


def _als_outputs(z, valid, z_low, z_high, k, t_floor) -> ALSResult:
    """The scaled maps from z [B, H, W] and each scene's quantiles [B]."""
    b, temperature = _als_parameters(z_low, z_high, k, t_floor)
    spatial = (Ellipsis, None, None)
    scaled = (z - b[spatial]) / temperature[spatial]
    # soft >= 0.5 <=> scaled >= 0 (T > 0); testing the sign avoids a second sigmoid pass.
    binary = valid & (scaled >= 0)
    # `valid | binary` is `valid` (binary is valid only), but soft then depends on binary: XLA computes
    # binary first, and z, dead after soft, gives soft its buffer (no fresh scene-sized allocation;
    # computed side by side, the two maps go through one two-output fusion that cannot reuse z).
    soft = jnp.where(valid | binary, jax.nn.sigmoid(scaled), jnp.nan)
    return ALSResult(soft, binary, z_low, z_high, b, temperature)


def _als_whole(logits, valid, sigma, clip, q_low, q_high, k, t_floor) -> ALSResult:
    """ALS of [B, H, W] as whole-array passes (accelerators, and small scenes everywhere)."""
    batch = logits.shape[0]
    # The authors' order: blur the whole logit map, then clip (clipping is pointwise, so clipping
    # everywhere equals clipping on the valid pixels: invalid pixels are never used again).
    weights = gaussian_weights(sigma)
    z = _gaussian_blur_whole(logits, weights) if len(weights) > 1 else logits
    z = jnp.clip(z, -clip, clip)
    # Materialise z once: left to itself XLA fuses the 13-tap stencil into each of z's three
    # consumers (two histogram passes, the sigmoid) and runs ~4x slower on CPU.
    z = lax.optimization_barrier(z)
    quantiles = quantiles_of_keys(float_to_key(z).reshape(batch, -1), valid.reshape(batch, -1), (q_low, q_high))
    return _als_outputs(z, valid, quantiles[:, 0], quantiles[:, 1], k, t_floor)


def _als_row_blocked(logits, valid, sigma, clip, q_low, q_high, k, t_floor) -> ALSResult:
    """ALS of [B, H, W] in blocks of rows (CPU; see BLOCK_ROWS), equal to `_als_whole` bit for bit.

    The only scene-sized arrays are z and the binary map (soft is written over z):
      pass 1, per block: the block's blur and clip (`_blurred_rows`), written into z, and the
        top-16-bit histogram of its valid keys added up;
      pass 2, per block of z: the low-16-bit histogram of the keys in the ranks' buckets;
      pass 3, per block: the binary map from z; pass 4, per block: soft over z.
    Measured on 2 cores, 5000 x 5000: 946 -> ~300 ms in a plain process, 32 000 page faults a call
    instead of 128 000 (docs/benchmarks.md).
    """
    batch, height, width = logits.shape
    weights = gaussian_weights(sigma)
    blocks = -(-height // BLOCK_ROWS)
    bins = 1 << DIGIT_BITS
    flat_logits = logits.reshape(batch * height, width)
    flat_valid = valid.reshape(batch * height, width)

    def counted(scene, top, fresh):
        return lax.dynamic_slice(flat_valid, (scene * height + top, 0), (BLOCK_ROWS, width)) & fresh

    def pass1(j, carry):
        z, hist = carry
        scene, top, fresh = row_block(j, blocks, height)
        if len(weights) > 1:
            zb = _blurred_rows(flat_logits, scene, top, height, weights)
        else:  # no blur
            zb = lax.dynamic_slice(flat_logits, (scene * height + top, 0), (BLOCK_ROWS, width))
        zb = lax.optimization_barrier(jnp.clip(zb, -clip, clip))  # not recomputed in the histogram's fusion
        top_digit = (float_to_key(zb) >> DIGIT_BITS).astype(jnp.int32)
        index = jnp.where(counted(scene, top, fresh), scene * bins + top_digit, batch * bins)
        hist = hist.at[index.reshape(-1)].add(1, mode="drop")
        return lax.dynamic_update_slice(z, zb, (scene * height + top, 0)), hist

    z, top_hist = lax.fori_loop(0, batch * blocks, pass1,
                                (jnp.zeros_like(flat_logits), jnp.zeros((batch * bins,), jnp.int32)))
    quantiles = quantiles_from_top_histogram(z, flat_valid, top_hist.reshape(batch, bins), (q_low, q_high))
    z_low, z_high = quantiles[:, 0], quantiles[:, 1]

    def scaled_maps(z, binary, j):
        scene, top, fresh = row_block(j, blocks, height)
        first = (scene * height + top, 0)
        zb = lax.dynamic_slice(z, first, (BLOCK_ROWS, width))
        valid_block = lax.dynamic_slice(flat_valid, first, (BLOCK_ROWS, width))
        if binary is not None:  # see _als_outputs: valid | binary is valid, but soft now waits for binary
            valid_block = valid_block | lax.dynamic_slice(binary, first, (BLOCK_ROWS, width))
        maps = _als_outputs(zb[None], valid_block[None], lax.dynamic_index_in_dim(z_low, scene),
                            lax.dynamic_index_in_dim(z_high, scene), k, t_floor)
        return first, fresh, zb, maps

    def pass3(j, binary):  # the binary map, from z
        first, _, _, maps = scaled_maps(z, None, j)
        return lax.dynamic_update_slice(binary, maps.binary[0], first)

    def pass4(j, soft):  # the soft map, written over z in place
        first, fresh, zb, maps = scaled_maps(soft, binary, j)
        # rows of the last block that the block before already turned into soft values keep them
        return lax.dynamic_update_slice(soft, jnp.where(fresh, maps.soft[0], zb), first)

    # Two passes: a binary block read from z in the iteration that writes soft over it would make XLA
    # copy z whole to keep the rows it reads; pass 4 reads the binary map so that it runs after pass 3.
    binary = lax.fori_loop(0, batch * blocks, pass3, jnp.zeros(flat_valid.shape, bool))
    soft = lax.fori_loop(0, batch * blocks, pass4, z)
    b, temperature = _als_parameters(z_low, z_high, k, t_floor)
    return ALSResult(soft.reshape(logits.shape), binary.reshape(logits.shape), z_low, z_high, b, temperature)


@trace_cache.kept_jit(name="als", static_argnames=("sigma", "clip", "q_low", "q_high", "k", "t_floor"))
def _als_jit(logits, valid, sigma, clip, q_low, q_high, k, t_floor) -> ALSResult:
    lead = logits.shape[:-2]
    scenes = (math.prod(lead), *logits.shape[-2:])
    static = (sigma, clip, q_low, q_high, k, t_floor)

    def whole(x, v):
        return _als_whole(x, v, *static)

    def blocked(x, v):
        return _als_row_blocked(x, v, *static)

    args = (logits.reshape(scenes), valid.reshape(scenes))
    if blocks_pay(scenes, (len(gaussian_weights(sigma)) - 1) // 2):
        result = platforms.choose("row_blocked_scaling", *args, special=blocked, plain=whole)
    else:
        result = whole(*args)
    return ALSResult(result.soft.reshape(logits.shape), result.binary.reshape(logits.shape),
                     *(value.reshape(lead) for value in result[2:]))


def analytical_logit_scaling(
    logits: Array,
    valid: Array | None = None,
    *,
    sigma: float = 1.5,
    clip: float = 15.0,
    q_low: float = 0.02,
    q_high: float = 0.98,
    k: float = 5.0,
    t_floor: float = 1e-6,
) -> ALSResult:
    """Analytical Logit Scaling of whole-scene logits (the authors' defaults).

    logits: float32 [..., H, W], finite everywhere (the blur mixes invalid pixels in, as the
    authors blur the whole map); valid: bool [..., H, W] non-land pixels (None: all).
    Steps: z = clip(gaussian_blur(logits, sigma), -clip, clip); z_low, z_high = quantiles
    q_low, q_high of z over valid pixels; b = (z_high + z_low) / 2; T = max((z_high - z_low) /
    (2 k), t_floor); soft = sigmoid((z - b) / T); binary = soft >= 0.5. A scene without valid
    pixels gets NaN parameters and an all-False map.
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim < 2:
        raise ValueError(f"analytical_logit_scaling: logits must be [..., H, W], got {logits.shape}")
    valid = jnp.ones(logits.shape, bool) if valid is None else jnp.asarray(valid, bool)
    if valid.shape != logits.shape:
        raise ValueError(
            f"analytical_logit_scaling: valid {valid.shape} does not match logits {logits.shape}"
        )
    q_low, q_high = check_quantiles((q_low, q_high))
    return _als_jit(
        logits, valid, float(sigma), float(clip), q_low, q_high, float(k), float(t_floor)
    )


def als_reference_numpy(
    logits: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    sigma: float = 1.5,
    clip: float = 15.0,
    q_low: float = 0.02,
    q_high: float = 0.98,
    k: float = 5.0,
    t_floor: float = 1e-6,
) -> dict[str, np.ndarray | float]:
    """The authors' ALS in numpy/scipy for one [H, W] scene (reference for tests and benchmark).

    Returns {'soft', 'binary', 'z', 'z_low', 'z_high', 'b', 'T'}; z is the blurred, clipped map.
    """
    import scipy.ndimage  # only the reference needs scipy

    logits = np.asarray(logits, np.float32)
    valid = np.ones(logits.shape, bool) if valid is None else np.asarray(valid, bool)
    z = scipy.ndimage.gaussian_filter(logits, sigma, mode="reflect", truncate=4.0)
    z = np.where(valid, np.clip(z, -clip, clip), z)
    z_low, z_high = np.percentile(z[valid], [100 * q_low, 100 * q_high])
    b = (z_high + z_low) / 2
    temperature = max((z_high - z_low) / (2 * k), t_floor)
    soft = 1.0 / (1.0 + np.exp(-(z - b) / temperature))
    binary = valid & (soft >= 0.5)
    soft = np.where(valid, soft, np.nan).astype(np.float32)
    return {"soft": soft, "binary": binary, "z": z, "z_low": float(z_low),
            "z_high": float(z_high), "b": float(b), "T": float(temperature)}


# --------------------------------------------------------------------------------------------
# Concentration-preserving binarization (method.md section 5)
# --------------------------------------------------------------------------------------------


@trace_cache.kept_jit(name="concentration-binarization", static_argnames=("num_regions",))
def _concentration_binarization_jit(logits, region_ids, target, valid, num_regions):
    lead = logits.shape[:-2]
    batch = math.prod(lead)
    num_segments = batch * num_regions
    flat_logits = logits.reshape(batch, -1)
    flat_regions = region_ids.reshape(batch, -1)
    flat_valid = valid.reshape(batch, -1)
    in_region = flat_valid & (flat_regions >= 0) & (flat_regions < num_regions)
    scene = jnp.arange(batch, dtype=jnp.int32)[:, None]
    segment = jnp.where(in_region, scene * num_regions + flat_regions, -1).reshape(-1)

    safe_segment = jnp.maximum(segment, 0)
    size = jnp.zeros((num_segments,), jnp.int32).at[safe_segment].add(segment >= 0)
    probability_sum = jnp.zeros((num_segments,), jnp.float32).at[safe_segment].add(
        jnp.where(segment >= 0, jax.nn.sigmoid(flat_logits.reshape(-1)), 0.0)
    )
    mean_probability = probability_sum / jnp.maximum(size, 1)
    target = target.reshape(num_segments)
    concentration = jnp.clip(jnp.where(jnp.isnan(target), mean_probability, target), 0.0, 1.0)

    ice_count = jnp.clip(jnp.round(concentration * size).astype(jnp.int32), 0, size)
    # The smallest ice pixel has ascending rank size - ice_count; ice = key >= its key.
    threshold_rank = jnp.clip(size - ice_count, 0, jnp.maximum(size - 1, 0))
    keys = float_to_key(flat_logits).reshape(-1)
    threshold = segmented_select(keys, segment, threshold_rank, num_segments)

    ice_in_region = (keys >= threshold[safe_segment]) & (ice_count[safe_segment] > 0)
    ice = jnp.where(segment >= 0, ice_in_region, flat_valid.reshape(-1) & (flat_logits.reshape(-1) >= 0))
    return ice.reshape(logits.shape)


def concentration_preserving_binarization(
    logits: Array,
    region_ids: Array,
    target: Array | None = None,
    valid: Array | None = None,
    *,
    num_regions: int,
) -> Array:
    """Binary ice map whose ice fraction in every region equals the region's concentration.

    logits: float32 [..., H, W]; region_ids: int32 [..., H, W] in 0..num_regions-1, or -1 (no
    region); target: float32 [..., num_regions] concentrations in [0, 1], NaN = unknown (None: all
    unknown); valid: bool [..., H, W] (None: all pixels valid).
    Unknown targets use the model's own regional mean probability mean(sigmoid(logit)) over the
    region's valid pixels. In region r with n_r valid pixels, the round(c_r n_r) pixels with the
    largest logits are ice (the threshold is an exact per-region order statistic, found on
    device by a segmented radix select, no sort); pixels tied with the threshold are all ice, so
    the fraction is c_r within half a pixel, plus ties. Valid pixels outside any region (-1) are
    ice when logit >= 0; invalid pixels are never ice.
    Returns bool [..., H, W].
    """
    logits = jnp.asarray(logits, jnp.float32)
    region_ids = jnp.asarray(region_ids, jnp.int32)
    if logits.ndim < 2 or region_ids.shape != logits.shape:
        raise ValueError(
            f"concentration_preserving_binarization: logits {logits.shape} and region_ids "
            f"{region_ids.shape} must both be [..., H, W]"
        )
    num_regions = int(num_regions)
    if num_regions < 1:
        raise ValueError(f"concentration_preserving_binarization: num_regions={num_regions} < 1")
    target_shape = logits.shape[:-2] + (num_regions,)
    if target is None:
        target = jnp.full(target_shape, jnp.nan, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if target.shape != target_shape:
        raise ValueError(
            f"concentration_preserving_binarization: target {target.shape}, expected {target_shape}"
        )
    valid = jnp.ones(logits.shape, bool) if valid is None else jnp.asarray(valid, bool)
    if valid.shape != logits.shape:
        raise ValueError(
            f"concentration_preserving_binarization: valid {valid.shape} vs logits {logits.shape}"
        )
    return _concentration_binarization_jit(logits, region_ids, target, valid, num_regions)
