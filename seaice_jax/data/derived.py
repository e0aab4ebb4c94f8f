"""Inputs derived from a scene's geolocation and time (channels.DERIVED_CHANNELS), computed on request.

Apart from the reader so that `Scene.channel` can compute them without importing the reader. They are
smooth (latitude, longitude) or constant (month, day of year) over a scene, so compact shards keep
them on the 2 km cell grid like AMSR2 and ERA5 (`derived_cell_grid`) and the step interpolates them
back: for a piecewise-bilinear tie-point field sampled every 25 (50) pixels the difference from the
full-resolution channel is far below the float16 rounding of the SAR channels.
"""

from __future__ import annotations

import math

import numpy as np

from seaice_jax.data import geolocation
from seaice_jax.data.channels import channel_stats


def derived_channel(name: str, tie_points, start_time, shape: tuple[int, int]) -> np.ndarray:
    """One derived input (channels.DERIVED_CHANNELS) on the SAR grid, float32 [H, W]."""
    if name in ("latitude", "longitude_sin", "longitude_cos"):
        if tie_points is None:
            raise ValueError(f"channel {name!r} needs tie points (geolocation) and the scene has none")
        if name == "latitude":
            mean, std = channel_stats(name)
            lat = geolocation.grid_field(tie_points, tie_points.latitude, shape)
            return (lat - np.float32(mean)) / np.float32(std)
        lon = np.deg2rad(geolocation.grid_field(tie_points, tie_points.longitude, shape))  # float32
        return (np.sin(lon) if name == "longitude_sin" else np.cos(lon)).astype(np.float32)
    if start_time is None:
        raise ValueError(f"channel {name!r} needs the acquisition time and the scene has none")
    when = start_time.astype("datetime64[s]").item()
    if name.startswith("month"):
        angle = 2.0 * math.pi * (when.month - 1) / 12.0
    else:
        angle = 2.0 * math.pi * (when.timetuple().tm_yday - 1) / 365.25
    value = math.sin(angle) if name.endswith("_sin") else math.cos(angle)
    return np.full(shape, value, np.float32)


def derived_cell_grid(name: str, tie_points, start_time, shape: tuple[int, int], pixels_per_cell: int) -> np.ndarray:
    """A derived input at the centres of the 2 km cells of a scene of SAR `shape`: float32
    [floor(H / f), floor(W / f)], cell (i, j) sampled at pixel (f i + (f - 1) / 2, f j + (f - 1) / 2)."""
    f = pixels_per_cell
    cells_shape = (max(shape[0] // f, 1), max(shape[1] // f, 1))
    if name in ("latitude", "longitude_sin", "longitude_cos"):
        if tie_points is None:
            raise ValueError(f"channel {name!r} needs tie points (geolocation) and the scene has none")
        rows = f * np.arange(cells_shape[0]) + (f - 1) / 2
        cols = f * np.arange(cells_shape[1]) + (f - 1) / 2
        lat, lon = geolocation.pixel_latlon(tie_points, rows[:, None], cols[None, :])
        if name == "latitude":
            mean, std = channel_stats(name)
            return ((lat - mean) / std).astype(np.float32)
        lon = np.deg2rad(lon)
        return (np.sin(lon) if name == "longitude_sin" else np.cos(lon)).astype(np.float32)
    return derived_channel(name, tie_points, start_time, cells_shape)
