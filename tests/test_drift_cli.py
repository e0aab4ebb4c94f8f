"""launch/drift.py and launch/evaluate_drift.py on two synthetic RTT-layout scenes with known drift."""

import datetime as dt
import importlib.util
import json
import os

import numpy as np
import pytest
import xarray as xr

from seaice_jax.drift import io as drift_io
from seaice_jax.synthetic import drift as known

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (320, 320)
T0 = dt.datetime(2021, 3, 1, 6, 0, 0)
T1 = T0 + dt.timedelta(hours=20)


def _launcher(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "launch", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _write_rtt(path, hv, tie, start, distance=None):
    z = (hv - hv.mean()) / hv.std()  # standard scaled; 0 is the fill value
    extra = {} if distance is None else {"distance_map": (("sar_lines", "sar_samples"), distance.astype(np.float32))}
    xr.Dataset({**extra,
        "nersc_sar_primary": (("sar_lines", "sar_samples"), z.astype(np.float32), {"variable_fill_value": 0}),
        "nersc_sar_secondary": (("sar_lines", "sar_samples"), z.astype(np.float32), {"variable_fill_value": 0}),
        "sar_grid2d_latitude": (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), tie.latitude.T),
        "sar_grid2d_longitude": (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), tie.longitude.T),
    }, attrs={"scene_id": f"{start:%Y%m%dT%H%M%S}_dmi_prep.nc", "pixel_spacing": 80}).to_netcdf(path)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift_cli")
    days = (T1 - T0).total_seconds() / 86400
    model = known.KnownDrift(translation_m_per_day=(2000.0, 3000.0), divergence_per_day=0.01,
                                    centre_px=(SHAPE[0] / 2, SHAPE[1] / 2))
    hh_a, hh_b = known.synthetic_pair(SHAPE, model, days, seed=11)
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    a, b = str(folder / f"{T0:%Y%m%dT%H%M%S}_dmi_prep.nc"), str(folder / f"{T1:%Y%m%dT%H%M%S}_dmi_prep.nc")
    _write_rtt(a, hh_a, tie, T0)
    _write_rtt(b, hh_b, tie, T1)
    truth = known.known_drift_field(model, days, np.arange(0, SHAPE[0], 8), np.arange(0, SHAPE[1], 8), tie, T0)
    truth_path = str(folder / "truth.nc")
    drift_io.write_drift(truth_path, truth)
    return folder, a, b, truth_path


def test_drift_then_evaluate_end_to_end(scenes):
    folder, a, b, truth = scenes
    out, png, js = str(folder / "drift.nc"), str(folder / "drift.png"), str(folder / "scores.json")
    # A small scene needs a short coarse search: the CLI takes the library defaults otherwise.
    assert _launcher("drift")(["--scenes", a, b, "--out", out, "--png", png, "--max_drift_km", "8",
                               "--coarse_factor", "4", "--coarse_template_km", "6.4", "--coarse_grid_step_km", "3.2",
                               "--grid_step_km", "2"]) == 0
    fields = drift_io.read_drift(out)
    assert set(fields) == {"pattern_matching", "phase_correlation"}
    assert fields["pattern_matching"].time_b - fields["pattern_matching"].time_a == T1 - T0
    assert os.path.getsize(png) > 1000
    assert _launcher("evaluate_drift")(["--drift", out, "--truth", truth, "--json", js]) == 0
    with open(js) as f:
        scores = json.load(f)
    assert set(scores) == {"pattern_matching", "phase_correlation"}
    assert scores["pattern_matching"]["rmse_m"] < 40.0 and scores["pattern_matching"]["valid_fraction"] > 0.4
    assert scores["phase_correlation"]["rmse_m"] < 120.0


def test_missing_scene_is_one_line_error(scenes, tmp_path, capsys):
    _, a, _, _ = scenes
    assert _launcher("drift")(["--scenes", a, str(tmp_path / "nope.nc"), "--out", str(tmp_path / "d.nc")]) == 1
    assert "scene file not found" in capsys.readouterr().err
    assert not (tmp_path / "d.nc").exists()


def test_land_is_not_matched(scenes, tmp_path):
    """Land does not drift: its static texture must not give zero vectors (they would pass every test)."""
    folder, a, b, truth = scenes
    land_rows = slice(200, None)
    rng = np.random.default_rng(5)
    static = rng.normal(0, 1, SHAPE).astype(np.float32)
    mean, std = 23.6277, 14.9902  # distance_map standard scaling; zone 0 = land, zone 10 = sea
    distance = np.full(SHAPE, (10 - mean) / std, np.float32)
    distance[land_rows] = (0 - mean) / std
    paths = []
    for src in (a, b):
        with xr.open_dataset(src) as ds:
            hv = ds["nersc_sar_secondary"].values.copy()
            tie = drift_io.read_scene_for_drift(src)[1]
            start = drift_io._start_time(ds, src)
        hv[land_rows] = static[land_rows]
        paths.append(str(tmp_path / os.path.basename(src)))
        _write_rtt(paths[-1], hv, tie, start, distance)
    image = drift_io.read_scene_for_drift(paths[0])[0]
    assert np.isnan(image[land_rows]).all() and np.isfinite(image[:200]).all()
    out, js = str(tmp_path / "drift.nc"), str(tmp_path / "scores.json")
    # --png without a path (as the issue writes it): the PNG goes beside --out
    assert _launcher("drift")(["--scenes", *paths, "--out", out, "--png", "--max_drift_km", "8",
                               "--coarse_factor", "4", "--coarse_template_km", "6.4", "--coarse_grid_step_km", "3.2",
                               "--grid_step_km", "2"]) == 0
    assert os.path.getsize(str(tmp_path / "drift.png")) > 1000
    field = drift_io.read_drift(out)["pattern_matching"]
    assert not field.valid[field.rows >= 200 - 17].any()  # no template reaching onto land
    assert field.valid.sum() > 40
    assert _launcher("evaluate_drift")(["--drift", out, "--truth", truth, "--json", js]) == 0
    with open(js) as f:
        scores = json.load(f)
    assert scores["pattern_matching"]["rmse_m"] < 40.0
