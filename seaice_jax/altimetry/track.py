"""The in-memory types every altimetry reader returns: `Track` (nadir points) and `Swath` (SWOT).

Conventions (all readers):
  * time: float64 seconds since 1970-01-01T00:00:00 UTC. Product epochs and units are read from the
    file's own `units` attributes where it has them (netCDF products); ICESat-2 `delta_time` counts
    from the ATLAS SDP epoch 2018-01-01T00:00Z (`ancillary_data/atlas_sdp_gps_epoch` when present).
    No leap-second correction between GPS / TAI / UTC is applied beyond what the epochs imply
    (tens of seconds at most, negligible against SAR-altimeter time gaps of hours).
  * latitude / longitude: float64 degrees, longitude in [-180, 180).
  * value: float32 metres, freeboard (`kind == 'freeboard'`) or surface height (`kind == 'height'`);
    NaN where the file holds its fill value.
  * uncertainty: float32 metres, the product's own per-point uncertainty, or the mission default
    where the product states none (noted in `Track.attrs['uncertainty_source']`).
  * surface: uint8, one of FLOE / LEAD / SEA_SURFACE / UNKNOWN.
  * quality: bool, True = usable (product quality flags good and value finite).
  * footprint_along / footprint_across: float32 metres, the footprint size along / across the track.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re

import numpy as np

FLOE = 0
LEAD = 1
SEA_SURFACE = 2
UNKNOWN = 255
SURFACE_NAMES = {FLOE: "floe", LEAD: "lead", SEA_SURFACE: "sea_surface", UNKNOWN: "unknown"}

# Footprint sizes on the ground (metres): ICESat-2 ~17 m spots over a segment (the segment length is
# read per point); CryoSat-2 SAR ~300 m along (20 Hz posting) x ~1.6 km across (pulse limited, U);
# Sentinel-3 SRAL SAR treated like CryoSat-2.
ICESAT2_SPOT_M = 17.0
CRYOSAT2_FOOTPRINT_M = (300.0, 1600.0)
SENTINEL3_FOOTPRINT_M = (300.0, 1600.0)
SWOT_PIXEL_M = 250.0
# Mission default uncertainties where a product states none (AWI: 0.10 m per CS2 point, V).
DEFAULT_UNCERTAINTY_M = {"cryosat2": 0.10, "sentinel3a": 0.10, "sentinel3b": 0.10, "icesat2": 0.03}


class AltimetryFormatError(ValueError):
    """A file that is not a supported altimeter product, or lacks something; one-line message."""

    def __init__(self, path, problem: str):
        msg = f"{path}: {problem}".replace("\n", " ")
        super().__init__(msg)


_EPOCH_RE = re.compile(r"^\s*(seconds|days)\s+since\s+(\d{4})-(\d{1,2})-(\d{1,2})"
                       r"(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d*)?))?")


def seconds_since_to_unix(values, units: str, path="<file>") -> np.ndarray:
    """Times in `units` ('seconds since 2000-01-01 00:00:00.0', 'days since ...') -> unix seconds."""
    m = _EPOCH_RE.match(str(units))
    if not m:
        raise AltimetryFormatError(path, f"time units {units!r} are not 'seconds|days since <date>'")
    unit, y, mo, d, hh, mm, ss = m.groups()
    epoch = _dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), 0, tzinfo=_dt.UTC)
    offset = epoch.timestamp() + float(ss or 0.0)
    scale = 86400.0 if unit == "days" else 1.0
    return np.asarray(values, np.float64) * scale + offset


def to_unix_seconds(t) -> float:
    """A time as unix seconds: float/int (already unix), datetime (naive = UTC), np.datetime64, ISO string."""
    if t is None:
        raise ValueError("time is None")
    if isinstance(t, (int, float, np.floating, np.integer)):
        return float(t)
    if isinstance(t, np.datetime64):
        return float((t - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "us")) * 1e-6
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return t.timestamp()
    if isinstance(t, str):
        s = t.strip().replace("Z", "")
        for fmt in ("%Y%m%dT%H%M%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
            try:
                return _dt.datetime.strptime(s, fmt).replace(tzinfo=_dt.UTC).timestamp()
            except ValueError:
                pass
        raise ValueError(f"cannot parse time {t!r}")
    raise TypeError(f"unsupported time type {type(t).__name__}")


def unix_to_datetime(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(float(t), tz=_dt.UTC)


def to_seconds(gap) -> float:
    """A duration (seconds or timedelta) as float seconds."""
    if isinstance(gap, _dt.timedelta):
        return gap.total_seconds()
    if isinstance(gap, np.timedelta64):
        return float(gap / np.timedelta64(1, "us")) * 1e-6
    return float(gap)


def wrap_lon(lon):
    return (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0


@dataclasses.dataclass
class Track:
    """One altimeter track (an ICESat-2 beam, a CryoSat-2 / Sentinel-3 pass) as points."""

    time: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    value: np.ndarray
    uncertainty: np.ndarray
    surface: np.ndarray
    quality: np.ndarray
    footprint_along: np.ndarray
    footprint_across: np.ndarray
    kind: str = "freeboard"  # 'freeboard' | 'height'
    mission: str = ""  # 'icesat2', 'cryosat2', 'sentinel3a', ...
    product: str = ""  # 'ATL10', 'ATL07', 'SIR_SAR_2', 'L2P', 'SR_2_LAN_SI', ...
    beam: str = ""  # ICESat-2 beam (gt1l...), '' otherwise
    track_id: str = ""  # unique name: '<granule>:<beam>'
    path: str = ""
    attrs: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = np.asarray(self.time).shape[0]
        self.time = np.asarray(self.time, np.float64)
        self.latitude = np.asarray(self.latitude, np.float64)
        self.longitude = wrap_lon(self.longitude)
        self.value = np.asarray(self.value, np.float32)
        self.uncertainty = np.broadcast_to(np.asarray(self.uncertainty, np.float32), (n,)).copy()
        self.surface = np.asarray(self.surface, np.uint8)
        self.quality = np.asarray(self.quality, bool) & np.isfinite(self.value)
        self.footprint_along = np.broadcast_to(np.asarray(self.footprint_along, np.float32), (n,)).copy()
        self.footprint_across = np.broadcast_to(np.asarray(self.footprint_across, np.float32), (n,)).copy()
        for name in ("latitude", "longitude", "value", "surface", "quality"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Track.{name} has shape {getattr(self, name).shape}, expected ({n},)")

    def __len__(self) -> int:
        return self.time.shape[0]

    def select(self, mask) -> Track:
        """The points where `mask` (bool or index array) holds."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("time", "latitude", "longitude", "value", "uncertainty", "surface", "quality",
                     "footprint_along", "footprint_across"):
            fields[name] = fields[name][mask]
        n = len(self)
        # per-point arrays in attrs (e.g. a simulator's true values) follow the selection
        fields["attrs"] = {k: (v[mask] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v)
                           for k, v in self.attrs.items()}
        return Track(**fields)

    def good(self) -> Track:
        """Only the points with quality True."""
        return self.select(self.quality)


@dataclasses.dataclass
class Swath:
    """One SWOT KaRIn swath side (validation only, never training points).

    height: float32 [L, P] metres, `ssh_karin_2` (or `ssh_karin`) + `height_cor_xover`;
    mss: float32 [L, P] mean sea surface where the file has one (else NaN); time: [L] unix seconds.
    """

    time: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    height: np.ndarray
    mss: np.ndarray
    quality: np.ndarray
    side: str = ""  # 'left' | 'right'
    mission: str = "swot"
    product: str = "L2_LR_SSH_Unsmoothed"
    pixel_size: float = SWOT_PIXEL_M
    uncertainty: float = 0.07  # metres, point-wise std vs ICESat-2 over sea ice (Mueller 2026: 6-8 cm)
    track_id: str = ""
    path: str = ""
    attrs: dict = dataclasses.field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height.shape

    def anomaly(self) -> np.ndarray:
        """height - mss (NaN where either is missing)."""
        return self.height - self.mss

    def as_track(self, value=None) -> Track:
        """The swath pixels as one Track (good pixels only), square footprints of `pixel_size`."""
        value = self.anomaly() if value is None else np.asarray(value, np.float32)
        times = np.broadcast_to(self.time[:, None], self.height.shape)
        ok = self.quality & np.isfinite(value) & np.isfinite(self.latitude) & np.isfinite(self.longitude)
        n = int(ok.sum())
        return Track(time=times[ok], latitude=self.latitude[ok], longitude=self.longitude[ok],
                     value=value[ok], uncertainty=np.full(n, self.uncertainty, np.float32),
                     surface=np.full(n, UNKNOWN, np.uint8), quality=np.ones(n, bool),
                     footprint_along=np.full(n, self.pixel_size), footprint_across=np.full(n, self.pixel_size),
                     kind="height", mission=self.mission, product=self.product, beam=self.side,
                     track_id=self.track_id, path=self.path)
