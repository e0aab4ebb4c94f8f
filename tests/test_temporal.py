"""Issue 13: a scene's map refined with the neighbouring acquisitions warped onto it (seaice_jax.drift.temporal,
launch/refine_maps.py). Predictions are written by hand (truth + independent noise per acquisition), so
no model is trained here."""

import glob
import json
import os

import numpy as np
import pytest

from seaice_jax.data.scene import open_scene
from seaice_jax.drift import temporal as tm
from seaice_jax.evaluation import load_prediction
from seaice_jax.inference.binarize import binary_maps
from seaice_jax.inference.products import write_prediction
from seaice_jax.synthetic import drift as known
from seaice_jax.synthetic import sequence as seq

SIZE = (256, 256)
DRIFT = known.KnownDrift(translation_m_per_day=(2500.0, -3000.0), rotation_deg_per_day=1.0,
                                divergence_per_day=0.01, shear_per_day=0.02, lead_opening_m_per_day=200.0,
                                lead_angle_deg=40.0, lead_offset_px=20.0, pixel_spacing_m=80.0)
NOISE = 1.2  # logit noise std; the truth logit is +-1.5


def _fake_predictions(scene_paths, pred_dir, seed):
    """<scene>_pred.nc with logit = +-1.5 (truth) + independent Gaussian noise: what fusion can average out."""
    rng = np.random.default_rng(seed)
    os.makedirs(pred_dir, exist_ok=True)
    for path in scene_paths:
        scene = open_scene(path, channels=("nersc_sar_primary",))
        logit = np.where(scene.ice_truth == 1, 1.5, -1.5) + NOISE * rng.standard_normal(scene.shape)
        pred = {"ice_logit": logit.astype(np.float32)}
        write_prediction(os.path.join(pred_dir, scene.name + "_pred.nc"), scene, pred, binary_maps(scene, pred),
                         step=7)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal")
    data, pred = str(root / "D"), str(root / "P")
    paths = seq.write_sequence(data, 3, "rtt", "winter", SIZE, 11, drift=DRIFT)
    _fake_predictions(paths, pred, seed=3)
    return data, pred, paths


def test_agreement_hand_case():
    ref = np.array([[1, 1, 0, 0]], bool)
    other = np.array([[1, 0, 0, 1]], bool)
    shared = np.ones((1, 4), bool)
    a = tm.Agreement()
    a.add(ref, other, shared, shared)
    s = a.scores()
    # observed 2/4; chance: both ice fractions 1/2 -> 1/2; kappa 0; water: both at col 2, either at 1..3
    assert s["pixel_agreement"] == pytest.approx(0.5) and s["kappa"] == pytest.approx(0.0)
    assert s["lead_iou"] == pytest.approx(1 / 3) and s["ice_fraction_difference"] == pytest.approx(0.0)
    a.add(ref, ref, shared, shared)  # pooled by counts: 6 of 8 agree
    assert a.scores()["pixel_agreement"] == pytest.approx(0.75) and a.scores()["pixels"] == 8
    b = tm.Agreement()
    b.add(ref, other, np.array([[True, True, False, False]]), shared)  # only the shared pixels count
    assert b.scores()["pixel_agreement"] == pytest.approx(0.5) and b.scores()["pixels"] == 2
    assert b.scores()["ice_fraction_difference"] == pytest.approx(-0.5)


def test_fusion_hand_case(series):
    _, pred, paths = series
    target = tm.load_acquisition(paths[1], pred)
    h, w = target.scene.shape
    covered = np.zeros((h, w), bool)
    covered[:, : w // 2] = True
    nb = tm.Warped(logit=np.where(covered, 4.0, 0.0).astype(np.float32), binary=covered.copy(), covered=covered,
                   truth=None)
    weight = tm.neighbour_weight(1.0, 2.0)
    assert weight == pytest.approx(np.exp(-0.5))
    fused = tm.fuse(target, [nb], [weight], "mean_logit")
    expect = np.where(covered, (target.logit + weight * 4.0) / (1 + weight), target.logit)
    np.testing.assert_allclose(fused.logit, expect, rtol=1e-6)
    assert set(np.unique(fused.count[target.valid])) <= {1, 2}
    assert (fused.count[covered & target.valid] == 2).all()
    np.testing.assert_array_equal(fused.agreement[covered & target.valid], target.binary[covered & target.valid])
    assert np.isnan(fused.agreement[~covered]).all()
    # the concentration-preserving map still holds each chart region's concentration
    ids, conc = target.scene.region_ids, target.scene.region_conc
    for r in np.unique(ids[ids >= 0]):
        inside = (ids == r) & target.valid
        assert abs(fused.binary[inside].sum() - conc[r] * inside.sum()) <= 1
    # vote: one neighbour of weight < 1 never outvotes the target; two of weight 1 against it do
    vote = tm.fuse(target, [nb], [weight], "vote")
    np.testing.assert_array_equal(vote.binary, target.binary & target.valid)
    two = tm.fuse(target, [nb, nb], [1.0, 1.0], "vote")
    np.testing.assert_array_equal(two.binary[covered & target.valid], True)
    np.testing.assert_array_equal(two.binary[~covered & target.valid], target.binary[~covered & target.valid])


def test_true_warp_aligns_the_truths(series):
    data, pred, paths = series
    sequence = seq.read_sequence(data)
    target, nb = tm.load_acquisition(paths[1], pred), tm.load_acquisition(paths[0], pred)
    kappa = {}
    for mode in ("none", "true"):
        wp = tm.warp_onto(target, nb, mode, true_flow=seq.true_flow(sequence))
        assert wp.covered.mean() > 0.5
        a = tm.Agreement()
        a.add(target.scene.ice_truth, wp.truth, wp.covered & (target.scene.ice_truth != 255), wp.covered)
        kappa[mode] = a.scores()["kappa"]
    assert kappa["true"] > 0.85  # only the lead that opened in a day differs
    assert kappa["none"] < 0.4  # without the drift the same pixel is other ice


def test_refine_cli_end_to_end(series, tmp_path, capsys):
    from launch import evaluate as evaluate_cli
    from launch import refine_maps

    data, pred, paths = series
    out, js = str(tmp_path / "R"), str(tmp_path / "R.json")
    truth_drift = sorted(glob.glob(os.path.join(data, seq.TRUTH_DIR, "*_drift_truth.nc")))
    # the truth files' vectors as "estimated" drift: the moving code of real drift files, with known vectors
    rc = refine_maps.main(["--pred", pred, "--scenes", data, "--out", out, "--json", js, "--drift", *truth_drift,
                           "--drift-method", "truth", "--fusion", "mean_logit", "--png"])
    assert rc == 0, capsys.readouterr().err
    with open(js) as f:
        doc = json.load(f)
    assert os.path.exists(js[:-5] + ".md")
    assert set(doc["agreement"]) == {"none", "estimated", "true"}
    agree, truth_agree = doc["agreement"], doc["truth_agreement"]
    assert agree["estimated"]["kappa"] > agree["none"]["kappa"] + 0.1
    assert agree["estimated"]["kappa"] == pytest.approx(agree["true"]["kappa"], abs=0.01)
    # the truths: a day's drift without compensation lands on other ice; with it only opened leads differ
    assert truth_agree["estimated"]["pixel_agreement"] > 0.98 > truth_agree["none"]["pixel_agreement"] + 0.03
    truth = doc["truth"]
    # independent errors average out: the fused map has clearly fewer wrong pixels (~19 % fewer here)
    assert 1 - truth["mean_logit"]["pixel_accuracy"] < 0.9 * (1 - truth["single"]["pixel_accuracy"])
    assert set(truth) == {"single", *tm.FUSIONS}
    assert doc["gain"]["pixel_accuracy"] == pytest.approx(
        truth["mean_logit"]["pixel_accuracy"] - truth["single"]["pixel_accuracy"], abs=1e-5)
    middle = doc["scenes"][os.path.basename(paths[1])[:-3]]
    assert len(middle["neighbours"]) == 2 and all(n["weight"] > 0 for n in middle["neighbours"].values())
    # refined files are prediction files: launch/evaluate.py scores them to the same accuracy
    for p in paths:
        scene = open_scene(p, channels=("nersc_sar_primary",))
        got = load_prediction(os.path.join(out, scene.name + "_pred.nc"), scene.shape, scene.name)
        assert np.isfinite(got.ice_logit).all()
        assert os.path.getsize(os.path.join(out, scene.name + "_temporal.png")) > 10_000
    ev = str(tmp_path / "ev.json")
    assert evaluate_cli.main(["--pred", out, "--scenes", data, "--json", ev]) == 0
    with open(ev) as f:
        pooled = json.load(f)["pooled"]["methods"]["conc"]
    assert pooled["pixel_accuracy"] == pytest.approx(truth["mean_logit"]["pixel_accuracy"], abs=1e-6)


def test_refine_refusals(series, tmp_path, capsys):
    from launch import refine_maps

    data, pred, paths = series
    before = sorted(os.listdir(pred))
    rc = refine_maps.main(["--pred", pred, "--scenes", data, "--out", pred, "--json", str(tmp_path / "j.json"),
                           "--warp", "true"])
    err = capsys.readouterr().err
    assert rc != 0 and "--pred folder" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(pred)) == before
    rc = refine_maps.main(["--pred", pred, "--scenes", data, "--out", str(tmp_path / "R"),
                           "--json", str(tmp_path / "j.json")])
    assert rc != 0 and "--drift" in capsys.readouterr().err
    lonely = str(tmp_path / "P1")
    os.makedirs(lonely)
    os.link(os.path.join(pred, os.path.basename(paths[0])[:-3] + "_pred.nc"),
            os.path.join(lonely, os.path.basename(paths[0])[:-3] + "_pred.nc"))
    rc = refine_maps.main(["--pred", lonely, "--scenes", *paths, "--out", str(tmp_path / "R2"),
                           "--json", str(tmp_path / "j2.json"), "--warp", "true"])
    err = capsys.readouterr().err
    assert rc != 0 and os.path.basename(paths[1])[:-3] + "_pred.nc" in err and "not found" in err
    assert not os.path.exists(str(tmp_path / "j2.json"))
