"""netCDF helpers shared by the CryoSat-2, Sentinel-3 and SWOT readers / writers.

Reading goes through netCDF4 with automatic masking and scaling, so each variable's own
`_FillValue`, `scale_factor`, `add_offset` (and `valid_min` / `valid_max`) are honoured.
"""

from __future__ import annotations

import os

import numpy as np

from seaice_jax.altimetry.track import AltimetryFormatError, seconds_since_to_unix


def open_nc(path):
    import netCDF4
    fname = os.fspath(path)
    try:
        return netCDF4.Dataset(fname, "r")
    except (OSError, ValueError, RuntimeError) as e:
        raise AltimetryFormatError(fname, f"not a netCDF file ({type(e).__name__})") from None


def variable(ds, name, fname):
    if name not in ds.variables:
        raise AltimetryFormatError(fname, f"missing variable {name}")
    return ds.variables[name]


def read_float(ds, name, fname) -> np.ndarray:
    v = variable(ds, name, fname)
    v.set_auto_maskandscale(True)
    data = v[...]
    out = np.ma.filled(np.ma.asarray(data).astype(np.float64), np.nan)
    return np.asarray(out)


def read_int(ds, name, fname) -> tuple[np.ndarray, np.ndarray]:
    """(values int64, valid bool): raw integers (no scaling), fill masked."""
    v = variable(ds, name, fname)
    v.set_auto_scale(False)
    v.set_auto_mask(True)
    data = np.ma.asarray(v[...])
    valid = ~np.ma.getmaskarray(data)
    return np.asarray(np.ma.filled(data, 0)).astype(np.int64), valid


def read_time(ds, name, fname, default_units: str) -> np.ndarray:
    v = variable(ds, name, fname)
    units = getattr(v, "units", default_units)
    v.set_auto_maskandscale(True)
    data = np.ma.filled(np.ma.asarray(v[...]).astype(np.float64), np.nan)
    return seconds_since_to_unix(data, units, fname)


def attr_text(value) -> str:
    """An attribute as one string, whatever way the file stores it: a str, fixed-length bytes
    (HDF5 files written with h5py / the ICESat-2 SIPS), or an array / list of either (netCDF-4 writes
    NC_STRING attributes as variable-length strings in arrays: the NSIDC ordering-service subsets).
    The elements of an array are joined with spaces; None is ''."""
    if value is None:
        return ""
    if isinstance(value, bytes):  # also np.bytes_
        return value.decode("utf-8", "replace").strip("\x00 ")
    if isinstance(value, str):  # also np.str_
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        parts = (attr_text(v) for v in np.asarray(value, dtype=object).ravel())
        return " ".join(p for p in parts if p)
    return str(value)


def attr_ints(value) -> list[int] | None:
    """Integer flag values / masks as a list: numeric arrays or scalars, or (seldom) a string of numbers."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind in "SUO":
        try:
            return [int(float(x)) for x in attr_text(value).replace(",", " ").split()]
        except ValueError:
            return None
    return [int(x) for x in np.atleast_1d(arr).ravel().tolist()]


def flag_meanings(v) -> dict[str, int]:
    """meaning -> value (flag_values) or mask (flag_masks), from the variable's attributes."""
    names = attr_text(getattr(v, "flag_meanings", None)).split()
    for key in ("flag_masks", "flag_values"):
        vals = attr_ints(getattr(v, key, None))
        if vals is not None and len(vals) == len(names):
            return {n: x for n, x in zip(names, vals, strict=True)}
    return {}


def first_present(ds, names):
    return next((n for n in names if n in ds.variables), None)


def create(path, fmt="NETCDF4"):
    import netCDF4
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    return netCDF4.Dataset(os.fspath(path), "w", format=fmt)


def put(ds, name, data, dtype, dims, fill=None, scale=None, **attrs):
    """A variable; with `scale` the data (physical units, NaN = missing) is packed as integers."""
    kw = {"fill_value": np.asarray(fill, dtype)} if fill is not None else {}
    v = ds.createVariable(name, dtype, dims, zlib=False, **kw)
    data = np.asarray(data)
    if scale is not None:
        v.scale_factor = scale
        v.set_auto_maskandscale(False)
        packed = np.round(np.asarray(data, np.float64) / scale)
        packed = np.where(np.isfinite(packed), packed, fill if fill is not None else 0)
        v[...] = packed.astype(dtype)
    else:
        v.set_auto_maskandscale(False)
        if fill is not None and np.issubdtype(np.asarray(data).dtype, np.floating):
            data = np.where(np.isfinite(data), data, fill)
        v[...] = np.asarray(data).astype(dtype)
    for k, val in attrs.items():
        setattr(v, k, val)
    return v
