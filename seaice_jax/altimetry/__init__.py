"""Altimeter freeboard products (ICESat-2, CryoSat-2, Sentinel-3, SWOT): readers, writers, collocation
with SAR scenes, footprint losses, baselines and elevation metrics (the simulated tracks live in
seaice_jax.synthetic.tracks)."""

from seaice_jax.altimetry.cryosat2 import read_cryosat2_l2, read_l2p, write_cryosat2_l2, write_l2p
from seaice_jax.altimetry.icesat2 import read_icesat2, write_atl07, write_atl10
from seaice_jax.altimetry.products import open_altimetry, write_tracks
from seaice_jax.altimetry.sentinel3 import read_sentinel3, write_sentinel3
from seaice_jax.altimetry.swot import read_swot, write_swot
from seaice_jax.altimetry.track import FLOE, LEAD, SEA_SURFACE, UNKNOWN, AltimetryFormatError, Swath, Track

__all__ = [
    "AltimetryFormatError", "FLOE", "LEAD", "SEA_SURFACE", "Swath", "Track", "UNKNOWN",
    "open_altimetry", "read_cryosat2_l2", "read_icesat2", "read_l2p", "read_sentinel3", "read_swot",
    "write_atl07", "write_atl10", "write_cryosat2_l2", "write_l2p", "write_sentinel3", "write_swot",
    "write_tracks",
]
