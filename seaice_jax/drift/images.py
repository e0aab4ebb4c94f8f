"""Images for drift: B resampled onto A's pixel grid through the tie points, standardisation,
smoothing and block averaging, on device."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax.data import geolocation as geo


@jax.jit
def standardise(image, valid):
    """(image - mean) / std over valid finite pixels; invalid pixels 0. Returns (image, valid)."""
    valid = valid & jnp.isfinite(image)
    x = jnp.where(valid, image, 0.0)
    n = jnp.maximum(valid.sum(), 1)
    mean = x.sum() / n
    std = jnp.sqrt(jnp.where(valid, (x - mean) ** 2, 0.0).sum() / n)
    return jnp.where(valid, (x - mean) / jnp.maximum(std, 1e-6), 0.0).astype(jnp.float32), valid


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(int(math.ceil(3 * sigma)), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@functools.partial(jax.jit, static_argnames=("sigma",))
def smooth(x, sigma: float):
    """Separable Gaussian of a standardised image [H, W] (zeros outside count as 'no signal'), as
    weighted sums of shifted slices that XLA fuses (a 1-channel lax conv is ~30x slower on CPU)."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma)
    r = k.size // 2
    h, w = x.shape
    p = jnp.pad(x, ((r, r), (0, 0)))
    y = sum(float(k[i]) * p[i:i + h] for i in range(k.size))
    p = jnp.pad(y, ((0, 0), (r, r)))
    return sum(float(k[i]) * p[:, i:i + w] for i in range(k.size))


@functools.partial(jax.jit, static_argnames=("f",))
def block_mean(x, valid, f: int):
    """f x f block means of the valid pixels; a block is valid when half its pixels are."""
    h, w = (x.shape[0] // f) * f, (x.shape[1] // f) * f
    xs = x[:h, :w].reshape(h // f, f, w // f, f)
    vs = valid[:h, :w].reshape(h // f, f, w // f, f).astype(jnp.float32)
    count = vs.sum((1, 3))
    mean = (xs * vs).sum((1, 3)) / jnp.maximum(count, 1.0)
    return mean, count >= 0.5 * f * f


@functools.partial(jax.jit, static_argnames=("shape_a", "step"))
def _resample_on_device(image_b, valid_b, map_rows, map_cols, shape_a, step):
    """B sampled at the A pixels whose B positions are given every `step` px (bilinear both times).
    No-data pixels are NaN while sampling, so a sample touching one is NaN: invalid."""
    from jax.scipy.ndimage import map_coordinates

    b = jnp.where(valid_b & jnp.isfinite(image_b), image_b, jnp.nan)

    def one_row(r):
        cols = jnp.arange(shape_a[1], dtype=jnp.float32) / step
        rr = jnp.full_like(cols, r / step)
        br = map_coordinates(map_rows, [rr, cols], order=1, mode="nearest")
        bc = map_coordinates(map_cols, [rr, cols], order=1, mode="nearest")
        val = map_coordinates(b, [br, bc], order=1, mode="constant", cval=jnp.nan)
        ok = jnp.isfinite(val)
        return jnp.where(ok, val, 0.0), ok

    rows = jnp.arange(shape_a[0], dtype=jnp.float32)
    out, ok = jax.lax.map(one_row, rows, batch_size=64)
    return out, ok


def resample_to_a(image_b, valid_b, tie_b: geo.TiePoints, tie_a: geo.TiePoints,
                  shape_a: tuple[int, int], step: int = 16, move=None):
    """Scene B on scene A's pixel grid: ([H_a, W_a] float32, valid bool). The A -> B pixel map is
    computed exactly (tie-point geolocation) every `step` px and bilinear between (it is smooth).
    `move(lat, lon) -> (lat, lon)`: where the ice at A's positions is at B's time (the drift between
    the two acquisitions, see seaice_jax.drift.temporal); None: the same place (geolocation only)."""
    rows = np.arange(0, shape_a[0] + step, step, dtype=np.float64)
    cols = np.arange(0, shape_a[1] + step, step, dtype=np.float64)
    lat, lon = geo.pixel_latlon(tie_a, rows[:, None], cols[None, :])
    if move is not None:
        lat, lon = move(lat, lon)
    br, bc = geo.latlon_to_pixel(tie_b, lat, lon)
    far = -1e6  # NaN (not converged) -> far outside B
    br, bc = np.where(np.isfinite(br), br, far), np.where(np.isfinite(bc), bc, far)
    out, ok = _resample_on_device(jnp.asarray(image_b, jnp.float32), jnp.asarray(valid_b, bool),
                                  jnp.asarray(br, jnp.float32), jnp.asarray(bc, jnp.float32),
                                  tuple(shape_a), step)
    return out, ok


def _same_geometry(a: geo.TiePoints, b: geo.TiePoints) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("lines", "samples", "latitude", "longitude"))


def prepare_pair(hh_a, tie_a: geo.TiePoints, hh_b, tie_b: geo.TiePoints, valid_a=None, valid_b=None):
    """Standardised A and B-on-A's-grid images with validity: four device arrays [H_a, W_a].
    NaN marks no data (and `valid_*`, if given, narrows it); each image goes to the device once."""
    a = jnp.asarray(hh_a, jnp.float32)
    b = jnp.asarray(hh_b, jnp.float32)
    va = jnp.ones(a.shape, bool) if valid_a is None else jnp.asarray(valid_a, bool)
    vb = jnp.ones(b.shape, bool) if valid_b is None else jnp.asarray(valid_b, bool)
    if not (_same_geometry(tie_a, tie_b) and a.shape == b.shape):
        b, vb = resample_to_a(b, vb & jnp.isfinite(b), tie_b, tie_a, a.shape)
    a, va = standardise(a, va)
    b, vb = standardise(b, vb)
    return a, va, b, vb


def overlap_fraction(valid_a, tie_a: geo.TiePoints, valid_b, tie_b: geo.TiePoints, samples: int = 48) -> float:
    """The fraction of scene A's data pixels (valid_a) over which scene B has data, from a
    `samples` x `samples` grid of A's pixels mapped into B through the tie points (no resampling of
    the images: a cheap check before the matching)."""
    valid_a, valid_b = np.asarray(valid_a, bool), np.asarray(valid_b, bool)
    h, w = valid_a.shape
    rows = np.linspace(0, h - 1, min(samples, h)).round().astype(int)
    cols = np.linspace(0, w - 1, min(samples, w)).round().astype(int)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    on_a = valid_a[rr, cc]
    if not on_a.any():
        return 0.0
    lat, lon = geo.pixel_latlon(tie_a, rr[on_a].astype(np.float64), cc[on_a].astype(np.float64))
    br, bc = geo.latlon_to_pixel(tie_b, lat, lon)
    hb, wb = valid_b.shape
    inside = np.isfinite(br) & np.isfinite(bc) & (br > -0.5) & (br < hb - 0.5) & (bc > -0.5) & (bc < wb - 0.5)
    ir = np.clip(np.nan_to_num(br).round().astype(int), 0, hb - 1)
    ic = np.clip(np.nan_to_num(bc).round().astype(int), 0, wb - 1)
    return float((inside & valid_b[ir, ic]).mean())
