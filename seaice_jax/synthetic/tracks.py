"""Simulated altimeter tracks and SWOT-like swaths over a synthetic scene, written in the real layouts.

Tracks (`simulate_track`, `simulate_icesat2`): straight lines across the scene, points every posting,
the value = footprint mean of the freeboard truth (same footprint code as collocation) + per-point
noise (ICESat-2 0.03 m, CryoSat-2 0.10 m, Sentinel-3 0.12 m), lead / floe classification from the lead
fraction in the footprint with random classification errors, random quality dropouts.
`simulate_swath`: a SWOT-like two-sided swath of 250 m pixels with 0.07 m noise, a mean sea surface
and a per-side crossover tilt stored as `height_cor_xover`.
`simulate_altimetry(seed, truth, tie_points, start_time, missions)` draws the passes of the chosen
missions ('icesat2' | 'cryosat2' | 'sentinel3' | 'all') and a swath for one scene;
`write_synthetic_altimetry(directory, tracks, swath)` writes them with the product writers of
`seaice_jax.altimetry` (ATL10, SIR_SAR_2, SR_2_LAN_SI, SWOT).
`write_scene_altimetry(out_dir, ds, seed, missions)`: the passes over one written scene. Everything is
deterministic for a seed, from streams separate from the scene's own (a scene without altimetry is
unchanged).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from seaice_jax.altimetry import collocate as col
from seaice_jax.altimetry import icesat2 as is2
from seaice_jax.altimetry.track import (
    CRYOSAT2_FOOTPRINT_M,
    FLOE,
    ICESAT2_SPOT_M,
    LEAD,
    SENTINEL3_FOOTPRINT_M,
    Swath,
    Track,
    to_unix_seconds,
)
from seaice_jax.data import channels as ch
from seaice_jax.data import geolocation as geo
from seaice_jax.synthetic.freeboard import FreeboardTruth, _stream, truth_from_dataset

MISSIONS = {
    # mission: (posting m, footprint along m (None = segment length), across m, noise m, lead threshold, product)
    "icesat2": (None, None, ICESAT2_SPOT_M, 0.03, 0.5, "ATL10"),
    "cryosat2": (300.0, CRYOSAT2_FOOTPRINT_M[0], CRYOSAT2_FOOTPRINT_M[1], 0.10, 0.3, "SIR_SAR_2"),
    "sentinel3a": (300.0, SENTINEL3_FOOTPRINT_M[0], SENTINEL3_FOOTPRINT_M[1], 0.12, 0.3, "SR_2_LAN_SI"),
}
GROUND_SPEED_M_S = 7000.0
# passes per mission for one scene (ICESat-2: 3 strong beams each, so 9 laser tracks with 3 passes)
DEFAULT_PASSES = {"icesat2": 3, "cryosat2": 2, "sentinel3a": 1}
ALTIMETRY_DIR = "altimetry"


def _line_points(shape, spacing_m, angle_deg, offset_px, posting_m):
    """(rows, cols, along metres) of points every `posting_m` on a line through the scene centre
    shifted `offset_px` across, heading `angle_deg` from the line axis (pixel metric space)."""
    h, w = shape
    a = np.deg2rad(angle_deg)
    d = np.array([np.cos(a), np.sin(a)])  # (row, col) unit direction in metres
    n = np.array([-d[1], d[0]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2]) + n * offset_px
    half = np.hypot(h * spacing_m[0], w * spacing_m[1])
    posting = np.asarray(posting_m, np.float64)
    s = np.cumsum(posting) - posting / 2 - half if posting.ndim else np.arange(-half, half, float(posting_m))
    rows = centre[0] + s * d[0] / spacing_m[0]
    cols = centre[1] + s * d[1] / spacing_m[1]
    inside = (s <= half) & (rows > -0.5) & (rows < h - 0.5) & (cols > -0.5) & (cols < w - 0.5)
    idx = np.flatnonzero(inside)
    return rows[idx], cols[idx], s[idx], d, idx


def simulate_track(seed: int, truth: FreeboardTruth, tie_points: geo.TiePoints, start_time, mission: str = "cryosat2",
                   *, angle_deg: float = 10.0, offset_px: float = 0.0, time_offset_s: float = 0.0,
                   lead_error: float = 0.05, dropout: float = 0.02, noise_m: float | None = None, beam: str = "",
                   track_id: str | None = None, spacing_m: tuple[float, float] | None = None) -> Track:
    """One simulated track over the scene (see module doc); empty if the line misses the scene."""
    if mission not in MISSIONS:
        raise ValueError(f"mission {mission!r} not one of {sorted(MISSIONS)}")
    rng = np.random.default_rng(seed)
    posting, along, across, noise, lead_thr, product = MISSIONS[mission]
    noise = noise if noise_m is None else noise_m
    sp = spacing_m or col.pixel_spacing_m(tie_points)
    h, w = truth.valid.shape
    if posting is None:  # ICESat-2: 150-photon segments, 27-200 m, posting = segment length
        diag = np.hypot(h * sp[0], w * sp[1])
        seg = np.clip(rng.lognormal(np.log(60.0), 0.5, int(2 * diag / 27) + 2), 27.0, 200.0)
        rows, cols, s, d, idx = _line_points((h, w), sp, angle_deg, offset_px, seg)
        seg_len = seg[idx]
    else:
        rows, cols, s, d, _ = _line_points((h, w), sp, angle_deg, offset_px, posting)
        seg_len = np.full(s.size, along)
    field = truth.field("laser" if mission == "icesat2" else "radar").astype(np.float64)
    flat_f, flat_lead = np.nan_to_num(field).ravel(), truth.lead.ravel().astype(np.float64)
    flat_valid = truth.valid.ravel().astype(np.float64)
    true_val, lead_frac, ok = np.zeros(s.size), np.zeros(s.size), np.zeros(s.size, bool)
    for i in range(s.size):
        pix, frac = col.footprint_pixels(rows[i], cols[i], float(max(seg_len[i], ICESAT2_SPOT_M)), float(across),
                                         tuple(d), (h, w), sp)
        wv = frac * flat_valid[pix]
        if wv.sum() < 0.5 * frac.sum() or wv.sum() == 0:
            continue
        ok[i] = True
        true_val[i] = np.sum(wv * flat_f[pix]) / wv.sum()
        lead_frac[i] = np.sum(wv * flat_lead[pix]) / wv.sum()
    rows, cols, s, seg_len = rows[ok], cols[ok], s[ok], seg_len[ok]
    true_val, lead_frac = true_val[ok], lead_frac[ok]
    n = s.size
    is_lead = lead_frac > lead_thr
    flip = rng.uniform(size=n) < lead_error
    surface = np.where(is_lead ^ flip, LEAD, FLOE).astype(np.uint8)
    eps = rng.normal(0.0, noise, n)
    value = np.where(surface == LEAD, eps, true_val + eps)  # a lead reads the sea surface (+ noise)
    quality = rng.uniform(size=n) >= dropout
    lat, lon = geo.pixel_latlon(tie_points, rows, cols)
    t0 = to_unix_seconds(start_time) + time_offset_s
    times = t0 + (s - (s.min() if n else 0.0)) / GROUND_SPEED_M_S
    return Track(time=times, latitude=lat, longitude=lon, value=value, uncertainty=np.full(n, noise),
                 surface=surface, quality=quality,
                 footprint_along=np.maximum(seg_len, ICESAT2_SPOT_M) if mission == "icesat2" else along,
                 footprint_across=across, kind="freeboard", mission=mission, product=product, beam=beam,
                 track_id=track_id or f"synthetic_{mission}_{seed}{':' + beam if beam else ''}",
                 attrs={"true_value": true_val.astype(np.float32), "true_lead_fraction": lead_frac.astype(np.float32)})


def simulate_icesat2(seed: int, truth: FreeboardTruth, tie_points, start_time, *, angle_deg: float = 10.0,
                     offset_px: float = 0.0, time_offset_s: float = 0.0, sc_orient: int = 0, **kw) -> list[Track]:
    """The three strong beams of one ICESat-2 pass, 3.3 km apart (gt1 / gt2 / gt3 of `sc_orient`)."""
    sp = kw.pop("spacing_m", None) or col.pixel_spacing_m(tie_points)
    pair_px = 3300.0 / float(np.mean(sp))
    out = []
    for k, beam in enumerate(is2.strong_beams(sc_orient)[:3]):
        out.append(simulate_track(seed * 7 + k, truth, tie_points, start_time, "icesat2", angle_deg=angle_deg,
                                  offset_px=offset_px + (k - 1) * pair_px, time_offset_s=time_offset_s, beam=beam,
                                  track_id=f"synthetic_icesat2_{seed}:{beam}", spacing_m=sp, **kw))
    return out


def simulate_swath(seed: int, truth: FreeboardTruth, tie_points, start_time, *, angle_deg: float = 10.0,
                   offset_px: float = 0.0, time_offset_s: float = 0.0, pixel_m: float = 250.0,
                   inner_km: float = 10.0, outer_km: float = 60.0, noise_m: float = 0.07,
                   xover_tilt_m_per_km: float = 0.005, residual_offset_m: float = 0.02, mss_m: float = 25.0,
                   spacing_m=None) -> tuple[list[Swath], dict]:
    """A SWOT-like swath over the scene: ([left, right] Swaths, xover {side: [L, P] correction}).

    Height = mss + laser freeboard (footprint = the pixel) + noise + a per-side residual offset; the
    file's `ssh_karin_2` holds height - xover so the reader's `+ height_cor_xover` restores it.
    Pixels off the scene's valid area are quality False."""
    rng = np.random.default_rng(seed)
    sp = spacing_m or col.pixel_spacing_m(tie_points)
    h, w = truth.valid.shape
    a = np.deg2rad(angle_deg)
    d = np.array([np.cos(a), np.sin(a)])
    n = np.array([-d[1], d[0]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2]) + n * offset_px
    half = np.hypot(h * sp[0], w * sp[1])
    s = np.arange(-half, half, pixel_m)
    field = truth.field("laser")
    swaths, xover = [], {}
    n_pix = int(round((outer_km - inner_km) * 1000.0 / pixel_m))
    for side, sign in (("left", -1.0), ("right", 1.0)):
        x = sign * (inner_km * 1000.0 + (np.arange(n_pix) + 0.5) * pixel_m)
        if sign < 0:
            x = x[::-1]
        rows = centre[0] + (s[:, None] * d[0] + x[None, :] * n[0]) / sp[0]
        cols = centre[1] + (s[:, None] * d[1] + x[None, :] * n[1]) / sp[1]
        inside = (rows > -0.5) & (rows < h - 0.5) & (cols > -0.5) & (cols < w - 0.5)
        keep_l, keep_p = inside.any(1), inside.any(0)
        if not inside.any():
            continue
        rows, cols, inside = rows[keep_l][:, keep_p], cols[keep_l][:, keep_p], inside[keep_l][:, keep_p]
        ri = np.clip(np.rint(rows), 0, h - 1).astype(int)
        ci = np.clip(np.rint(cols), 0, w - 1).astype(int)
        k = max(1, int(round(pixel_m / float(np.mean(sp)))))
        fb = ndimage.uniform_filter(np.nan_to_num(field).astype(np.float64), k)[ri, ci]
        ok = inside & truth.valid[ri, ci]
        lat, lon = geo.pixel_latlon(tie_points, rows, cols)
        mss = mss_m + 0.5 * (lat - lat.mean())
        tilt = xover_tilt_m_per_km * (np.abs(x[keep_p]) / 1000.0)[None, :] * rng.choice([-1.0, 1.0])
        height = mss + fb + rng.normal(0.0, noise_m, fb.shape) + rng.normal(0.0, residual_offset_m)
        times = to_unix_seconds(start_time) + time_offset_s + (s[keep_l] - s[keep_l].min()) / GROUND_SPEED_M_S
        swaths.append(Swath(time=times, latitude=lat, longitude=lon,
                            height=np.where(ok, height, np.nan).astype(np.float32), mss=mss.astype(np.float32),
                            quality=ok, side=side, uncertainty=noise_m, track_id=f"synthetic_swot_{seed}:{side}",
                            attrs={"true_freeboard": np.where(ok, fb, np.nan).astype(np.float32)}))
        xover[side] = np.broadcast_to(tilt, fb.shape).copy()
    return swaths, xover


def write_synthetic_altimetry(directory, tracks: list[Track], swaths: tuple[list[Swath], dict] | None = None,
                              *, cryosat2_baseline: str = "E") -> list[str]:
    """Writes simulated tracks in their real layouts (ICESat-2 -> one ATL10 r006 granule per pass,
    CryoSat-2 -> SIR_SAR_2, Sentinel-3 -> SR_2_LAN_SI) and the swath as a SWOT Unsmoothed file."""
    from seaice_jax.altimetry import cryosat2, sentinel3, swot
    paths = []
    passes: dict[str, list[Track]] = {}
    for tr in tracks:
        if len(tr) == 0:
            continue
        if tr.mission == "icesat2":
            passes.setdefault(tr.track_id.split(":")[0], []).append(tr)
        elif tr.mission == "cryosat2":
            paths.append(cryosat2.write_cryosat2_l2(directory, tr, baseline=cryosat2_baseline))
        elif tr.mission.startswith("sentinel3"):
            paths.append(sentinel3.write_sentinel3(directory, tr, platform="S3" + tr.mission[-1].upper()))
        else:
            raise ValueError(f"no writer for mission {tr.mission!r}")
    for i, beams in enumerate(passes.values()):
        paths.append(is2.write_atl10(directory, beams, rgt=1307 + i))
    if swaths is not None and swaths[0]:
        paths.append(swot.write_swot(directory, swaths[0], xover=swaths[1]))
    return paths


MISSION_CHOICES = ("icesat2", "cryosat2", "sentinel3", "all")


def simulate_altimetry(seed: int, truth: FreeboardTruth, tie_points, start_time, missions: str = "all", *,
                       passes: dict | None = None, max_time_offset_s: float = 3 * 3600.0, swath: bool = True,
                       spacing_m=None) -> tuple[list[Track], tuple[list[Swath], dict] | None]:
    """Passes of the chosen missions ('icesat2' | 'cryosat2' | 'sentinel3' | 'all') over one scene, with
    random headings, across-track offsets (inside the scene) and time offsets within `max_time_offset_s`
    of the SAR start; plus a SWOT-like swath when `swath`. Deterministic for `seed`.

    passes: passes per mission (default icesat2 1, cryosat2 2, sentinel3a 1)."""
    if missions not in MISSION_CHOICES:
        raise ValueError(f"missions {missions!r} not one of {MISSION_CHOICES}")
    chosen = {"icesat2": ["icesat2"], "cryosat2": ["cryosat2"], "sentinel3": ["sentinel3a"],
              "all": ["icesat2", "cryosat2", "sentinel3a"]}[missions]
    counts = {"icesat2": 1, "cryosat2": 2, "sentinel3a": 1}
    counts.update(passes or {})
    rng = np.random.default_rng(seed)
    sp = spacing_m or col.pixel_spacing_m(tie_points)
    h, w = truth.valid.shape
    span = 0.35 * min(h, w)
    tracks: list[Track] = []
    for _m_i, mission in enumerate(chosen):
        for k in range(int(counts.get(mission, 0))):
            angle = float(rng.uniform(0.0, 180.0))
            offset = float(rng.uniform(-span, span))
            dt = float(rng.uniform(-max_time_offset_s, max_time_offset_s))
            sub_seed = int(rng.integers(0, 2**31 - 1))
            if mission == "icesat2":
                tracks += simulate_icesat2(sub_seed, truth, tie_points, start_time, angle_deg=angle, offset_px=offset,
                                           time_offset_s=dt, spacing_m=sp)
            else:
                tracks.append(simulate_track(sub_seed, truth, tie_points, start_time, mission, angle_deg=angle,
                                             offset_px=offset, time_offset_s=dt, spacing_m=sp,
                                             track_id=f"synthetic_{mission}_{seed}_{k}"))
    sw = None
    if swath:
        sub_seed = int(rng.integers(0, 2**31 - 1))
        angle = float(rng.uniform(0.0, 180.0))
        # put one side's middle over the scene centre
        offset = float(rng.choice([-1.0, 1.0])) * 35_000.0 / float(np.mean(sp))
        sw = simulate_swath(sub_seed, truth, tie_points, start_time, angle_deg=angle, offset_px=offset,
                            time_offset_s=float(rng.uniform(-max_time_offset_s, max_time_offset_s)), spacing_m=sp)
    return [t for t in tracks if len(t)], sw


def _tie_points(ds: xr.Dataset, shape):
    if "sar_grid2d_latitude" in ds:
        return geo.tie_points_from_rtt(ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values, shape)
    return geo.tie_points_from_raw(ds["sar_grid_line"].values, ds["sar_grid_sample"].values,
                                   ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values)


def simulate_scene_altimetry(ds: xr.Dataset, seed: int, missions: str = "all", start_time=None,
                             passes: dict | None = None):
    """(tracks, swath) over one scene dataset with the freeboard truth variables."""
    truth = truth_from_dataset(ds)
    shape = truth.valid.shape
    tp = _tie_points(ds, shape)
    spacing = float(ds.attrs.get("pixel_spacing", ch.PIXEL_SPACING_M["rtt" if "sar_grid2d_latitude" in ds
                                                                       else "raw"]))
    counts = dict(DEFAULT_PASSES, **(passes or {}))
    return simulate_altimetry(_stream(seed, 0xA17), truth, tp, start_time, missions, passes=counts,
                                   spacing_m=(spacing, spacing))


def write_scene_altimetry(out_dir: str, ds: xr.Dataset, seed: int, missions: str = "all", start_time=None,
                          passes: dict | None = None) -> list[str]:
    """Writes the scene's simulated tracks and swath under `out_dir` in the real layouts; the paths."""
    import os
    os.makedirs(out_dir, exist_ok=True)
    tracks, swath = simulate_scene_altimetry(ds, seed, missions, start_time, passes)
    return write_synthetic_altimetry(out_dir, tracks, swath)
