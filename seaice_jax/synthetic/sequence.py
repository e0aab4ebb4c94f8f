"""A synthetic time series: N scenes of ONE ice field on consecutive days, moved by a known drift (issue 13).

The ice lives on a geographic "plane" (pixels of the scene spacing, (0, 0) at the scenes' common
centre; lat / lon through one local tangent map, `PlaneGeo`). A world surface (classes, freeboard truth,
the persistent ice texture of the SAR) is drawn once at time 0 on a plane window large enough for every
scene's source area. The drift is a stationary `KnownDrift` on the plane (translation 5-20 km/day in a
random direction, rotation, divergence, shear and a lead that opens or closes).

Scene k (time t_k = t_0 + k days + a few hours) sees the plane through its own pass geometry: plane =
centre_k + Rot(phi_k) (pixel - scene centre) (`Frame`: shifted by tens of pixels and turned by a few
degrees, so consecutive tie points differ). Its ice is the world ice at flow(plane, -t_k): labels and
freeboard by nearest neighbour, texture bilinear. Land and fast ice stay put; ice that left the coast
leaves open water; where the flow opened the ice by more than `OPEN_AREA_RATIO` the pixel is a new open
lead (freeboard 0). Each scene then gets its own chart, wind, incidence, speckle and no-data border
(`layout.synthesize_scene` with the surface / texture / truth / geolocation given).

Tracks: for each scene, passes at its own time and on the days `TRACK_DAYS` around it; the passes of day
d sample the ice at day d's positions (a frame that moved with the ice, so the ice they see drifts into
the scene by the scene's time). Uncompensated, they land on the wrong floes. Passes fall within
`PASS_TIME_OFFSET_S` of the time their ice is rendered at (the simulator samples one snapshot).

Beside the scenes: `<out>/drift_truth/<tA>_<tB>_drift_truth.nc` (drift NetCDF, method 'truth', on scene
A's grid, for every pair) and `<out>/drift_truth/sequence.json` (drift parameters, frames, geolocation,
scene names and times) from which `true_flow_latlon` moves any point exactly. The evaluation tools take
this truth through `true_flow` / `find_true_flow` (a point flow) and `pair_truth` (the truth of a drift file's pair).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os

import numpy as np
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.data import geolocation as geo
from seaice_jax.drift import estimation as drift_lib
from seaice_jax.drift import io as drift_io
from seaice_jax.synthetic.drift import KnownDrift
from seaice_jax.synthetic.freeboard import FreeboardTruth, scene_freeboard, truth_from_dataset
from seaice_jax.synthetic.freeboard import _stream as alt_stream
from seaice_jax.synthetic.layout import (
    CHART_REGIONS,
    NUM_TIEPOINTS,
    chart_region,
    default_start_time,
    resolve_service,
    scene_seed,
    split_test_reference,
    synthesize_scene,
    write_scene,
)
from seaice_jax.synthetic.surface import LAND, WATER, Surface, gaussian_random_field, make_surface
from seaice_jax.synthetic.tracks import (
    ALTIMETRY_DIR,
    DEFAULT_PASSES,
    simulate_altimetry,
    write_synthetic_altimetry,
)
from seaice_jax.synthetic.tracks import _tie_points as alt_tie_points

TRUTH_DIR = "drift_truth"
SEQUENCE_FILE = "sequence.json"
TRACK_DAYS = (-7, -3, -1, 1, 3, 7)
OPEN_AREA_RATIO = 1.5      # area ratio above which the ice opened into a new open lead
TRUTH_GRID_STEP_PX = 16    # truth drift grid on scene A
PASS_TIME_OFFSET_S = 600.0  # altimeter passes within 10 min of the time of the ice they sample
_KM_PER_DEG = 111_195.0


def _stream(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (2**63), tag]))


@dataclasses.dataclass(frozen=True)
class PlaneGeo:
    """Plane pixel (row, col) <-> lat / lon: a local tangent map about (lat0, lon0) with a pass heading."""

    lat0: float
    lon0: float
    heading_rad: float
    spacing_m: float

    def latlon(self, r, c):
        along, across = np.asarray(r, np.float64) * self.spacing_m, np.asarray(c, np.float64) * self.spacing_m
        h = self.heading_rad
        north = along * np.cos(h) - across * np.sin(h)
        east = along * np.sin(h) + across * np.cos(h)
        lat = self.lat0 + north / _KM_PER_DEG
        lon = self.lon0 + east / (_KM_PER_DEG * np.cos(np.deg2rad(lat)))
        return lat, (lon + 180.0) % 360.0 - 180.0

    def plane(self, lat, lon):
        lat = np.asarray(lat, np.float64)
        dlon = (np.asarray(lon, np.float64) - self.lon0 + 180.0) % 360.0 - 180.0
        north = (lat - self.lat0) * _KM_PER_DEG
        east = dlon * _KM_PER_DEG * np.cos(np.deg2rad(lat))
        h = self.heading_rad
        along = north * np.cos(h) + east * np.sin(h)
        across = -north * np.sin(h) + east * np.cos(h)
        return along / self.spacing_m, across / self.spacing_m


@dataclasses.dataclass(frozen=True)
class Frame:
    """A scene's pixels on the plane: plane = centre + Rot(phi) (pixel - (shape - 1) / 2)."""

    centre: tuple[float, float]
    phi_rad: float
    shape: tuple[int, int]

    def to_plane(self, r, c):
        y = np.asarray(r, np.float64) - (self.shape[0] - 1) / 2
        x = np.asarray(c, np.float64) - (self.shape[1] - 1) / 2
        cp, sp = np.cos(self.phi_rad), np.sin(self.phi_rad)
        return self.centre[0] + cp * y - sp * x, self.centre[1] + sp * y + cp * x

    def from_plane(self, pr, pc):
        y, x = np.asarray(pr, np.float64) - self.centre[0], np.asarray(pc, np.float64) - self.centre[1]
        cp, sp = np.cos(self.phi_rad), np.sin(self.phi_rad)
        return cp * y + sp * x + (self.shape[0] - 1) / 2, -sp * y + cp * x + (self.shape[1] - 1) / 2

    def moved(self, drift, days: float) -> Frame:
        r, c = drift.flow(np.array([self.centre[0]]), np.array([self.centre[1]]), days)
        return Frame((float(r[0]), float(c[0])), self.phi_rad, self.shape)


def draw_drift(rng: np.random.Generator, spacing_m: float):
    """A realistic smooth drift on the plane (rates per day)."""
    speed = rng.uniform(5_000.0, 20_000.0)
    angle = rng.uniform(0.0, 2 * np.pi)
    return KnownDrift(
        translation_m_per_day=(float(speed * np.cos(angle)), float(speed * np.sin(angle))),
        rotation_deg_per_day=float(rng.uniform(0.3, 1.5) * rng.choice([-1, 1])),
        divergence_per_day=float(rng.uniform(-0.02, 0.02)),
        shear_per_day=float(rng.uniform(0.0, 0.03)),
        centre_px=(0.0, 0.0),
        lead_opening_m_per_day=float(rng.uniform(150.0, 400.0) * rng.choice([-1, 1, 1])),
        lead_angle_deg=float(rng.uniform(0.0, 180.0)),
        lead_offset_px=float(rng.uniform(-150.0, 150.0)),
        lead_width_px=3.0, pixel_spacing_m=spacing_m)


def deformation_per_day(drift) -> float:
    """Total deformation rate of the smooth part (1/day): sqrt(divergence^2 + shear^2)."""
    return float(np.hypot(drift.divergence_per_day, drift.shear_per_day))


@dataclasses.dataclass
class World:
    """The ice at time 0 on the plane window [origin, origin + shape)."""

    origin: tuple[int, int]
    surface: object          # Surface (world arrays)
    freeboard: object        # FreeboardTruth (no no-data)
    texture_db: np.ndarray   # persistent ice texture (dB)


def _source_coords(frame: Frame, drift, days: float, step: int = 2):
    """(plane rows, plane cols at the scene's time, source plane rows, cols at time 0) [H, W] float32."""
    h, w = frame.shape
    rs = np.arange(0, h + step, step, dtype=np.float64)
    cs = np.arange(0, w + step, step, dtype=np.float64)
    R, C = np.meshgrid(rs, cs, indexing="ij")
    pr, pc = frame.to_plane(R, C)
    sr, sc = drift.flow(pr, pc, -days) if days else (pr, pc)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coarse = [yy / step, xx / step]

    def up(a):
        return ndimage.map_coordinates(a.astype(np.float64), coarse, order=1)

    # area ratio: 1 / det of d(source) / d(pixel) (the frame's rotation has det 1)
    dr_r, dr_c = np.gradient(sr, step, axis=0), np.gradient(sr, step, axis=1)
    dc_r, dc_c = np.gradient(sc, step, axis=0), np.gradient(sc, step, axis=1)
    det = dr_r * dc_c - dr_c * dc_r
    return up(pr), up(pc), up(sr), up(sc), up(1.0 / det).astype(np.float32)


def render(world: World, frame: Frame, drift, days: float):
    """(Surface, FreeboardTruth, texture dB) of the world seen through `frame` at `days` after time 0."""
    pr, pc, sr, sc, ratio = _source_coords(frame, drift, days)
    ws = world.surface.surface.shape

    def idx(r, c):
        i = np.clip(np.rint(r - world.origin[0]).astype(np.int64), 0, ws[0] - 1)
        j = np.clip(np.rint(c - world.origin[1]).astype(np.int64), 0, ws[1] - 1)
        return i, j

    fi, fj = idx(pr, pc)   # fixed (geographic): land, fast ice, distance to land
    si, sj = idx(sr, sc)   # moved ice
    base = world.surface
    land = base.surface[fi, fj] == LAND
    fixed = land | base.fast_ice[fi, fj]
    moved_surface = base.surface[si, sj]
    opened = (ratio > OPEN_AREA_RATIO) | (moved_surface == LAND) | base.fast_ice[si, sj]
    surf = np.where(fixed, base.surface[fi, fj], np.where(opened, WATER, moved_surface)).astype(base.surface.dtype)

    def pick(a):
        return np.where(fixed, a[fi, fj], a[si, sj])

    water = (surf == WATER) & ~fixed
    surface = Surface(surface=surf, concentration=pick(base.concentration).astype(np.float32),
                      ponds=np.where(water, 0.0, pick(base.ponds)).astype(np.float32),
                      distance_km=base.distance_km[fi, fj].astype(np.float32), fast_ice=base.fast_ice[fi, fj] & ~land)
    fb = world.freeboard
    out = {}
    for name in ("ice_freeboard", "snow_depth", "laser_freeboard", "radar_freeboard", "roughness"):
        a = pick(getattr(fb, name)).astype(np.float32)
        a[water] = 0.0
        a[land] = np.nan
        out[name] = a
    lead = (pick(fb.lead) | water) & ~land
    truth = FreeboardTruth(lead=lead, valid=~land, **out)
    texture = ndimage.map_coordinates(world.texture_db, [sr - world.origin[0], sc - world.origin[1]], order=1,
                                      mode="nearest")
    texture = np.where(fixed, world.texture_db[fi, fj], texture).astype(np.float32)
    return surface, truth, texture


def _frames(rng, n: int, shape, drift):
    frames = []
    for _ in range(n):
        jitter = rng.uniform(-40.0, 40.0, 2)
        frames.append(Frame((float(jitter[0]), float(jitter[1])), float(np.deg2rad(rng.uniform(-3.0, 3.0))),
                            tuple(shape)))
    return frames


def _world_window(frames, days, drift, track_days, margin: int = 48):
    pts_r, pts_c = [], []
    for f, d in zip(frames, days, strict=True):
        h, w = f.shape
        edge = np.linspace(0, 1, 17)
        rr = np.concatenate([edge * (h - 1), edge * (h - 1), np.zeros(17), np.full(17, h - 1.0)])
        cc = np.concatenate([np.zeros(17), np.full(17, w - 1.0), edge * (w - 1), edge * (w - 1)])
        pr, pc = f.to_plane(rr, cc)
        pts_r += [pr]
        pts_c += [pc]
        sr, sc = drift.flow(pr, pc, -d)
        pts_r += [sr]
        pts_c += [sc]
        for td in track_days:  # the frames the tracks of other days see (fixed parts too)
            g = f.moved(drift, td)
            gr, gc = g.to_plane(rr, cc)
            pts_r += [gr]
            pts_c += [gc]
            sr, sc = drift.flow(gr, gc, -(d + td))
            pts_r += [sr]
            pts_c += [sc]
    r, c = np.concatenate(pts_r), np.concatenate(pts_c)
    r0, c0 = int(np.floor(r.min())) - margin, int(np.floor(c.min())) - margin
    r1, c1 = int(np.ceil(r.max())) + margin, int(np.ceil(c.max())) + margin
    return (r0, c0), (r1 - r0, c1 - c0)


def tie_point_geo(frame: Frame, plane_geo: PlaneGeo, product: str) -> dict:
    """The tie points of a frame, in the layout's format (21 x 21, lines / samples)."""
    h, w = frame.shape
    lines = np.linspace(0, h - 1, min(NUM_TIEPOINTS, h))
    samples = np.linspace(0, w - 1, min(NUM_TIEPOINTS, w))
    if product == "raw":
        lines, samples = lines.round(), samples.round()
    R, C = np.meshgrid(lines, samples, indexing="ij")
    lat, lon = plane_geo.latlon(*frame.to_plane(R, C))
    return {"lines": lines.astype(np.float64), "samples": samples.astype(np.float64),
            "lat": lat.astype(np.float64), "lon": lon.astype(np.float64)}


def _tie_points(geo_dict):
    return geo.TiePoints(geo_dict["lines"], geo_dict["samples"], geo_dict["lat"], geo_dict["lon"])


def truth_drift_field(drift, frame_a: Frame, plane_geo: PlaneGeo, time_a: dt.datetime, time_b: dt.datetime,
                      step: int = TRUTH_GRID_STEP_PX):
    """The true DriftField A -> B on scene A's grid (rows / cols every `step` px)."""
    days = (time_b - time_a).total_seconds() / 86400.0
    h, w = frame_a.shape
    rows, cols = np.arange(0, h, step, dtype=np.float64), np.arange(0, w, step, dtype=np.float64)
    R, C = np.meshgrid(rows, cols, indexing="ij")
    pr, pc = frame_a.to_plane(R, C)
    er, ec = drift.flow(pr, pc, days)
    lat, lon = plane_geo.latlon(pr, pc)
    end_lat, end_lon = plane_geo.latlon(er, ec)
    ar, ac = frame_a.from_plane(er, ec)
    east, north = drift_lib.spherical_displacement(lat, lon, end_lat, end_lon)
    ones = np.ones(R.shape, np.float32)
    return drift_lib.DriftField(
        rows=rows, cols=cols, latitude=lat, longitude=lon, end_latitude=end_lat, end_longitude=end_lon,
        drow=ar - R, dcol=ac - C, east_m=east, north_m=north, mcc=ones, quality=ones, rotation_deg=0 * ones,
        valid=np.ones(R.shape, bool), time_a=time_a, time_b=time_b, pixel_spacing_m=plane_geo.spacing_m,
        method="truth", uncertainty_m=0.0)


# --------------------------------------------------------------------------------------------
# sequence.json: everything needed to move points with the true drift


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def write_sequence_json(path: str, drift, plane_geo: PlaneGeo, frames, times, names, pairs) -> None:
    doc = {"drift": dataclasses.asdict(drift), "plane_geo": dataclasses.asdict(plane_geo),
           "time0": times[0].isoformat(),
           "scenes": [{"name": n, "time": t.isoformat(), "frame": dataclasses.asdict(f)}
                      for n, t, f in zip(names, times, frames, strict=True)],
           "pairs": pairs, "deformation_per_day": deformation_per_day(drift)}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


@dataclasses.dataclass
class Sequence:
    """A read sequence.json."""

    drift: object
    plane_geo: PlaneGeo
    time0: dt.datetime
    scenes: list
    pairs: list
    deformation_per_day: float


def read_sequence(path: str) -> Sequence:
    """sequence.json (a file, or the synthesized folder / its drift_truth folder holding it)."""
    if os.path.isdir(path):
        for cand in (os.path.join(path, TRUTH_DIR, SEQUENCE_FILE), os.path.join(path, SEQUENCE_FILE)):
            if os.path.exists(cand):
                path = cand
                break
        else:
            raise ValueError(f"{path}: no {TRUTH_DIR}/{SEQUENCE_FILE} (not a --sequence folder)")
    with open(path) as f:
        doc = json.load(f)
    d = doc["drift"]
    drift = KnownDrift(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
    return Sequence(drift, PlaneGeo(**doc["plane_geo"]), dt.datetime.fromisoformat(doc["time0"]), doc["scenes"],
                    doc["pairs"], float(doc["deformation_per_day"]))


def true_flow_latlon(seq: Sequence, lat, lon, time_unix, target_unix):
    """Points (lat, lon) observed at unix seconds `time_unix` moved with the true drift to `target_unix`."""
    pr, pc = seq.plane_geo.plane(lat, lon)
    days = (np.asarray(target_unix, np.float64) - np.asarray(time_unix, np.float64)) / 86400.0
    days = np.broadcast_to(days, np.shape(pr))
    out_r, out_c = np.array(pr, np.float64), np.array(pc, np.float64)
    # the flow is autonomous: integrate each point over its own gap (steps scaled per point)
    steps = 32
    h = days / steps
    r, c = out_r, out_c
    v = seq.drift.velocity_px
    for _ in range(steps):
        k1 = v(r, c)
        k2 = v(r + h / 2 * k1[0], c + h / 2 * k1[1])
        k3 = v(r + h / 2 * k2[0], c + h / 2 * k2[1])
        k4 = v(r + h * k3[0], c + h * k3[1])
        r = r + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        c = c + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return seq.plane_geo.latlon(r, c)


def true_flow(seq: Sequence):
    """The sequence's exact motion as a point flow (`drift.motion.PointFlow`):
    flow(lat, lon, time_s, target_s) -> (lat, lon), unix seconds."""
    return functools.partial(true_flow_latlon, seq)


def find_true_flow(scene_paths, truth_drift: str | None = None, *, required: bool = True):
    """The true flow of the synthetic sequence the scenes belong to: `truth_drift` (a --sequence folder or
    its sequence.json), else the folder of the first scene. None when it is not `required` and not there."""
    from seaice_jax.data.scene import list_scene_files

    if truth_drift:
        return true_flow(read_sequence(truth_drift))
    files = list_scene_files(list(scene_paths))
    try:
        return true_flow(read_sequence(os.path.dirname(os.path.abspath(files[0]))))
    except (ValueError, OSError, IndexError):
        if required:
            raise
        return None


def pair_truth(folder: str, field: drift_lib.DriftField, tolerance_s: float = 60.0):
    """(truth DriftField, info) for the pair of `field` in a synthesized sequence folder (`synthesize.py
    --sequence`): the truth file under `<folder>/drift_truth/` whose pair has the same start and end times
    (within `tolerance_s`). info: {"truth_file", "gap_days", "deformation_per_day"}."""
    meta = read_sequence(folder)
    truth_dir = os.path.join(folder, TRUTH_DIR) if os.path.isdir(os.path.join(folder, TRUTH_DIR)) else folder
    ta, tb = field.time_a.timestamp(), field.time_b.timestamp()
    times = {s["name"]: dt.datetime.fromisoformat(s["time"]).timestamp() for s in meta.scenes}
    for pair in meta.pairs:
        if abs(times[pair["a"]] - ta) <= tolerance_s and abs(times[pair["b"]] - tb) <= tolerance_s:
            truth = drift_io.read_drift(os.path.join(truth_dir, pair["file"]))["truth"]
            return truth, {"truth_file": pair["file"], "scene_a": pair["a"], "scene_b": pair["b"],
                           "gap_days": pair["gap_days"], "deformation_per_day": meta.deformation_per_day}
    raise ValueError(f"{folder}: no true drift for the pair {field.time_a:%Y%m%dT%H%M%S} -> "
                     f"{field.time_b:%Y%m%dT%H%M%S} (pairs: "
                     + ", ".join(f"{p['a']} -> {p['b']}" for p in meta.pairs) + ")")


# --------------------------------------------------------------------------------------------
# Writing


def write_sequence(out_dir: str, num_scenes: int, product: str, season: str, size, seed: int, *,
                   service: str = "mixed", analyst_error: float = 0.0, split: str = "train",
                   altimetry: str | None = None, track_days=TRACK_DAYS, drift=None) -> list[str]:
    """Write the sequence (see the module doc); the scene paths, in time order. `drift`: a KnownDrift on
    the plane (centre = the scenes' centre) instead of a drawn one."""

    if num_scenes < 1:
        raise ValueError(f"--sequence needs at least 1 scene, got {num_scenes}")
    if split == "test" and product != "rtt":
        raise ValueError("split 'test' exists for the ready-to-train product only")
    os.makedirs(out_dir, exist_ok=True)
    spacing = float(ch.PIXEL_SPACING_M[product])
    shape = (int(size[0]), int(size[1]))
    rng = _stream(seed, 0x5E0)
    service = resolve_service(service, seed)
    t0 = default_start_time(seed, season)
    times = [t0] + [t0 + dt.timedelta(days=k, seconds=int(rng.uniform(-3, 3) * 3600)) for k in range(1, num_scenes)]
    days = [(t - t0).total_seconds() / 86400.0 for t in times]
    drawn = draw_drift(rng, spacing)
    drift = drawn if drift is None else drift
    frames = _frames(rng, num_scenes, shape, drift)
    lat_min, lat_max, lon_min, lon_max = CHART_REGIONS[service][chart_region(t0, service)]
    plane_geo = PlaneGeo(float(rng.uniform(lat_min, lat_max)), float(rng.uniform(lon_min, lon_max)),
                         float(np.deg2rad(rng.choice([-12.0, 192.0]) + rng.uniform(-4.0, 4.0))), spacing)
    tdays = tuple(track_days) if altimetry else ()
    origin, wshape = _world_window(frames, days, drift, tdays)
    wrng = _stream(seed, 0x30D)
    wsurface = make_surface(wrng, wshape, product, season, service)
    wfb = scene_freeboard(seed, wsurface, np.zeros(wshape, bool), spacing)
    wtexture = (1.3 * gaussian_random_field(wrng, wshape, 150.0 / spacing)
                + 1.0 * gaussian_random_field(wrng, wshape, 1500.0 / spacing)).astype(np.float32)
    world = World(origin, wsurface, wfb, wtexture)

    paths, names = [], []
    alt_dir = os.path.join(out_dir, ALTIMETRY_DIR)
    for k, (frame, t, d) in enumerate(zip(frames, times, days, strict=True)):
        s = scene_seed(seed, k)
        surface, truth, texture = render(world, frame, drift, d)
        ds = synthesize_scene(product, season, shape, s, service=service, analyst_error=analyst_error,
                              start_time=t, freeboard=bool(altimetry), surface=surface, ice_texture_db=texture,
                              freeboard_truth=truth if altimetry else None,
                              geo=tie_point_geo(frame, plane_geo, product))
        ds.attrs["synthetic_sequence_index"] = np.int32(k)
        if altimetry:
            # passes within PASS_TIME_OFFSET_S of the time their ice is rendered at (the simulator samples one
            # snapshot: a larger offset would misplace them by the drift over it)
            tracks, swath = simulate_altimetry(alt_stream(s, 0xA17), truth_from_dataset(ds),
                                                    alt_tie_points(ds, shape), t, altimetry,
                                                    passes=dict(DEFAULT_PASSES), spacing_m=(spacing, spacing),
                                                    max_time_offset_s=PASS_TIME_OFFSET_S)
            os.makedirs(alt_dir, exist_ok=True)
            write_synthetic_altimetry(alt_dir, tracks, swath)
            for j, td in enumerate(tdays):  # passes on other days, over the ice that drifts into the scene
                g = frame.moved(drift, td)
                _, tr_truth, _ = render(world, g, drift, d + td)
                tp = _tie_points(tie_point_geo(g, plane_geo, product))
                tracks, _ = simulate_altimetry(alt_stream(s, 0xA17 + 1 + j), tr_truth, tp,
                                                    t + dt.timedelta(days=td), altimetry, passes=dict(DEFAULT_PASSES),
                                                    spacing_m=(spacing, spacing), swath=False,
                                                    max_time_offset_s=PASS_TIME_OFFSET_S)
                write_synthetic_altimetry(alt_dir, tracks, None)
        if split == "test":
            ds, reference = split_test_reference(ds)
            write_scene(reference, out_dir)
        paths.append(write_scene(ds, out_dir))
        names.append(os.path.basename(paths[-1]))

    truth_dir = os.path.join(out_dir, TRUTH_DIR)
    os.makedirs(truth_dir, exist_ok=True)
    pairs = []
    for i in range(num_scenes):
        for j in range(i + 1, num_scenes):
            field = truth_drift_field(drift, frames[i], plane_geo, times[i], times[j])
            fname = f"{_stamp(times[i])}_{_stamp(times[j])}_drift_truth.nc"
            drift_io.write_drift(os.path.join(truth_dir, fname), {"truth": field},
                                 title=f"true sea-ice drift {names[i]} -> {names[j]} (synthetic)")
            pairs.append({"a": names[i], "b": names[j], "file": fname,
                          "gap_days": (times[j] - times[i]).total_seconds() / 86400.0})
    write_sequence_json(os.path.join(truth_dir, SEQUENCE_FILE), drift, plane_geo, frames, times, names, pairs)
    return paths
