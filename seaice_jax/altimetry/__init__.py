"""Altimeter freeboard products (ICESat-2, CryoSat-2, Sentinel-3, SWOT): readers, writers, the freeboard
kinds (laser / radar, `kinds`), an index of altimetry folders (`index`), collocation with SAR scenes,
footprint losses, baselines and elevation metrics (the simulated tracks live in seaice_jax.synthetic.tracks)."""

from seaice_jax.altimetry.cryosat2 import read_cryosat2_l2, read_l2p, write_cryosat2_l2, write_l2p
from seaice_jax.altimetry.icesat2 import read_icesat2, write_atl07, write_atl10
from seaice_jax.altimetry.index import AltimetryIndex, Region, build_index, candidates, region_of_points
from seaice_jax.altimetry.kinds import (
    FREEBOARD_KINDS,
    atl07_freeboard,
    freeboard_kind,
    freeboard_tracks,
    tracks_by_kind,
)
from seaice_jax.altimetry.products import open_altimetry, write_tracks
from seaice_jax.altimetry.sentinel3 import read_sentinel3, write_sentinel3
from seaice_jax.altimetry.swot import read_swot, write_swot
from seaice_jax.altimetry.track import FLOE, LEAD, SEA_SURFACE, UNKNOWN, AltimetryFormatError, Swath, Track

__all__ = [
    "AltimetryFormatError", "AltimetryIndex", "FLOE", "FREEBOARD_KINDS", "LEAD", "Region", "SEA_SURFACE", "Swath",
    "Track", "UNKNOWN", "atl07_freeboard", "build_index", "candidates", "freeboard_kind", "freeboard_tracks",
    "open_altimetry", "read_cryosat2_l2", "read_icesat2", "read_l2p", "read_sentinel3", "read_swot",
    "region_of_points", "tracks_by_kind", "write_atl07", "write_atl10", "write_cryosat2_l2", "write_l2p",
    "write_sentinel3", "write_swot", "write_tracks",
]
