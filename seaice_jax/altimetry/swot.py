"""SWOT KaRIn L2 LR SSH Unsmoothed (`/left`, `/right` groups): a validation swath, never training points.

Per side (docs/altimetry.md section 4): (`num_lines`, `num_pixels`) grids, 250 m posting; `latitude`,
`longitude` int32 x 1e-6 with fill 2147483647 (longitude 0-360); `time` [num_lines] seconds since
2000-01-01 (its `units` attribute); `ssh_karin_2` (or `ssh_karin`) int32 x 1e-4 m; `height_cor_xover`
is **added** (crossover calibration); quality `<height>_qual`, else whichever of `ssh_karin_2_qual` /
`ssha_karin_2_qual` / `ssh_karin_qual` / `ssha_karin_qual` the side has (uint32 bit flags, 0 = good,
fill 4294967295 = bad); a side without any is refused in one line; `mean_sea_surface_cnescls` when
present. Every scaling and fill comes from the variables' own attributes (netCDF4 auto mask-and-scale).
"""

from __future__ import annotations

import os

import numpy as np

from seaice_jax.altimetry import _nc
from seaice_jax.altimetry.track import AltimetryFormatError, Swath, unix_to_datetime, wrap_lon

SIDES = ("left", "right")
HEIGHT_NAMES = ("ssh_karin_2", "ssh_karin")
# Quality bit flags (uint32, 0 = good). The L2 LR SSH products carry `ssh_karin_2_qual`,
# `ssha_karin_2_qual` and the older-processing `ssh_karin_qual`, `ssha_karin_qual` (PO.DAAC variable
# lists; an Unsmoothed reader pairs `ssh_karin_2` with `ssh_karin_qual`). The one named after the height
# read comes first. A side with none of them is refused: SWOT pixels are never used unscreened.
QUALITY_NAMES = ("ssh_karin_2_qual", "ssha_karin_2_qual")
OLDER_QUALITY_NAMES = ("ssh_karin_qual", "ssha_karin_qual")


def quality_names(height_name: str) -> tuple[str, ...]:
    """The quality variables tried for a height variable, in order."""
    names = (f"{height_name}_qual",) + QUALITY_NAMES + OLDER_QUALITY_NAMES
    return tuple(dict.fromkeys(names))


def swot_name(start_time, stop_time, cycle=486, pass_number=5, crid="PIC2", counter=1) -> str:
    fmt = "%Y%m%dT%H%M%S"
    s, e = unix_to_datetime(start_time).strftime(fmt), unix_to_datetime(stop_time).strftime(fmt)
    return f"SWOT_L2_LR_SSH_Unsmoothed_{cycle:03d}_{pass_number:03d}_{s}_{e}_{crid}_{counter:02d}.nc"


def read_swot(path) -> list[Swath]:
    """An Unsmoothed granule -> [left Swath, right Swath] (sides the file has)."""
    fname = os.fspath(path)
    with _nc.open_nc(fname) as root:
        sides = [s for s in SIDES if s in root.groups]
        if not sides:
            raise AltimetryFormatError(fname, "no /left or /right group (not a SWOT L2 LR SSH Unsmoothed file)")
        out = []
        for side in sides:
            g = root.groups[side]
            h_name = _nc.first_present(g, HEIGHT_NAMES)
            if h_name is None:
                raise AltimetryFormatError(fname, f"missing variable /{side}/ssh_karin_2 (or ssh_karin)")
            lat = _nc.read_float(g, "latitude", fname)
            lon = _nc.read_float(g, "longitude", fname)
            t = _nc.read_time(g, "time", fname, "seconds since 2000-01-01 00:00:00.0")
            h = _nc.read_float(g, h_name, fname)
            if "height_cor_xover" not in g.variables:
                raise AltimetryFormatError(fname, f"missing variable /{side}/height_cor_xover")
            xover = _nc.read_float(g, "height_cor_xover", fname)
            height = h + xover
            qual_name = _nc.first_present(g, quality_names(h_name))
            if qual_name is None:
                raise AltimetryFormatError(fname, f"/{side}: no ssha_karin_2_qual / ssh_karin_2_qual quality variable: "
                                                  "refusing to read SWOT pixels unscreened (also tried "
                                                  f"{' / '.join(OLDER_QUALITY_NAMES)})")
            q, qv = _nc.read_int(g, qual_name, fname)
            if q.shape != h.shape:
                raise AltimetryFormatError(fname, f"/{side}/{qual_name} has shape {q.shape}, {h_name} {h.shape}")
            # bit flags: 0 = good, any bit set or the fill value (4294967295) = bad
            quality = np.isfinite(height) & np.isfinite(lat) & np.isfinite(lon) & qv & (q == 0)
            mss = (_nc.read_float(g, "mean_sea_surface_cnescls", fname) if "mean_sea_surface_cnescls" in g.variables
                   else np.full(h.shape, np.nan))
            out.append(Swath(time=t, latitude=lat, longitude=wrap_lon(lon), height=height.astype(np.float32),
                             mss=mss.astype(np.float32), quality=quality, side=side,
                             track_id=f"{os.path.basename(fname)}:{side}", path=fname,
                             attrs={"height_variable": h_name, "quality_variable": qual_name}))
        return out


def write_swot(directory, swaths: list[Swath], *, cycle=486, pass_number=5, name: str | None = None,
               xover=None) -> str:
    """An Unsmoothed granule from Swaths (one per side; `Swath.side` names the group).

    `Swath.height` is what the reader must return: the file stores `ssh_karin_2` = height - xover and
    `height_cor_xover` = xover (per side, [L, P], default 0). Bad-quality pixels get bit 1 of
    `ssh_karin_2_qual`.
    """
    t0 = min(float(s.time.min()) for s in swaths)
    t1 = max(float(s.time.max()) for s in swaths)
    name = name or swot_name(t0, t1, cycle, pass_number)
    path = os.path.join(os.fspath(directory), name)
    xover = xover or {}
    with _nc.create(path) as root:
        root.title = "Level 2 Low Rate Sea Surface Height Data Product - Unsmoothed"
        root.cycle_number, root.pass_number = np.int16(cycle), np.int16(pass_number)
        for sw in swaths:
            g = root.createGroup(sw.side)
            lines, pixels = sw.height.shape
            g.createDimension("num_lines", lines)
            g.createDimension("num_pixels", pixels)
            dims = ("num_lines", "num_pixels")
            _nc.put(g, "time", sw.time - 946684800.0, np.float64, ("num_lines",), fill=9.969209968386869e36,
                    units="seconds since 2000-01-01 00:00:00.0", leap_second="0000-00-00T00:00:00Z")
            _nc.put(g, "latitude", sw.latitude, np.int32, dims, fill=2147483647, scale=1e-6, units="degrees_north")
            _nc.put(g, "longitude", np.mod(sw.longitude, 360.0), np.int32, dims, fill=2147483647, scale=1e-6,
                    units="degrees_east")
            xo = np.broadcast_to(np.asarray(xover.get(sw.side, 0.0), np.float64), sw.height.shape)
            _nc.put(g, "ssh_karin_2", sw.height - xo, np.int32, dims, fill=2147483647, scale=1e-4, units="m")
            _nc.put(g, "height_cor_xover", xo, np.int32, dims, fill=2147483647, scale=1e-4, units="m")
            _nc.put(g, "ssh_karin_2_qual", np.where(sw.quality, 0, 2), np.uint32, dims, fill=np.uint32(4294967295),
                    flag_masks=np.array([1, 2, 4], np.uint32),
                    flag_meanings="suspect_large_ssh_delta suspect_large_ssh_std suspect_large_ssh_window_std")
            if np.isfinite(sw.mss).any():
                _nc.put(g, "mean_sea_surface_cnescls", sw.mss, np.int32, dims, fill=2147483647, scale=1e-4, units="m")
    return path
