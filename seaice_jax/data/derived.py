"""Inputs derived from a scene's geolocation and time (channels.DERIVED_CHANNELS), computed on request.

Apart from the reader so that `Scene.channel` can compute them without importing the reader.
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
