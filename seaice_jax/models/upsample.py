"""Align-corners bilinear x2 upsampling (the AutoICE baseline's decoder) and its fusion with the
3x3 conv that follows it.

All tensors are channels-last `[B, H, W, C]`. Two formulations, chosen per platform (see
seaice_jax/platforms.py, formulation "fused_upsampling"; default: the first on CPU only):

- CPU-measured: the upsampling is linear and separable, written as static sparse maps along rows
  and columns (pairs of fused gathers, with gathers again for the gradient). `upsampled_conv3x3`
  computes conv3x3(pad(upsample(x))) without building the upsampled map: since the upsampling acts
  on pixels and a conv tap on channels, they commute, so each of the 9 taps multiplies the
  *low-resolution* map (one GEMM with 9 x Cout columns, 4x fewer FLOPs) and the shifted upsampling
  of the tap maps is summed, exactly (up to float rounding).
- plain (every other platform): the dense align-corners interpolation matrices (what
  `jax.image.scale_and_translate` builds), zero-padding folded in, applied by two matmuls, then a
  plain conv of the materialised map: the form XLA's GPU / TPU compilers are tuned for.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from seaice_jax import platforms

# Read at trace time: False materialises the upsampled map and convolves it (the reference form).
FUSE_UPSAMPLED_CONV = True
# Smaller upsampled maps are materialised: there the FLOPs saved are negligible and the 24 gathers
# (and their transposes in training) only add compile time.
FUSE_MIN_PIXELS = 128 * 128


class Upsampled(NamedTuple):
    """A decoder input before its x2 upsampling and zero-padding to (height, width): the conv layer
    that consumes it (ConvNormReLU) fuses both into its 3x3 conv (see `upsampled_conv3x3`)."""

    low: jax.Array
    height: int
    width: int

    def materialize(self) -> jax.Array:
        """The upsampled, zero-padded map `[B, height, width, C]`, formulated per platform."""
        return platforms.choose("fused_upsampling", self.low, special=lambda low: self._replace(low=low).by_gathers(),
                                plain=lambda low: self._replace(low=low).by_dense_matrices())

    def by_gathers(self) -> jax.Array:
        """The CPU formulation of `materialize`: static gathers, then a pad."""
        return pad_to_match(upsample_bilinear_x2_gathers(self.low), self.height, self.width)

    def by_dense_matrices(self) -> jax.Array:
        """The plain formulation of `materialize`: two dense interpolation matmuls (padding folded in)."""
        return interpolate_dense(self.low, self.height, self.width)


def align_corners_matrix(length_in: int, length_out: int) -> np.ndarray:
    """Linear interpolation weights `[length_out, length_in]` with align_corners=True semantics.

    Output index j samples input position j * (length_in - 1) / (length_out - 1), so the first
    and last samples are exactly the first and last inputs (PyTorch `align_corners=True`).
    """
    if length_in == 1:
        return np.ones((length_out, 1), np.float32)
    position = np.arange(length_out) * (length_in - 1) / max(length_out - 1, 1)
    lower = np.clip(np.floor(position).astype(np.int64), 0, length_in - 2)
    fraction = position - lower
    weights = np.zeros((length_out, length_in), np.float64)
    rows = np.arange(length_out)
    weights[rows, lower] += 1.0 - fraction
    weights[rows, lower + 1] += fraction
    return weights.astype(np.float32)


def _sparse_taps(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a sparse static matrix `[out, in]` as (indices, weights) `[out, k]`, zero-padded; each
    row's nonzero columns in ascending order. Vectorised: a loop over the rows cost ~0.5 s of every
    trace of the train step."""
    rows, cols = np.nonzero(matrix)  # row-major: ascending columns within a row
    k = max(int(np.bincount(rows, minlength=1).max()) if rows.size else 1, 1)
    slot = np.arange(rows.size) - np.searchsorted(rows, rows)  # the entry's place in its row
    index = np.zeros((matrix.shape[0], k), np.int32)
    weight = np.zeros((matrix.shape[0], k), np.float32)
    index[rows, slot] = cols
    weight[rows, slot] = matrix[rows, cols]
    return index, weight


def _apply_taps(x: jax.Array, index: np.ndarray, weight: np.ndarray, axis: int) -> jax.Array:
    """y[..., j, ...] = sum_t weight[j, t] * x[..., index[j, t], ...] along `axis` (gathers, fused)."""
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    out = 0
    for t in range(index.shape[1]):
        w = jnp.asarray(weight[:, t].reshape(shape), x.dtype)
        out = out + jnp.take(x, jnp.asarray(index[:, t]), axis=axis) * w
    return out


def _sparse_map(matrix: np.ndarray, axis: int):
    """x -> matrix applied along `axis` (a static sparse matrix `[out, in]`) as fused gathers.

    The gradient of a gather is a scatter, slow on CPU, so the backward pass gathers with the
    transposed matrix's taps instead.
    """
    fwd_taps, bwd_taps = _sparse_taps(matrix), _sparse_taps(matrix.T)

    @jax.custom_vjp
    def apply(x):
        return _apply_taps(x, *fwd_taps, axis)

    def apply_fwd(x):
        return apply(x), None

    def apply_bwd(_, g):
        return (_apply_taps(g, *bwd_taps, axis),)

    apply.defvjp(apply_fwd, apply_bwd)
    return apply


@functools.cache
def _interpolation_along(length_in: int, axis: int):
    """Align-corners x2 interpolation along one axis as a sparse map with a sparse transpose.

    A dense interpolation matmul costs 2 * length_in MACs per output (about 0.4 s per training
    step on CPU at the top level); gathers of the 2 taps cost a few memory passes.
    """
    return _sparse_map(align_corners_matrix(length_in, 2 * length_in), axis)


def _shifted_interpolation(length_in: int, length_out: int, shift: int) -> np.ndarray:
    """[length_out, length_in]: x2 align-corners interpolation, zero-padded (centred) to
    `length_out`, row y read at y + shift (zero outside): what one kernel row / column of a 'SAME'
    conv sees of the upsampled map."""
    padded = np.zeros((length_out, length_in), np.float32)
    before = (length_out - 2 * length_in) // 2
    padded[before : before + 2 * length_in] = align_corners_matrix(length_in, 2 * length_in)
    shifted = np.zeros_like(padded)
    lo, hi = max(0, -shift), min(length_out, length_out - shift)
    shifted[lo:hi] = padded[lo + shift : hi + shift]
    return shifted


@functools.cache
def _shifted_interpolation_along(length_in: int, length_out: int, shift: int, axis: int):
    return _sparse_map(_shifted_interpolation(length_in, length_out, shift), axis)


def upsample_bilinear_x2(x: jax.Array) -> jax.Array:
    """Bilinear x2 upsampling with align_corners=True: `[B, H, W, C] -> [B, 2H, 2W, C]`, by gathers
    on the platforms of the "fused_upsampling" formulation, by dense matrices elsewhere."""
    return Upsampled(x, 2 * x.shape[1], 2 * x.shape[2]).materialize()


def upsample_bilinear_x2_gathers(x: jax.Array) -> jax.Array:
    """`upsample_bilinear_x2` as two static sparse interpolations (rows, then columns), each a pair
    of fused gathers (jax.image.resize uses half-pixel centres, not the baseline's align corners)."""
    x = _interpolation_along(x.shape[1], 1)(x)
    return _interpolation_along(x.shape[2], 2)(x)


@functools.cache
def _padded_interpolation(length_in: int, length_out: int) -> np.ndarray:
    return _shifted_interpolation(length_in, length_out, 0)


def interpolate_dense(x: jax.Array, height: int, width: int) -> jax.Array:
    """x2 align-corners upsampling of `x: [B, h, w, C]`, zero-padded (centred, extra row/col after,
    as `pad_to_match`) to `[B, height, width, C]`, as two dense matmuls with the static
    interpolation matrices `[height, h]` and `[width, w]` (their zero rows are the padding).

    The plain formulation for accelerators: no gathers, no scatters in the gradient (it is two more
    matmuls), the matrices are constants. Full precision, like jax.image.resize: the default
    (TF32 / bf16-pass) matmul precision of an fp32 input on GPU / TPU would round the weights.
    """
    _, h, w, _ = x.shape
    rows = jnp.asarray(_padded_interpolation(h, height), x.dtype)
    cols = jnp.asarray(_padded_interpolation(w, width), x.dtype)
    x = jnp.einsum("Yh,bhwc->bYwc", rows, x, precision=lax.Precision.HIGHEST)
    return jnp.einsum("Xw,bYwc->bYXc", cols, x, precision=lax.Precision.HIGHEST)


def pad_to_match(x: jax.Array, height: int, width: int) -> jax.Array:
    """Zero-pad `x: [B, h, w, C]` to `[B, height, width, C]`, extra row/col after (baseline)."""
    pad_h, pad_w = height - x.shape[1], width - x.shape[2]
    if pad_h == 0 and pad_w == 0:
        return x
    return jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))


def upsampled_conv3x3(up: Upsampled, kernel: jax.Array) -> jax.Array:
    """'SAME' 3x3 conv (no bias) of `up.materialize()` with `kernel [3, 3, Cin, Cout]`, computed at
    low resolution: the tap maps g[dy, dx] = low @ kernel[dy, dx] (one GEMM, 9 x Cout columns);
    for each kernel row dy the column-shifted upsamplings of g[dy, :] are summed, row-upsampled and
    row-shifted, and the rows summed. `[B, h, w, Cin] -> [B, height, width, Cout]`.

    (Gathering all three rows or columns in one sparse map compiles faster but ran ~10 % slower on
    a 1024 x 1024 scene on CPU; this form is kept.)
    """
    low = up.low
    _, h, w, _ = low.shape
    taps = jnp.einsum("bhwc,yxco->bhwyxo", low, kernel.astype(low.dtype))  # [B, h, w, 3, 3, Cout]
    out = None
    for dy in range(3):
        row = None
        for dx in range(3):
            col = _shifted_interpolation_along(w, up.width, dx - 1, 2)(taps[:, :, :, dy, dx])
            row = col if row is None else row + col
        row = _shifted_interpolation_along(h, up.height, dy - 1, 1)(row)
        out = row if out is None else out + row
    return out
