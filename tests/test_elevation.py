"""Elevation (freeboard) model: the training loss glue, crops with re-indexed footprints, a tiny train
step, inference writing `freeboard`, per-scene calibration and the evaluation on a known answer."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from seaice_jax import trained_model
from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.elevation import calibrate as cal
from seaice_jax.elevation import data as edata
from seaice_jax.elevation import evaluate as ev
from seaice_jax.elevation.train import elevation_loss, make_elevation_step
from seaice_jax.synthetic import write_synthetic_scenes


def _tiny_config():
    import importlib.util
    spec = importlib.util.spec_from_file_location("elev_cfg", os.path.join(os.path.dirname(__file__), "..",
                                                                         "configs", "elevation.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.data.synthetic.train_scenes = 2
    c.data.synthetic.size = (96, 96)
    c.data.synthetic.seed = 3
    c.data.patch_size = 32
    c.model.filters = [4, 8]
    c.train.batch_size = 2
    c.train.num_steps = 2
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.eval.tile = 64
    c.eval.stride = 32
    c.elevation.points_per_crop = 128
    return c


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("elev_scenes"))
    write_synthetic_scenes(d, 2, "rtt", "winter", (96, 96), 21, altimetry="icesat2")
    return d


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_elevation_loss_freeboard_term_hand_computed():
    # one 2x2 map per batch item; two points, the second masked out
    fb = jnp.array([[[0.2, 0.4], [0.6, 0.8]]])
    batch = {"fb_index": jnp.array([[[0, 1], [3, 0]]]), "fb_weight": jnp.array([[[0.5, 0.5], [1.0, 0.0]]]),
             "fb_value": jnp.array([[0.5, 0.0]]), "fb_sigma": jnp.array([[0.1, 0.1]]),
             "fb_mask": jnp.array([[True, False]])}
    ecfg = _Cfg(huber_delta=0.3, sigma_floor=0.01, weight=2.0)
    loss, metrics = elevation_loss({"freeboard": fb}, batch, None, ecfg)
    # footprint mean 0.3, residual -0.2, huber 0.5 * 0.04 = 0.02; x weight 2
    np.testing.assert_allclose(float(metrics["freeboard"]), 0.02, rtol=1e-5)
    np.testing.assert_allclose(float(loss), 0.04, rtol=1e-5)


def test_crop_footprints_reindexed(scenes_dir):
    tracks, _ = edata.read_altimetry(os.path.join(scenes_dir, "altimetry"))
    scenes = edata.load_elevation_scenes(sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc"))), tracks,
                                         ("nersc_sar_primary", "nersc_sar_secondary"))
    es = max(scenes, key=lambda s: len(s.colloc))
    assert len(es.colloc) > 20
    field = np.random.default_rng(0).uniform(size=es.scene.shape).astype(np.float32)
    r0, c0, p = 16, 24, 48
    out = edata.crop_footprints(es.colloc, r0, c0, p, 400)
    assert out["fb_mask"].sum() > 0
    crop = field[r0:r0 + p, c0:c0 + p]
    from seaice_jax.altimetry.loss import footprint_mean
    got = np.asarray(footprint_mean(jnp.asarray(crop), out["fb_index"], out["fb_weight"]))[out["fb_mask"]]
    full = am.footprint_means(field, es.colloc)
    # exact: each kept point's crop mean equals its scene mean
    sel = [np.flatnonzero(es.colloc.value == v)[0] for v in out["fb_value"][out["fb_mask"]]]
    np.testing.assert_allclose(got, full[sel], rtol=1e-5)


def test_tiny_train_step_of_the_elevation_model(scenes_dir):
    c = _tiny_config()
    tracks, _ = edata.read_altimetry(os.path.join(scenes_dir, "altimetry"))
    channels = trained_model.input_channels(c)
    scenes = edata.load_elevation_scenes(sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc"))), tracks, channels)
    sampler = edata.CropSampler(scenes, 32, 128, c.data.max_regions, 0)
    fns, tx, state = trained_model.initial_state(c)
    step = jax.jit(make_elevation_step(fns, tx, c.loss, c.elevation))
    batch = sampler.batch(2)
    out, _ = fns.apply_train(state.params, state.batch_stats, batch["inputs"])
    assert out["freeboard"].shape == (2, 32, 32) and bool(jnp.all(out["freeboard"] >= 0))
    state, m = step(state, batch)
    state, m = step(state, batch)
    assert int(state.step) == 2 and np.isfinite(float(m["loss"])) and float(m["points"]) > 0


def test_train_infer_writes_freeboard_and_evaluation_runs(scenes_dir, tmp_path):
    from seaice_jax.inference import predict_files
    from seaice_jax.train import train_and_evaluate
    c = _tiny_config()
    work = str(tmp_path / "w")
    res = train_and_evaluate(c, work)
    assert res["step"] == 2 and np.isfinite(res["loss"])
    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    written = predict_files(work, scenes, str(tmp_path / "p"))
    with xr.open_dataset(written[0]) as ds:
        fb = ds["freeboard"].values
        assert ds["freeboard"].attrs["units"] == "m"
        with xr.open_dataset(scenes[0]) as sc:
            land = sc["ice_truth"].values == 255
    assert fb.shape == (96, 96) and np.all(np.isnan(fb[land])) and np.nanmin(fb) >= 0
    result = ev.evaluate(str(tmp_path / "p"), scenes, [os.path.join(scenes_dir, "altimetry")],
                         methods=("model", "quantile_mapping", "nearest"), track_counts=(1, 2))
    row = result["pooled"]["methods"]["model"]
    assert row["rmse_80m"] is not None and row["loo_rmse"] is not None
    assert set(result["pooled"]["by_tracks"]) == {"1", "2"}


def test_evaluation_known_answer_perfect_map(scenes_dir, tmp_path):
    """A prediction equal to the truth: RMSE 0, bias 0, r 1 on the grid at every resolution; at held-out
    tracks the error is the tracks' own (3 cm noise + lead classification errors)."""
    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    pred_dir = tmp_path / "p"
    pred_dir.mkdir()
    for s in scenes:
        with xr.open_dataset(s) as ds:
            fb, ice = ds["freeboard_truth"].values, ds["ice_truth"].values
        name = os.path.basename(s)[:-3]
        xr.Dataset({"freeboard": (("sar_lines", "sar_samples"), fb),
                    "ice_binary_als": (("sar_lines", "sar_samples"), np.where(ice == 0, 0, 1).astype(np.uint8))}
                   ).to_netcdf(pred_dir / f"{name}_pred.nc")
    result = ev.evaluate(str(pred_dir), scenes, [os.path.join(scenes_dir, "altimetry")], methods=("model",),
                         track_counts=(1,))
    row = result["pooled"]["methods"]["model"]
    assert row["rmse_80m"] == pytest.approx(0.0, abs=1e-6) and row["rmse_400m"] == pytest.approx(0.0, abs=1e-6)
    assert row["bias"] == pytest.approx(0.0, abs=1e-6) and row["r"] == pytest.approx(1.0, abs=1e-6)
    assert 0.02 < row["loo_rmse"] < 0.2
    assert result["pooled"]["by_tracks"]["1"]["methods"]["model"]["rmse_80m"] == pytest.approx(0.0, abs=1e-6)
    assert "|" in ev.markdown_table(result)


def test_calibration_recovers_scale_and_offset(scenes_dir):
    tracks, _ = edata.read_altimetry(os.path.join(scenes_dir, "altimetry"))
    from seaice_jax.data.scene import open_scene
    path = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))[0]
    scene = open_scene(path, channels=("nersc_sar_primary",))
    c = collocate(scene, tracks)
    truth = np.random.default_rng(1).uniform(0.1, 0.5, scene.shape).astype(np.float32)
    c.value = am.footprint_means(truth, c).astype(np.float32)
    biased = (truth - 0.1) / 2.0
    scale, offset = cal.fit_calibration(biased, c, "scale_offset", min_points=5)
    np.testing.assert_allclose([scale, offset], [2.0, 0.1], atol=1e-4)
    assert cal.fit_calibration(biased, c, "none") == (1.0, 0.0)
