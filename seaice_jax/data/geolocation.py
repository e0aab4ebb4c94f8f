"""Per-pixel geolocation of a SAR scene from its tie-point grid, and the inverse mapping.

AI4Arctic files store latitude / longitude only on a coarse grid of tie points (21 x 21 in real
files), never per pixel:
  * raw (40 m): 1-D `sar_grid_points` with `sar_grid_line`, `sar_grid_sample`, `sar_grid_latitude`,
    `sar_grid_longitude` (float64): the SAR line / sample of each tie point is stored;
  * ready-to-train (80 m): `sar_grid2d_latitude` / `sar_grid2d_longitude` with dims
    (`sar_sample_2dgrid_points`, `sar_line_2dgrid_points`), samples first; the tie points are spread
    evenly over lines and samples including the first and last, so their positions are implied.

Both become one `TiePoints` (a regular grid in line / sample, lat / lon [n_lines, n_samples]).
`pixel_latlon` interpolates bilinearly in (line, sample), longitude unwrapped across the grid so that
a scene over the antimeridian interpolates through it; outside the outermost tie points the edge
cells extend linearly. `latlon_to_pixel` inverts that same piecewise-bilinear map by Newton steps
from the nearest tie point, so it is exact on the tie points and consistent with `pixel_latlon`
everywhere (round trip to ~1e-6 px).
"""

from __future__ import annotations

import dataclasses

import numpy as np


class GeolocationError(ValueError):
    """Tie points that do not form a usable grid; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class TiePoints:
    """A regular tie-point grid.

    lines: float64 [n] SAR line of each tie-point row, strictly increasing.
    samples: float64 [m] SAR sample of each tie-point column, strictly increasing.
    latitude, longitude: float64 [n, m] degrees; longitude unwrapped (continuous over the grid).
    """

    lines: np.ndarray
    samples: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.latitude.shape

    def as_attrs(self) -> dict:
        """Plain lists, for provenance attributes or JSON."""
        return {"lines": self.lines.tolist(), "samples": self.samples.tolist()}


def _unwrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes made continuous over a 2-D grid (first along samples of row 0, then down lines)."""
    lon = np.asarray(lon, np.float64)
    first_row = np.unwrap(lon[0], period=360.0)
    out = np.unwrap(np.concatenate([first_row[None], lon[1:]], axis=0), axis=0, period=360.0)
    return out


def _checked(lines, samples, lat, lon) -> TiePoints:
    lines, samples = np.asarray(lines, np.float64), np.asarray(samples, np.float64)
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if lat.shape != (lines.size, samples.size) or lon.shape != lat.shape:
        raise GeolocationError(f"tie-point grid {lat.shape} does not match {lines.size} lines x {samples.size} samples")
    if lines.size < 2 or samples.size < 2:
        raise GeolocationError(f"need at least 2 x 2 tie points, got {lines.size} x {samples.size}")
    if np.any(np.diff(lines) <= 0) or np.any(np.diff(samples) <= 0):
        raise GeolocationError("tie-point lines / samples are not strictly increasing")
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
        raise GeolocationError("tie-point latitude / longitude holds non-finite values")
    if np.any(np.abs(lat) > 90.0):
        raise GeolocationError("tie-point latitude outside [-90, 90]")
    return TiePoints(lines, samples, lat, _unwrap_longitude(lon))


def tie_points_from_raw(line, sample, latitude, longitude) -> TiePoints:
    """Raw-product tie points: 1-D arrays over `sar_grid_points` (any order) -> a regular grid.

    The points must form a full grid: every (line row, sample column) pair once. Lines of one row
    (samples of one column) may differ by under half a pixel; each row / column takes their mean.
    """
    line, sample = np.ravel(np.asarray(line, np.float64)), np.ravel(np.asarray(sample, np.float64))
    lat, lon = np.ravel(np.asarray(latitude, np.float64)), np.ravel(np.asarray(longitude, np.float64))
    if not (line.size == sample.size == lat.size == lon.size):
        raise GeolocationError("sar_grid_line / sample / latitude / longitude differ in length")
    row_values = np.unique(np.round(line, 0))
    col_values = np.unique(np.round(sample, 0))
    n, m = row_values.size, col_values.size
    if n * m != line.size:
        raise GeolocationError(f"{line.size} tie points do not form a grid ({n} distinct lines x {m} distinct samples)")
    order = np.lexsort((sample, line))  # by line, then sample
    grid_line = line[order].reshape(n, m)
    grid_sample = sample[order].reshape(n, m)
    if np.ptp(grid_line, axis=1).max() > 0.5 or np.ptp(grid_sample, axis=0).max() > 0.5:
        raise GeolocationError("tie points are not on a regular line / sample grid")
    return _checked(grid_line.mean(axis=1), grid_sample.mean(axis=0),
                    lat[order].reshape(n, m), lon[order].reshape(n, m))


def tie_points_from_rtt(latitude_2d, longitude_2d, shape: tuple[int, int]) -> TiePoints:
    """Ready-to-train tie points: `sar_grid2d_*` arrays (samples first) on a scene of SAR `shape`.

    The tie points are spread evenly over lines and samples including the first and last.
    """
    lat = np.asarray(latitude_2d, np.float64).T  # (lines, samples)
    lon = np.asarray(longitude_2d, np.float64).T
    n, m = lat.shape
    height, width = shape
    return _checked(np.linspace(0.0, height - 1, n), np.linspace(0.0, width - 1, m), lat, lon)


def _cell_index(axis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Tie cell (0..n-2) of each coordinate; beyond the ends the edge cell (linear extension)."""
    return np.clip(np.searchsorted(axis, x, side="right") - 1, 0, axis.size - 2)


def _bilinear(tp: TiePoints, field: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """Value and partial derivatives (d/drow, d/dcol) of the piecewise-bilinear interpolant."""
    i, j = _cell_index(tp.lines, rows), _cell_index(tp.samples, cols)
    l0, l1 = tp.lines[i], tp.lines[i + 1]
    s0, s1 = tp.samples[j], tp.samples[j + 1]
    u, v = (rows - l0) / (l1 - l0), (cols - s0) / (s1 - s0)
    f00, f01, f10, f11 = field[i, j], field[i, j + 1], field[i + 1, j], field[i + 1, j + 1]
    value = (1 - u) * (1 - v) * f00 + (1 - u) * v * f01 + u * (1 - v) * f10 + u * v * f11
    d_u = (1 - v) * (f10 - f00) + v * (f11 - f01)
    d_v = (1 - u) * (f01 - f00) + u * (f11 - f10)
    return value, d_u / (l1 - l0), d_v / (s1 - s0)


def wrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Degrees into [-180, 180)."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def pixel_latlon(tp: TiePoints, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Latitude, longitude (float64 degrees, longitude in [-180, 180)) at SAR (row, col) positions."""
    rows, cols = np.broadcast_arrays(np.asarray(rows, np.float64), np.asarray(cols, np.float64))
    lat, _, _ = _bilinear(tp, tp.latitude, rows, cols)
    lon, _, _ = _bilinear(tp, tp.longitude, rows, cols)
    return lat, wrap_longitude(lon)


def _axis_weights(axis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Dense [len(x), len(axis)] linear-interpolation matrix (edge cells extended)."""
    k = _cell_index(axis, x)
    t = (x - axis[k]) / (axis[k + 1] - axis[k])
    w = np.zeros((x.size, axis.size))
    w[np.arange(x.size), k] = 1.0 - t
    w[np.arange(x.size), k + 1] += t
    return w


def raw_tie_grid(line, sample, values) -> np.ndarray:
    """A 1-D raw tie-point variable (e.g. `sar_grid_incidenceangle`) as the [n_lines, n_samples] grid
    of `tie_points_from_raw` (same ordering: by line, then sample)."""
    line, sample = np.ravel(np.asarray(line, np.float64)), np.ravel(np.asarray(sample, np.float64))
    values = np.ravel(np.asarray(values, np.float64))
    n = np.unique(np.round(line, 0)).size
    if values.size != line.size or line.size % n:
        raise GeolocationError("tie-point variable does not match sar_grid_line / sar_grid_sample")
    return values[np.lexsort((sample, line))].reshape(n, line.size // n)


def grid_field(tp: TiePoints, field: np.ndarray, shape: tuple[int, int], step: int = 1,
               dtype=np.float32) -> np.ndarray:
    """Any field on the tie-point grid [n, m] interpolated bilinearly onto every `step`-th pixel.

    Two matrix products (rows, then columns); the full-size product is computed in `dtype`.
    """
    rows = np.arange(0, shape[0], step, dtype=np.float64)
    cols = np.arange(0, shape[1], step, dtype=np.float64)
    wr, wc = _axis_weights(tp.lines, rows), _axis_weights(tp.samples, cols)
    by_rows = (wr @ np.asarray(field, np.float64)).astype(dtype)
    return by_rows @ wc.T.astype(dtype)


def latlon_grid(tp: TiePoints, shape: tuple[int, int], step: int = 1,
                dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Latitude, longitude on every `step`-th pixel of a scene of SAR `shape`: [ceil(H/step), ceil(W/step)].

    A tensor-product bilinear interpolant is W_rows @ field @ W_cols^T, so a whole 5000 x 5000 grid is
    two small matrix products, not 25 M bilinear look-ups.
    """
    rows = np.arange(0, shape[0], step, dtype=np.float64)
    cols = np.arange(0, shape[1], step, dtype=np.float64)
    wr, wc = _axis_weights(tp.lines, rows), _axis_weights(tp.samples, cols)
    lat = wr @ tp.latitude @ wc.T
    lon = wrap_longitude(wr @ tp.longitude @ wc.T)
    return lat.astype(dtype), lon.astype(dtype)


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def latlon_to_pixel(tp: TiePoints, latitude, longitude, *, max_iter: int = 30,
                    tol_px: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """SAR (row, col) float64 positions of (lat, lon) points: the inverse of `pixel_latlon`.

    Newton's method on the piecewise-bilinear map, started at the nearest tie point (great-circle),
    residuals measured in local metres-like units (longitude scaled by cos(latitude)). Points outside
    the tie grid come out beyond [0, H-1] x [0, W-1] (the edge cells extend linearly); callers keep
    the positions inside their scene. Points where Newton does not converge (far from the scene)
    get NaN.
    """
    lat = np.asarray(latitude, np.float64)
    lon = np.asarray(longitude, np.float64)
    shape = np.broadcast_shapes(lat.shape, lon.shape)
    lat, lon = np.broadcast_to(lat, shape).ravel(), np.broadcast_to(lon, shape).ravel()
    from scipy import spatial  # here: reading a scene does not need it (0.45 s to import)

    tree = spatial.cKDTree(_unit_vectors(tp.latitude, tp.longitude).reshape(-1, 3))
    _, nearest = tree.query(_unit_vectors(lat, lon))
    i, j = np.unravel_index(nearest, tp.grid_shape)
    rows, cols = tp.lines[i].copy(), tp.samples[j].copy()
    # The query longitude on the tie grid's unwrapped branch nearest to its starting tie point.
    lon = tp.longitude[i, j] + wrap_longitude(lon - tp.longitude[i, j])
    coslat = np.cos(np.deg2rad(lat))
    converged = np.zeros(lat.shape, bool)
    for _ in range(max_iter):
        f_lat, dlat_r, dlat_c = _bilinear(tp, tp.latitude, rows, cols)
        f_lon, dlon_r, dlon_c = _bilinear(tp, tp.longitude, rows, cols)
        r_y, r_x = lat - f_lat, (lon - f_lon) * coslat
        a, b, c, d = dlat_r, dlat_c, dlon_r * coslat, dlon_c * coslat  # Jacobian [[a, b], [c, d]]
        det = a * d - b * c
        ok = np.abs(det) > 1e-30
        det = np.where(ok, det, 1.0)
        step_r = np.where(ok, (d * r_y - b * r_x) / det, 0.0)
        step_c = np.where(ok, (-c * r_y + a * r_x) / det, 0.0)
        rows, cols = rows + step_r, cols + step_c
        converged = ok & (np.abs(step_r) < tol_px) & (np.abs(step_c) < tol_px)
        if converged.all():
            break
    # One more residual check: a point converged when its last Newton step was negligible.
    rows = np.where(converged, rows, np.nan)
    cols = np.where(converged, cols, np.nan)
    return rows.reshape(shape), cols.reshape(shape)
