"""The names and cutting settings of a shard folder: file names, format version, `PatchSpec`.

Shared by the writer of the shards (data.shards) and of their manifest (data.manifest).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seaice_jax.data import channels as ch
from seaice_jax.data import compact

DATASET_NAME = compact.DATASET_NAME
SHARD_SUFFIX = ".array_record"
SHARD_TEMPLATE = compact.SHARD_TEMPLATE
SPLITS = ("train", "validation")
MANIFEST = "manifest.json"
NORMALISATION = "normalisation.json"
ALTIMETRY_INDEX = "altimetry_index.json"  # the altimetry folders' index (altimetry.index), cached
FORMAT_VERSION = compact.FORMAT_VERSION


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    """How patches are cut: these must match across all shards of one output folder."""

    patch_size: int = 256
    stride: int = 256
    downsample: int = 1
    max_regions: int = 64
    channels: tuple[str, ...] = ch.STORED_CHANNELS  # the 24 standard channels + the derived ones
    max_points: int = 0  # altimeter points per patch (0: no altimetry in the shards)
    max_time_gap_h: float = 0.0  # altimeter points within this many hours of the SAR start
    footprint_pixels: int = 8  # pixels kept per footprint (the largest area fractions)

    def __post_init__(self):
        for flag, value in (("--patch-size", self.patch_size), ("--stride", self.stride),
                            ("--downsample", self.downsample), ("--max-regions", self.max_regions),
                            ("footprint_pixels", self.footprint_pixels)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{flag} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.max_points, (int, np.integer)) or self.max_points < 0:
            raise ValueError(f"--max-points must be a whole number >= 0, got {self.max_points!r}")
        if self.max_points and not self.max_time_gap_h > 0:
            raise ValueError(f"--max-time-gap-h must be > 0 hours, got {self.max_time_gap_h!r}")
        if not self.channels:
            raise ValueError("--channels selects no channel")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["format_version"] = FORMAT_VERSION
        if not self.max_points:  # shards without altimetry: the settings of format 2
            for k in ("max_points", "max_time_gap_h", "footprint_pixels"):
                d.pop(k)
        return d

    @property
    def layout(self) -> compact.Layout:
        return compact.Layout.from_spec(self)


def spec_from_dict(d: dict) -> PatchSpec:
    """The PatchSpec of a sidecar's / manifest's `spec` (format 2 dicts have no altimetry fields)."""
    return PatchSpec(d["patch_size"], d["stride"], d["downsample"], d["max_regions"], tuple(d["channels"]),
                     int(d.get("max_points", 0)), float(d.get("max_time_gap_h", 0.0)),
                     int(d.get("footprint_pixels", 8)))


def shard_name(split: str, index: int) -> str:
    return f"{DATASET_NAME}-{split}{SHARD_SUFFIX}-{index:05d}"
