"""Exact quantiles and order statistics on device, without sorting: a radix select on
order-preserving integer keys (method.md section 6).

Building blocks of `scaling` (ALS, concentration-preserving binarization), which also re-exports
`masked_quantiles`, `float_to_key` and `key_to_float`. Two histogram passes of 2**16 bins resolve a
32-bit key: pass 1 (`top_digit_histogram`) finds the top-16-bit bucket of every wanted rank
(`rank_prefixes`), pass 2 (`low_digit_index` + `histogram`) the low 16 bits inside those buckets
(`ranked_keys`). The passes are separate functions so that a caller can run them block by block.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from seaice_jax import platforms

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

DIGIT_BITS = 16  # two histogram passes of 2**16 bins resolve a 32-bit key


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


def histogram(index: Array, length: int) -> Array:
    """Counts of each value of `index` (int32, any shape) in 0..length-1; others are dropped."""
    return jnp.zeros((length,), jnp.int32).at[index.reshape(-1)].add(1, mode="drop")


def top_digit_histogram(keys: Array, valid: Array) -> Array:
    """Radix pass 1: per-scene histogram of the top 16 bits of the valid keys.

    keys: [B, N] uint32; valid: [B, N] bool -> [B, 2**16] int32 (its row sums count the valid
    pixels, so no separate counting pass is needed).
    """
    batch = keys.shape[0]
    bins = 1 << DIGIT_BITS
    scene = jnp.arange(batch, dtype=jnp.int32)[:, None]
    top = (keys >> DIGIT_BITS).astype(jnp.int32)
    index = jnp.where(valid, scene * bins + top, batch * bins)
    return histogram(index, batch * bins).reshape(batch, bins)


def rank_prefixes(top_hist: Array, ranks: Array) -> tuple[Array, Array, Array, Array]:
    """Radix pass 1's answer: the top-16-bit bucket of each rank.

    top_hist: [B, 2**16] (`top_digit_histogram`); ranks: [B, M] int32 (see `select_ranks`).
    Returns (prefix [B, M] uint32: the bucket, remaining [B, M] int32: the rank inside it, and the
    `_unique_prefix_slots` of the prefixes: slot [B, M], table [B, M]).
    """
    bins = 1 << DIGIT_BITS
    cumulative = jnp.cumsum(top_hist, axis=-1)
    top_digit = _rank_digit(cumulative[:, None, :], ranks)  # [B, M]
    below = jnp.take_along_axis(cumulative, top_digit, axis=1) - jnp.take_along_axis(
        top_hist, top_digit, axis=1
    )
    prefix = top_digit.astype(jnp.uint32)
    slot, table = _unique_prefix_slots(prefix, sentinel=bins)  # sentinel never matches
    return prefix, ranks - below, slot, table


def low_digit_index(keys: Array, valid: Array, table: Array, scene: Array) -> Array:
    """Radix pass 2's histogram slots: (scene * M + j) * 2**16 + low 16 bits for a valid key whose top
    bits are table[:, j]'s, else `dump` (B * M * 2**16, dropped by the histogram).

    keys, valid: [B', N]; table: [B', M]; scene: [B', 1] int32 (the scenes' indices in the batch of
    B scenes that `dump` counts: keys may be a block of rows of one scene).
    """
    num_ranks = table.shape[1]
    bins = 1 << DIGIT_BITS
    top = keys >> DIGIT_BITS
    low = (keys & np.uint32(bins - 1)).astype(jnp.int32)
    index = jnp.full(keys.shape, jnp.iinfo(jnp.int32).max, jnp.int32)
    for j in range(num_ranks):  # M is small and static: a fused chain of selects
        match = valid & (top == table[:, j : j + 1])
        index = jnp.where(match, (scene * num_ranks + j) * bins + low, index)
    return index


def ranked_keys(prefix: Array, remaining: Array, slot: Array, low_hist: Array) -> Array:
    """Radix pass 2's answer: [B, M] uint32 keys, from the low-digit histograms [B, M, 2**16]."""
    cumulative2 = jnp.cumsum(low_hist, axis=-1)
    rank_cumulative = jnp.take_along_axis(cumulative2, slot[:, :, None], axis=1)  # [B, M, bins]
    low_digit = _rank_digit(rank_cumulative, remaining)
    return (prefix << DIGIT_BITS) | low_digit.astype(jnp.uint32)


def select_ranks(keys: Array, valid: Array, ranks: Array, top_hist: Array | None = None) -> Array:
    """Exact order statistics of each scene's valid keys (radix select, two histogram passes).

    keys: [B, N] uint32; valid: [B, N] bool; ranks: [B, M] int32, 0-based ascending ranks
    within 0..n_valid-1, in any order (clip before calling); top_hist: pass 1's
    `top_digit_histogram(keys, valid)` if already computed.
    Returns [B, M] uint32: the key of rank ranks[b, m] among scene b's valid keys.
    """
    batch = keys.shape[0]
    num_ranks = ranks.shape[1]
    bins = 1 << DIGIT_BITS
    hist = top_digit_histogram(keys, valid) if top_hist is None else top_hist
    prefix, remaining, slot, table = rank_prefixes(hist, ranks)
    scene = jnp.arange(batch, dtype=jnp.int32)[:, None]
    index = low_digit_index(keys, valid, table, scene)
    low_hist = histogram(index, batch * num_ranks * bins).reshape(batch, num_ranks, bins)
    return ranked_keys(prefix, remaining, slot, low_hist)


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


def quantile_ranks(num_valid: Array, qs: tuple[float, ...]) -> tuple[Array, Array]:
    """numpy's 'linear' quantiles as ranks: for each q the ranks floor((n - 1) q) and the next one.

    num_valid: [B] int32 -> (ranks [B, 2Q] int32: low, high of q_0, low, high of q_1, ...;
    fractions [B, Q] float32).
    """
    last = jnp.maximum(num_valid - 1, 0)
    ranks, fractions = [], []
    for q in qs:
        index, fraction = _exact_virtual_index(last, q)
        ranks += [jnp.minimum(index, last), jnp.minimum(index + 1, last)]
        fractions.append(fraction)
    return jnp.stack(ranks, axis=1), jnp.stack(fractions, axis=1)


def quantile_values(selected: Array, fractions: Array, num_valid: Array) -> Array:
    """[B, 2Q] keys of `quantile_ranks`' ranks -> [B, Q] float32 quantiles (NaN: no valid pixel)."""
    pairs = key_to_float(selected).reshape(selected.shape[0], -1, 2)
    values = _lerp(pairs[..., 0], pairs[..., 1], fractions)
    return jnp.where(num_valid[:, None] > 0, values, jnp.nan)


def quantiles_of_keys(keys: Array, valid: Array, qs: tuple[float, ...]) -> Array:
    """keys: [B, N] uint32 (float_to_key), valid: [B, N] -> [B, len(qs)] float32."""
    top_hist = top_digit_histogram(keys, valid)
    num_valid = jnp.sum(top_hist, axis=1)  # [B]
    ranks, fractions = quantile_ranks(num_valid, qs)
    return quantile_values(select_ranks(keys, valid, ranks, top_hist), fractions, num_valid)


def check_quantiles(qs: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in np.atleast_1d(np.asarray(qs, np.float64)))
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"scaling: quantiles must be a non-empty list in [0, 1], got {qs}")
    return qs


# --------------------------------------------------------------------------------------------
# Row blocks (the CPU formulation, `platforms` "row_blocked_scaling")
# --------------------------------------------------------------------------------------------

# Whole-array passes over a large scene allocate several scene-sized temporaries per call (keys,
# histogram slots, ...); glibc maps each afresh and the kernel faults it in 4 KiB at a time, which
# on CPU cost more than the arithmetic (masked_quantiles of a 5000 x 5000 scene: 272 ms in a plain
# process, 98 ms with the launchers' huge pages). In blocks of BLOCK_ROWS rows the temporaries are a
# few [BLOCK_ROWS, W] arrays, far below glibc's 32 MiB mmap threshold, so malloc serves them from
# pages it already has. Accelerators keep the whole-array passes (XLA's preallocated pool).
BLOCK_ROWS = 64
BLOCKED_MIN_PIXELS = 1 << 20  # smaller scenes: whole-array passes on every platform


def blocks_pay(shape: tuple[int, ...], halo: int = 0) -> bool:
    """Whether [..., H, W] arrays are large enough for row blocks (of BLOCK_ROWS + 2 halo rows)."""
    return math.prod(shape) >= BLOCKED_MIN_PIXELS and shape[-2] >= BLOCK_ROWS + 2 * halo


def row_block(j: Array, blocks: int, height: int) -> tuple[Array, Array, Array]:
    """Block j of the row blocks of a batch of scenes (`blocks` per scene, BLOCK_ROWS rows each).

    Returns (scene, top row, fresh [BLOCK_ROWS, 1] bool). The last block of a scene starts at
    H - BLOCK_ROWS and overlaps the one before: `fresh` marks its rows no earlier block had, for the
    passes that count.
    """
    scene, i = j // blocks, j % blocks
    top = jnp.minimum(i * BLOCK_ROWS, height - BLOCK_ROWS)
    fresh = (top + jnp.arange(BLOCK_ROWS) >= i * BLOCK_ROWS)[:, None]
    return scene, top, fresh


def _block_of(flat: Array, scene: Array, top: Array, height: int) -> Array:
    return lax.dynamic_slice(flat, (scene * height + top, 0), (BLOCK_ROWS, flat.shape[1]))


def blocked_top_histogram(flat: Array, flat_valid: Array, batch: int) -> Array:
    """`top_digit_histogram` of [B * H, W] float32 values (scenes stacked), block by block."""
    height, bins = flat.shape[0] // batch, 1 << DIGIT_BITS
    blocks = -(-height // BLOCK_ROWS)

    def body(j, hist):
        scene, top, fresh = row_block(j, blocks, height)
        digit = (float_to_key(_block_of(flat, scene, top, height)) >> DIGIT_BITS).astype(jnp.int32)
        counted = _block_of(flat_valid, scene, top, height) & fresh
        return hist.at[jnp.where(counted, scene * bins + digit, batch * bins).reshape(-1)].add(1, mode="drop")

    return lax.fori_loop(0, batch * blocks, body, jnp.zeros((batch * bins,), jnp.int32)).reshape(batch, bins)


def blocked_low_histogram(flat: Array, flat_valid: Array, table: Array) -> Array:
    """Radix pass 2 (`low_digit_index` + `histogram`) of [B * H, W] float32 values, block by block.

    table: [B, M] from `rank_prefixes` -> [B, M, 2**16] int32.
    """
    batch, num_ranks = table.shape
    height, bins = flat.shape[0] // batch, 1 << DIGIT_BITS
    blocks = -(-height // BLOCK_ROWS)

    def body(j, hist):
        scene, top, fresh = row_block(j, blocks, height)
        keys = float_to_key(_block_of(flat, scene, top, height))
        counted = _block_of(flat_valid, scene, top, height) & fresh
        index = low_digit_index(keys, counted, lax.dynamic_index_in_dim(table, scene), scene)
        return hist.at[index.reshape(-1)].add(1, mode="drop")

    hist = lax.fori_loop(0, batch * blocks, body, jnp.zeros((batch * num_ranks * bins,), jnp.int32))
    return hist.reshape(batch, num_ranks, bins)


def quantiles_from_top_histogram(flat: Array, flat_valid: Array, top_hist: Array, qs: tuple[float, ...]) -> Array:
    """[B, len(qs)] quantiles of [B * H, W] values whose pass-1 histogram is `top_hist` [B, 2**16]
    (pass 2 in row blocks)."""
    num_valid = jnp.sum(top_hist, axis=1)
    ranks, fractions = quantile_ranks(num_valid, qs)
    prefix, remaining, slot, table = rank_prefixes(top_hist, ranks)
    selected = ranked_keys(prefix, remaining, slot, blocked_low_histogram(flat, flat_valid, table))
    return quantile_values(selected, fractions, num_valid)


def _quantiles_row_blocked(x: Array, valid: Array, qs: tuple[float, ...]) -> Array:
    """[B, H, W] -> [B, len(qs)]: `quantiles_of_keys` in row blocks (the same integer histograms:
    equal results)."""
    batch, height, width = x.shape
    flat, flat_valid = x.reshape(batch * height, width), valid.reshape(batch * height, width)
    return quantiles_from_top_histogram(flat, flat_valid, blocked_top_histogram(flat, flat_valid, batch), qs)


@functools.partial(jax.jit, static_argnames=("qs", "pixel_axes"))
def _masked_quantiles_jit(x: Array, valid: Array, qs: tuple[float, ...], pixel_axes: int) -> Array:
    lead = x.shape[: x.ndim - pixel_axes]
    batch = math.prod(lead)

    def whole(x, valid):
        return quantiles_of_keys(float_to_key(x).reshape(batch, -1), valid.reshape(batch, -1), qs)

    if pixel_axes == 2 and blocks_pay(x.shape):
        scenes = (batch, *x.shape[-2:])
        values = platforms.choose("row_blocked_scaling", x.reshape(scenes), valid.reshape(scenes),
                                  special=lambda x, v: _quantiles_row_blocked(x, v, qs), plain=whole)
    else:
        values = whole(x, valid)
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
    return _masked_quantiles_jit(x, valid, check_quantiles(qs), pixel_axes)


# --------------------------------------------------------------------------------------------
# Segmented select (one exact order statistic per segment)
# --------------------------------------------------------------------------------------------


def _segment_digit_bits(num_segments: int) -> int:
    """Radix digit width for a segmented select: 2 passes while the histogram stays <= 4M bins."""
    return 16 if num_segments <= 64 else 8


def segmented_select(keys: Array, segment: Array, ranks: Array, num_segments: int) -> Array:
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
        hist = histogram(index, dump).reshape(num_segments, bins)
        cumulative = jnp.cumsum(hist, axis=1)
        chosen = _rank_digit(cumulative, remaining)
        chosen = jnp.minimum(chosen, bins - 1)  # empty segment: any digit
        below = jnp.take_along_axis(cumulative, chosen[:, None], axis=1)[:, 0] - jnp.take_along_axis(
            hist, chosen[:, None], axis=1
        )[:, 0]
        remaining = remaining - below
        prefix = (prefix << bits) | chosen.astype(jnp.uint32)
    return prefix
