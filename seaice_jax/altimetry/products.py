"""Product detection: `open_altimetry(path)` reads any supported file; `write_tracks` writes one layout."""

from __future__ import annotations

import os

from seaice_jax.altimetry import cryosat2, icesat2, sentinel3, swot
from seaice_jax.altimetry.track import AltimetryFormatError, Swath, Track

SUPPORTED = ("ICESat-2 ATL10/ATL07, CryoSat-2 SIR_SAR_2 (Baseline D/E), AWI/CCI L2P, Sentinel-3 SR_2_LAN_SI, "
             "SWOT L2 LR SSH Unsmoothed")


def _signature(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as e:
        raise AltimetryFormatError(path, f"cannot read ({e.strerror or type(e).__name__})") from None


def open_altimetry(path, notes: list[str] | None = None, *, beams="strong",
                   variable: str = "radar_freeboard") -> list[Track] | list[Swath]:
    """Detects the product by content and reads it: a list of Tracks, or of Swaths for SWOT.

    notes: ICESat-2 beams without segments are skipped with one line each appended here (logged when
    None); a granule may so give []. beams: ICESat-2 beams ('strong', 'all' or names); variable: the
    L2P freeboard ('radar_freeboard' or 'sea_ice_freeboard'). A file that is not a supported product
    raises AltimetryFormatError (one line naming the file).
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        if os.path.exists(os.path.join(p, sentinel3.MEASUREMENT_FILE)):
            return sentinel3.read_sentinel3(p)
        raise AltimetryFormatError(p, f"folder without {sentinel3.MEASUREMENT_FILE}; not a supported product")
    if not os.path.exists(p):
        raise AltimetryFormatError(p, "no such file")
    sig = _signature(p)
    if sig.startswith(b"\x89HDF"):
        import h5py
        try:
            with h5py.File(p, "r") as f:
                is_is2 = any(b in f for b in icesat2.BEAMS)
        except OSError:
            is_is2 = False
        if is_is2:
            return icesat2.read_icesat2(p, beams=beams, notes=notes)
    elif not sig.startswith(b"CDF"):
        raise AltimetryFormatError(p, f"neither HDF5 nor netCDF; supported: {SUPPORTED}")
    with cryosat2._nc.open_nc(p) as ds:
        names, groups = set(ds.variables), set(ds.groups)
    if groups & set(swot.SIDES):
        return swot.read_swot(p)
    if "lat_poca_20_ku" in names:
        return cryosat2.read_cryosat2_l2(p)
    if "lat_20_ku" in names and names & set(sentinel3.FREEBOARD_NAMES):
        return sentinel3.read_sentinel3(p)
    if names & {"radar_freeboard", "sea_ice_freeboard"}:
        return cryosat2.read_l2p(p, variable=variable)
    raise AltimetryFormatError(p, f"not a supported altimeter product ({SUPPORTED})")


def write_tracks(directory, tracks, product: str, **kwargs) -> list[str]:
    """Writes Tracks in one product layout; returns the paths.

    product: 'ATL10' (all tracks one granule, one beam each), 'ATL10_r005', 'ATL07',
    'SIR_SAR_2' (one file per track; kwargs baseline='D'|'E'), 'L2P', 'SR_2_LAN_SI'.
    """
    tracks = [tracks] if isinstance(tracks, Track) else list(tracks)
    if product == "ATL10":
        return [icesat2.write_atl10(directory, tracks, **kwargs)]
    if product == "ATL10_r005":
        return [icesat2.write_atl10(directory, tracks, release=5, **kwargs)]
    if product == "ATL07":
        return [icesat2.write_atl07(directory, tracks, **kwargs)]
    writer = {"SIR_SAR_2": cryosat2.write_cryosat2_l2, "L2P": cryosat2.write_l2p,
              "SR_2_LAN_SI": sentinel3.write_sentinel3}.get(product)
    if writer is None:
        raise ValueError(f"unknown product {product!r}")
    return [writer(directory, t, **kwargs) for t in tracks]
