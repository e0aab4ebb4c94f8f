"""CryoSat-2 ESA L2 `SIR_SAR_2` (Baselines D / E) and AWI / ESA-CCI L2P freeboard files.

ESA L2 (flat netCDF, docs/altimetry.md section 1): 20 Hz `time_20_ku` (seconds since 2000-01-01 from the
`units` attribute), POCA `lat_poca_20_ku` / `lon_poca_20_ku`; freeboard `freeboard_20_ku` (Baseline D)
or `radar_freeboard_20_ku` (Baseline E); `flag_prod_status_20_ku` error bits `freeboard_error` and
`height_1_error` located by `flag_masks` / `flag_meanings` (without them the Baseline-E masks 65536 and
16777216); other bits (other retrackers, warnings) are ignored. Lead / floe:
`flag_surf_type_class_20_ku` by its `flag_meanings` where present (U in SIR_SAR_2), else whichever of
`height_sea_ice_lead_20_ku` / `height_sea_ice_floe_20_ku` is valid, else floe where the freeboard is valid.
No per-point uncertainty: 0.10 m (AWI).
L2P (pysiral): `time` (units attr), `latitude`/`longitude` (AWI) or `lat`/`lon` (CCI), `radar_freeboard`
(+ `_uncertainty`) or `sea_ice_freeboard`; floe points only.
"""

from __future__ import annotations

import os
import re

import numpy as np

from seaice_jax.altimetry import _nc
from seaice_jax.altimetry.track import (
    CRYOSAT2_FOOTPRINT_M,
    DEFAULT_UNCERTAINTY_M,
    FLOE,
    LEAD,
    SEA_SURFACE,
    UNKNOWN,
    AltimetryFormatError,
    Track,
    unix_to_datetime,
)

BASELINE_E_ERROR_BITS = {"freeboard_error": 65536, "height_1_error": 16777216}
_L2_RE = re.compile(r"CS_(OFFL|NRT_|RPRO|TEST|LTA_)_(SIR_SAR_2|SIR_SIN_2|SIR_LRM_2)__"
                    r"(\d{8}T\d{6})_(\d{8}T\d{6})_([A-Z])(\d{3})")
_ERROR_MEANINGS = ("freeboard_error", "height_1_error")


def l2_name(start_time, stop_time, baseline="E", version=1, file_class="OFFL", file_type="SIR_SAR_2") -> str:
    s = unix_to_datetime(start_time).strftime("%Y%m%dT%H%M%S")
    e = unix_to_datetime(stop_time).strftime("%Y%m%dT%H%M%S")
    return f"CS_{file_class}_{file_type}__{s}_{e}_{baseline}{version:03d}.nc"


def _surface_from_class_flag(v, values, valid) -> np.ndarray | None:
    meanings = _nc.flag_meanings(v)
    if not meanings:
        return None
    surface = np.full(values.shape, UNKNOWN, np.uint8)
    for name, val in meanings.items():
        n = name.lower()
        cls = (LEAD if "lead" in n else FLOE if ("floe" in n or "sea_ice" in n or n == "ice")
               else SEA_SURFACE if "ocean" in n else UNKNOWN)
        surface[valid & (values == val)] = cls
    return surface


def read_cryosat2_l2(path) -> list[Track]:
    """ESA CryoSat-2 L2 SIR_SAR_2 / SIR_SIN_2 (Baseline D or E) -> one Track."""
    fname = os.fspath(path)
    with _nc.open_nc(fname) as ds:
        m = _L2_RE.search(os.path.basename(fname))
        fb_name = _nc.first_present(ds, ("radar_freeboard_20_ku", "freeboard_20_ku"))
        if fb_name is None:
            raise AltimetryFormatError(fname, "missing variable freeboard_20_ku (Baseline D) / "
                                              "radar_freeboard_20_ku (Baseline E)")
        baseline = m.group(5) if m else ("E" if fb_name == "radar_freeboard_20_ku" else "D")
        t = _nc.read_time(ds, "time_20_ku", fname, "seconds since 2000-01-01 00:00:00.0")
        lat = _nc.read_float(ds, "lat_poca_20_ku", fname)
        lon = _nc.read_float(ds, "lon_poca_20_ku", fname)
        fb = _nc.read_float(ds, fb_name, fname)
        quality = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(t)
        if "flag_prod_status_20_ku" in ds.variables:
            v = ds.variables["flag_prod_status_20_ku"]
            status, _ = _nc.read_int(ds, "flag_prod_status_20_ku", fname)
            meanings = _nc.flag_meanings(v)
            # Only the freeboard / retracker-1 error bits: other retrackers' bits can be set on every
            # SAR record (retracker-3 backscatter is unused in SAR mode), so "any *_error" rejects all.
            bits = {k: b for k, b in meanings.items() if k in _ERROR_MEANINGS} if meanings else {}
            bits = bits or BASELINE_E_ERROR_BITS
            mask = 0
            for b in bits.values():
                mask |= int(b)
            quality &= (status & mask) == 0
        surface = None
        if "flag_surf_type_class_20_ku" in ds.variables:
            vals, valid = _nc.read_int(ds, "flag_surf_type_class_20_ku", fname)
            surface = _surface_from_class_flag(ds.variables["flag_surf_type_class_20_ku"], vals, valid)
        if surface is None and {"height_sea_ice_lead_20_ku", "height_sea_ice_floe_20_ku"} <= set(ds.variables):
            lead = np.isfinite(_nc.read_float(ds, "height_sea_ice_lead_20_ku", fname))
            floe = np.isfinite(_nc.read_float(ds, "height_sea_ice_floe_20_ku", fname))
            surface = np.where(lead & ~floe, LEAD, np.where(floe & ~lead, FLOE, UNKNOWN)).astype(np.uint8)
        if surface is None:
            surface = np.where(np.isfinite(fb), FLOE, UNKNOWN).astype(np.uint8)
        # Leads are the sea-surface reference: their freeboard is 0 by construction.
        fb = np.where(surface == LEAD, np.where(np.isfinite(fb), fb, 0.0), fb)
        quality &= (surface != UNKNOWN) & np.isfinite(fb)
        return [Track(time=t, latitude=np.nan_to_num(lat), longitude=np.nan_to_num(lon), value=fb,
                      uncertainty=DEFAULT_UNCERTAINTY_M["cryosat2"], surface=surface, quality=quality,
                      footprint_along=CRYOSAT2_FOOTPRINT_M[0], footprint_across=CRYOSAT2_FOOTPRINT_M[1],
                      kind="freeboard", mission="cryosat2", product=m.group(2) if m else "SIR_SAR_2",
                      track_id=os.path.basename(fname), path=fname,
                      attrs={"baseline": baseline, "freeboard_variable": fb_name,
                             "uncertainty_source": "default 0.10 m (AWI)"})]


def write_cryosat2_l2(directory, track: Track, *, baseline: str = "E", version: int = 1,
                      surf_type_class: bool = False, name: str | None = None) -> str:
    """ESA L2 SIR_SAR_2 file (Baseline D or E names) from one Track.

    Freeboard packed int32 mm; lead points get `height_sea_ice_lead_20_ku` valid, floe points
    `height_sea_ice_floe_20_ku`; bad-quality points carry the `freeboard_error` bit. With
    `surf_type_class` a `flag_surf_type_class_20_ku` is written too (flag values as attributes).
    """
    name = name or l2_name(track.time.min(), track.time.max(), baseline, version)
    path = os.path.join(os.fspath(directory), name)
    fb_name = "radar_freeboard_20_ku" if baseline.upper() >= "E" else "freeboard_20_ku"
    n = len(track)
    with _nc.create(path) as ds:
        ds.createDimension("time_20_ku", n)
        ds.mission = "CryoSat-2"
        ds.product_name = name[:-3]
        _nc.put(ds, "time_20_ku", track.time - 946684800.0, np.float64, ("time_20_ku",),
                units="seconds since 2000-01-01 00:00:00.0", calendar="gregorian")
        _nc.put(ds, "lat_poca_20_ku", track.latitude, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-7,
                units="degrees_north")
        _nc.put(ds, "lon_poca_20_ku", track.longitude, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-7,
                units="degrees_east")
        fb = np.where(track.surface == LEAD, np.nan, track.value)  # ESA L2 gives no lead freeboard
        _nc.put(ds, fb_name, fb, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-3, units="m")
        lead_h = np.where(track.surface == LEAD, track.value, np.nan)
        floe_h = np.where(track.surface == FLOE, track.value, np.nan)
        _nc.put(ds, "height_sea_ice_lead_20_ku", lead_h, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-3,
                units="m")
        _nc.put(ds, "height_sea_ice_floe_20_ku", floe_h, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-3,
                units="m")
        status = np.where(track.quality, 0, BASELINE_E_ERROR_BITS["freeboard_error"]).astype(np.uint32)
        _nc.put(ds, "flag_prod_status_20_ku", status, np.uint32, ("time_20_ku",),
                flag_masks=np.array([1, 65536, 16777216], np.uint32),
                flag_meanings="calibration_warning freeboard_error height_1_error")
        if surf_type_class:
            cls = np.select([track.surface == FLOE, track.surface == LEAD, track.surface == SEA_SURFACE],
                            [2, 3, 1], 0).astype(np.int8)
            _nc.put(ds, "flag_surf_type_class_20_ku", cls, np.int8, ("time_20_ku",), fill=np.int8(-1),
                    flag_values=np.array([0, 1, 2, 3], np.int8),
                    flag_meanings="undefined open_ocean sea_ice lead")
        _nc.put(ds, "surf_type_20_ku", np.zeros(n), np.int8, ("time_20_ku",),
                flag_values=np.array([0, 1, 2, 3], np.int8),
                flag_meanings="ocean closed_sea_or_lake continental_ice land")
    return path


# ------------------------------------------------------------------------------------------- L2P
def l2p_name(day_time, mission="cryosat2", hemisphere="nh", kind="awi") -> str:
    day = unix_to_datetime(day_time).strftime("%Y%m%d")
    if kind == "cci":
        return f"ESACCI-SEAICE-L2P-SITHICK-SIRAL_{mission.upper()}-{hemisphere.upper()}-{day}-fv4p0.nc"
    return f"awi-siral-l2p-sithick-{mission}-rep-{hemisphere}-{day}-fv2p6.nc"


def read_l2p(path, variable: str = "radar_freeboard") -> list[Track]:
    """AWI (`latitude`/`longitude`) or ESA-CCI (`lat`/`lon`) L2P file -> one Track (floe points only)."""
    fname = os.fspath(path)
    base = os.path.basename(fname).lower()
    mission = "sentinel3a" if "sentinel3a" in base else "sentinel3b" if "sentinel3b" in base else "cryosat2"
    with _nc.open_nc(fname) as ds:
        lat_name = _nc.first_present(ds, ("latitude", "lat"))
        lon_name = _nc.first_present(ds, ("longitude", "lon"))
        if lat_name is None or lon_name is None:
            raise AltimetryFormatError(fname, "missing variable latitude/lat or longitude/lon")
        t = _nc.read_time(ds, "time", fname, "seconds since 1970-01-01 00:00:00")
        fb = _nc.read_float(ds, variable, fname)
        unc_name = f"{variable}_uncertainty"
        unc = (_nc.read_float(ds, unc_name, fname) if unc_name in ds.variables
               else np.full(fb.shape, DEFAULT_UNCERTAINTY_M["cryosat2"]))
        lat, lon = _nc.read_float(ds, lat_name, fname), _nc.read_float(ds, lon_name, fname)
        quality = np.isfinite(fb) & np.isfinite(lat) & np.isfinite(lon)
        return [Track(time=t, latitude=np.nan_to_num(lat), longitude=np.nan_to_num(lon), value=fb,
                      uncertainty=unc, surface=np.full(fb.shape, FLOE, np.uint8), quality=quality,
                      footprint_along=CRYOSAT2_FOOTPRINT_M[0], footprint_across=CRYOSAT2_FOOTPRINT_M[1],
                      kind="freeboard", mission=mission, product="L2P", track_id=os.path.basename(fname),
                      path=fname, attrs={"freeboard_variable": variable,
                                         "uncertainty_source": unc_name if unc_name in ds.variables else "default"})]


def write_l2p(directory, track: Track, *, kind: str = "awi", hemisphere: str = "nh", name: str | None = None) -> str:
    """AWI (kind='awi') or CCI v4 (kind='cci') L2P from a Track; floe points with valid freeboard only."""
    tr = track.select(track.quality & (track.surface == FLOE))
    name = name or l2p_name(track.time.min(), track.mission or "cryosat2", hemisphere, kind)
    path = os.path.join(os.fspath(directory), name)
    lat_name, lon_name = ("latitude", "longitude") if kind == "awi" else ("lat", "lon")
    with _nc.create(path) as ds:
        ds.createDimension("time", len(tr))
        _nc.put(ds, "time", tr.time, np.float64, ("time",), units="seconds since 1970-01-01 00:00:00")
        _nc.put(ds, lon_name, tr.longitude, np.float32, ("time",), units="degrees_east")
        _nc.put(ds, lat_name, tr.latitude, np.float32, ("time",), units="degrees_north")
        for var in ("radar_freeboard", "sea_ice_freeboard"):
            _nc.put(ds, var, tr.value, np.float32, ("time",), fill=np.float32(np.nan), units="m")
            _nc.put(ds, f"{var}_uncertainty", tr.uncertainty, np.float32, ("time",), fill=np.float32(np.nan),
                    units="m")
        _nc.put(ds, "flag_miz", np.zeros(len(tr)), np.int8, ("time",), flag_values=np.array([0, 1, 2], np.int8),
                flag_meanings="not_in_miz miz_no_bias miz_bias")
    return path
