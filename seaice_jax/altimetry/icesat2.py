"""ICESat-2 ATL10 (freeboard) and ATL07 (sea-ice height) HDF5 granules: readers and writers.

Layouts (docs/altimetry.md section 2):
  * ATL10 release 006 and later: `/gtx/freeboard_segment/{latitude, longitude, delta_time,
    beam_fb_height, beam_fb_sigma, beam_fb_unc, beam_fb_quality_flag, height_segment_id}` and
    `/gtx/freeboard_segment/heights/{height_segment_type, height_segment_ssh_flag,
    height_segment_length_seg}`;
  * ATL10 release <= 005: `/gtx/freeboard_beam_segment/beam_freeboard/{beam_fb_height, latitude,
    longitude, delta_time, beam_fb_quality_flag, beam_fb_sigma}` and
    `/gtx/freeboard_beam_segment/height_segments/{height_segment_type, ...}`;
  * ATL07: `/gtx/sea_ice_segments/{latitude, longitude, delta_time}` and
    `/gtx/sea_ice_segments/heights/{height_segment_height, height_segment_quality (1 good),
    height_segment_type, height_segment_ssh_flag, height_segment_length_seg, height_segment_sigma}`.
Strong beams from `/orbit_info/sc_orient`: 0 backward -> gt*l strong, 1 forward -> gt*r strong,
2 transition -> all beams kept (strength undetermined). `delta_time` counts seconds from the ATLAS
SDP epoch 2018-01-01T00:00Z; `/ancillary_data/atlas_sdp_gps_epoch` (1198800018 GPS s) is used when present.
h5py does not mask: `_FillValue`, `scale_factor`, `add_offset`, `flag_values` / `flag_meanings` are read
from each dataset's attributes (fixed-length bytes, str, or arrays of variable-length strings as in
files written through netCDF-4, e.g. NSIDC subsets).
Quality: ATL10 `beam_fb_quality_flag` by its `flag_meanings` (release 006: -1 invalid, 1 best ... 5 poor;
invalid and poor are bad), without meanings 0-4 good and -1 / 5 / fill bad; ATL07
`height_segment_quality` by its meanings (1 good_quality, 0 bad_quality). A beam without segments is
skipped with a note (`read_icesat2(..., notes=[])`), never the whole granule.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re

import numpy as np

from seaice_jax.altimetry._nc import attr_ints, attr_text
from seaice_jax.altimetry.track import (
    FLOE,
    ICESAT2_SPOT_M,
    LEAD,
    UNKNOWN,
    AltimetryFormatError,
    Track,
    unix_to_datetime,
)

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
ATLAS_SDP_GPS_EPOCH = 1198800018.0  # GPS seconds of 2018-01-01T00:00:00Z
GPS_EPOCH_UNIX = 315964800.0  # 1980-01-06T00:00:00Z
GPS_UTC_LEAP_2018 = 18.0  # GPS - UTC on 2018-01-01 (no leap second since 2017-01-01)
ATLAS_EPOCH_UNIX = ATLAS_SDP_GPS_EPOCH + GPS_EPOCH_UNIX - GPS_UTC_LEAP_2018  # = 1514764800
FLOAT_FILL = np.float32(3.4028235e38)
DEFAULT_SEGMENT_M = 60.0  # when a file has no segment length (150 photons: 27-200 m on strong beams)

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"(ATL0[7-9]|ATL10)-(\d\d)_(\d{14})_(\d{4})(\d\d)(\d\d)_(\d{3})_(\d\d)")


def _h5py():
    import h5py
    return h5py


def strong_beams(sc_orient: int) -> tuple[str, ...]:
    if int(sc_orient) == 0:
        return ("gt1l", "gt2l", "gt3l")
    if int(sc_orient) == 1:
        return ("gt1r", "gt2r", "gt3r")
    return BEAMS


def granule_name(product: str, start_time: float, rgt: int = 1307, cycle: int = 2, region: int = 1,
                 release: int = 6, version: int = 1, hemisphere: str = "nh") -> str:
    """e.g. `ATL10-01_20190324002217_13070201_006_01.h5` (`-01` north, `-02` south)."""
    stamp = unix_to_datetime(start_time).strftime("%Y%m%d%H%M%S")
    hemi = "01" if hemisphere.lower().startswith("n") else "02"
    return f"{product}-{hemi}_{stamp}_{rgt:04d}{cycle:02d}{region:02d}_{release:03d}_{version:02d}.h5"


# --------------------------------------------------------------------------------------- reading
def _dataset(f, path, fname):
    if path not in f:
        raise AltimetryFormatError(fname, f"missing dataset /{path}")
    return f[path]


def _read_float(f, path, fname) -> np.ndarray:
    """A dataset as float64 with its `_FillValue` (and values beyond +-1e30) as NaN, scaling applied."""
    ds = _dataset(f, path, fname)
    raw = ds[...]
    out = raw.astype(np.float64)
    bad = np.zeros(out.shape, bool)
    fill = ds.attrs.get("_FillValue", None)
    if fill is not None:
        fill = np.asarray(fill).ravel()[0]
        bad |= raw == np.asarray(fill, raw.dtype)
    if np.issubdtype(raw.dtype, np.floating):
        bad |= ~np.isfinite(out) | (np.abs(out) > 1e30)
    scale = ds.attrs.get("scale_factor", None)
    offset = ds.attrs.get("add_offset", None)
    if scale is not None:
        out = out * float(np.asarray(scale).ravel()[0])
    if offset is not None:
        out = out + float(np.asarray(offset).ravel()[0])
    out[bad] = np.nan
    return out


def _read_int(f, path, fname) -> tuple[np.ndarray, np.ndarray]:
    """An integer flag dataset: (values int64, valid bool), fill from `_FillValue`."""
    ds = _dataset(f, path, fname)
    raw = ds[...]
    valid = np.ones(raw.shape, bool)
    fill = ds.attrs.get("_FillValue", None)
    if fill is not None:
        valid &= raw != np.asarray(np.asarray(fill).ravel()[0]).astype(raw.dtype)
    return raw.astype(np.int64), valid


def _flag_meanings(ds) -> dict[int, str]:
    """value -> meaning from `flag_values` / `flag_meanings` (bytes, str or arrays of either)."""
    values = attr_ints(ds.attrs.get("flag_values", None))
    names = attr_text(ds.attrs.get("flag_meanings", None)).split()
    if not values or len(names) != len(values):
        return {}
    return {int(v): n for v, n in zip(values, names, strict=True)}


_BAD_WORDS = ("bad", "invalid", "poor", "fill", "cloud")

# ATL10 `beam_fb_quality_flag` without flag attributes. Release 006 (real granule, docs/altimetry.md
# section 2): -1 invalid, 1 best, 2 high, 3 med, 4 low, 5 poor (fit of the along-track reference;
# 'poor' freeboards are 0.2-1 m off). Older releases may use 0 for best: 0 is kept good, as it is
# no worse than 1 under either numbering. Bad: -1, 5, the fill value and any other value.
ATL10_GOOD_WITHOUT_MEANINGS = (0, 1, 2, 3, 4)
# ATL07 `height_segment_quality` without flag attributes: 1 good_quality, 0 bad_quality.
ATL07_GOOD_WITHOUT_MEANINGS = (1,)


def _good_quality(f, path, fname, default_good: tuple[int, ...]) -> np.ndarray:
    """Quality flag -> bool: from `flag_values` / `flag_meanings` (values whose meaning is not bad /
    invalid / poor / fill / cloud), else the values in `default_good`. Fill values are never good."""
    values, valid = _read_int(f, path, fname)
    meanings = _flag_meanings(f[path])
    if meanings:
        good = [v for v, n in meanings.items() if not any(w in n.lower() for w in _BAD_WORDS)]
    else:
        good = list(default_good)
    return valid & np.isin(values, good)


def _surface_class(seg_type, type_valid, ssh_flag, ssh_valid) -> np.ndarray:
    """`height_segment_type`: 0 cloud, 1 sea ice, 2-5 specular leads, 6-9 dark leads;
    `height_segment_ssh_flag`: 1 = lead used for the sea-surface reference."""
    surface = np.full(seg_type.shape, UNKNOWN, np.uint8)
    surface[type_valid & (seg_type == 1)] = FLOE
    surface[type_valid & (seg_type >= 2) & (seg_type <= 9)] = LEAD
    surface[ssh_valid & (ssh_flag == 1)] = LEAD
    return surface


def _atlas_epoch_unix(f) -> float:
    path = "ancillary_data/atlas_sdp_gps_epoch"
    if path in f:
        gps = float(np.asarray(f[path][...]).ravel()[0])
        return gps + GPS_EPOCH_UNIX - GPS_UTC_LEAP_2018
    return ATLAS_EPOCH_UNIX


def _beams_to_read(f, fname, beams) -> tuple[list[str], list[str]]:
    """(beams present to read, requested beams the granule does not hold)."""
    present = [b for b in BEAMS if b in f]
    if not present:
        raise AltimetryFormatError(fname, "no ICESat-2 beam groups (gt1l ... gt3r)")
    if beams == "all":
        return present, []
    if beams == "strong":
        if "orbit_info/sc_orient" not in f:
            raise AltimetryFormatError(fname, "missing dataset /orbit_info/sc_orient (needed for strong beams)")
        orient = int(np.asarray(f["orbit_info/sc_orient"][...]).ravel()[0])
        if orient not in (0, 1):  # transition: strength undetermined, every beam the granule holds
            return present, []
        wanted = list(strong_beams(orient))
    else:
        wanted = [beams] if isinstance(beams, str) else list(beams)
        unknown = [b for b in wanted if b not in BEAMS]
        if unknown:
            raise ValueError(f"beams {unknown} are not ICESat-2 beams {BEAMS}")
    return [b for b in wanted if b in present], [b for b in wanted if b not in present]


def _layout(f, fname) -> str:
    for b in BEAMS:
        if b in f:
            g = f[b]
            if "freeboard_segment" in g:
                return "atl10"
            if "freeboard_beam_segment" in g:
                return "atl10_r005"
            if "sea_ice_segments" in g:
                return "atl07"
    raise AltimetryFormatError(fname, "no ICESat-2 ATL10 (freeboard_segment / freeboard_beam_segment) "
                                      "or ATL07 (sea_ice_segments) beam group")


def _sc_orient(f):
    return int(np.asarray(f["orbit_info/sc_orient"][...]).ravel()[0]) if "orbit_info/sc_orient" in f else -1


def _paths(layout: str, beam: str) -> tuple[str, str, str, str]:
    """(segment group, heights group, value dataset, product) of one beam."""
    if layout == "atl10":
        base = f"{beam}/freeboard_segment"
        return base, f"{base}/heights", f"{base}/beam_fb_height", "ATL10"
    if layout == "atl10_r005":
        base = f"{beam}/freeboard_beam_segment/beam_freeboard"
        return base, f"{beam}/freeboard_beam_segment/height_segments", f"{base}/beam_fb_height", "ATL10"
    base = f"{beam}/sea_ice_segments"
    return base, f"{base}/heights", f"{base}/heights/height_segment_height", "ATL07"


def _empty_beam(f, beam: str, base: str) -> str | None:
    """Why a beam holds no segments ('no sea_ice_segments/latitude (only stats)', '0 segments'), or None.
    Only a missing segment geolocation (or zero rows) counts: a beam with latitudes but without
    another needed dataset is a broken file, refused by the reader."""
    rel = base[len(beam) + 1:]
    if base not in f:
        return f"no {rel} group"
    if f"{base}/latitude" not in f:
        held = sorted(f[base].keys())
        return f"no {rel}/latitude ({'only ' + ', '.join(held) if held else 'empty group'})"
    if f[f"{base}/latitude"].shape[:1] == (0,):
        return "0 segments"
    return None


def _note(notes: list[str] | None, line: str) -> None:
    if notes is None:
        log.warning("%s", line)
    else:
        notes.append(line)


def read_icesat2(path, beams="strong", notes: list[str] | None = None) -> list[Track]:
    """An ATL10 (either layout) or ATL07 granule -> one Track per beam with segments.

    beams: 'strong' (from `orbit_info/sc_orient`), 'all', or a list of beam names.
    A requested beam without segments (subsets often keep only `stats` of a beam), or one the
    granule does not hold, is skipped: one line per beam ('<file>: gt2r: no sea_ice_segments/latitude
    (only stats): skipped') is appended to `notes` (logged as a warning when `notes` is None). A granule
    whose every requested beam is skipped returns []. A file that is not an ATL07 / ATL10 granule, or
    a beam with segments but without a needed dataset, raises AltimetryFormatError (one line).

    ATL07 tracks carry `attrs['ssh_flag']` (bool per segment, `height_segment_ssh_flag` == 1: the
    leads that reference the sea surface, see `kinds.atl07_freeboard`); every track carries
    `attrs['flag_good']` (bool per segment: the product's own quality flag alone).
    """
    h5py = _h5py()
    fname = os.fspath(path)
    try:
        f = h5py.File(fname, "r")
    except (OSError, ValueError) as e:
        raise AltimetryFormatError(fname, f"not an HDF5 file ({type(e).__name__})") from None
    with f:
        layout = _layout(f, fname)
        epoch = _atlas_epoch_unix(f)
        orient = _sc_orient(f)
        strong = strong_beams(orient) if orient in (0, 1) else ()
        granule = os.path.basename(fname)
        to_read, missing = _beams_to_read(f, fname, beams)
        for beam in missing:
            _note(notes, f"{fname}: {beam}: no {beam} group in the granule: skipped")
        out = []
        for beam in to_read:
            base, hs, value_path, product = _paths(layout, beam)
            empty = _empty_beam(f, beam, base)
            if empty is not None:
                _note(notes, f"{fname}: {beam}: {empty}: skipped")
                continue
            out.append(_read_beam(f, fname, beam, base, hs, value_path, product, layout, epoch, orient,
                                  beam in strong, granule))
        return out


def _read_beam(f, fname, beam, base, hs, value_path, product, layout, epoch, orient, strong, granule) -> Track:
    lat = _read_float(f, f"{base}/latitude", fname)
    lon = _read_float(f, f"{base}/longitude", fname)
    t = _read_float(f, f"{base}/delta_time", fname) + epoch
    value = _read_float(f, value_path, fname)
    n = lat.shape[0]
    for name, arr in (("longitude", lon), ("delta_time", t), (value_path.rpartition("/")[2], value)):
        if arr.shape != (n,):
            raise AltimetryFormatError(fname, f"/{beam}: {name} has shape {arr.shape}, latitude ({n},)")
    if product == "ATL10":
        flag = f"{base}/beam_fb_quality_flag"
        default_good = ATL10_GOOD_WITHOUT_MEANINGS
        unc_name = next((p for p in (f"{base}/beam_fb_unc", f"{base}/beam_fb_sigma") if p in f), None)
    else:
        flag = f"{hs}/height_segment_quality"
        default_good = ATL07_GOOD_WITHOUT_MEANINGS
        unc_name = next((p for p in (f"{hs}/height_segment_sigma", f"{hs}/height_segment_surface_error_est")
                         if p in f), None)
    flag_good = _good_quality(f, flag, fname, default_good)
    unc = _read_float(f, unc_name, fname) if unc_name else np.full(n, np.nan)
    if f"{hs}/height_segment_type" in f:
        st, sv = _read_int(f, f"{hs}/height_segment_type", fname)
    else:
        st, sv = np.ones(n, np.int64), np.ones(n, bool)
    if f"{hs}/height_segment_ssh_flag" in f:
        ssh, shv = _read_int(f, f"{hs}/height_segment_ssh_flag", fname)
    else:
        ssh, shv = np.zeros(n, np.int64), np.zeros(n, bool)
    surface = _surface_class(st, sv, ssh, shv)
    if f"{hs}/height_segment_length_seg" in f:
        seg = _read_float(f, f"{hs}/height_segment_length_seg", fname)
        seg = np.where(np.isfinite(seg) & (seg > 0), seg, DEFAULT_SEGMENT_M)
    else:
        seg = np.full(n, DEFAULT_SEGMENT_M)
    quality = flag_good & np.isfinite(lat) & np.isfinite(lon) & np.isfinite(t) & (surface != UNKNOWN)
    attrs = {"layout": layout, "strong": strong, "sc_orient": orient, "uncertainty_source": unc_name or "none",
             "quality_flag": flag.rpartition("/")[2], "flag_good": flag_good,
             "ssh_flag": shv & (ssh == 1), "ssh_flag_present": f"{hs}/height_segment_ssh_flag" in f}
    return Track(time=t, latitude=np.nan_to_num(lat), longitude=np.nan_to_num(lon), value=value,
                 uncertainty=unc, surface=surface, quality=quality,
                 footprint_along=np.maximum(seg, ICESAT2_SPOT_M), footprint_across=ICESAT2_SPOT_M,
                 kind="freeboard" if product == "ATL10" else "height", mission="icesat2",
                 product=product, beam=beam, track_id=f"{granule}:{beam}", path=fname, attrs=attrs)


# --------------------------------------------------------------------------------------- writing
def _put(g, name, data, dtype, fill=None, **attrs):
    data = np.asarray(data)
    kw = {"fillvalue": np.asarray(fill, dtype)} if fill is not None else {}
    ds = g.create_dataset(name, data=data.astype(dtype), **kw)
    if fill is not None:
        ds.attrs["_FillValue"] = np.asarray(fill, dtype)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _float_with_fill(x):
    x = np.asarray(x, np.float64)
    return np.where(np.isfinite(x), x, FLOAT_FILL)


def _segment_types(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """ATL07/10 `height_segment_type` and `height_segment_ssh_flag` from Track surface classes."""
    seg_type = np.where(track.surface == LEAD, 2, np.where(track.surface == FLOE, 1, 0)).astype(np.int8)
    ssh = track.attrs.get("ssh_flag")  # a track read from ATL07 / ATL10 keeps the product's own flag
    if isinstance(ssh, np.ndarray) and ssh.shape == (len(track),):
        ssh_flag = (ssh.astype(bool) & (track.surface == LEAD)).astype(np.int8)
    else:
        ssh_flag = (track.surface == LEAD).astype(np.int8)
    return seg_type, ssh_flag


def _write_common(f, start_time, end_time, sc_orient, release, product):
    anc = f.create_group("ancillary_data")
    _put(anc, "atlas_sdp_gps_epoch", [ATLAS_SDP_GPS_EPOCH], np.float64,
         units="seconds since 1980-01-06T00:00:00.000000Z")
    for key, t in (("data_start_utc", start_time), ("data_end_utc", end_time)):
        anc.create_dataset(key, data=np.array([unix_to_datetime(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()]))
    anc.create_dataset("release", data=np.array([f"{release:03d}".encode()]))
    orbit = f.create_group("orbit_info")
    _put(orbit, "sc_orient", [sc_orient], np.int8, flag_values=np.array([0, 1, 2], np.int8),
         flag_meanings="backward forward transition")
    f.attrs["short_name"] = product
    f.attrs["release"] = f"{release:03d}"


def _beam_dict(tracks) -> dict[str, Track]:
    if isinstance(tracks, Track):
        tracks = [tracks]
    out = {}
    for i, t in enumerate(tracks):
        beam = t.beam or BEAMS[i]
        if beam not in BEAMS:
            raise ValueError(f"beam {beam!r} is not one of {BEAMS}")
        out[beam] = t
    return out


def _granule(product: str, directory, tracks, rgt: int, cycle: int, region: int, release: int,
             hemisphere: str, name: str | None):
    """(beam -> Track, first time, last time, path) of a granule to write; the folder is made."""
    beams = _beam_dict(tracks)
    t0 = min(float(t.time.min()) for t in beams.values())
    t1 = max(float(t.time.max()) for t in beams.values())
    name = name or granule_name(product, t0, rgt, cycle, region, release, 1, hemisphere)
    os.makedirs(os.fspath(directory), exist_ok=True)
    return beams, t0, t1, os.path.join(os.fspath(directory), name)


def write_atl10(directory, tracks, *, sc_orient: int = 0, release: int = 6, rgt: int = 1307, cycle: int = 2,
                region: int = 1, hemisphere: str = "nh", name: str | None = None) -> str:
    """ATL10 granule from Tracks (freeboard, one per beam; `Track.beam` names the group).

    release >= 6 writes the `freeboard_segment` layout, <= 5 the `freeboard_beam_segment/beam_freeboard`
    one. `beam_fb_quality_flag` in the real release-006 layout (int8, `flag_values` -1 1 2 3 4 5,
    `flag_meanings` 'invalid best high med low poor', `_FillValue` -1): good points 1, bad-quality
    points 5 (poor), points without a value -1 (invalid, with the float fill as value).
    """
    h5py = _h5py()
    beams, t0, t1, path = _granule("ATL10", directory, tracks, rgt, cycle, region, release, hemisphere, name)
    with h5py.File(path, "w") as f:
        _write_common(f, t0, t1, sc_orient, release, "ATL10")
        for beam, tr in beams.items():
            if release >= 6:
                base = f.create_group(f"{beam}/freeboard_segment")
                hs = base.create_group("heights")
            else:
                base = f.create_group(f"{beam}/freeboard_beam_segment/beam_freeboard")
                hs = f.create_group(f"{beam}/freeboard_beam_segment/height_segments")
            n = len(tr)
            _put(base, "latitude", tr.latitude, np.float64, units="degrees_north")
            _put(base, "longitude", tr.longitude, np.float64, units="degrees_east")
            _put(base, "delta_time", tr.time - ATLAS_EPOCH_UNIX, np.float64,
                 units="seconds since 2018-01-01")
            _put(base, "beam_fb_height", _float_with_fill(tr.value), np.float32, FLOAT_FILL, units="meters")
            _put(base, "beam_fb_sigma", _float_with_fill(tr.uncertainty), np.float32, FLOAT_FILL, units="meters")
            if release >= 6:
                _put(base, "beam_fb_unc", _float_with_fill(tr.uncertainty), np.float32, FLOAT_FILL, units="meters")
            # the release-006 layout (a real granule's attributes, variable-length strings in arrays as
            # the NSIDC subsets hold them): good points 1 (best), bad ones 5 (poor), no value -1 (invalid)
            # (release <= 5: the flag attributes of those releases are not known here (U), so the
            # flag is written without them and a reader's defaults apply)
            flag = np.where(np.isfinite(tr.value), np.where(tr.quality, 1, 5), -1)
            flag_attrs = {} if release < 6 else {
                "flag_values": np.array([-1, 1, 2, 3, 4, 5], np.int8),
                "flag_meanings": np.array(["invalid best high med low poor"], dtype=h5py.string_dtype()),
                "valid_min": np.int8(-1), "valid_max": np.int8(5)}
            _put(base, "beam_fb_quality_flag", flag, np.int8, np.int8(-1), **flag_attrs)
            _put(base, "height_segment_id", np.arange(1, n + 1), np.int32)
            seg_type, ssh_flag = _segment_types(tr)
            _put(hs, "height_segment_type", seg_type, np.int8, np.int8(-1))
            _put(hs, "height_segment_ssh_flag", ssh_flag, np.int8, np.int8(-1),
                 flag_values=np.array([0, 1], np.int8), flag_meanings="sea_ice sea_surface")
            _put(hs, "height_segment_length_seg", _float_with_fill(tr.footprint_along), np.float32, FLOAT_FILL,
                 units="meters")
    return path


def write_atl07(directory, tracks, *, sc_orient: int = 0, release: int = 6, rgt: int = 1307, cycle: int = 2,
                region: int = 1, hemisphere: str = "nh", name: str | None = None) -> str:
    """ATL07 granule from Tracks (surface heights, one per beam)."""
    h5py = _h5py()
    beams, t0, t1, path = _granule("ATL07", directory, tracks, rgt, cycle, region, release, hemisphere, name)
    with h5py.File(path, "w") as f:
        _write_common(f, t0, t1, sc_orient, release, "ATL07")
        for beam, tr in beams.items():
            base = f.create_group(f"{beam}/sea_ice_segments")
            hs = base.create_group("heights")
            n = len(tr)
            _put(base, "latitude", tr.latitude, np.float64, units="degrees_north")
            _put(base, "longitude", tr.longitude, np.float64, units="degrees_east")
            _put(base, "delta_time", tr.time - ATLAS_EPOCH_UNIX, np.float64, units="seconds since 2018-01-01")
            _put(base, "height_segment_id", np.arange(1, n + 1), np.int32)
            _put(hs, "height_segment_height", _float_with_fill(tr.value), np.float32, FLOAT_FILL, units="meters")
            _put(hs, "height_segment_sigma", _float_with_fill(tr.uncertainty), np.float32, FLOAT_FILL, units="meters")
            _put(hs, "height_segment_quality", tr.quality.astype(np.int8), np.int8, np.int8(-1),
                 flag_values=np.array([0, 1], np.int8), flag_meanings="bad_quality good_quality")
            seg_type, ssh_flag = _segment_types(tr)
            _put(hs, "height_segment_type", seg_type, np.int8, np.int8(-1))
            _put(hs, "height_segment_ssh_flag", ssh_flag, np.int8, np.int8(-1),
                 flag_values=np.array([0, 1], np.int8), flag_meanings="sea_ice sea_surface")
            _put(hs, "height_segment_length_seg", _float_with_fill(tr.footprint_along), np.float32, FLOAT_FILL,
                 units="meters")
    return path


def parse_granule_name(name: str) -> dict | None:
    m = _NAME_RE.search(os.path.basename(name))
    if not m:
        return None
    product, hemi, stamp, rgt, cycle, region, release, version = m.groups()
    return {"product": product, "hemisphere": "nh" if hemi == "01" else "sh",
            "start": _dt.datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=_dt.UTC),
            "rgt": int(rgt), "cycle": int(cycle), "region": int(region), "release": int(release),
            "version": int(version)}
