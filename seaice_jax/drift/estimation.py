"""Sea-ice drift between two SAR acquisitions: normalised cross-correlation pattern matching, with
FFT phase correlation on the same grid as the reference method.

Pipeline (`estimate_drift`):
  1. Geometry (drift_images.py). Scene B is resampled onto scene A's pixel grid through the two
     tie-point grids (A pixel -> lat / lon with A's tie points -> B pixel with B's), so whatever
     displacement remains between A and the resampled B is ice motion. Both images are standardised
     over their valid pixels (mean 0, std 1; invalid pixels 0, so they add nothing to any
     correlation) and smoothed (`presmooth_px`) against speckle.
  2. Coarse level. Both images are block-averaged by `coarse_factor` (80 m -> 640 m by default) and a
     large template (`coarse_template_km`) is matched over +-`max_drift_km` on a coarse grid; the
     vectors that pass the MCC mask and a 3 x 3 median test give, holes filled by the nearest and
     interpolated bilinearly, the first guess at every fine grid point.
  3. Fine level. At every grid point (`grid_step_km`) of A a template of `template_km` (35 px at
     80 m, as NERSC's `sea_ice_drift`) is matched in B inside +-`search_border_km` (18 px) around the
     first guess: the NCC surface by FFT (numerator) and band-matrix box sums (local variance). The
     templates rotated by `rotations_deg` (-3 / +3) are scored directly on the 5 x 5 positions around
     that peak. Everything is batched over grid points in one jitted `lax.map`: no Python loop over
     grid points, static shapes.
  4. Sub-pixel peak: least-squares quadratic fit on the 3 x 3 neighbourhood of the integer peak; the
     fit's curvature gives the peak sharpness. quality = MCC x sharpness (the NERSC idea of MCC x
     Hessian; our sharpness is -trace/2 of the fitted Hessian in 1/px^2, so the thresholds are
     ours, not NERSC's). A vector is valid when the template and its match are fully covered by
     data, the peak is not on the search border, MCC >= `min_mcc`, quality >= `min_quality` and it
     agrees with the median of its valid 3 x 3 neighbours within `outlier_px`.
  The best rotation is refined by a parabola through the angles' maxima (`rotation_deg`).

Displacements are returned in A's pixel frame (lines / samples), in metres along that frame, and in
metres east / north from the start and end positions' latitude / longitude (spherical Earth).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import images

EARTH_RADIUS_M = 6_371_000.0
METHODS = ("pattern_matching", "phase_correlation")


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Every number of the method, sizes in km (converted to pixels with `pixel_spacing_m`)."""

    pixel_spacing_m: float = 80.0      # RTT product; raw files are 40 m
    grid_step_km: float = 4.0          # fine grid spacing (50 px at 80 m); 2 km: 4x the fine-level cost
    template_km: float = 2.8           # 35 px at 80 m: NERSC sea_ice_drift's template
    search_border_km: float = 1.44     # 18 px at 80 m around the first guess (NERSC: 20-50 px);
                                       # 35 + 2 x 18 = 71 px windows fit a fast 72-point FFT
    rotations_deg: tuple[float, ...] = (-3.0, 0.0, 3.0)  # NERSC's rotations
    presmooth_px: float = 1.2          # Gaussian sigma on both images: speckle, and it makes the
                                       # rotated (bilinear) templates no smoother than the 0-deg one
    coarse_factor: int = 8             # coarse level pixel = 8 x 80 m = 640 m
    coarse_grid_step_km: float = 8.0
    coarse_template_km: float = 12.8   # 20 px at 640 m
    max_drift_km: float = 30.0         # coarse search half-range; 1-day drift is 5-25 km
    min_mcc: float = 0.45              # fine level; chance maxima over speckle-only ice reach ~0.4
                                       # (presmoothed speckle: ~70 independent samples a template)
    min_quality: float = 0.02          # MCC x sharpness (1/px^2)
    coarse_min_mcc: float = 0.3
    min_phase_snr: float = 6.0         # phase correlation: peak / std of its surface (72^2 values
                                       # of noise reach ~4)
    outlier_px: float = 4.0            # max distance to the 3 x 3 median of valid neighbours
    batch_size: int = 64               # grid points per batched FFT (64 beat 256 and 1024 on CPU)
    nominal_uncertainty_m: float = 300.0  # per-pair error (Korosov & Rampal 2017, FT+PM < 300 m)

    def __post_init__(self):
        from seaice_jax.drift.checks import check_config

        check_config(self)  # a number out of range is a DriftConfigError naming the field

    def px(self, km: float) -> float:
        return km * 1000.0 / self.pixel_spacing_m

    def odd_px(self, km: float, factor: int = 1) -> int:
        return 2 * int(round(self.px(km) / factor / 2.0)) + 1


@dataclasses.dataclass(frozen=True)
class DriftField:
    """Drift vectors on a regular grid of scene A's pixels. All 2-D arrays are [gy, gx].

    rows [gy], cols [gx]: A's line / sample of each grid row / column.
    latitude, longitude: start positions; end_latitude, end_longitude: where the ice went.
    drow, dcol: displacement in A's pixel frame (px); east_m, north_m: metres (NaN where invalid).
    mcc: correlation peak; quality: MCC x sharpness (phase correlation: peak / surface std);
    rotation_deg.
    valid: bool. time_a / time_b: acquisition times (UTC, naive datetimes).
    """

    rows: np.ndarray
    cols: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    end_latitude: np.ndarray
    end_longitude: np.ndarray
    drow: np.ndarray
    dcol: np.ndarray
    east_m: np.ndarray
    north_m: np.ndarray
    mcc: np.ndarray
    quality: np.ndarray
    rotation_deg: np.ndarray
    valid: np.ndarray
    time_a: dt.datetime
    time_b: dt.datetime
    pixel_spacing_m: float
    method: str
    uncertainty_m: float

    @property
    def gap_seconds(self) -> float:
        return (self.time_b - self.time_a).total_seconds()

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


# --------------------------------------------------------------------------------------------
# Batched NCC / phase correlation and the sub-pixel peak
# --------------------------------------------------------------------------------------------

def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b >= n: on XLA's CPU FFT, 64 and 72 are ~2x faster than 75 or 80."""
    m = n
    while True:
        k = m
        for p in (2, 3):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _box_sums(x, t: int):
    """Sums over every t x t box of x [..., s, s] -> [..., s-t+1, s-t+1], as band^T @ x @ band
    (two small matmuls; XLA's CPU cumsum is several times slower here)."""
    s = x.shape[-1]
    i, u = np.arange(s)[:, None], np.arange(s - t + 1)[None, :]
    band = jnp.asarray(((i >= u) & (i < u + t)).astype(np.float32))
    return jnp.einsum("iu,...ij,jv->...uv", band, x, band)


def ncc_surfaces(templates, windows):
    """Normalised cross-correlation of templates [N, K, t, t] at every position inside windows
    [N, s, s] -> [N, K, m, m], m = s - t + 1. Position (u, v) compares the template with
    window[u:u+t, v:v+t]. Numerator by real FFTs (the window's FFT shared by the K rotations)."""
    t, s = templates.shape[-1], windows.shape[-1]
    n = _fft_size(s)
    windows = windows - windows.mean((-2, -1), keepdims=True)  # NCC is shift-invariant; keeps sums small
    tz = templates - templates.mean((-2, -1), keepdims=True)
    t_norm = jnp.sqrt((tz ** 2).sum((-2, -1)))
    fw = jnp.fft.rfft2(windows, (n, n))
    ft = jnp.fft.rfft2(tz, (n, n))
    num = jnp.fft.irfft2(jnp.conj(ft) * fw[:, None], (n, n))[..., : s - t + 1, : s - t + 1]
    s1, s2 = _box_sums(windows, t), _box_sums(windows ** 2, t)
    w_var = jnp.maximum(s2 - s1 ** 2 / (t * t), 1e-3 * t * t)  # floor: data-free areas give NCC ~0
    return num / (t_norm[..., None, None] * jnp.sqrt(w_var)[:, None] + 1e-12)


def phase_correlation_surfaces(win_a, win_b):
    """Phase correlation of same-size windows [N, n, n] (Hann-tapered) -> [N, n, n] with zero shift
    at index n // 2: a peak at n // 2 + (dr, dc) means B's content sits (dr, dc) px further than A's."""
    n = win_a.shape[-1]
    hann = jnp.asarray(np.outer(np.hanning(n), np.hanning(n)), jnp.float32)
    fa = jnp.fft.rfft2((win_a - win_a.mean((-2, -1), keepdims=True)) * hann)
    fb = jnp.fft.rfft2((win_b - win_b.mean((-2, -1), keepdims=True)) * hann)
    cross = jnp.conj(fa) * fb
    r = jnp.fft.irfft2(cross / (jnp.abs(cross) + 1e-9), (n, n))
    return jnp.fft.fftshift(r, axes=(-2, -1))


def subpixel_peak(surface):
    """Integer peak of surfaces [..., m, m] refined by a least-squares quadratic on its 3 x 3
    neighbourhood. Returns (row, col) float positions, peak value, sharpness (-trace/2 of the fitted
    Hessian, 1/px^2) and whether the integer peak lies on the border (then the true peak may be
    outside the searched range)."""
    m = surface.shape[-1]
    flat = surface.reshape(surface.shape[:-2] + (m * m,))
    idx = jnp.argmax(flat, axis=-1)
    pr, pc = idx // m, idx % m
    border = (pr == 0) | (pc == 0) | (pr == m - 1) | (pc == m - 1)
    r0, c0 = jnp.clip(pr, 1, m - 2), jnp.clip(pc, 1, m - 2)
    offs = jnp.arange(-1, 2)
    rr = (r0[..., None, None] + offs[:, None]) * m + (c0[..., None, None] + offs[None, :])
    z = jnp.take_along_axis(flat, rr.reshape(rr.shape[:-2] + (9,)), axis=-1).reshape(rr.shape)
    x = offs[None, :].astype(surface.dtype)  # columns
    y = offs[:, None].astype(surface.dtype)  # rows
    b = (z * x).sum((-2, -1)) / 6.0
    c = (z * y).sum((-2, -1)) / 6.0
    dxx = (z[..., :, 0] + z[..., :, 2] - 2 * z[..., :, 1]).sum(-1) / 6.0 * 2.0  # d2f/dx2
    dyy = (z[..., 0, :] + z[..., 2, :] - 2 * z[..., 1, :]).sum(-1) / 6.0 * 2.0
    dxy = (z * x * y).sum((-2, -1)) / 4.0
    det = dxx * dyy - dxy ** 2
    maximum = (det > 1e-12) & (dxx < 0)
    safe = jnp.where(maximum, det, 1.0)
    ox = jnp.where(maximum, -(dyy * b - dxy * c) / safe, 0.0)
    oy = jnp.where(maximum, -(dxx * c - dxy * b) / safe, 0.0)
    ox, oy = jnp.clip(ox, -1.0, 1.0), jnp.clip(oy, -1.0, 1.0)
    peak = jnp.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    sharpness = jnp.maximum(-(dxx + dyy) / 2.0, 0.0)
    return r0 + oy, c0 + ox, peak, sharpness, border


# --------------------------------------------------------------------------------------------
# Matching a batch of grid points
# --------------------------------------------------------------------------------------------

def _windows(image, r0, c0, size: int):
    """Windows [N, size, size] with top-left corners (r0, c0) (int) from a padded image."""
    return jax.vmap(lambda r, c: jax.lax.dynamic_slice(image, (r, c), (size, size)))(r0, c0)


def _rotated_templates(image, rows, cols, t: int, angles_deg):
    """Templates [N, K, t, t] centred on (rows, cols) and rotated by each angle (bilinear)."""
    from jax.scipy.ndimage import map_coordinates

    h = (t - 1) / 2.0
    g = jnp.arange(t, dtype=jnp.float32) - h
    gy, gx = jnp.meshgrid(g, g, indexing="ij")
    th = jnp.deg2rad(jnp.asarray(angles_deg, jnp.float32))
    # Rotating the template's sampling grid by +theta looks for ice turned by +theta (counter-
    # clockwise on the image as displayed, rows down).
    sy = jnp.cos(th)[:, None, None] * gy + jnp.sin(th)[:, None, None] * gx
    sx = -jnp.sin(th)[:, None, None] * gy + jnp.cos(th)[:, None, None] * gx
    pr = rows[:, None, None, None] + sy[None]
    pc = cols[:, None, None, None] + sx[None]
    return map_coordinates(image, [pr, pc], order=1, mode="constant", cval=0.0)


_LOCAL = 2  # half-size of the neighbourhood where rotated templates are scored directly


def _local_ncc(templates, windows, c_r, c_c):
    """NCC of templates [N, K, t, t] at the (2L+1)^2 window positions around (c_r, c_c) [N]
    (direct dot products) -> [N, K, 2L+1, 2L+1]; same variance floor as `ncc_surfaces`."""
    t = templates.shape[-1]
    n = 2 * _LOCAL + 1
    patch = jax.vmap(lambda w, r, c: jax.lax.dynamic_slice(w, (r - _LOCAL, c - _LOCAL), (t + n - 1, t + n - 1)))(
        windows, c_r, c_c)
    subs = jnp.stack([patch[:, i:i + t, j:j + t] for i in range(n) for j in range(n)], axis=1)  # [N, n*n, t, t]
    wz = subs - subs.mean((-2, -1), keepdims=True)
    w_norm = jnp.sqrt(jnp.maximum((wz ** 2).sum((-2, -1)), 1e-3 * t * t))
    tz = templates - templates.mean((-2, -1), keepdims=True)
    t_norm = jnp.sqrt((tz ** 2).sum((-2, -1)))
    num = jnp.einsum("nkij,npij->nkp", tz, wz)
    ncc = num / (t_norm[..., None] * w_norm[:, None, :] + 1e-12)
    return ncc.reshape(ncc.shape[:2] + (n, n))


def _match_batch(a, va, b, vb, rows, cols, gr, gc, *, t, border, angles, method):
    """Grid points (rows, cols) of padded images, integer first guesses (gr, gc) -> per point
    (drow, dcol, mcc, quality, rotation, ok)."""
    h = t // 2
    s = t + 2 * border
    br0, bc0 = rows + gr - h - border, cols + gc - h - border  # window top-left in B
    if method == "pattern_matching":
        win_b = _windows(b, br0, bc0, s)
        tpl = _rotated_templates(a, rows.astype(jnp.float32), cols.astype(jnp.float32), t, angles)
        cover_a = _windows(va.astype(jnp.float32), rows - h, cols - h, t).mean((-2, -1))
        # The template nearest 0 deg searches the whole window by FFT; every rotation is then scored
        # directly on the 5 x 5 positions around that peak (a 3 deg turn moves a 35 px template's
        # peak by well under a pixel), which costs a fraction of K full FFT correlations.
        i0 = min(range(len(angles)), key=lambda i: abs(angles[i]))
        surf0 = ncc_surfaces(tpl[:, i0:i0 + 1], win_b)[:, 0]  # [N, m, m]
        m = s - t + 1
        idx = jnp.argmax(surf0.reshape(-1, m * m), axis=-1)
        p_r, p_c = idx // m, idx % m
        on_border = (p_r == 0) | (p_c == 0) | (p_r == m - 1) | (p_c == m - 1)
        c_r, c_c = jnp.clip(p_r, _LOCAL, m - 1 - _LOCAL), jnp.clip(p_c, _LOCAL, m - 1 - _LOCAL)
        local = _local_ncc(tpl, win_b, c_r, c_c)  # [N, K, 5, 5]
        lr, lc, peak, sharp, local_border = subpixel_peak(local)
        k = jnp.argmax(peak, axis=-1)

        def pick(x):
            return jnp.take_along_axis(x, k[:, None], axis=-1)[:, 0]

        pr, pc = c_r - _LOCAL + pick(lr), c_c - _LOCAL + pick(lc)
        mcc, sharp, on_border = pick(peak), pick(sharp), on_border | pick(local_border)
        rotation = _refined_angle(peak, k, angles)
        # Data coverage of the matched footprint in B.
        ir, ic = jnp.round(pr).astype(jnp.int32), jnp.round(pc).astype(jnp.int32)
        cover_m = _windows(vb.astype(jnp.float32), br0 + ir, bc0 + ic, t).mean((-2, -1))
        drow, dcol = gr + pr - border, gc + pc - border
        quality = mcc * sharp
        ok = (cover_a > 0.99) & (cover_m > 0.99) & ~on_border
        return drow, dcol, mcc, quality, rotation, ok
    # Phase correlation: same-size windows of a fast FFT size (>= s) centred on the grid point in A
    # and on the first guess in B.
    n = _fft_size(s)
    half = n // 2
    win_a = _windows(a, rows - half, cols - half, n)
    cover_a = _windows(va.astype(jnp.float32), rows - half, cols - half, n).mean((-2, -1))
    win_b = _windows(b, rows + gr - half, cols + gc - half, n)
    cover_b = _windows(vb.astype(jnp.float32), rows + gr - half, cols + gc - half, n)
    surf = phase_correlation_surfaces(win_a, win_b)
    pr, pc, peak, sharp, on_border = subpixel_peak(surf)
    drow, dcol = gr + pr - half, gc + pc - half
    far = (jnp.abs(pr - half) > border) | (jnp.abs(pc - half) > border)
    ok = (cover_a > 0.99) & (cover_b.mean((-2, -1)) > 0.99) & ~on_border & ~far
    snr = peak / (surf.std((-2, -1)) + 1e-12)  # the peak against the surface's noise
    return drow, dcol, peak, snr, jnp.zeros_like(peak), ok


def _refined_angle(peaks, k, angles):
    """Rotation of the best match: vertex of the parabola through the peaks of the best angle's
    neighbourhood (three consecutive angles), kept within half a step beyond the angle range."""
    angles = jnp.asarray(angles, jnp.float32)
    n = angles.shape[0]
    if n < 3:
        return angles[k]
    kc = jnp.clip(k, 1, n - 2)
    y0, y1, y2 = (jnp.take_along_axis(peaks, (kc + d)[:, None], axis=-1)[:, 0] for d in (-1, 0, 1))
    denom = y0 - 2 * y1 + y2
    concave = denom < -1e-9
    off = jnp.where(concave, 0.5 * (y0 - y2) / jnp.where(concave, denom, -1.0), (k - kc).astype(jnp.float32))
    off = jnp.clip(off, -1.5, 1.5)
    step = angles[kc + 1] - angles[kc]
    lo, hi = angles[0] - 0.5 * (angles[1] - angles[0]), angles[-1] + 0.5 * (angles[-1] - angles[-2])
    return jnp.clip(angles[kc] + off * step, lo, hi)


@functools.partial(jax.jit, static_argnames=("t", "border", "angles", "method", "batch", "pad"))
def _match_points(a, va, b, vb, rows, cols, gr, gc, *, t, border, angles, method, batch, pad):
    """All grid points in batches of `batch` (one lax.map; N is padded by the caller)."""
    a, b = jnp.pad(a, pad), jnp.pad(b, pad)
    va, vb = jnp.pad(va, pad), jnp.pad(vb, pad)
    fn = functools.partial(_match_batch, a, va, b, vb, t=t, border=border, angles=angles, method=method)

    def chunks(x):
        return x.reshape(-1, batch)

    out = jax.lax.map(lambda args: fn(*args), tuple(chunks(x) for x in (rows + pad, cols + pad, gr, gc)))
    return tuple(x.reshape(-1) for x in out)


def match_grid(a, va, b, vb, rows, cols, guess_r, guess_c, *, t: int, border: int, angles, method: str,
               batch_size: int, max_guess_px: float):
    """Match every (rows[i], cols[i]) of image a in image b around the guesses -> numpy arrays."""
    n = rows.size
    batch = max(1, min(batch_size, n))
    n_pad = -(-n // batch) * batch

    def fill(x, dtype):
        return jnp.asarray(np.pad(np.asarray(x).astype(dtype), (0, n_pad - n), mode="edge"))

    gr, gc = np.round(guess_r).astype(np.int32), np.round(guess_c).astype(np.int32)
    pad = int(t // 2 + border + math.ceil(max_guess_px) + t + 2)
    out = _match_points(a, va, b, vb, fill(rows, np.int32), fill(cols, np.int32), fill(gr, np.int32),
                        fill(gc, np.int32), t=t, border=border, angles=tuple(float(x) for x in angles),
                        method=method, batch=batch, pad=pad)
    return tuple(np.asarray(x)[:n] for x in out)


# --------------------------------------------------------------------------------------------
# Filtering and the first guess
# --------------------------------------------------------------------------------------------

def median_consistent(drow, dcol, valid, outlier_px: float):
    """Valid vectors [gy, gx] within `outlier_px` of the median of their valid 3 x 3 neighbours;
    a vector without any valid neighbour is dropped (nothing vouches for it)."""
    padded_r = np.pad(np.where(valid, drow, np.nan), 1, constant_values=np.nan)
    padded_c = np.pad(np.where(valid, dcol, np.nan), 1, constant_values=np.nan)
    h, w = drow.shape

    def around(p):
        return np.stack([p[i:i + h, j:j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods
        mr, mc = np.nanmedian(around(padded_r), axis=0), np.nanmedian(around(padded_c), axis=0)
    dist = np.hypot(drow - mr, dcol - mc)
    return valid & np.isfinite(dist) & (dist <= outlier_px)


def _fill_and_interpolate(drow, dcol, valid, grid_rows, grid_cols, rows, cols):
    """Valid coarse vectors, holes filled by the nearest valid one, bilinear at (rows, cols)."""
    if not valid.any():
        return np.zeros(rows.shape), np.zeros(rows.shape)
    _, (ir, ic) = ndimage.distance_transform_edt(~valid, return_indices=True)
    fr, fc = drow[ir, ic], dcol[ir, ic]
    ur = np.interp(rows, grid_rows, np.arange(grid_rows.size))
    uc = np.interp(cols, grid_cols, np.arange(grid_cols.size))

    def sample(f):
        return ndimage.map_coordinates(f, [ur, uc], order=1, mode="nearest")

    return sample(fr), sample(fc)


def _grid(n: int, step_px: float, margin: float) -> np.ndarray:
    """Grid positions step_px apart, centred in [margin, n-1-margin]."""
    span = n - 1 - 2 * margin
    if span < 0:
        return np.array([(n - 1) / 2.0]).round().astype(np.int64)
    k = int(span // step_px)
    start = margin + (span - k * step_px) / 2.0
    return np.round(start + step_px * np.arange(k + 1)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------

def first_guess(a, va, b, vb, rows, cols, config: DriftConfig):
    """Coarse-level displacement (fine px) interpolated at fine grid points rows [n], cols [n]."""
    f = config.coarse_factor
    ac, vac = images.block_mean(a, va, f)
    bc, vbc = images.block_mean(b, vb, f)
    ac, bc = images.standardise(ac, vac)[0], images.standardise(bc, vbc)[0]
    t = config.odd_px(config.coarse_template_km, f)
    border = int(math.ceil(config.px(config.max_drift_km) / f))
    grow = _grid(ac.shape[0], config.px(config.coarse_grid_step_km) / f, t // 2)
    gcol = _grid(ac.shape[1], config.px(config.coarse_grid_step_km) / f, t // 2)
    R, C = np.meshgrid(grow, gcol, indexing="ij")
    zeros = np.zeros(R.size)
    drow, dcol, mcc, _, _, ok = match_grid(ac, vac, bc, vbc, R.ravel(), C.ravel(), zeros, zeros, t=t,
                                           border=border, angles=(0.0,), method="pattern_matching",
                                           batch_size=config.batch_size, max_guess_px=0)
    shape = R.shape
    good = (ok & (mcc >= config.coarse_min_mcc)).reshape(shape)
    good = median_consistent(drow.reshape(shape), dcol.reshape(shape), good, max(config.outlier_px / f, 1.0))

    # Block (i, j) covers fine pixels [i f, (i + 1) f): its centre is at i f + (f - 1) / 2.
    def centre(g):
        return g * f + (f - 1) / 2.0

    return _fill_and_interpolate(drow.reshape(shape) * f, dcol.reshape(shape) * f, good,
                                 centre(grow), centre(gcol), rows, cols)


def spherical_displacement(lat0, lon0, lat1, lon1):
    """East / north metres from (lat0, lon0) to (lat1, lon1): great-circle distance along the initial
    bearing (spherical Earth)."""
    p0, l0, p1, l1 = (np.deg2rad(np.asarray(x, np.float64)) for x in (lat0, lon0, lat1, lon1))
    dl = l1 - l0
    a = np.sin((p1 - p0) / 2) ** 2 + np.cos(p0) * np.cos(p1) * np.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    bearing = np.arctan2(np.sin(dl) * np.cos(p1), np.cos(p0) * np.sin(p1) - np.sin(p0) * np.cos(p1) * np.cos(dl))
    return dist * np.sin(bearing), dist * np.cos(bearing)


def destination(lat, lon, east_m, north_m):
    """Lat / lon reached from (lat, lon) by moving east_m, north_m along the great circle."""
    p0, l0 = np.deg2rad(np.asarray(lat, np.float64)), np.deg2rad(np.asarray(lon, np.float64))
    d = np.hypot(east_m, north_m) / EARTH_RADIUS_M
    brg = np.arctan2(east_m, north_m)
    p1 = np.arcsin(np.sin(p0) * np.cos(d) + np.cos(p0) * np.sin(d) * np.cos(brg))
    l1 = l0 + np.arctan2(np.sin(brg) * np.sin(d) * np.cos(p0), np.cos(d) - np.sin(p0) * np.sin(p1))
    return np.rad2deg(p1), geo.wrap_longitude(np.rad2deg(l1))


def as_datetime(t) -> dt.datetime:
    """A naive UTC datetime from a datetime, numpy datetime64 or ISO string."""
    if isinstance(t, dt.datetime):
        return t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)
    us = np.datetime64(t, "us").astype(np.int64)
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))


def estimate_drift(hh_a, tie_a: geo.TiePoints, time_a, hh_b, tie_b: geo.TiePoints, time_b,
                   config: DriftConfig = DriftConfig(), *, methods: tuple[str, ...] = ("pattern_matching",),
                   valid_a=None, valid_b=None) -> dict[str, DriftField]:
    """Ice drift from scene A (hh_a [H_a, W_a], dB or standardised, NaN = no data) to scene B
    (hh_b, any shape and geometry: it is resampled onto A through the tie points). Times: datetime,
    numpy datetime64 or ISO strings (UTC).

    Returns {method: DriftField} for each of `methods` ("pattern_matching", "phase_correlation"),
    all on the same grid and from the same coarse first guess.
    """
    time_a, time_b = as_datetime(time_a), as_datetime(time_b)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown drift method {m!r}; choose from {METHODS}")
    a, va, b, vb = images.prepare_pair(hh_a, tie_a, hh_b, tie_b, valid_a, valid_b)
    t = config.odd_px(config.template_km)
    border = max(int(round(config.px(config.search_border_km))), 2)
    rows = _grid(a.shape[0], config.px(config.grid_step_km), t // 2)
    cols = _grid(a.shape[1], config.px(config.grid_step_km), t // 2)
    R, C = np.meshgrid(rows, cols, indexing="ij")
    guess_r, guess_c = first_guess(a, va, b, vb, R.ravel(), C.ravel(), config)
    fine_a, fine_b = images.smooth(a, config.presmooth_px), images.smooth(b, config.presmooth_px)
    lat, lon = geo.pixel_latlon(tie_a, R, C)
    max_guess = float(np.abs(np.concatenate([guess_r, guess_c])).max(initial=0.0))
    results = {}
    for method in methods:
        drow, dcol, mcc, quality, rotation, ok = match_grid(
            fine_a, va, fine_b, vb, R.ravel(), C.ravel(), guess_r, guess_c, t=t, border=border,
            angles=config.rotations_deg if method == "pattern_matching" else (0.0,), method=method,
            batch_size=config.batch_size, max_guess_px=max_guess)
        shape = R.shape
        drow, dcol, mcc, quality, rotation, ok = (x.reshape(shape) for x in (drow, dcol, mcc, quality, rotation, ok))
        if method == "pattern_matching":
            good = ok & (mcc >= config.min_mcc) & (quality >= config.min_quality)
        else:
            good = ok & (quality >= config.min_phase_snr)
        good &= np.hypot(drow, dcol) * config.pixel_spacing_m <= config.max_drift_km * 1000.0 * 1.5
        good = median_consistent(drow, dcol, good, config.outlier_px)
        end_lat, end_lon = geo.pixel_latlon(tie_a, R + drow, C + dcol)
        east, north = spherical_displacement(lat, lon, end_lat, end_lon)

        def nan(x, good=good):
            return np.where(good, x, np.nan)

        results[method] = DriftField(
            rows=rows, cols=cols, latitude=lat, longitude=lon, end_latitude=nan(end_lat),
            end_longitude=nan(end_lon), drow=nan(drow), dcol=nan(dcol), east_m=nan(east),
            north_m=nan(north), mcc=mcc.astype(np.float32), quality=quality.astype(np.float32),
            rotation_deg=rotation.astype(np.float32), valid=good, time_a=time_a, time_b=time_b,
            pixel_spacing_m=config.pixel_spacing_m, method=method,
            uncertainty_m=config.nominal_uncertainty_m)
    return results
