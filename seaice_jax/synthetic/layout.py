"""File names, tie-point geolocation, dataset assembly in the real AI4Arctic layouts, and writing
(step 5 of seaice_jax.synthetic)."""

from __future__ import annotations

import datetime as dt
import math
import os

import numpy as np
import xarray as xr
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.synthetic.chart import make_chart
from seaice_jax.synthetic.dataset import SYNTHETIC_FILE_ATTR, raw_dataset, rtt_dataset
from seaice_jax.synthetic.freeboard import HV_BRIGHTENING, sar_brightening_db, scene_freeboard, truth_variables
from seaice_jax.synthetic.radiometer import amsr2_fields, block_mean, era5_fields
from seaice_jax.synthetic.sar import incidence_angle, sar_backscatter, swath_no_data
from seaice_jax.synthetic.surface import (
    NEW_ICE,
    NUM_SURFACES,
    OLD_ICE,
    PRODUCTS,
    SEASON_PARAMS,
    SEASONS,
    SERVICES,
    distance_zone,
    gaussian_random_field,
    make_surface,
)
from seaice_jax.synthetic.tracks import ALTIMETRY_DIR, write_scene_altimetry

NUM_TIEPOINTS = 21
SPLITS = ("train", "test")

# Chart regions of each service: name -> (lat min, lat max, lon min, lon max) of scene centres.
CHART_REGIONS = {
    "cis": {
        "EA": (66.0, 79.0, -80.0, -60.0),
        "WA": (69.0, 77.0, -140.0, -115.0),
        "HB": (56.0, 64.0, -93.0, -79.0),
        "EC": (47.0, 58.0, -64.0, -52.0),
    },
    "dmi": {
        "CapeFarewell": (59.0, 62.0, -48.0, -41.0),
        "CentralEast": (65.0, 72.0, -30.0, -19.0),
        "CentralWest": (64.0, 70.0, -57.0, -51.0),
        "NorthEast": (72.0, 80.0, -18.0, -6.0),
        "NorthWest": (70.0, 77.0, -68.0, -57.0),
        "SouthEast": (62.0, 65.0, -41.0, -34.0),
        "SouthWest": (60.0, 64.0, -52.0, -46.0),
        "Qaanaaq": (76.0, 78.0, -74.0, -66.0),
    },
}

# ---------------------------------------------------------------------------------------------
# File names and times.


def _time_stream(start_time: dt.datetime, service: str) -> np.random.Generator:
    """A generator seeded by the time and service only, so names are a pure function of them."""
    stamp = int((start_time.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds())
    return np.random.default_rng([abs(stamp), SERVICES.index(service)])


def chart_region(start_time: dt.datetime, service: str) -> str:
    """The ice service's chart region of a scene (e.g. 'EA' for cis, 'CentralWest' for dmi)."""
    regions = sorted(CHART_REGIONS[service])
    return regions[int(_time_stream(start_time, service).integers(len(regions)))]


_S1_ORBIT_PERIOD_S = 12 * 86400 / 175  # 175 orbits per 12-day repeat cycle
# (reference time, absolute orbit, mission datatake id) per satellite, from real product names.
_S1_REFERENCE = {
    "S1A": (dt.datetime(2019, 4, 30, 10, 18, 30), 27020, 0x030B5B),
    "S1B": (dt.datetime(2019, 4, 30, 0, 0, 0), 15990, 0x01E2A0),
}
_S1B_END = dt.datetime(2021, 12, 23)


def _raw_name_pieces(start_time: dt.datetime, service: str) -> str:
    rng = _time_stream(start_time, service)
    mission = "S1A" if start_time >= _S1B_END or rng.random() < 0.5 else "S1B"
    ref_time, ref_orbit, ref_datatake = _S1_REFERENCE[mission]
    orbit = ref_orbit + int(math.floor((start_time - ref_time).total_seconds() / _S1_ORBIT_PERIOD_S))
    datatake = ref_datatake + int(round((orbit - ref_orbit) * 7.4)) + int(rng.integers(0, 4))
    unique_id = int(rng.integers(0, 0x10000))
    stop_time = start_time + dt.timedelta(seconds=64)
    fmt = "%Y%m%dT%H%M%S"
    sar = (f"{mission}_EW_GRDM_1SDH_{start_time.strftime(fmt)}_{stop_time.strftime(fmt)}_"
           f"{orbit:06d}_{datatake & 0xFFFFFF:06X}_{unique_id:04X}")
    region = chart_region(start_time, service)
    if service == "cis":
        chart = f"icechart_cis_SGRDI{region}_{start_time.strftime('%Y%m%d')}T1800Z_pl_a"
    else:
        chart_time = start_time.replace(second=0) - dt.timedelta(minutes=start_time.minute % 5)
        chart = f"icechart_dmi_{chart_time.strftime('%Y%m%d%H%M')}_{region}_RIC"
    return f"{sar}_{chart}"


def scene_file_name(product: str, start_time: dt.datetime, service: str) -> str:
    """File name of a scene: RTT `<YYYYMMDDTHHMMSS>_<service>_prep.nc`, raw the S1 + ice chart name.

    e.g. `20190430T101830_cis_prep.nc` and
    `S1A_EW_GRDM_1SDH_20190430T101830_20190430T101934_027020_030B5B_0A43_icechart_cis_SGRDIEA_20190430T1800Z_pl_a.nc`.
    A pure function of its arguments.
    """
    _check_choice("product", product, PRODUCTS)
    _check_choice("service", service, SERVICES)
    if product == "rtt":
        return f"{start_time.strftime('%Y%m%dT%H%M%S')}_{service}_prep.nc"
    return f"{_raw_name_pieces(start_time, service)}.nc"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


def default_start_time(seed: int, season: str) -> dt.datetime:
    """A sensing start time in the season's months of 2018..2021, drawn from the seed."""
    rng = np.random.default_rng([int(seed) % (2**63), 0x5EA5])
    months = SEASON_PARAMS[season].months
    year = int(rng.integers(2018, 2022))
    month = int(months[rng.integers(len(months))])
    day = int(rng.integers(1, 29))
    seconds = int(rng.integers(0, 86400))
    return dt.datetime(year, month, day) + dt.timedelta(seconds=seconds)


def resolve_service(service: str, seed: int) -> str:
    """'cis' / 'dmi' as given; 'mixed' draws one from the seed with the train split's 315:197 dmi:cis."""
    if service == "mixed":
        rng = np.random.default_rng([int(seed) % (2**63), 0xD31])
        return "dmi" if rng.random() < 315 / 512 else "cis"
    _check_choice("service", service, SERVICES)
    return service


def _tie_point_geolocation(rng: np.random.Generator, shape: tuple[int, int], product: str,
                           service: str, region: str) -> dict[str, np.ndarray]:
    """Tie-point lines / samples and lat / lon (float64 [n, m]) of a scene centred in the chart region.

    21 x 21 points spread evenly over lines and samples including the first and last; raw files
    store whole-pixel positions, RTT positions are implied (not rounded).
    """
    lat_min, lat_max, lon_min, lon_max = CHART_REGIONS[service][region]
    lat0, lon0 = rng.uniform(lat_min, lat_max), rng.uniform(lon_min, lon_max)
    heading = np.deg2rad(rng.choice([-12.0, 192.0]) + rng.uniform(-4.0, 4.0))  # asc / desc pass
    spacing = ch.PIXEL_SPACING_M[product]
    n_lines, n_samples = min(NUM_TIEPOINTS, shape[0]), min(NUM_TIEPOINTS, shape[1])
    lines = np.linspace(0, shape[0] - 1, n_lines)
    samples = np.linspace(0, shape[1] - 1, n_samples)
    if product == "raw":
        lines, samples = lines.round(), samples.round()
    along = (lines[:, None] - (shape[0] - 1) / 2) * spacing      # metres along track
    across = (samples[None, :] - (shape[1] - 1) / 2) * spacing   # metres across track
    north = along * np.cos(heading) - across * np.sin(heading)
    east = along * np.sin(heading) + across * np.cos(heading)
    lat = lat0 + north / 111_195.0
    lon = lon0 + east / (111_195.0 * np.cos(np.deg2rad(lat)))
    lon = (lon + 180.0) % 360.0 - 180.0
    return {"lines": lines.astype(np.float64), "samples": samples.astype(np.float64),
            "lat": lat.astype(np.float64), "lon": lon.astype(np.float64)}


def _at_tie_points(field: np.ndarray, lines: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Bilinear sample of a per-pixel field at the tie points: float64 [n, m]."""
    rows, cols = np.meshgrid(lines, samples, indexing="ij")
    return ndimage.map_coordinates(field.astype(np.float64), [rows, cols], order=1, mode="nearest")


# ---------------------------------------------------------------------------------------------
# The scene.


def _scaled(name: str, values: np.ndarray) -> np.ndarray:
    mean, std = ch.NORM_STATS[name]
    return ((values - mean) / std).astype(np.float32)


def synthesize_scene(
    product: str,
    season: str,
    size: tuple[int, int],
    seed: int,
    *,
    service: str = "cis",
    analyst_error: float = 0.0,
    start_time: dt.datetime | None = None,
    amsr2_footprint: bool = True,
    freeboard: bool = False,
    surface=None,
    ice_texture_db: np.ndarray | None = None,
    freeboard_truth=None,
    geo: dict | None = None,
) -> xr.Dataset:
    """One synthetic scene in the layout of the real `product` ('rtt' or 'raw'), charts included.

    size: (H, W) SAR pixels, at least one 2 km cell (25 RTT, 50 raw pixels) each way. service:
    'cis', 'dmi' or 'mixed' (drawn from the seed). analyst_error: std of noise added to each
    polygon's true ice fraction before it is coded as CT. start_time: sensing start (default drawn
    from the seed within the season). amsr2_footprint: blur each AMSR2 frequency by its footprint
    (False: each cell sees only its own block, plus noise). freeboard: add the freeboard truth
    variables and the roughness brightening of HH / HV (`synthetic.altimetry`). `split_test_reference` turns an RTT
    scene into the test split's `_prep.nc` + `_prep_reference.nc` pair.
    Deterministic: the same arguments give identical arrays.
    surface / ice_texture_db / freeboard_truth / geo: given instead of drawn (a time series of one ice
    field, `synthetic.sequence`); the truth gets this scene's no-data.
    """
    _check_choice("product", product, PRODUCTS)
    _check_choice("season", season, SEASONS)
    h, w = (int(size[0]), int(size[1]))
    factor = ch.PIXELS_PER_2KM[product]
    if h < factor or w < factor:
        raise ValueError(f"size must be at least {factor} x {factor} pixels for {product} "
                         f"(one 2 km cell), got {h} x {w}")
    if analyst_error < 0:
        raise ValueError(f"analyst_error must be >= 0, got {analyst_error}")
    service = resolve_service(service, seed)
    start_time = start_time or default_start_time(seed, season)
    rng = np.random.default_rng(int(seed) % (2**63))
    shape = (h, w)
    spacing = ch.PIXEL_SPACING_M[product]

    if surface is None:
        surface = make_surface(rng, shape, product, season, service)
    chart = make_chart(rng, seed, surface, product, season, analyst_error)

    # wind: ERA5 scale field on the SAR grid (its 2 km block means are the ERA5 values) + gusts
    mean_u, mean_v = rng.normal(0.7, 5.0), rng.normal(0.6, 5.0)
    wind_u = mean_u + 2.0 * gaussian_random_field(rng, shape, 15000.0 / spacing)
    wind_v = mean_v + 2.0 * gaussian_random_field(rng, shape, 15000.0 / spacing)
    gusts = 1.0 + 0.15 * gaussian_random_field(rng, shape, 1000.0 / spacing)
    wind_speed = np.hypot(wind_u, wind_v) * gusts

    theta = incidence_angle(rng, shape)
    hh_db, hv_db = sar_backscatter(rng, surface, theta, wind_speed, season, product, texture=ice_texture_db)
    no_data = swath_no_data(rng, shape, product)
    fb_truth = None
    if freeboard:  # own seeded streams: the scene's generator is not touched
        fb_truth = scene_freeboard(seed, surface, no_data, spacing) if freeboard_truth is None \
            else _with_no_data(freeboard_truth, no_data)
        bright = sar_brightening_db(seed, fb_truth)
        hh_db, hv_db = hh_db + bright, hv_db + HV_BRIGHTENING * bright
    zone = distance_zone(surface.distance_km, surface.land)

    fractions = np.stack([block_mean((surface.surface == s).astype(np.float32), factor)
                          for s in range(NUM_SURFACES)])
    ice_2km = fractions[NEW_ICE:OLD_ICE + 1].sum(0)
    ponds_2km = block_mean(surface.ponds, factor) / np.maximum(ice_2km, 1e-6)
    era5 = era5_fields(rng, block_mean(wind_u, factor), block_mean(wind_v, factor), ice_2km, season)
    amsr2 = amsr2_fields(rng, fractions, np.clip(ponds_2km, 0.0, 1.0), era5, season, amsr2_footprint)
    if geo is None:
        geo = _tie_point_geolocation(rng, shape, product, service, chart_region(start_time, service))
    else:
        geo = dict(geo)
    geo["theta"] = _at_tie_points(theta, geo["lines"], geo["samples"])

    parts = dict(file_name=scene_file_name(product, start_time, service),
                 raw_name=scene_file_name("raw", start_time, service), start_time=start_time, service=service,
                 season=season,
                 surface=surface, chart=chart, hh_db=hh_db, hv_db=hv_db, no_data=no_data,
                 theta=theta, zone=zone, amsr2=amsr2, era5=era5, geo=geo)
    ds = rtt_dataset(**parts) if product == "rtt" else raw_dataset(**parts)
    if fb_truth is not None:
        ds = ds.assign(truth_variables(fb_truth))
    return ds


def _with_no_data(truth, no_data: np.ndarray):
    """A FreeboardTruth with NaN / invalid on the no-data pixels."""
    import dataclasses
    fields = {}
    for f in dataclasses.fields(truth):
        a = np.array(getattr(truth, f.name))
        if f.name == "valid":
            a = a & ~no_data
        elif f.name == "lead":
            a = a & ~no_data
        else:
            a[no_data] = np.nan
        fields[f.name] = a
    return type(truth)(**fields)


def split_test_reference(ds: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """An RTT scene as the test split holds it: (`_prep.nc` without charts, `_prep_reference.nc`
    with SIC / SOD / FLOE). The reference carries `scene_id` = its own file name."""
    if not all(c in ds for c in ch.CHART_NAMES):
        raise ValueError("split_test_reference needs a ready-to-train scene with SIC / SOD / FLOE")
    prep = ds.drop_vars(list(ch.CHART_NAMES))
    ref_name = ds.attrs["scene_id"][: -len(".nc")] + "_reference.nc"
    reference = xr.Dataset({c: ds[c] for c in ch.CHART_NAMES},
                           attrs={"scene_id": ref_name, SYNTHETIC_FILE_ATTR: ref_name})
    return prep, reference


# ---------------------------------------------------------------------------------------------
# Writing.


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene `index` of a set made with `seed` (independent streams)."""
    state = np.random.SeedSequence([int(seed) % (2**63), int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _encoding(ds: xr.Dataset) -> dict:
    """zlib level 1 on the gridded variables, as the real files are compressed."""
    return {name: {"zlib": True, "complevel": 1} for name, var in ds.data_vars.items()
            if var.ndim == 2 and var.dtype != object}


def write_scene(ds: xr.Dataset, out_dir: str) -> str:
    """Write `ds` to `<out_dir>/<its file name>` via a temporary name in the same folder.

    The file name is the synthetic-only attribute `synthetic_file_name` (raw files have no
    `scene_id`); an RTT dataset without it uses `scene_id`.
    """
    file_name = ds.attrs.get(SYNTHETIC_FILE_ATTR) or ds.attrs["scene_id"]
    if not file_name.endswith(".nc"):
        file_name += ".nc"
    path = os.path.join(out_dir, file_name)
    tmp = os.path.join(out_dir, f".{file_name}.tmp")
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_independent_scenes(
    out_dir: str,
    num_scenes: int,
    product: str,
    season: str,
    size: tuple[int, int],
    seed: int,
    *,
    service: str = "mixed",
    analyst_error: float = 0.0,
    split: str = "train",
    altimetry: str | None = None,
    **kw,
) -> list[str]:
    """Write `num_scenes` synthetic scenes into out_dir; scene i uses scene_seed(seed, i).

    split: 'train' (charts in the scene file) or, for RTT, 'test' (each scene a `_prep.nc` without
    charts plus its `_prep_reference.nc`, as the real test split). Every scene gets a distinct start
    time (so a distinct file name). Returns the scene paths written (not the reference files).
    altimetry: None, or 'icesat2' | 'cryosat2' | 'sentinel3' | 'all': each scene also gets the
    freeboard truth and its passes written under `<out_dir>/altimetry/` (`synthetic.altimetry`).
    Extra keywords go to synthesize_scene. (A sequence of one ice field on consecutive days:
    `synthetic.write_synthetic_scenes(..., sequence=True)`, see `synthetic.sequence`.)
    """
    if num_scenes < 0:
        raise ValueError(f"num_scenes must be >= 0, got {num_scenes}")
    _check_choice("product", product, PRODUCTS)
    _check_choice("season", season, SEASONS)
    _check_choice("split", split, SPLITS)
    if split == "test" and product != "rtt":
        raise ValueError("split 'test' exists for the ready-to-train product only")
    if service != "mixed":
        _check_choice("service", service, SERVICES)
    os.makedirs(out_dir, exist_ok=True)
    used_times: set[dt.datetime] = set()
    paths = []
    for i in range(num_scenes):
        s = scene_seed(seed, i)
        start = default_start_time(s, season)
        while start in used_times:
            start += dt.timedelta(minutes=7)
        used_times.add(start)
        ds = synthesize_scene(product, season, size, s, service=service,
                              analyst_error=analyst_error, start_time=start, freeboard=bool(altimetry), **kw)
        if altimetry:
            write_scene_altimetry(os.path.join(out_dir, ALTIMETRY_DIR), ds, s, altimetry, start_time=start)
        if split == "test":
            ds, reference = split_test_reference(ds)
            write_scene(reference, out_dir)
        paths.append(write_scene(ds, out_dir))
    return paths
