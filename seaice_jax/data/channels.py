"""Channel names, grids and the published normalisation statistics of the AI4Arctic data.

Every name here is what real AI4Arctic files hold (see shared docs, ai4arctic-format.md).
"""

from __future__ import annotations

SAR_CHANNELS = ("nersc_sar_primary", "nersc_sar_secondary")
SAR_AUX_CHANNELS = ("sar_incidenceangle", "distance_map")
AMSR2_CHANNELS = (
    "btemp_6_9h", "btemp_6_9v", "btemp_7_3h", "btemp_7_3v",
    "btemp_10_7h", "btemp_10_7v", "btemp_18_7h", "btemp_18_7v",
    "btemp_23_8h", "btemp_23_8v", "btemp_36_5h", "btemp_36_5v",
    "btemp_89_0h", "btemp_89_0v",
)
ERA5_CHANNELS = ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")

# The 24 input channels in the order of the official challenge baseline.
ALL_CHANNELS = SAR_CHANNELS + SAR_AUX_CHANNELS + AMSR2_CHANNELS + ERA5_CHANNELS
SAR_GRID_CHANNELS = SAR_CHANNELS + SAR_AUX_CHANNELS
GRID_2KM_CHANNELS = AMSR2_CHANNELS + ERA5_CHANNELS

CHART_NAMES = ("SIC", "SOD", "FLOE")
CHART_FILL = 255
NUM_CLASSES = {"SIC": 11, "SOD": 6, "FLOE": 7}

# Optional inputs derived from the scene's geolocation and acquisition time (not file variables):
# latitude standard-scaled with LATITUDE_STATS, sin / cos of longitude, of the month and of the day
# of year (month angle 2 pi (month - 1) / 12, day angle 2 pi (day of year - 1) / 365.25; ours).
DERIVED_CHANNELS = ("latitude", "longitude_sin", "longitude_cos", "month_sin", "month_cos",
                    "doy_sin", "doy_cos")
LATITUDE_STATS = (70.0, 8.0)  # ours: the charted Arctic seas of the data set span about 55..85 N
# What convert.py stores by default: the 24 standard channels, then the derived ones.
STORED_CHANNELS = ALL_CHANNELS + DERIVED_CHANNELS
# Inputs made from the altimeter points of shards converted with altimetry (data/points.py), in the
# step (training) or from the given tracks (inference): never stored as planes.
POINT_CHANNELS = ("freeboard_points", "freeboard_mask", "radar_freeboard_points", "radar_freeboard_mask")


def point_channel_pairs(channels) -> tuple[tuple[str, int, int], ...]:
    """(kind, values index, mask index) in `channels` of each point kind present with both channels."""
    channels = list(channels)
    pairs = []
    for kind, (values, mask) in (("laser", POINT_CHANNELS[0:2]), ("radar", POINT_CHANNELS[2:4])):
        if values in channels and mask in channels:
            pairs.append((kind, channels.index(values), channels.index(mask)))
    return tuple(pairs)

# Dimension names of the grids.
SAR_DIMS = ("sar_lines", "sar_samples")
GRID_2KM_DIMS = ("2km_grid_lines", "2km_grid_samples")
# RTT tie points: (samples, lines), samples first, as real files hold them.
RTT_TIEPOINT_DIMS = ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")
TIEPOINT_DIMS = ("sar_line_2dgrid_points", "sar_sample_2dgrid_points")  # legacy (lines first)
RAW_TIEPOINT_DIM = "sar_grid_points"
RAW_TIEPOINT_VARIABLES = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude",
                          "sar_grid_longitude", "sar_grid_height", "sar_grid_incidenceangle")
RAW_AUX_2KM = ("amsr2_swath_map", "swath_segmentation")

# SAR pixels per 2 km cell side, per product (cell (0, 0) starts at pixel (0, 0)).
PIXELS_PER_2KM = {"rtt": 25, "raw": 50}
PIXEL_SPACING_M = {"rtt": 80, "raw": 40}

# Published mean / std of the unscaled values; RTT files hold (x - mean) / std.
NORM_STATS: dict[str, tuple[float, float]] = {
    "nersc_sar_primary": (-14.5083, 5.6597),
    "nersc_sar_secondary": (-24.7012, 4.7468),
    "distance_map": (23.6277, 14.9902),
    "btemp_6_9h": (148.8470, 61.6485),
    "btemp_6_9v": (203.5194, 38.6664),
    "btemp_7_3h": (149.8990, 61.6754),
    "btemp_7_3v": (204.2053, 38.6662),
    "btemp_10_7h": (153.8917, 60.8752),
    "btemp_10_7v": (208.9041, 36.2450),
    "btemp_18_7h": (165.6803, 52.6179),
    "btemp_18_7v": (218.5868, 28.0604),
    "btemp_23_8h": (182.2089, 42.8872),
    "btemp_23_8v": (226.3965, 22.1176),
    "btemp_36_5h": (185.1947, 38.6444),
    "btemp_36_5v": (228.2059, 17.6526),
    "btemp_89_0h": (212.5375, 22.5850),
    "btemp_89_0v": (241.2575, 16.3110),
    "u10m_rotated": (0.6748, 4.7496),
    "v10m_rotated": (0.6076, 5.1961),
    "t2m": (268.6265, 9.4692),
    "skt": (268.9102, 10.3053),
    "tcwv": (7.7477, 5.2686),
    "tclw": (0.0412, 0.0711),
    "sar_incidenceangle": (33.9980, 8.3223),
}

# Scaling of the derived channels (what normalisation.json reports for them): sin / cos are unscaled.
DERIVED_STATS: dict[str, tuple[float, float]] = {
    name: (LATITUDE_STATS if name == "latitude" else (0.0, 1.0)) for name in DERIVED_CHANNELS
}


def channel_stats(name: str) -> tuple[float, float]:
    """(mean, std) by which channel `name` is scaled: published for file channels, ours for derived."""
    return NORM_STATS[name] if name in NORM_STATS else DERIVED_STATS[name]


ERA5_UNITS = {
    "u10m_rotated": "m s**-1",
    "v10m_rotated": "m s**-1",
    "t2m": "K",
    "skt": "K",
    "tcwv": "kg m**-2",
    "tclw": "kg m**-2",
}

POLYGON_CODES_HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
LEGACY_POLYGON_CODES_HEADER = "id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"  # older synthetic


def resolve_channels(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Expand group aliases ('sar', 'sar_aux', 'amsr2', 'era5', 'all', 'derived', 'stored') and
    validate names. 'all' is the 24 standard channels; 'derived' the geolocation / time channels;
    the altimeter point channels (POINT_CHANNELS) are names of their own."""
    groups = {
        "sar": SAR_CHANNELS,
        "sar_aux": SAR_AUX_CHANNELS,
        "amsr2": AMSR2_CHANNELS,
        "era5": ERA5_CHANNELS,
        "all": ALL_CHANNELS,
        "derived": DERIVED_CHANNELS,
        "stored": STORED_CHANNELS,
    }
    out: list[str] = []
    for name in names:
        for n in groups.get(name, (name,)):
            if n not in STORED_CHANNELS + POINT_CHANNELS:
                raise ValueError(f"unknown input channel {n!r}; known: {', '.join(STORED_CHANNELS + POINT_CHANNELS)}")
            if n not in out:
                out.append(n)
    return tuple(out)
