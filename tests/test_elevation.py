"""Freeboard in the one pipeline: altimeter points in the shards, tracks hidden and rasterized as inputs,
the freeboard loss (Huber + Gaussian NLL, kinds apart) in the main loop, inference with and without
tracks, and the evaluation (held-out tracks, distance bins, uncertainty calibration)."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.data import points as pts
from seaice_jax.elevation import calibrate as cal
from seaice_jax.elevation import evaluate as ev
from seaice_jax.elevation.data import read_altimetry
from seaice_jax.synthetic import write_synthetic_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAR = ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle", "distance_map")


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("elev_scenes"))
    write_synthetic_scenes(d, 2, "rtt", "winter", (96, 96), 21, altimetry="icesat2")
    return d


@pytest.fixture(scope="module")
def shards(scenes_dir, tmp_path_factory):
    """The scenes converted with their tracks (32 px patches, at most 96 points each)."""
    from seaice_jax.data.shards import ALTIMETRY_INDEX, PatchSpec, convert_scenes
    from seaice_jax.elevation.collocation import SceneAltimetry

    out = str(tmp_path_factory.mktemp("elev_shards"))
    spec = PatchSpec(32, 32, 1, 16, SAR + ("btemp_36_5v",), max_points=96, max_time_gap_h=6.0)
    alt = SceneAltimetry([os.path.join(scenes_dir, "altimetry")], max_time_gap_h=6.0,
                         index_cache=os.path.join(out, ALTIMETRY_INDEX))
    done, errors = convert_scenes([scenes_dir], out, spec, progress=False, altimetry=alt)
    assert not errors and len(done) == 2
    return out


def elevation_config(shards_dir: str, **train):
    """configs/elevation.py made tiny: 32 px patches, filters (4, 8), 3 steps on 2 devices."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("elev_cfg", os.path.join(ROOT, "configs", "elevation.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.data.shards = shards_dir
    c.data.channels = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v", "freeboard_points",
                       "freeboard_mask")
    c.data.patch_size = 32
    c.model.filters = (4, 8)
    c.train.batch_size = 4
    c.train.num_devices = 2
    c.train.num_steps = 3
    c.train.log_every = 1
    c.train.checkpoint_every = 3
    c.train.eval_every = 1000
    c.optim.warmup_steps = 1
    c.eval.tile = 64
    c.eval.stride = 32
    c.train.update(train)
    return c


@pytest.fixture(scope="module")
def workdir(shards, tmp_path_factory):
    from seaice_jax.train import train_and_evaluate

    work = str(tmp_path_factory.mktemp("elev_work"))
    result = train_and_evaluate(elevation_config(shards), work)
    assert result["step"] == 3
    return work


def _loss_cfg(**kw):
    from seaice_jax.config import base_config

    c = base_config().loss
    c.update(kw)
    return c


def test_freeboard_loss_hand_computed_and_kinds_never_mixed():
    from seaice_jax.losses import freeboard_loss

    fb = jnp.array([[[0.2, 0.4], [0.6, 0.8]]])  # [B=1, 2, 2]
    sigma_map = jnp.full((1, 2, 2), 0.3)
    # three points: laser (footprint mean 0.3, value 0.5), radar (value 9: must not touch the laser head),
    # laser but not in the loss
    batch = {"fb_index": jnp.array([[[0, 1], [3, 0], [2, 0]]]), "fb_weight": jnp.array([[[0.5, 0.5], [1.0, 0.0],
                                                                                        [1.0, 0.0]]]),
             "fb_value": jnp.array([[0.5, 9.0, 5.0]]), "fb_sigma": jnp.array([[0.4, 0.1, 0.1]]),
             "fb_kind": jnp.array([[0, 1, 0]]), "fb_loss": jnp.array([[True, True, False]])}
    cfg = _loss_cfg(freeboard_huber_delta=0.3, freeboard_sigma_floor=0.01, freeboard_nll_weight=0.5)
    total, m = freeboard_loss({"freeboard": fb, "freeboard_uncertainty": sigma_map}, batch, cfg)
    # Huber of the residual -0.2 (inside delta): 0.5 * 0.04; one point, so its weight cancels
    np.testing.assert_allclose(float(m["freeboard"]), 0.02, rtol=1e-6)
    v = 0.3 ** 2 + 0.4 ** 2  # predicted and stated variances add
    nll = 0.5 * (0.04 / v + np.log(v))
    np.testing.assert_allclose(float(m["freeboard_nll"]), nll, rtol=1e-5)
    np.testing.assert_allclose(float(total), 0.02 + 0.5 * nll, rtol=1e-5)
    assert float(m["freeboard_points"]) == 1.0 and "radar_freeboard" not in m
    # the NLL moves only the uncertainty head: its gradient w.r.t. the freeboard map is the Huber's
    g = jax.grad(lambda f: freeboard_loss({"freeboard": f, "freeboard_uncertainty": sigma_map}, batch, cfg)[0])(fb)
    g_huber = jax.grad(lambda f: freeboard_loss({"freeboard": f}, batch, cfg)[0])(fb)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_huber), rtol=1e-6)


def test_points_classed_as_lead_weigh_freeboard_lead_weight():
    """Two laser points on one pixel: a floe point (value 0.5) and a lead-classed point (value 0, what a
    product reports for a footprint it takes for the sea surface). The weighted Huber mean is
    (h(r_floe) + w h(r_lead)) / (1 + w); the pixel's gradient moves towards the floe point as w drops."""
    from seaice_jax.altimetry.track import FLOE, LEAD
    from seaice_jax.losses import freeboard_loss

    fb = jnp.array([[[0.3]]])
    batch = {"fb_index": jnp.array([[[0], [0]]]), "fb_weight": jnp.array([[[1.0], [1.0]]]),
             "fb_value": jnp.array([[0.5, 0.0]]), "fb_sigma": jnp.array([[0.03, 0.03]]),
             "fb_kind": jnp.array([[0, 0]]), "fb_loss": jnp.array([[True, True]]),
             "fb_surface": jnp.array([[FLOE, LEAD]])}
    for w in (1.0, 0.1, 0.0):
        cfg = _loss_cfg(freeboard_huber_delta=1.0, freeboard_sigma_floor=0.01, freeboard_nll_weight=0.0,
                        freeboard_lead_weight=w)
        _, m = freeboard_loss({"freeboard": fb}, batch, cfg)
        expected = (0.5 * 0.2 ** 2 + w * 0.5 * 0.3 ** 2) / (1.0 + w)
        np.testing.assert_allclose(float(m["freeboard"]), expected, rtol=1e-5)
    # configs written before the field: every point weighs 1
    cfg = _loss_cfg(freeboard_huber_delta=1.0, freeboard_sigma_floor=0.01, freeboard_nll_weight=0.0)
    del cfg["freeboard_lead_weight"]
    _, m = freeboard_loss({"freeboard": fb}, batch, cfg)
    np.testing.assert_allclose(float(m["freeboard"]), (0.5 * 0.04 + 0.5 * 0.09) / 2, rtol=1e-5)


def test_lead_classed_points_under_ice_weigh_freeboard_lead_on_ice_weight():
    """Four laser points on a 1 x 2 x 2 map whose ice logits say ice on pixels 0, 1 and water on 2, 3: a
    floe point and a lead-classed point on ice (a misclassed floe), a lead-classed point on water and a
    floe point on water. With the on-ice weight w the lead point on ice weighs w (and at 0 leaves the
    likelihood too); the lead point on water always weighs 1; the ice map's gradient is never touched."""
    from seaice_jax.altimetry.track import FLOE, LEAD
    from seaice_jax.losses import freeboard_loss

    fb = jnp.array([[[0.3, 0.3], [0.02, 0.0]]])
    ice = jnp.array([[[4.0, 4.0], [-4.0, -4.0]]])
    sig = jnp.full((1, 2, 2), 0.1)
    batch = {"fb_index": jnp.array([[[0], [1], [2], [3]]]), "fb_weight": jnp.ones((1, 4, 1)),
             "fb_value": jnp.array([[0.5, 0.0, 0.0, 0.04]]), "fb_sigma": jnp.full((1, 4), 0.03),
             "fb_kind": jnp.zeros((1, 4), jnp.int32), "fb_loss": jnp.ones((1, 4), bool),
             "fb_surface": jnp.array([[FLOE, LEAD, LEAD, FLOE]])}
    h = np.array([0.5 * 0.2 ** 2, 0.5 * 0.3 ** 2, 0.5 * 0.02 ** 2, 0.5 * 0.04 ** 2])
    for w in (1.0, 0.5, 0.0):
        cfg = _loss_cfg(freeboard_huber_delta=1.0, freeboard_sigma_floor=0.01, freeboard_nll_weight=1.0,
                        freeboard_lead_on_ice_weight=w)
        _, m = freeboard_loss({"freeboard": fb, "ice": ice, "freeboard_uncertainty": sig}, batch, cfg)
        pw = np.array([1.0, w, 1.0, 1.0])
        np.testing.assert_allclose(float(m["freeboard"]), np.sum(pw * h) / pw.sum(), rtol=1e-5)
        assert float(m["freeboard_points"]) == (3.0 if w == 0.0 else 4.0)
        g = jax.grad(lambda i, c=cfg: freeboard_loss({"freeboard": fb, "ice": i}, batch, c)[0])(ice)
        assert float(jnp.abs(g).max()) == 0.0
    # without an ice head (or a config written before the field) every lead point weighs 1
    _, m = freeboard_loss({"freeboard": fb}, batch, _loss_cfg(freeboard_huber_delta=1.0, freeboard_sigma_floor=0.01,
                                                             freeboard_nll_weight=0.0,
                                                             freeboard_lead_on_ice_weight=0.0))
    np.testing.assert_allclose(float(m["freeboard"]), h.mean(), rtol=1e-5)


def test_negative_lead_weights_are_refused_in_one_line():
    from seaice_jax.config import base_config
    from seaice_jax.config_checks import ConfigRangeError, check_training_config

    for field in ("freeboard_lead_weight", "freeboard_lead_on_ice_weight"):
        c = base_config()
        c.loss[field] = -0.5
        with pytest.raises(ConfigRangeError, match=f"--config.loss.{field} must be a number >= 0, got -0.5"):
            check_training_config(c)


def test_scene_point_planes_leave_out_lead_classed_points():
    """The inference rasterization (host) takes the same points as the step's: floe points of the kind,
    never lead / sea-surface ones, whose value is the sea surface whatever lies under them."""
    from seaice_jax.altimetry.track import FLOE, LEAD, SEA_SURFACE

    base = pts.ScenePoints.empty((4, 4), footprint_pixels=1)
    n = 4
    fields = {f: np.zeros((n,) + getattr(base, f).shape[1:], getattr(base, f).dtype) for f in base.PER_POINT}
    fields.update(rows=np.array([[0], [1], [2], [3]], np.int32), cols=np.array([[0], [1], [2], [3]], np.int32),
                  weight=np.ones((n, 1), np.float32), value=np.array([0.4, 0.0, 0.01, 0.3], np.float32),
                  surface=np.array([FLOE, LEAD, SEA_SURFACE, FLOE], np.uint8),
                  kind=np.array([pts.kind_index("laser")] * 3 + [pts.kind_index("radar")], np.uint8))
    planes = pts.scene_point_planes(pts.ScenePoints(shape=(4, 4), **fields), ("freeboard_points", "freeboard_mask"))
    assert np.argwhere(planes["freeboard_mask"]).tolist() == [[0, 0]]
    assert float(planes["freeboard_points"][0, 0]) == pytest.approx(0.4) and planes["freeboard_points"].sum() == \
        pytest.approx(0.4)


def test_patch_points_rebased_to_the_patch_keep_the_scene_footprint_means(shards):
    points = pts.ScenePoints.load(sorted(glob.glob(os.path.join(shards, "*.altimetry.npz")))[0])
    assert len(points) > 50 and set(np.unique(points.kind)) == {pts.kind_index("laser")}
    field = np.random.default_rng(0).uniform(size=points.shape).astype(np.float32)
    r0, c0, p = 32, 32, 32
    got = pts.patch_points(points, r0, c0, p, max_points=4096)
    n = int((got["fb_kind"] != pts.NO_POINT).sum())
    assert n > 0 and np.all(got["fb_kind"][n:] == pts.NO_POINT) and np.all(got["fb_track"][n:] == -1)
    pix = got["fb_pixel"][:n].astype(int)
    w = got["fb_weight"][:n].astype(np.float64)
    assert pix.min() >= 0 and pix.max() < p
    np.testing.assert_allclose(w.sum(1), 1.0, atol=2e-3)
    crop = field[r0:r0 + p, c0:c0 + p]
    patch_means = (crop[pix[..., 0], pix[..., 1]] * w).sum(1)
    # points whose whole footprint lies in the patch: the same footprint mean as on the scene
    cr, cc = np.rint(points.centre_row), np.rint(points.centre_col)
    inside = ((cr >= r0) & (cr < r0 + p) & (cc >= c0) & (cc < c0 + p))
    whole = inside & np.all((points.weight == 0) | ((points.rows >= r0) & (points.rows < r0 + p)
                                                      & (points.cols >= c0) & (points.cols < c0 + p)), 1)
    scene_means = (field[points.rows, points.cols] * points.weight).sum(1)
    by_value = dict(zip(points.value[whole].round(6), scene_means[whole], strict=True))
    values = got["fb_value"][:n].round(6)
    matched = [(m, by_value[v]) for m, v in zip(patch_means, values, strict=True) if v in by_value]
    assert len(matched) > 10
    np.testing.assert_allclose(*zip(*matched, strict=True), atol=2e-3)
    # a cap keeps an evenly spaced subset, the same every time
    few = pts.patch_points(points, r0, c0, p, max_points=7)
    assert (few["fb_kind"] != pts.NO_POINT).sum() == 7
    np.testing.assert_array_equal(few["fb_value"], pts.patch_points(points, r0, c0, p, max_points=7)["fb_value"])


def test_flips_move_the_points_with_their_pixels_on_host_and_device():
    from seaice_jax.data import device_augment, pipeline

    rng = np.random.default_rng(3)
    p = 8
    field = rng.uniform(size=(p, p)).astype(np.float32)
    pixel = rng.integers(0, p, (5, 3, 2)).astype(np.int16)
    at = field[pixel[..., 0], pixel[..., 1]]
    for fh in (False, True):
        for fw in (False, True):
            for k in range(4):
                patch = {name: np.zeros((p, p), np.uint8) for name in pipeline.SPATIAL_FIELDS}
                patch["inputs"] = field[..., None]
                patch["fb_pixel"] = pixel
                out = pipeline.flip_rotate(patch, fh, fw, k)
                moved = out["fb_pixel"].astype(int)
                np.testing.assert_array_equal(out["inputs"][..., 0][moved[..., 0], moved[..., 1]], at)
    batch = {"inputs": jnp.asarray(np.stack([field[..., None]] * 6)), "fb_pixel": jnp.asarray(np.stack([pixel] * 6))}
    out = device_augment.random_flip_rotate(batch, jax.random.key(0), fields=("inputs",))
    for b in range(6):
        moved = np.asarray(out["fb_pixel"][b])
        np.testing.assert_array_equal(np.asarray(out["inputs"][b, ..., 0])[moved[..., 0], moved[..., 1]], at)


def test_whole_tracks_are_hidden_rasterized_from_the_visible_ones_and_carry_the_loss():
    p, n = 8, 6
    pixel = np.zeros((1, n, 2, 2), np.int16)
    pixel[0, :, 0] = [[0, 0], [0, 1], [2, 2], [2, 3], [5, 5], [7, 7]]
    pixel[0, :, 1] = pixel[0, :, 0]
    weight = np.zeros((1, n, 2), np.float16)
    weight[0, :, 0] = 1.0
    batch = {"inputs": jnp.zeros((1, p, p, 1)), "fb_pixel": jnp.asarray(pixel), "fb_weight": jnp.asarray(weight),
             "fb_value": jnp.asarray([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], jnp.float32),
             "fb_sigma": jnp.full((1, n), 0.03), "fb_surface": jnp.zeros((1, n), jnp.uint8),
             "fb_kind": jnp.asarray([[0, 0, 0, 0, 1, pts.NO_POINT]], jnp.uint8),
             "fb_mission": jnp.zeros((1, n), jnp.uint8), "fb_track": jnp.asarray([[0, 0, 1, 1, 2, -1]], jnp.int16),
             "fb_time_gap": jnp.zeros((1, n))}
    channels = ("nersc_sar_primary", "freeboard_points", "freeboard_mask")
    seen = set()
    for seed in range(40):
        out = pts.add_point_inputs(batch, jax.random.key(seed), channels, p, pts.PointOptions(0.5, 0.0))
        hidden = np.asarray(out["fb_loss"][0])
        assert hidden[0] == hidden[1] and hidden[2] == hidden[3] and not hidden[5]  # whole tracks; no padding
        plane, mask = np.asarray(out["inputs"][0, ..., 1]), np.asarray(out["inputs"][0, ..., 2])
        for i in range(4):  # laser points: in the input exactly when not hidden
            r, c = pixel[0, i, 0]
            assert mask[r, c] == (0.0 if hidden[i] else 1.0)
            assert plane[r, c] == pytest.approx(0.0 if hidden[i] else 0.1 * (i + 1))
        assert mask[5, 5] == 0.0  # the radar point never enters a laser channel
        seen.add((bool(hidden[0]), bool(hidden[2])))
    assert len(seen) == 4  # every combination of the two laser tracks occurs
    everything = pts.add_point_inputs(batch, jax.random.key(0), channels, p, pts.PointOptions(0.0, 1.0))
    assert np.asarray(everything["fb_loss"][0]).tolist() == [True] * 5 + [False]
    assert float(jnp.abs(everything["inputs"][..., 1:]).sum()) == 0.0
    # segments: with every track visible, points of one track are hidden in along-track runs
    long = {**batch, "fb_along": jnp.asarray([[0.0, 500.0, 0.0, 4000.0, 0.0, 0.0]], jnp.float32)}
    runs = set()
    for seed in range(40):
        out = pts.add_point_inputs(long, jax.random.key(seed), channels, p,
                                   pts.PointOptions(0.0, 0.0, segment_dropout=0.5, segment_m=1000.0))
        hidden = np.asarray(out["fb_loss"][0])
        runs.add((bool(hidden[2]), bool(hidden[3])))  # 4 km apart on one track: drawn apart
    assert len(runs) == 4
    # a lead-classed point is never an input (it still counts in the loss when hidden)
    from seaice_jax.altimetry.track import LEAD
    leady = {**batch, "fb_surface": jnp.asarray([[0, LEAD, 0, 0, 0, 0]], jnp.uint8)}
    out = pts.add_point_inputs(leady, jax.random.key(0), channels, p, pts.PointOptions(0.0, 0.0))
    assert float(out["inputs"][0, 0, 1, 2]) == 0.0 and float(out["inputs"][0, 0, 0, 2]) == 1.0
    assert int(out["fb_surface"][0, 1]) == LEAD
    # without point channels the model sees no track and every point counts
    plain = pts.add_point_inputs(batch, jax.random.key(0), ("nersc_sar_primary",), p, pts.PointOptions())
    assert plain["inputs"].shape == (1, p, p, 1) and np.asarray(plain["fb_loss"][0]).sum() == 5


def test_conversion_with_altimetry_counts_every_point_and_declares_the_features(scenes_dir, shards):
    import tensorflow_datasets as tfds

    from seaice_jax.data import compact, pipeline

    sides = []
    for path in sorted(glob.glob(os.path.join(shards, "*_prep.json"))):
        with open(path) as f:
            sides.append(json.load(f))
    for side in sides:
        a = side["altimetry"]
        accounted = (a["collocated"] + a["outside"] + a["outside_time_window"] + a["on_land"]
                     + sum(a["refused"].values()))
        assert a["points_read"] == accounted and a["collocated"] > 0
        assert os.path.exists(os.path.join(shards, a["points_file"]))
    with open(os.path.join(shards, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["format_version"] == compact.FORMAT_VERSION == 3
    assert manifest["altimetry"]["collocated"] == sum(s["altimetry"]["collocated"] for s in sides)
    builder = tfds.builder_from_directory(shards)
    assert "fb_value" in builder.info.features and builder.info.features["fb_pixel"].shape == (96, 8, 2)
    assert pipeline.load_layout(shards).max_points == 96
    records = builder.as_data_source(split="train")
    counts = [int((records[i]["fb_kind"] != pts.NO_POINT).sum()) for i in range(len(records))]
    assert sum(counts) > 0 and max(counts) <= 96
    # a record read by TFDS and by the project's decoder alike
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(os.path.join(shards, "seaice-train.array_record-00000"))
    ours = compact.decode_patch(reader.read([0])[0], pipeline.load_layout(shards))
    reader.close()
    np.testing.assert_array_equal(ours["fb_value"], records[0]["fb_value"])


def test_trained_freeboard_model_runs_with_and_without_tracks(scenes_dir, workdir, tmp_path):
    from seaice_jax.elevation.collocation import SceneAltimetry
    from seaice_jax.inference import predict_files

    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert all(np.isfinite(r["freeboard"]) and r["freeboard_points"] > 0 for r in rows if r["split"] == "train")
    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    alt = SceneAltimetry([os.path.join(scenes_dir, "altimetry")], max_time_gap_h=6.0)
    with_tracks = predict_files(workdir, scenes[:1], str(tmp_path / "with"), altimetry=alt)
    sar_only = predict_files(workdir, scenes[:1], str(tmp_path / "sar"))
    with xr.open_dataset(with_tracks[0]) as a, xr.open_dataset(sar_only[0]) as b:
        assert a["freeboard"].attrs["units"] == "m" and a["freeboard_uncertainty"].attrs["units"] == "m"
        assert a["freeboard_uncertainty"].attrs["standard_name"] == "sea_ice_freeboard standard_error"
        assert a.attrs["altimetry_input_points"] > 0 and b.attrs["altimetry_input_points"] == 0
        fa, fb = a["freeboard"].values, b["freeboard"].values
        ua = a["freeboard_uncertainty"].values
        assert np.nanmin(fa) >= 0 and np.nanmin(ua) > 0
        assert not np.allclose(fa, fb, equal_nan=True)  # the tracks are inputs: they change the map


def test_evaluation_scores_the_model_with_and_without_tracks_by_distance_and_uncertainty(scenes_dir, workdir,
                                                                                        tmp_path):
    from seaice_jax.elevation.collocation import SceneAltimetry
    from seaice_jax.inference import predict_files

    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    alt = SceneAltimetry([os.path.join(scenes_dir, "altimetry")], max_time_gap_h=6.0)
    predict_files(workdir, scenes, str(tmp_path / "p"), altimetry=alt)
    result = ev.evaluate(str(tmp_path / "p"), scenes, [os.path.join(scenes_dir, "altimetry")],
                         methods=("model", "model_sar_only", "nearest"), track_counts=(1,))
    methods = result["pooled"]["methods"]
    assert set(methods) == {"model", "model_sar_only", "nearest"}
    for m in methods.values():
        assert m["rmse_80m"] is not None and m["rmse_400m"] is not None and m["loo_rmse"] is not None
    assert result["settings"]["model_workdir"] == os.path.abspath(workdir)  # found through the files
    assert set(result["by_distance"]["bins"]) == {"0-1 km", "1-5 km", "5-20 km", "> 20 km"}
    assert result["by_distance"]["bins"]["0-1 km"]["n"] > 0
    u = result["uncertainty"]
    assert u["n_points"] > 0 and 0.0 <= u["within_1sigma"] <= u["within_2sigma"] <= 1.0
    # the one-track subset is the model run on that track alone, not the file's map of every track
    assert result["pooled"]["by_tracks"]["1"]["methods"]["model"]["rmse_80m"] != \
        pytest.approx(methods["model"]["rmse_80m"], rel=1e-6)
    # one run per input-track set: without each held-out track, the subset, none
    assert result["settings"]["model_runs"] <= sum(s["tracks"] + 3 for s in result["scenes"].values())


def test_leave_one_track_out_runs_only_the_tiles_it_scores_and_equals_whole_runs(scenes_dir, workdir):
    """model_loo runs the model without each track on the tiles that reach that track's footprints
    only (not cached); its footprint means equal those of whole-scene runs without the track."""
    from seaice_jax.data.scene import open_scene
    from seaice_jax.elevation.model_runs import ModelRunner, SceneModel, footprint_pixels, model_loo

    runner = ModelRunner(workdir)
    path = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))[0]
    scene = open_scene(path, channels=runner.read_channels, require_charts=False)
    tracks = read_altimetry([os.path.join(scenes_dir, "altimetry")]).of_kind("laser")
    colloc = collocate(scene, tracks, 6 * 3600.0, max_pixels=8)
    ids = np.unique(colloc.track_index)
    assert ids.size >= 2
    model = SceneModel(runner, scene, tracks, 6 * 3600.0, colloc)
    preds, sig = model_loo(model, colloc, "none", None)
    assert not model.cache  # partial runs are not kept
    partial = 0
    for ti in ids:
        held = colloc.track_index == ti
        whole, unc = model.run(ids[ids != ti])  # a whole run, kept
        np.testing.assert_allclose(preds[held], am.footprint_means(whole, colloc.select(held)), atol=1e-5)
        part = runner(scene, model.points.select(model.points.track != ti),
                      footprint_pixels(colloc.select(held), scene.shape))[0]
        partial += np.isnan(part).any()
    assert np.isfinite(preds).all() and np.isfinite(sig).all()
    assert partial  # some held-out track leaves tiles out


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
    assert all(b["methods"]["model"] in (None, pytest.approx(0.0, abs=1e-6))
               for b in result["by_distance"]["bins"].values())
    assert "no model workdir" in " ".join(result["notes"])
    assert "|" in ev.markdown_table(result)


def test_nothing_to_evaluate_is_one_error(scenes_dir, tmp_path):
    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(ev.EvaluationError, match="no laser freeboard track read"):
        ev.evaluate(str(tmp_path), scenes, [str(empty)], methods=("nearest",))
    with pytest.raises(ev.EvaluationError, match="no laser track point falls on the 2 scene"):
        ev.evaluate(str(tmp_path), scenes, [os.path.join(scenes_dir, "altimetry")], methods=("nearest",),
                    max_time_gap_h=1e-4)


def test_calibration_recovers_scale_and_offset(scenes_dir):
    tracks = read_altimetry(os.path.join(scenes_dir, "altimetry")).of_kind("laser")
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


def test_a_config_that_needs_points_refuses_shards_without_them(tmp_path):
    from seaice_jax.data.sources import check_points

    c = elevation_config("unused")
    with pytest.raises(ValueError, match="holds no altimeter points.*--altimetry"):
        check_points(c, ("nersc_sar_primary", "freeboard_points"), False, "shards/")
    c.loss.weights.freeboard = 0.0
    with pytest.raises(ValueError, match="loss.weights.freeboard is 0"):
        check_points(c, ("nersc_sar_primary",), True, "shards/")
    c = elevation_config("unused")
    c.data.track_dropout = 0.0
    c.data.all_tracks_hidden = 0.0
    check_points(c, ("freeboard_points",), True, "shards/")  # hidden segments still supervise
    c.data.segment_dropout = 0.0
    with pytest.raises(ValueError, match="no track is ever hidden"):
        check_points(c, ("freeboard_points",), True, "shards/")


def test_two_processes_train_the_elevation_config_as_one(shards, workdir, tmp_path):
    """The elevation config in the main loop across two jax.distributed processes (2 x 2 devices): the
    same losses (freeboard term included) as the one-process run of `workdir` (2 devices)."""
    from tests.test_train import losses_of, run_two_processes

    cfg_path = tmp_path / "cfg.py"
    cfg_path.write_text(
        "from tests.test_elevation import elevation_config\n"
        f"def get_config(arg=None):\n    return elevation_config({shards!r}, num_devices=0)\n")
    outs = run_two_processes(cfg_path, tmp_path / "multi", tmp_path)
    assert "training on 4 of 4 cpu device(s) in 2 processes" in outs[0].splitlines()[:2], outs[0][:2000]
    multi, single = losses_of(str(tmp_path / "multi")), losses_of(workdir)
    assert sorted(multi) == sorted(single) == [1, 2, 3]
    np.testing.assert_allclose([multi[s] for s in (1, 2, 3)], [single[s] for s in (1, 2, 3)], rtol=2e-4)


def test_device_resident_crops_carry_the_points_the_shards_hold(scenes_dir, shards):
    """data.source='device': a crop cut on device holds the same points as the host's patch_points of the
    same window (the set of values; the host keeps them in scene order)."""
    from seaice_jax.data import resident

    scenes = sorted(glob.glob(os.path.join(scenes_dir, "*_prep.nc")))
    spec = resident.ResidentSpec(patch_size=32, downsample=1, max_regions=16,
                                 channels=("nersc_sar_primary", "btemp_36_5v", "freeboard_points"), max_points=512)
    data = resident.load_resident(scenes, spec, points_dir=shards)
    assert data.points["value"].shape[0] == 2
    # Jitted as the training step runs them (op by op, the test compiled 440 small programs).
    crop = jax.jit(lambda s, r, c: resident.compact_batch(data, s, r, c, spec))
    for s, (r, c) in ((0, (32, 32)), (1, (0, 64)), (0, (64, 0))):
        batch = crop(jnp.array([s]), jnp.array([r]), jnp.array([c]))
        got = np.asarray(batch["fb_value"][0])[np.asarray(batch["fb_kind"][0]) != pts.NO_POINT]
        host = pts.ScenePoints.load(os.path.join(shards, os.path.basename(scenes[s])[:-3] + ".altimetry.npz"))
        want = pts.patch_points(host, r, c, 32, 512)
        np.testing.assert_array_equal(np.sort(got), np.sort(want["fb_value"][want["fb_kind"] != pts.NO_POINT]))
    out = jax.jit(lambda key: resident.draw_batch(data, key, 0, spec=spec, batch_size=2,
                                                  points=pts.PointOptions(0.5, 0.0)))(jax.random.key(1))
    assert out["inputs"].shape == (2, 32, 32, 3) and out["fb_index"].shape == (2, 512, 8)


def test_point_context_box_sums_match_scipy_and_carry_track_values():
    from scipy import ndimage

    from seaice_jax.models.point_context import box_sum, window_means

    a = np.random.default_rng(2).uniform(size=(2, 13, 17)).astype(np.float32)
    for s in (1, 3, 8):
        want = np.stack([ndimage.uniform_filter(x.astype(np.float64), 2 * s + 1, mode="constant") for x in a])
        np.testing.assert_allclose(np.asarray(box_sum(jnp.asarray(a), s)), want * (2 * s + 1) ** 2, rtol=1e-5,
                                   atol=1e-5)
    values, mask = np.zeros((1, 9, 9), np.float32), np.zeros((1, 9, 9), np.float32)
    values[0, 4], mask[0, 4] = 0.3, 1.0  # a track along row 4 with freeboard 0.3
    out = np.asarray(window_means(jnp.asarray(values), jnp.asarray(mask), (2,)))
    assert out.shape == (1, 9, 9, 2)
    np.testing.assert_allclose(out[0, 2:7, :, 0], 0.3, rtol=1e-6)  # within 2 rows of the track: its value
    np.testing.assert_allclose(out[0, [0, 1, 7, 8], :, 0], 0.0)  # farther: none
    np.testing.assert_allclose(out[0, 4, 2:7, 1], 1.0)  # a track across the window: confidence 1


def test_without_tracks_the_model_is_its_sar_only_self_and_tracks_correct_it():
    """The U-Net never sees the point channels; the track correction is exactly 0 with no point, and with
    points the freeboard moves (once the correction's last layer is not zero)."""
    from flax import nnx

    from seaice_jax.config import base_config
    from seaice_jax.models import build_model

    c = base_config()
    c.model.filters = (4, 8)
    c.model.point_context_px = (2, 4)
    model = build_model(c.model, 4, nnx.Rngs(0), freeboard_kinds=("laser",), uncertainty=True,
                        point_pairs=(("laser", 2, 3),))
    model.eval()
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 4)).astype(np.float32)
    x[..., 2:] = 0.0
    base = model(jnp.asarray(x))
    with_noise = x.copy()
    with_noise[..., 2] = 5.0  # values without a mask: not points
    np.testing.assert_array_equal(np.asarray(model(jnp.asarray(with_noise))["freeboard"]),
                                  np.asarray(base["freeboard"]))
    last = model.point_corrections["laser"].second.kernel
    last[...] = jnp.ones_like(last[...])
    track = x.copy()
    track[0, 8, :, 2], track[0, 8, :, 3] = 0.5, 1.0
    moved = model(jnp.asarray(track))
    assert not np.allclose(np.asarray(moved["freeboard"]), np.asarray(base["freeboard"]))
    np.testing.assert_array_equal(np.asarray(moved["ice"]), np.asarray(base["ice"]))  # the U-Net saw no track
