"""The in-memory scene every reader returns and every consumer (shards, inference, metrics) takes."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from seaice_jax.data.geolocation import TiePoints


class SceneError(ValueError):
    """A scene file that cannot be used; the message names the file and the problem on one line."""


@dataclasses.dataclass
class Scene:
    """One AI4Arctic scene on its SAR grid.

    Attributes:
      name: scene name (file name without `.nc`, e.g. `20190430T101830_cis_prep`).
      path: file the scene was read from.
      product: 'rtt' (80 m ready-to-train) or 'raw' (40 m).
      channels: channel name -> float32 [H, W], standard-scaled with the published statistics, on
        the SAR grid (2 km channels already interpolated). SAR no-data pixels are 0.
      sic, sod, floe: uint8 [H, W] chart classes, 255 = masked.
      region_ids: int32 [H, W], 0..R-1 region (polygon) index, -1 outside any usable region
        (land, no data, polygons without a concentration).
      region_conc: float32 [R], each region's total ice concentration in [0, 1].
      valid: bool [H, W], pixels that are neither land nor SAR no-data.
      ice_truth: uint8 [H, W] (1 ice, 0 water, 255 land) for synthetic scenes, else None.
      tie_points: the scene's geolocation tie-point grid (geolocation.TiePoints), None if the file
        has none. Per-pixel latitude / longitude: `latlon(step)`.
      start_time: acquisition start (numpy datetime64[s]) from the file name or attributes, or None.
      chart_report: what the chart held that the rules could not use (raw scenes: unknown SIGRID
        codes, the polygons and pixels they affect), see scene.chart_report; empty when all was used.
    """

    name: str
    path: str
    product: str
    channels: dict[str, np.ndarray]
    sic: np.ndarray
    sod: np.ndarray
    floe: np.ndarray
    region_ids: np.ndarray
    region_conc: np.ndarray
    valid: np.ndarray
    ice_truth: np.ndarray | None = None
    tie_points: TiePoints | None = None
    start_time: np.datetime64 | None = None
    chart_report: dict = dataclasses.field(default_factory=dict)

    def latlon(self, step: int = 1, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
        """Latitude, longitude (degrees, longitude in [-180, 180)) on every `step`-th pixel:
        [ceil(H / step), ceil(W / step)] each, bilinear on the tie points. Raises ValueError without."""
        from seaice_jax.data.geolocation import latlon_grid

        if self.tie_points is None:
            raise ValueError(f"{self.name}: the scene has no tie points (no geolocation)")
        return latlon_grid(self.tie_points, self.shape, step=step, dtype=dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return self.sic.shape

    def channel(self, name: str) -> np.ndarray:
        """One input channel float32 [H, W]: read, or derived on request (channels.DERIVED_CHANNELS)."""
        if name in self.channels:
            return self.channels[name]
        from seaice_jax.data.channels import DERIVED_CHANNELS
        from seaice_jax.data.derived import derived_channel

        if name not in DERIVED_CHANNELS:
            raise KeyError(f"{self.name}: channel {name!r} was not read")
        return derived_channel(name, self.tie_points, self.start_time, self.shape)

    def stack(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Inputs as float32 [H, W, C] in the order of `names` (derived channels computed if not read)."""
        return np.stack([self.channel(n) for n in names], axis=-1).astype(np.float32, copy=False)
