"""Post-inference scaling of logit maps: ALS and concentration-preserving binarization.

Everything here runs on device, jitted, batched over scenes (leading axis B; a single [H, W]
scene works too), with static shapes and without sorting the pixels: percentiles come from an
exact radix select on order-preserving integer keys (method.md section 6).

Conventions:
  * valid pixels must hold finite values; invalid pixels are ignored by every statistic.
  * `gaussian_blur` mixes invalid pixels' logits into their neighbours, as the ALS authors blur
    the whole logit map before masking land, so logits must be finite everywhere.
  * invalid pixels get soft = NaN and binary = False.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_SIGN_BIT = np.uint32(0x80000000)


# --------------------------------------------------------------------------------------------
# Order-preserving keys
# --------------------------------------------------------------------------------------------


def float_to_key(x: Array) -> Array:
    """float32 -> uint32 such that a < b (as floats) iff key(a) < key(b) (as unsigned ints).

    -0.0 is mapped to +0.0 first so that the two zeros tie, as they do for numpy.
    """
    x = jnp.where(x == 0, jnp.float32(0), x.astype(jnp.float32))
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    negative = (bits >> 31).astype(bool)
    # Negative floats: flip all bits (larger magnitude -> smaller key); positive: set the sign bit.
    return jnp.where(negative, ~bits, bits | _SIGN_BIT)


def key_to_float(key: Array) -> Array:
    """Inverse of `float_to_key` (uint32 -> float32)."""
    was_positive = (key >> 31).astype(bool)
    bits = jnp.where(was_positive, key & ~_SIGN_BIT, ~key)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


# --------------------------------------------------------------------------------------------
# Exact rank selection (radix select with histograms, no sort)
# --------------------------------------------------------------------------------------------

_DIGIT_BITS = 16  # two histogram passes of 2**16 bins resolve a 32-bit key


def _rank_digit(cumulative: Array, rank: Array) -> Array:
    """Index of the first bin whose cumulative count exceeds `rank` (searchsorted 'right').

    cumulative: [..., K] nondecreasing counts; rank: [...] -> [...] int32 in 0..K.
    """
    return jnp.sum(cumulative <= rank[..., None], axis=-1, dtype=jnp.int32)


def _unique_prefix_slots(prefix: Array, sentinel: int) -> tuple[Array, Array]:
    """Histogram slots shared by ranks whose prefixes are equal.

    prefix: [B, M] uint32 (any order).
    Returns (slot [B, M] int32: the first rank with the same prefix, table [B, M] uint32: the
    prefix owning each slot, or `sentinel` for slots that no rank owns).
    """
    num_ranks = prefix.shape[1]
    same = prefix[:, :, None] == prefix[:, None, :]  # [B, M, M]
    slot = jnp.argmax(same, axis=2).astype(jnp.int32)  # first equal prefix
    owns = slot == jnp.arange(num_ranks, dtype=jnp.int32)[None, :]
    return slot, jnp.where(owns, prefix, jnp.uint32(sentinel))


def _histogram(index: Array, length: int) -> Array:
    """Counts of each value of `index` (int32, any shape) in 0..length-1; others are dropped."""
    return jnp.zeros((length,), jnp.int32).at[index.reshape(-1)].add(1, mode="drop")


def _top_digit_histogram(keys: Array, valid: Array) -> Array:
    """Radix pass 1: per-scene histogram of the top 16 bits of the valid keys.

    keys: [B, N] uint32; valid: [B, N] bool -> [B, 2**16] int32 (its row sums count the valid
    pixels, so no separate counting pass is needed).
    """
    batch = keys.shape[0]
    bins = 1 << _DIGIT_BITS
    scene = jnp.arange(batch, dtype=jnp.int32)[:, None]
    top = (keys >> _DIGIT_BITS).astype(jnp.int32)
    index = jnp.where(valid, scene * bins + top, batch * bins)
    return _histogram(index, batch * bins).reshape(batch, bins)


def _select_ranks(keys: Array, valid: Array, ranks: Array, top_hist: Array | None = None) -> Array:
    """Exact order statistics of each scene's valid keys (radix select, two histogram passes).

    keys: [B, N] uint32; valid: [B, N] bool; ranks: [B, M] int32, 0-based ascending ranks
    within 0..n_valid-1, in any order (clip before calling); top_hist: pass 1's
    `_top_digit_histogram(keys, valid)` if already computed.
    Returns [B, M] uint32: the key of rank ranks[b, m] among scene b's valid keys.
    """
    batch, _ = keys.shape
    num_ranks = ranks.shape[1]
    bins = 1 << _DIGIT_BITS
    scene = jnp.arange(batch, dtype=jnp.int32)[:, None]
    dump = batch * num_ranks * bins  # out of range: dropped by the histogram

    # Pass 1: which top-16-bit bucket holds each rank.
    hist = _top_digit_histogram(keys, valid) if top_hist is None else top_hist
    cumulative = jnp.cumsum(hist, axis=-1)
    top_digit = _rank_digit(cumulative[:, None, :], ranks)  # [B, M]
    below = jnp.take_along_axis(cumulative, top_digit, axis=1) - jnp.take_along_axis(
        hist, top_digit, axis=1
    )
    remaining = ranks - below

    # Pass 2: histogram of the low 16 bits of the keys whose top bits match a rank's bucket.
    prefix = top_digit.astype(jnp.uint32)
    slot, table = _unique_prefix_slots(prefix, sentinel=bins)  # sentinel never matches
    top = keys >> _DIGIT_BITS
    low = (keys & np.uint32(bins - 1)).astype(jnp.int32)
    index = jnp.full(keys.shape, dump, jnp.int32)
    for j in range(num_ranks):  # M is small and static: a fused chain of selects
        match = valid & (top == table[:, j : j + 1])
        index = jnp.where(match, (scene * num_ranks + j) * bins + low, index)
    hist2 = _histogram(index, dump).reshape(batch, num_ranks, bins)
    cumulative2 = jnp.cumsum(hist2, axis=-1)
    rank_cumulative = jnp.take_along_axis(cumulative2, slot[:, :, None], axis=1)  # [B, M, bins]
    low_digit = _rank_digit(rank_cumulative, remaining)
    return (prefix << _DIGIT_BITS) | low_digit.astype(jnp.uint32)


# --------------------------------------------------------------------------------------------
# masked_quantiles
# --------------------------------------------------------------------------------------------

_LIMB_BITS = 11  # 11-bit limbs: every limb product fits exactly in int32
_LIMB = 1 << _LIMB_BITS


def _fraction_limbs(q: float, count: int = 5) -> list[int]:
    """Static base-2**11 digits of q in [0, 1): q ~= sum_j limbs[j] * 2**(-11 (j + 1))."""
    limbs = []
    for _ in range(count):
        q *= _LIMB
        digit = int(math.floor(q))
        limbs.append(digit)
        q -= digit
    return limbs


def _exact_virtual_index(last: Array, q: float) -> tuple[Array, Array]:
    """floor and fraction of last * q, exact in int32 limbs (numpy computes it in float64).

    last: [...] int32 >= 0 (n_valid - 1); q: static float in [0, 1].
    Returns (index [...] int32, fraction [...] float32 in [0, 1)).
    float32 alone is not enough: (n - 1) q for a 5000 x 5000 scene needs 25 bits.
    """
    if q >= 1.0:
        return last, jnp.zeros(last.shape, jnp.float32)
    m = [(last >> (_LIMB_BITS * i)) & (_LIMB - 1) for i in range(3)]  # m = sum m_i 2**(11 i)
    c = _fraction_limbs(q)  # q = sum c_j 2**(-11 (j + 1))
    # level L collects products m_i c_j with weight 2**(11 L), L = i - j - 1 in -5..2
    levels = {level: jnp.zeros(last.shape, jnp.int32) for level in range(-5, 3)}
    for i, m_i in enumerate(m):
        for j, c_j in enumerate(c):
            if c_j:
                levels[i - j - 1] = levels[i - j - 1] + m_i * c_j
    fraction = jnp.zeros(last.shape, jnp.float32)
    for level in range(-5, 0):  # carry the fractional levels upward
        carry = levels[level] >> _LIMB_BITS
        remainder = levels[level] & (_LIMB - 1)
        levels[level + 1] = levels[level + 1] + carry
        fraction = fraction + remainder.astype(jnp.float32) * np.float32(2.0 ** (_LIMB_BITS * level))
    index = levels[0] + (levels[1] << _LIMB_BITS) + (levels[2] << (2 * _LIMB_BITS))
    # q is a truncated float64, so an exact integer product can come out as k + 0.99999...;
    # numpy's rounded float64 product says k + 1.
    rounds_up = fraction >= 1
    return index + rounds_up.astype(jnp.int32), jnp.where(rounds_up, 0.0, fraction)


def _lerp(a: Array, b: Array, t: Array) -> Array:
    """numpy's quantile interpolation formula (`numpy.lib._function_base_impl._lerp`)."""
    diff = b - a
    return jnp.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _quantiles_of_keys(keys: Array, valid: Array, qs: tuple[float, ...]) -> Array:
    """keys: [B, N] uint32 (float_to_key), valid: [B, N] -> [B, len(qs)] float32."""
    batch = keys.shape[0]
    top_hist = _top_digit_histogram(keys, valid)
    num_valid = jnp.sum(top_hist, axis=1)  # [B]
    last = jnp.maximum(num_valid - 1, 0)
    low_ranks, high_ranks, fractions = [], [], []
    for i in range(len(qs)):
        index, fraction = _exact_virtual_index(last, qs[i])
        low_ranks.append(jnp.minimum(index, last))
        high_ranks.append(jnp.minimum(index + 1, last))
        fractions.append(fraction)
    ranks = jnp.stack([r for pair in zip(low_ranks, high_ranks, strict=True) for r in pair], axis=1)  # [B, 2Q]
    selected = key_to_float(_select_ranks(keys, valid, ranks, top_hist)).reshape(batch, len(qs), 2)
    values = _lerp(selected[..., 0], selected[..., 1], jnp.stack(fractions, axis=1))
    return jnp.where(num_valid[:, None] > 0, values, jnp.nan)


def _check_quantiles(qs: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in np.atleast_1d(np.asarray(qs, np.float64)))
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"scaling: quantiles must be a non-empty list in [0, 1], got {qs}")
    return qs


@functools.partial(jax.jit, static_argnames=("qs", "pixel_axes"))
def _masked_quantiles_jit(x: Array, valid: Array, qs: tuple[float, ...], pixel_axes: int) -> Array:
    lead = x.shape[: x.ndim - pixel_axes]
    batch = math.prod(lead)
    keys = float_to_key(x).reshape(batch, -1)
    values = _quantiles_of_keys(keys, valid.reshape(batch, -1), qs)
    return values.reshape(*lead, len(qs))


def masked_quantiles(
    x: Array, valid: Array, qs: Sequence[float], *, pixel_axes: int = 2
) -> Array:
    """Exact quantiles of the valid pixels of each scene, without sorting.

    x: float32 [..., H, W] (pixel_axes=2, default) or [..., N] (pixel_axes=1); valid: bool, same
    shape; the trailing `pixel_axes` axes are pooled, leading axes are independent scenes.
    qs: static quantiles in [0, 1].
    Returns float32 [..., len(qs)], equal to `numpy.quantile(x[valid], qs)` (default 'linear'
    method) up to float32 rounding; NaN for a scene without valid pixels. Valid pixels must be
    finite (NaN/inf are not excluded: mask them out through `valid`).
    Cost: two histogram passes over the keys (radix select of the ranks floor((n-1) q) and the
    next one), then numpy's interpolation.
    """
    x = jnp.asarray(x, jnp.float32)
    valid = jnp.asarray(valid, bool)
    if x.shape != valid.shape:
        raise ValueError(f"masked_quantiles: x {x.shape} and valid {valid.shape} differ in shape")
    pixel_axes = min(pixel_axes, x.ndim)
    return _masked_quantiles_jit(x, valid, _check_quantiles(qs), pixel_axes)


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


@functools.partial(jax.jit, static_argnames=("sigma", "truncate"))
def gaussian_blur(x: Array, sigma: float = 1.5, truncate: float = 4.0) -> Array:
    """Separable Gaussian blur of the last two axes, equal to
    `scipy.ndimage.gaussian_filter(x, sigma, mode='reflect', truncate=truncate)` per scene.

    x: float32 [..., H, W] -> [..., H, W] float32. mode='reflect' is scipy's default
    (d c b a | a b c d | d c b a), numpy's / jnp's 'symmetric' padding. Each pass pads only
    its own axis: measured on CPU, this is twice as fast as padding both axes up front.
    """
    x = jnp.asarray(x, jnp.float32)
    weights = gaussian_weights(sigma, truncate)
    radius = (len(weights) - 1) // 2
    if radius == 0:
        return x
    for axis in (x.ndim - 2, x.ndim - 1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        x = _correlate_valid(jnp.pad(x, pad, mode="symmetric"), weights, axis=axis)
    return x


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


@functools.partial(
    jax.jit, static_argnames=("sigma", "clip", "q_low", "q_high", "k", "t_floor")
)
def _als_jit(logits, valid, sigma, clip, q_low, q_high, k, t_floor) -> ALSResult:
    lead = logits.shape[:-2]
    batch = math.prod(lead)
    # The authors' order: blur the whole logit map, then clip (clipping is pointwise, so clipping
    # everywhere equals clipping on the valid pixels: invalid pixels are never used again).
    z = jnp.clip(gaussian_blur(logits, sigma=sigma), -clip, clip)
    # Materialise z once: left to itself XLA fuses the 13-tap stencil into each of z's three
    # consumers (two histogram passes, the sigmoid) and runs ~4x slower on CPU.
    z = jax.lax.optimization_barrier(z)
    flat_valid = valid.reshape(batch, -1)
    quantiles = _quantiles_of_keys(float_to_key(z).reshape(batch, -1), flat_valid, (q_low, q_high))
    z_low = quantiles[:, 0].reshape(lead)
    z_high = quantiles[:, 1].reshape(lead)
    b = (z_high + z_low) / 2
    temperature = jnp.maximum((z_high - z_low) / (2 * k), t_floor)
    spatial = (Ellipsis, None, None)
    scaled = (z - b[spatial]) / temperature[spatial]
    # soft >= 0.5 <=> scaled >= 0 (T > 0); testing the sign avoids a second sigmoid pass.
    soft = jax.nn.sigmoid(scaled)
    binary = valid & (scaled >= 0)
    return ALSResult(jnp.where(valid, soft, jnp.nan), binary, z_low, z_high, b, temperature)


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
    q_low, q_high = _check_quantiles((q_low, q_high))
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


def _segment_digit_bits(num_segments: int) -> int:
    """Radix digit width for a segmented select: 2 passes while the histogram stays <= 4M bins."""
    return 16 if num_segments <= 64 else 8


def _segmented_select(keys: Array, segment: Array, ranks: Array, num_segments: int) -> Array:
    """Exact rank selection inside each segment, all segments at once, without sorting.

    keys: [N] uint32; segment: [N] int32 in 0..S-1, or -1 to ignore; ranks: [S] int32 0-based
    (clipped to each segment's size - 1; empty segments return garbage).
    Returns [S] uint32 keys. A radix select: each pass histograms one digit of the keys whose
    higher digits match their segment's prefix (one scatter-add per pass, 32 / bits passes).
    """
    bits = _segment_digit_bits(num_segments)
    bins = 1 << bits
    dump = num_segments * bins
    prefix = jnp.zeros((num_segments,), jnp.uint32)
    remaining = ranks
    safe_segment = jnp.maximum(segment, 0)
    for pass_index in range(32 // bits):
        shift = 32 - bits * (pass_index + 1)
        digit = ((keys >> shift) & np.uint32(bins - 1)).astype(jnp.int32)
        member = segment >= 0
        if pass_index > 0:  # keep only keys whose higher digits match their segment's prefix
            member = member & ((keys >> (shift + bits)) == prefix[safe_segment])
        index = jnp.where(member, safe_segment * bins + digit, dump)
        hist = _histogram(index, dump).reshape(num_segments, bins)
        cumulative = jnp.cumsum(hist, axis=1)
        chosen = _rank_digit(cumulative, remaining)
        chosen = jnp.minimum(chosen, bins - 1)  # empty segment: any digit
        below = jnp.take_along_axis(cumulative, chosen[:, None], axis=1)[:, 0] - jnp.take_along_axis(
            hist, chosen[:, None], axis=1
        )[:, 0]
        remaining = remaining - below
        prefix = (prefix << bits) | chosen.astype(jnp.uint32)
    return prefix


@functools.partial(jax.jit, static_argnames=("num_regions",))
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
    threshold = _segmented_select(keys, segment, threshold_rank, num_segments)

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
