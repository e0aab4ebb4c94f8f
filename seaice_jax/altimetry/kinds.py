"""Which freeboard a track measures, and ATL07 heights turned into freeboards.

Two quantities, never mixed (each trains its own output):
  * 'laser': total (snow + ice) freeboard from ICESat-2: ATL10 `beam_fb_height`, or ATL07 surface
    heights referenced to a local sea surface from the same beam's leads (`atl07_freeboard`);
  * 'radar': radar freeboard from CryoSat-2 (ESA L2 `radar_freeboard_20_ku` / Baseline-D
    `freeboard_20_ku`, AWI / CCI L2P `radar_freeboard`) and Sentinel-3 (`radar_freeboard_20_ku`,
    or `freeboard_20_ku`).
The choice goes by `Track.kind` and `Track.product` (and the variable the reader took,
`attrs['freeboard_variable']`), never by mission alone. Not a freeboard of either kind: surface
heights (ATL07 before referencing, SWOT), ice freeboards already corrected for the snow layer
(L2P `sea_ice_freeboard`, Sentinel-3 `sea_ice_freeboard_20_ku`), SWOT swaths (validation only).

ATL07 -> freeboard follows ATL10's idea: the sea surface is the (1 / sigma^2 weighted) mean height of
the beam's lead segments flagged `height_segment_ssh_flag` == 1 (good quality only) within a window of
`section_m` (10 km) along-track centred on each segment; a segment without a lead in its window gets no
freeboard (quality False). Along-track distance is the cumulative great-circle distance between
consecutive geolocated segments in time order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seaice_jax.altimetry.track import Swath, Track

FREEBOARD_KINDS = ("laser", "radar")
EARTH_RADIUS_M = 6_371_000.0
DEFAULT_SECTION_M = 10_000.0

# product -> (freeboard variables that are radar freeboard; None = a track built in memory, which
# carries the product's default quantity)
_RADAR_PRODUCTS = {
    "SIR_SAR_2": ("radar_freeboard_20_ku", "freeboard_20_ku", None),
    "SIR_SIN_2": ("radar_freeboard_20_ku", "freeboard_20_ku", None),
    "SIR_LRM_2": ("radar_freeboard_20_ku", "freeboard_20_ku", None),
    "L2P": ("radar_freeboard", None),
    # Sentinel-3 thematic: `radar_freeboard_20_ku`; `freeboard_20_ku` (an older name, U) is taken as
    # radar freeboard like CryoSat-2 Baseline D's
    "SR_2_LAN_SI": ("radar_freeboard_20_ku", "freeboard_20_ku", None),
}
_ICE_FREEBOARD_VARIABLES = ("sea_ice_freeboard", "sea_ice_freeboard_20_ku")


def kind_and_reason(track) -> tuple[str | None, str]:
    """('laser' | 'radar' | None, why): the freeboard a track (or swath) measures."""
    if isinstance(track, Swath):
        return None, "a SWOT swath (validation only, never a training track)"
    product, var = track.product, track.attrs.get("freeboard_variable")
    if track.kind != "freeboard":
        return None, f"{product or 'unknown product'} {track.kind}s, not a freeboard"
    if product == "ATL10":
        return "laser", "ATL10 beam freeboard (total freeboard)"
    if product == "ATL07":
        if "freeboard_from" in track.attrs:
            return "laser", f"ATL07 {track.attrs['freeboard_from']}"
        return None, "ATL07 marked as freeboard without a sea-surface reference (attrs['freeboard_from'])"
    if product in _RADAR_PRODUCTS:
        if var in _RADAR_PRODUCTS[product]:
            return "radar", f"{product} {var or 'radar freeboard'}"
        if var in _ICE_FREEBOARD_VARIABLES:
            return None, f"{product} {var}: ice freeboard (snow-corrected), neither laser nor radar freeboard"
        return None, f"{product} freeboard variable {var!r} of unknown meaning"
    return None, f"unknown product {product!r} (mission {track.mission!r}): freeboard kind undetermined"


def freeboard_kind(track) -> str | None:
    """'laser' (ICESat-2 total freeboard), 'radar' (CryoSat-2 / Sentinel-3 radar freeboard) or None."""
    return kind_and_reason(track)[0]


def _haversine(lat1, lon1, lat2, lon2):
    la1, la2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dla, dlo = la2 - la1, np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dla / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin(dlo / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def along_track_m(track: Track) -> np.ndarray:
    """Cumulative great-circle distance (metres) of each point from the track's first, in time order;
    NaN for points without a geolocation (non-finite, or the readers' (0, 0) stand-in for a fill)."""
    lat, lon = track.latitude, track.longitude
    ok = np.isfinite(lat) & np.isfinite(lon) & ~((lat == 0) & (lon == 0))
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(track.time[idx], kind="stable")]
    s = np.full(len(track), np.nan)
    if idx.size:
        steps = _haversine(lat[idx[:-1]], lon[idx[:-1]], lat[idx[1:]], lon[idx[1:]])
        s[idx] = np.concatenate([[0.0], np.cumsum(steps)])
    return s


def _atl07_reference(track: Track, section_m: float) -> tuple[Track | None, str]:
    """(freeboard Track, '') or (None, why not)."""
    if track.product != "ATL07" or track.kind != "height":
        return None, f"not an ATL07 height track (product {track.product!r}, kind {track.kind!r})"
    ssh = track.attrs.get("ssh_flag")
    if (not isinstance(ssh, np.ndarray) or ssh.shape != (len(track),)
            or track.attrs.get("ssh_flag_present") is False):
        return None, "no lead segment (no height_segment_ssh_flag in the granule) to reference the heights"
    ssh = ssh.astype(bool)
    s = along_track_m(track)
    leads = ssh & track.quality & np.isfinite(track.value) & np.isfinite(s)
    if not leads.any():
        n_flagged = int(ssh.sum())
        if n_flagged:
            return None, (f"no good-quality lead segment ({n_flagged} with height_segment_ssh_flag, none good) "
                          "to reference the heights")
        return None, "no lead segment (height_segment_ssh_flag) to reference the heights"
    ls, lh = s[leads], track.value[leads].astype(np.float64)
    lu = track.uncertainty[leads].astype(np.float64)
    weighted = bool(np.all(np.isfinite(lu) & (lu > 0)))
    lw = 1.0 / lu**2 if weighted else np.ones_like(lh)
    order = np.argsort(ls, kind="stable")
    ls, lh, lw = ls[order], lh[order], lw[order]
    csum_w = np.concatenate([[0.0], np.cumsum(lw)])
    csum_wh = np.concatenate([[0.0], np.cumsum(lw * lh)])
    half = float(section_m) / 2.0
    finite = np.isfinite(s)
    s0 = np.where(finite, s, 0.0)
    lo = np.searchsorted(ls, s0 - half, side="left")
    hi = np.searchsorted(ls, s0 + half, side="right")
    sum_w = csum_w[hi] - csum_w[lo]
    has_ref = finite & (hi > lo)
    sea = np.where(has_ref, (csum_wh[hi] - csum_wh[lo]) / np.where(has_ref, sum_w, 1.0), np.nan)
    n_leads = np.where(has_ref, hi - lo, 0).astype(np.int32)
    sea_unc = np.where(has_ref & weighted, 1.0 / np.sqrt(np.where(has_ref, sum_w, 1.0)), np.nan)
    h_unc = track.uncertainty.astype(np.float64)
    unc = np.where(np.isfinite(sea_unc), np.sqrt(h_unc**2 + np.nan_to_num(sea_unc) ** 2), h_unc)
    attrs = dict(track.attrs)
    attrs.update({
        "freeboard_from": (f"ATL07 heights - local sea surface ({'1/sigma^2 weighted ' if weighted else ''}mean of "
                           f"the beam's height_segment_ssh_flag lead segments within +-{half:g} m along-track)"),
        "sea_surface": sea.astype(np.float32), "sea_surface_leads": n_leads,
        "section_m": float(section_m), "height": track.value.copy(),
    })
    out = dataclasses.replace(track, value=(track.value - sea).astype(np.float32), uncertainty=unc,
                              quality=track.quality & has_ref, kind="freeboard", attrs=attrs)
    return out, ""


def atl07_freeboard(track: Track, section_m: float = DEFAULT_SECTION_M,
                    notes: list[str] | None = None) -> Track | None:
    """An ATL07 height track as total freeboard: heights minus the local sea surface from the same
    beam's good lead segments (`attrs['ssh_flag']`) within `section_m` along-track around each
    segment. Segments without a lead in their window get quality False. None (and a line in `notes`)
    when the beam has no usable lead segment at all. The result has kind 'freeboard', product 'ATL07',
    `attrs['freeboard_from']`, per-point `attrs['sea_surface']`, `attrs['sea_surface_leads']` and the
    original `attrs['height']`."""
    out, why = _atl07_reference(track, section_m)
    if out is None and notes is not None:
        notes.append(f"ATL07 {track.track_id}: {why}: refused")
    return out


def freeboard_tracks(tracks, kind: str, notes: list[str] | None = None, *,
                     section_m: float = DEFAULT_SECTION_M) -> list[Track]:
    """The tracks of one freeboard kind ('laser' | 'radar'), ready for training / evaluation.

    ATL10 and radar freeboards as they are; ATL07 height tracks (for 'laser') through
    `atl07_freeboard`, or refused with a line in `notes`; heights of other products, ice freeboards
    and SWOT swaths are never in it (a line each in `notes`). Tracks of the other kind are left out
    without a note (they are the other output's). For several kinds at once, `tracks_by_kind`.
    """
    if kind not in FREEBOARD_KINDS:
        raise ValueError(f"freeboard kind {kind!r} is not one of {FREEBOARD_KINDS}")
    return tracks_by_kind(tracks, (kind,), notes, section_m=section_m)[kind]


def tracks_by_kind(tracks, kinds=FREEBOARD_KINDS, notes: list[str] | None = None, *,
                   section_m: float = DEFAULT_SECTION_M) -> dict[str, list[Track]]:
    """{kind: freeboard_tracks(tracks, kind)} for several kinds, each refusal noted once (not once per
    kind): every track lands in at most one list."""
    kinds = tuple(kinds)
    for k in kinds:
        if k not in FREEBOARD_KINDS:
            raise ValueError(f"freeboard kind {k!r} is not one of {FREEBOARD_KINDS}")
    out: dict[str, list[Track]] = {k: [] for k in kinds}
    items = [tracks] if isinstance(tracks, (Track, Swath)) else list(tracks)
    for t in items:
        if isinstance(t, Track) and t.kind == "height" and t.product == "ATL07":
            if "laser" in out:
                fb = atl07_freeboard(t, section_m, notes)
                if fb is not None:
                    out["laser"].append(fb)
            continue
        k, why = kind_and_reason(t)
        if k in out:
            out[k].append(t)
        elif k is None and notes is not None:
            notes.append(f"{t.track_id or t.path or t.product}: {why}: not used as a freeboard")
    return out
