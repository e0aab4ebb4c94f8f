"""Whole-scene inference: tiling exactness, the prediction file, ALS / conc maps, submission, CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from seaice_jax import inference
from seaice_jax.data.channels import CHART_NAMES, SAR_DIMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNELS = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v")


def tiny_config(shards: str = ""):
    from tests.conftest import trained_config

    return trained_config(shards)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """An RTT scene, a raw scene and an unlabelled copy of the RTT scene (charts dropped)."""
    from seaice_jax import synthetic

    root = tmp_path_factory.mktemp("scenes")
    rtt = synthetic.write_synthetic_scenes(str(root / "rtt"), 1, "rtt", "winter", (128, 160), 5)[0]
    raw = synthetic.write_synthetic_scenes(str(root / "raw"), 1, "raw", "summer", (151, 129), 6)[0]
    unlabelled = str(root / "unlabelled" / "20200101T000000_cis_prep.nc")
    os.makedirs(os.path.dirname(unlabelled))
    with xr.open_dataset(rtt) as ds:
        ds.drop_vars(["SIC", "SOD", "FLOE"]).to_netcdf(unlabelled)
    return {"rtt": rtt, "raw": raw, "unlabelled": unlabelled}


@pytest.fixture(scope="module")
def workdir(trained_workdir):
    """A tiny model with ice, SIC, SOD and FLOE heads, trained 2 steps (conftest, shared)."""
    return trained_workdir


@pytest.fixture(scope="module")
def cli_run(workdir, scenes, tmp_path_factory):
    """launch/infer.py end to end on the three scenes, with --png and --submission."""
    out = tmp_path_factory.mktemp("pred")
    cmd = [sys.executable, os.path.join(ROOT, "launch", "infer.py"), "--workdir", workdir,
           "--scenes", scenes["rtt"], scenes["raw"], os.path.dirname(scenes["unlabelled"]),
           "--out", str(out), "--png", "--submission", str(out / "upload.nc")]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run


def open_scene(path):
    from seaice_jax.data.scene import open_scene as open_

    return open_(path, channels=CHANNELS, require_charts=False)


def read_prediction(out, scene):
    return xr.open_dataset(os.path.join(out, scene.name + "_pred.nc"), mask_and_scale=False)


# ----------------------------------------------------------------------------------------------
# Tiling


def test_tile_cores_cover_every_pixel():
    for length, tile, stride, margin in [(128, 96, 16, 32), (100, 32, 16, 4), (7, 64, 48, 0), (1000, 256, 64, 48)]:
        origins = inference.tile_origins(length, tile, stride, margin)
        core = tile - 2 * margin
        covered = np.zeros(length, int)
        for o in origins:
            covered[max(o + margin, 0) : o + margin + core] += 1
        assert covered.min() >= 1, (length, tile, stride, margin)
        assert origins[0] == -margin and np.all(np.diff(origins) == stride)
        if len(origins) > 1:
            assert origins[-2] + margin + core < length  # no more tiles than needed
    assert inference.tile_origins(128, 96, 16, 32) == [-32, -16, 0, 16, 32, 48, 64]
    with pytest.raises(ValueError, match="multiple of 4"):
        inference.check_tiling(96, 18, 32, align=4)
    with pytest.raises(ValueError, match="cover"):
        inference.check_tiling(96, 48, 32, align=4)


def test_tiled_equals_untiled_away_from_borders():
    """Tiles blended with margin >= receptive radius equal one tile covering the scene.

    Exact (float rounding, 1e-5) for a translation-equivariant net: the tiny U-Net with transposed-
    conv upsampling, tile origins on its pooling grid (multiples of 4). Borders (32 px) differ: the
    whole-scene pass zero-pads features, tiles see zero (no-data) input beyond the scene. The
    baseline's align-corners bilinear upsampling samples the coarse maps up to 1/4 coarse pixel away
    from a shift-invariant position, by an amount that depends on the tile size, so no tiling
    reproduces its whole-scene output exactly (measured: mean |diff| 0.003 logit, see the report).
    """
    import jax.numpy as jnp

    from seaice_jax.trained_model import create_model

    config = tiny_config()
    config.model.upsample = "transpose"
    fns, params, batch_stats = create_model(config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(112, 128, len(CHANNELS))).astype(np.float32)
    x[40:70, 50:90] = 0.0  # a no-data patch: sharp structure for the seams to show on
    whole = fns.apply_eval(params, batch_stats, jnp.asarray(x[None]))
    radius = inference.receptive_radius(config.model)
    assert radius == 29  # 2 + 1 + 4 + 2 + 8 (encoder, pools, bridge) + 4 + 4 + 2 + 2 (decoder)
    margin = 32  # >= radius, a multiple of the pooling period 4
    tiled = inference.predict_scene(fns, params, batch_stats, x, tile=96, stride=16, margin=margin, align=4)
    inner = (slice(margin, -margin), slice(margin, -margin))
    np.testing.assert_allclose(tiled["ice_logit"][inner], np.asarray(whole["ice"][0])[inner], atol=1e-5)
    for head in CHART_NAMES:
        np.testing.assert_array_equal(tiled[head][inner], np.argmax(np.asarray(whole[head][0]), -1)[inner])
    # The margin is what makes it exact: without one, tile-edge pixels (cut receptive field) blend in.
    no_margin = inference.predict_scene(fns, params, batch_stats, x, tile=96, stride=16, margin=0, align=4)
    assert np.abs(no_margin["ice_logit"] - np.asarray(whole["ice"][0]))[inner].max() > 1e-3


def test_tiles_batched_across_tile_rows_give_the_per_tile_result_everywhere():
    """Batches that span tile rows (sizes 1, 3, 7 on a 6 x 4 tile grid) accumulate every tile into the
    rolling band at its place: the whole scene, borders included, equals the one-tile-per-call result."""
    from seaice_jax.trained_model import create_model

    fns, params, batch_stats = create_model(tiny_config())
    x = np.random.default_rng(1).normal(size=(100, 76, len(CHANNELS))).astype(np.float32)
    kw = dict(tile=48, stride=16, margin=8, align=4)
    assert len(inference.tile_origins(100, 48, 16, 8)) == 6 and len(inference.tile_origins(76, 48, 16, 8)) == 4
    one = inference.predict_scene(fns, params, batch_stats, x, batch_size=1, **kw)
    for batch_size in (3, 7):
        got = inference.predict_scene(fns, params, batch_stats, x, batch_size=batch_size, **kw)
        assert set(got) == set(one)
        np.testing.assert_allclose(got["ice_logit"], one["ice_logit"], atol=1e-5)
        for head in CHART_NAMES:
            assert np.mean(got[head] != one[head]) < 1e-3, head  # argmax ties under float rounding only


def test_partial_run_equals_the_whole_run_on_the_needed_pixels(monkeypatch):
    """`needed`: only tiles whose cores reach the needed pixels run (tile rows skipped included); there
    the maps equal the whole run's, elsewhere the logits are NaN; calls keep the whole run's shape."""
    from seaice_jax.inference import predict as predict_mod
    from seaice_jax.trained_model import create_model

    fns, params, batch_stats = create_model(tiny_config())
    x = np.random.default_rng(2).normal(size=(100, 76, len(CHANNELS))).astype(np.float32)
    kw = dict(tile=48, stride=16, margin=8, align=4, batch_size=5)
    whole = inference.predict_scene(fns, params, batch_stats, x, **kw)
    needed = np.zeros((100, 76), bool)
    needed[3, 70] = needed[90:93, 10] = True  # the first and the last tile rows, 4 tile rows apart
    shapes = []
    real = predict_mod.tile_predictor

    def counting(*a, **k):
        fn = real(*a, **k)

        def call(p, b, tiles):
            shapes.append(tiles.shape)
            return fn(p, b, tiles)

        call.static = fn.static
        return call

    monkeypatch.setattr(predict_mod, "tile_predictor", counting)
    part = inference.predict_scene(fns, params, batch_stats, x, needed=needed, **kw)
    assert len(shapes) == 1 and shapes[0][0] == 5  # 24 tiles: calls of 5; 2 + 2 tiles needed -> 1 call
    np.testing.assert_allclose(part["ice_logit"][needed], whole["ice_logit"][needed], atol=1e-5)
    for head in CHART_NAMES:
        np.testing.assert_array_equal(part[head][needed], whole[head][needed])
    assert np.isnan(part["ice_logit"][50]).all() and np.isnan(part["ice_logit"][99, 32:]).all()
    assert np.isfinite(part["ice_logit"]).mean() < 0.5


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_test_time_augmentation_averages_the_views_mapped_back(tta):
    """`stacked_outputs` with TTA is the mean of the model's outputs on the flipped (and transposed)
    tiles, each mapped back; so its output moves with a mirrored (and, for 'd4', transposed) input."""
    import jax.numpy as jnp

    from seaice_jax.inference.predict import stacked_outputs
    from seaice_jax.trained_model import create_model

    fns, params, batch_stats = create_model(tiny_config())
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 32, 32, len(CHANNELS))).astype(np.float32))
    got, layout = stacked_outputs(fns, params, batch_stats, x, tta)
    plain, same_layout = stacked_outputs(fns, params, batch_stats, x)
    assert layout == same_layout and got.shape == plain.shape
    views = [(False, r, c) for r in (0, 1) for c in (0, 1)] + (
        [(True, r, c) for r in (0, 1) for c in (0, 1)] if tta == "d4" else [])
    total = 0
    for transpose, r, c in views:
        v = np.swapaxes(np.asarray(x), 1, 2) if transpose else np.asarray(x)
        v = v[:, ::-1] if r else v
        v = v[:, :, ::-1] if c else v
        out = np.asarray(stacked_outputs(fns, params, batch_stats, jnp.asarray(v.copy()))[0])
        out = out[:, :, ::-1] if c else out
        out = out[:, ::-1] if r else out
        total = total + (np.swapaxes(out, 1, 2) if transpose else out)
    np.testing.assert_allclose(np.asarray(got), total / len(views), atol=1e-5)
    mirrored = np.asarray(stacked_outputs(fns, params, batch_stats, x[:, ::-1], tta)[0])
    np.testing.assert_allclose(mirrored, np.asarray(got)[:, ::-1], atol=1e-5)
    if tta == "d4":
        turned = np.asarray(stacked_outputs(fns, params, batch_stats, jnp.swapaxes(x, 1, 2), tta)[0])
        np.testing.assert_allclose(turned, np.swapaxes(np.asarray(got), 1, 2), atol=1e-5)
    assert not np.allclose(np.asarray(got), np.asarray(plain), atol=1e-3)  # the views differ: TTA does something
    with pytest.raises(ValueError, match="tta must be one of"):
        stacked_outputs(fns, params, batch_stats, x, "rot")


@pytest.mark.parametrize("margin", [0, 8])
def test_single_tile_scene_is_one_forward_pass_finished_on_device(margin):
    """A scene one tile covers skips the host blending: its maps equal the network's outputs on the
    zero-padded tile (argmax classes, ice logit), cropped to the scene."""
    import jax.numpy as jnp

    from seaice_jax.trained_model import create_model

    config = tiny_config()
    fns, params, batch_stats = create_model(config)
    x = np.random.default_rng(1).normal(size=(40, 44, len(CHANNELS))).astype(np.float32)
    tile = 48 + 2 * margin
    pred = inference.predict_scene(fns, params, batch_stats, x, tile=tile, stride=tile - 2 * margin,
                                   margin=margin, align=4)
    padded = np.zeros((1, tile, tile, len(CHANNELS)), np.float32)
    padded[0, margin : margin + 40, margin : margin + 44] = x
    whole = {k: np.asarray(v[0, margin : margin + 40, margin : margin + 44])
             for k, v in fns.apply_eval(params, batch_stats, jnp.asarray(padded)).items()}
    assert pred["ice_logit"].shape == (40, 44) and pred["ice_logit"].dtype == np.float32
    # The single-tile path folds BatchNorm into the conv kernels (eval mode): the same maths summed in
    # another order, so float32 logits of order 1 agree to ~10 ulps (1.2e-6 seen on one CPU), not bitwise.
    np.testing.assert_allclose(pred["ice_logit"], whole["ice"], rtol=1e-5, atol=1e-5)
    for head in CHART_NAMES:
        assert pred[head].dtype == np.uint8
        np.testing.assert_array_equal(pred[head], np.argmax(whole[head], -1))
    # The same scene given as channel planes (what predict_files passes): the same maps.
    planes = inference.predict_scene(fns, params, batch_stats, [x[..., i] for i in range(x.shape[-1])],
                                     tile=tile, stride=tile - 2 * margin, margin=margin, align=4)
    for name, values in pred.items():
        np.testing.assert_array_equal(planes[name], values, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Prediction files (written by the CLI run)


def test_prediction_files_have_every_variable_masked_exactly_on_invalid(cli_run, scenes):
    from seaice_jax import evaluation

    out, run = cli_run
    assert sorted(f for f in os.listdir(out) if f.endswith("_pred.nc")) == sorted(
        open_scene(p).name + "_pred.nc" for p in scenes.values())
    assert not [f for f in os.listdir(out) if f.startswith(".tmp_")]
    for key, path in scenes.items():
        scene = open_scene(path)
        assert 0 < scene.valid.sum() < scene.valid.size  # land / no data present: the masks are tested
        with read_prediction(out, scene) as ds:
            assert ds["ice_logit"].dtype == np.float32 and ds["ice_probability"].dtype == np.float32
            assert np.isfinite(ds["ice_logit"].values).all()
            prob = ds["ice_probability"].values
            assert np.isnan(prob[~scene.valid]).all() and np.all((prob[scene.valid] >= 0) & (prob[scene.valid] <= 1))
            for name in ("ice_binary_als", "ice_binary_conc"):
                values = ds[name].values
                assert ds[name].dims == SAR_DIMS and values.dtype == np.uint8, name
                np.testing.assert_array_equal(values == 255, ~scene.valid, err_msg=f"{key} {name}")
            for name in CHART_NAMES:  # masked as the binary maps are (the upload file keeps a class everywhere)
                values = ds[name].values
                assert ds[name].dims == SAR_DIMS and values.dtype == np.uint8, name
                np.testing.assert_array_equal(values == 255, ~scene.valid, err_msg=f"{key} {name}")
            assert set(np.unique(ds["ice_binary_als"].values)) <= {0, 1, 255}
            assert ds["SIC"].values[scene.valid].max() <= 10 and ds["SOD"].values[scene.valid].max() <= 5
            assert ds.attrs["scene_name"] == scene.name and ds.attrs["checkpoint_step"] == 2
            assert ds.attrs["conc_target_source"] == ("model_sic" if key == "unlabelled" else "chart")
        pred = evaluation.load_prediction(os.path.join(out, scene.name + "_pred.nc"), scene.shape)
        assert set(pred.charts) == set(CHART_NAMES)


def check_cf(ds) -> None:
    """A small CF check: Conventions, units + long_name on every data variable, consistent flags, a
    real _FillValue on class maps, 2-D latitude / longitude coordinates referenced by every variable."""
    assert str(ds.attrs["Conventions"]).startswith("CF-1.") and int(ds.attrs["Conventions"].split(".")[1]) >= 8
    for name in ("latitude", "longitude"):
        assert name in ds.coords and ds[name].dims == SAR_DIMS
        assert ds[name].attrs["units"] == ("degrees_north" if name == "latitude" else "degrees_east")
        assert ds[name].attrs["standard_name"] == name
    for name, var in ds.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
        assert set(var.encoding["coordinates"].split()) == {"latitude", "longitude"}, name
        if "flag_values" in var.attrs:
            values, meanings = np.atleast_1d(var.attrs["flag_values"]), var.attrs["flag_meanings"].split()
            assert len(values) == len(meanings) == len(set(meanings)) and values.dtype == var.dtype, name
            fill = var.attrs.get("_FillValue", var.encoding.get("_FillValue"))  # attrs when not decoded
            assert fill == 255 and fill.dtype == np.uint8 and 255 not in values, name
    assert ds["ice_probability"].attrs["standard_name"] == "sea_ice_area_fraction"
    for attr in ("history", "seaice_jax_version", "checkpoint_step", "config_json", "source_scene", "scene_name"):
        assert attr in ds.attrs, attr


def test_prediction_files_follow_cf_and_read_back_masked_or_raw(cli_run, scenes):
    import json

    from seaice_jax import __version__

    out, _ = cli_run
    for path in scenes.values():
        scene = open_scene(path)
        file = os.path.join(out, scene.name + "_pred.nc")
        with xr.open_dataset(file, mask_and_scale=False) as raw, xr.open_dataset(file) as masked:
            check_cf(raw)
            for name in ("ice_binary_als", "SOD"):
                assert raw[name].dtype == np.uint8  # mask_and_scale=False: the stored values
                # default: masked where the file holds the fill (binary maps and chart classes alike off
                # the valid pixels; the upload file holds the unmasked classes)
                stored_fill = raw[name].values == 255
                np.testing.assert_array_equal(np.isnan(masked[name].values), stored_fill)
                np.testing.assert_array_equal(masked[name].values[~stored_fill], raw[name].values[~stored_fill])
            np.testing.assert_array_equal(raw["ice_binary_als"].values == 255, ~scene.valid)
            np.testing.assert_array_equal(raw["SOD"].values == 255, ~scene.valid)
            lat, lon = scene.latlon(dtype=np.float32)
            np.testing.assert_allclose(raw["latitude"].values, lat, atol=1e-4)
            np.testing.assert_allclose(raw["longitude"].values, lon, atol=1e-4)
            assert raw.attrs["seaice_jax_version"] == __version__
            assert raw.attrs["source_scene"] == os.path.basename(path)
            assert json.loads(raw.attrs["config_json"])["model"]["filters"] == [4, 8]
            assert raw.attrs["blend"] == "core" and raw.attrs["land_mask"] == "distance_map"


def test_als_attributes_equal_scaling_on_the_stored_logits(cli_run, scenes):
    from seaice_jax import scaling

    out, _ = cli_run
    for path in scenes.values():
        scene = open_scene(path)
        with read_prediction(out, scene) as ds:
            logits = ds["ice_logit"].values
            als = scaling.analytical_logit_scaling(logits, scene.valid)
            for attr, value in (("als_z2", als.z_low), ("als_z98", als.z_high), ("als_b", als.b), ("als_T", als.T)):
                np.testing.assert_allclose(ds.attrs[attr], float(value), rtol=1e-6, err_msg=attr)
            np.testing.assert_array_equal(ds["ice_binary_als"].values[scene.valid], np.asarray(als.binary)[scene.valid])
            np.testing.assert_allclose(ds["ice_probability"].values[scene.valid], np.asarray(als.soft)[scene.valid],
                                       rtol=1e-6)


def test_concentration_map_hits_every_region_target(cli_run, scenes):
    out, _ = cli_run
    for key, path in scenes.items():
        scene = open_scene(path)
        with read_prediction(out, scene) as ds:
            conc = ds["ice_binary_conc"].values
            if key == "unlabelled":  # 20 km cells aiming at the model's mean SIC class / 10
                regions, count = inference.cell_regions(scene.shape, 10 * 25, scene.valid)
                targets = inference.region_means(ds["SIC"].values / 10.0, regions, count)
            else:
                regions, targets = scene.region_ids, scene.region_conc
        assert len(targets) >= 1
        checked = 0
        for r, target in enumerate(targets):
            inside = regions == r
            n = int(inside.sum())
            if n:
                # round(c n) pixels of the region are ice (continuous logits: no ties)
                assert int((conc[inside] == 1).sum()) == int(np.round(target * n)), (key, r, target, n)
                checked += 1
        assert checked >= 1
        outside = scene.valid & (regions < 0)  # valid pixels with no usable chart region: logit >= 0
        with read_prediction(out, scene) as ds:
            np.testing.assert_array_equal(conc[outside] == 1, ds["ice_logit"].values[outside] >= 0)


def test_submission_names_dtypes_shapes_and_80m_grid(cli_run, scenes):
    import netCDF4

    out, _ = cli_run
    with netCDF4.Dataset(os.path.join(out, "upload.nc")) as sub:
        expected = set()
        for _key, path in scenes.items():
            scene = open_scene(path)
            prefix = scene.name[:19] if scene.product == "rtt" else inference.submission_key(scene.name)
            with read_prediction(out, scene) as ds:
                for chart in CHART_NAMES:
                    var = sub.variables[f"{prefix}_{chart}"]
                    expected.add(var.name)
                    assert var.dtype == np.uint8 and var.filters()["zlib"] and var.filters()["complevel"] == 1
                    assert var.dimensions == (f"{prefix}_{chart}_dim0", f"{prefix}_{chart}_dim1")
                    values, stored = var[:].data, ds[chart].values
                    assert values.max() < {"SIC": 11, "SOD": 6, "FLOE": 7}[chart]  # a class everywhere, no 255
                    if scene.product == "rtt":  # 80 m already: same grid, unmasked classes
                        assert values.shape == scene.shape
                        np.testing.assert_array_equal(values[scene.valid], stored[scene.valid])
                    else:  # 40 m -> 80 m by 2x2 max; check blocks that are wholly valid
                        h, w = scene.shape
                        assert values.shape == ((h + 1) // 2, (w + 1) // 2)
                        he, we = h // 2 * 2, w // 2 * 2
                        blocks = stored[:he, :we].reshape(he // 2, 2, we // 2, 2)
                        whole = (scene.valid[:he, :we].reshape(he // 2, 2, we // 2, 2)).all(axis=(1, 3))
                        assert whole.sum() > 100
                        np.testing.assert_array_equal(values[: he // 2, : we // 2][whole],
                                                      blocks.max(axis=(1, 3))[whole])
        assert set(sub.variables) == expected


def test_trim_threshold_ties_keeps_exactly_the_target_count():
    logits = np.array([[1.0, 0.5, 0.5, 0.5], [0.5, 0.5, 2.0, -1.0]], np.float32)
    regions = np.array([[0, 0, 0, 0], [1, 1, 1, -1]], np.int32)
    # region 0: target 2 of 4 -> threshold 0.5 ties 3 pixels; region 1: target 2 of 3, ties 2 at 0.5
    ice = (logits >= 0.5) & (regions >= 0)
    secondary = np.array([[0, 3, 1, 2], [5, 4, 0, 0]], np.float32)
    out = inference.trim_threshold_ties(ice, logits, secondary, regions, np.array([2, 2]))
    # region 0 keeps 1.0 and the tied pixel with the highest secondary (3); region 1 keeps 2.0 and 5
    np.testing.assert_array_equal(out, [[True, True, False, False], [True, False, True, False]])
    counts = inference.region_ice_counts(logits, regions, np.array([0.5, np.nan], np.float32))
    p = 1 / (1 + np.exp(-np.array([0.5, 0.5, 2.0])))
    np.testing.assert_array_equal(counts, [2, np.round(p.mean() * 3)])


def test_submission_key_and_block_max():
    assert inference.submission_key("20190430T101830_cis_prep") == "20190430T101830_cis"
    raw = ("S1A_EW_GRDM_1SDH_20190430T101830_20190430T101934_027020_030B5B_0A43_"
           "icechart_cis_SGRDIEA_20190430T1800Z_pl_a")
    assert inference.submission_key(raw) == "20190430T101830_cis"
    a = np.array([[0, 1, 2], [3, 0, 1], [9, 9, 4]], np.uint8)
    np.testing.assert_array_equal(inference.block_max_2x2(a), [[3, 2], [9, 4]])


def test_cli_writes_quicklooks(cli_run, scenes):
    out, run = cli_run
    for path in scenes.values():
        png = os.path.join(out, open_scene(path).name + "_quicklook.png")
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(png) > 5000
    written = run.stdout.strip().splitlines()  # every path written: 3 predictions, 3 PNGs, the submission
    assert len(written) == 7 and all(os.path.isfile(p) for p in written) and written[-1].endswith("upload.nc")
    progress = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert [line[:5] for line in progress] == ["[1/3]", "[2/3]", "[3/3]"], run.stderr


# ----------------------------------------------------------------------------------------------
# Bad input


def _launcher():
    spec = importlib.util.spec_from_file_location("infer_launcher", os.path.join(ROOT, "launch", "infer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_checkpoint_or_bad_scene_gives_one_line_error_and_no_output(workdir, scenes, tmp_path, capsys):
    main = _launcher().main
    empty = tmp_path / "empty_workdir"
    empty.mkdir()
    with open(os.path.join(workdir, "config.json")) as f:
        (empty / "config.json").write_text(f.read())  # a config but no checkpoint
    for bad_workdir in (str(empty), str(tmp_path / "missing")):
        out = tmp_path / ("out_" + os.path.basename(bad_workdir))
        rc = main(["--workdir", bad_workdir, "--scenes", scenes["rtt"], "--out", str(out),
                   "--submission", str(out / "upload.nc")])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and len(err.splitlines()) == 1 and bad_workdir in err, err
        assert not out.exists()  # nothing written, no empty folder left
    corrupt = tmp_path / "20190101T000000_cis_prep.nc"
    corrupt.write_bytes(b"not a netcdf file")
    out = tmp_path / "out_corrupt"
    rc = main(["--workdir", workdir, "--scenes", str(corrupt), "--out", str(out), "--submission", str(out / "u.nc")])
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("error: infer: 1 of 1 scene(s) failed (no submission written): ")
    assert rc == 1 and corrupt.name in err.splitlines()[-1], err
    assert not out.exists()  # no prediction, no submission, no temporary file, no empty folder


def test_evaluation_in_training_runs_on_one_device_outside_the_mesh(scenes, monkeypatch):
    """Under the training mesh, replicated parameters would run the whole-scene forward pass on every
    device; evaluate_scenes hands the evaluation one local copy and no mesh, with the same numbers."""
    import jax

    from seaice_jax.inference import validate
    from seaice_jax.parallel import make_mesh
    from seaice_jax.trained_model import create_model

    config = tiny_config()
    fns, params, batch_stats = create_model(config)
    mesh = make_mesh(4)
    replicated = jax.device_put((params, batch_stats), jax.NamedSharding(mesh, jax.P()))
    seen = []
    evaluate = inference.evaluate_binary_maps

    def spy(config, fns, params, batch_stats, paths):
        seen.append({d for leaf in jax.tree.leaves(params) for d in leaf.sharding.device_set})
        return evaluate(config, fns, params, batch_stats, paths)

    monkeypatch.setattr(validate, "evaluate_binary_maps", spy)
    with jax.set_mesh(mesh):
        in_mesh = validate.evaluate_scenes(config, fns, *replicated, [scenes["rtt"]])
    assert len(mesh.devices.flat) == 4 and seen == [{jax.local_devices()[0]}]
    plain = evaluate(config, fns, params, batch_stats, [scenes["rtt"]])
    assert in_mesh == pytest.approx(plain, rel=1e-6, abs=1e-6)
