"""evaluate_predictions on two hand-built scenes, and the launch/evaluate.py command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from seaice_jax import evaluation
from seaice_jax.data.channels import SAR_DIMS
from seaice_jax.data.scene_types import Scene

REPO = Path(__file__).resolve().parents[1]
FILL = 255


def _write_prediction(path: Path, logit, als, conc, charts=None) -> None:
    data = {
        "ice_logit": (SAR_DIMS, logit.astype(np.float32)),
        "ice_probability": (SAR_DIMS, (1 / (1 + np.exp(-logit))).astype(np.float32)),
        "ice_binary_als": (SAR_DIMS, als.astype(np.uint8)),
        "ice_binary_conc": (SAR_DIMS, conc.astype(np.uint8)),
    }
    for name, arr in (charts or {}).items():
        data[name] = (SAR_DIMS, arr.astype(np.uint8))
    ds = xr.Dataset(data)
    # A _FillValue on the uint8 maps is what a writer may well set; the reader must keep them uint8.
    enc = {k: {"_FillValue": np.uint8(FILL)} for k in data if k not in ("ice_logit", "ice_probability")}
    ds.to_netcdf(path, encoding=enc)


def _scene_a() -> tuple[Scene, dict]:
    """10 x 20: region 0 = cols 0..9 (conc 0.5), region 1 = cols 10..19 (conc 1.0); row 0 invalid.
    Truth: region 0 ice in cols 0..4, region 1 all ice."""
    h, w = 10, 20
    cols = np.broadcast_to(np.arange(w), (h, w))
    region_ids = np.where(cols < 10, 0, 1).astype(np.int32)
    valid = np.ones((h, w), bool)
    valid[0] = False
    truth = np.where((cols < 5) | (cols >= 10), 1, 0).astype(np.uint8)
    truth[0] = FILL
    hh = np.where(truth == 1, 1.0, -1.0).astype(np.float32)
    hh[0] = 50.0  # invalid outlier: must not move the Otsu threshold
    sic = np.where(cols < 10, 5, 10).astype(np.uint8)
    sod = np.where(cols < 10, 3, 4).astype(np.uint8)
    floe = np.where(cols < 10, 2, FILL).astype(np.uint8)
    for chart in (sic, sod, floe):
        chart[0] = FILL
    scene = Scene(
        name="sceneA_prep", path="sceneA_prep.nc", product="rtt",
        channels={"nersc_sar_primary": hh}, sic=sic, sod=sod, floe=floe,
        region_ids=region_ids, region_conc=np.array([0.5, 1.0], np.float32), valid=valid, ice_truth=truth,
    )
    # sigmoid misses ice in cols 3, 4; ALS is exact; conc says ice everywhere.
    logit = np.where(truth == 1, 2.0, -2.0).astype(np.float32)
    logit[:, 3:5] = -2.0
    als = truth.copy()
    conc = np.where(valid, 1, FILL).astype(np.uint8)
    pred_charts = {
        "SIC": np.where(cols < 10, 5, 9).astype(np.uint8),  # region 1 off by one class
        "SOD": sod.copy(),
        "FLOE": np.full((h, w), 2, np.uint8),
    }
    return scene, dict(logit=logit, als=als, conc=conc, charts=pred_charts)


def _scene_b() -> tuple[Scene, dict]:
    """8 x 8, one region with conc 0.25, no pixel truth, prediction without chart heads."""
    h, w = 8, 8
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    hh = np.where(rows < 2, 1.0, -1.0).astype(np.float32)
    full = lambda v: np.full((h, w), v, np.uint8)  # noqa: E731
    scene = Scene(
        name="sceneB_prep", path="sceneB_prep.nc", product="rtt",
        channels={"nersc_sar_primary": hh}, sic=full(2), sod=full(1), floe=full(1),
        region_ids=np.zeros((h, w), np.int32), region_conc=np.array([0.25], np.float32),
        valid=np.ones((h, w), bool), ice_truth=None,
    )
    ice = (rows < 2).astype(np.uint8)  # 16 / 64 = 0.25 ice
    return scene, dict(logit=np.where(rows < 2, 3.0, -3.0), als=ice, conc=np.zeros((h, w), np.uint8), charts=None)


@pytest.fixture
def two_scenes(tmp_path):
    scenes = {}
    for scene, pred in (_scene_a(), _scene_b()):
        _write_prediction(tmp_path / f"{scene.name}_pred.nc", **pred)
        scenes[scene.path] = scene
    return tmp_path, scenes


def test_results_shape_and_hand_values(two_scenes):
    pred_dir, scenes = two_scenes
    res = evaluation.evaluate_predictions(str(pred_dir), list(scenes), min_region_pixels=50, scene_loader=scenes.get)

    assert set(res) == {"pooled", "scenes"}
    assert set(res["scenes"]) == {"sceneA_prep", "sceneB_prep"}
    for block in [res["pooled"], *res["scenes"].values()]:
        assert set(block) == {"challenge", "methods"}
        assert tuple(block["challenge"]) == evaluation.CHALLENGE_KEYS
        assert tuple(block["methods"]) == evaluation.METHODS
        for row in block["methods"].values():
            assert tuple(row) == evaluation.METHOD_KEYS

    a = res["scenes"]["sceneA_prep"]
    # Challenge on scene A (180 valid px): SIC t in {5 x90, 10 x90}, pred 9 on the 10s:
    # SS_tot = 180 * 2.5^2 = 1125, SS_res = 90 -> R2 = 0.92. SOD exact; FLOE exact where not masked.
    assert a["challenge"]["sic_r2"] == pytest.approx(92.0)
    assert a["challenge"]["sod_f1"] == pytest.approx(100.0)
    assert a["challenge"]["floe_f1"] == pytest.approx(100.0)
    assert a["challenge"]["combined"] == pytest.approx((2 * 92 + 2 * 100 + 100) / 5)
    # Polygon errors (90 valid px per region): sigmoid region 0 ice fraction 0.3 vs 0.5, region 1 exact.
    assert a["methods"]["sigmoid"]["polygon_mae"] == pytest.approx(0.1, abs=1e-6)
    assert a["methods"]["sigmoid"]["polygon_acc10"] == pytest.approx(0.5)
    assert a["methods"]["als"]["polygon_mae"] == pytest.approx(0.0, abs=1e-6)
    assert a["methods"]["conc"]["polygon_mae"] == pytest.approx(0.25, abs=1e-6)
    # Topology of sigmoid: truth ice 135, water 45; predicted water adds 18 px of truth ice.
    sig = a["methods"]["sigmoid"]
    assert sig["pixel_accuracy"] == pytest.approx(162 / 180)
    assert sig["ice_iou"] == pytest.approx(117 / 135)
    assert sig["lead_iou"] == pytest.approx(45 / 63)
    assert sig["lead_f1"] == pytest.approx(90 / 108)
    # Otsu on HH (+1 ice / -1 water, outlier row invalid) reproduces the truth.
    assert a["methods"]["otsu"]["pixel_accuracy"] == pytest.approx(1.0)
    assert a["methods"]["als"]["pixel_accuracy"] == pytest.approx(1.0)

    b = res["scenes"]["sceneB_prep"]
    assert b["challenge"] == {k: None for k in evaluation.CHALLENGE_KEYS}  # no chart heads
    for row in b["methods"].values():
        assert row["pixel_accuracy"] is None and row["lead_iou"] is None and row["ice_f1"] is None
    assert b["methods"]["sigmoid"]["polygon_mae"] == pytest.approx(0.0, abs=1e-6)
    assert b["methods"]["conc"]["polygon_mae"] == pytest.approx(0.25, abs=1e-6)

    pooled = res["pooled"]
    assert pooled["challenge"] == pytest.approx(a["challenge"])  # only scene A has chart heads
    # Sigmoid polygon errors pooled over 3 regions: -0.2, 0, 0.
    assert pooled["methods"]["sigmoid"]["polygon_mae"] == pytest.approx(0.2 / 3, abs=1e-6)
    assert pooled["methods"]["sigmoid"]["polygon_acc10"] == pytest.approx(2 / 3)
    assert pooled["methods"]["sigmoid"]["ice_iou"] == pytest.approx(117 / 135)  # only A has truth


def test_json_and_markdown(two_scenes, tmp_path):
    pred_dir, scenes = two_scenes
    res = evaluation.evaluate_predictions(str(pred_dir), list(scenes), min_region_pixels=50, scene_loader=scenes.get)
    out = tmp_path / "out" / "results.json"
    evaluation.write_json(res, str(out))
    loaded = json.loads(out.read_text())
    assert loaded["scenes"]["sceneB_prep"]["challenge"]["combined"] is None  # JSON null
    assert loaded["pooled"]["methods"]["als"]["polygon_mae"] == pytest.approx(
        res["pooled"]["methods"]["als"]["polygon_mae"])
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temp file left
    md = evaluation.format_markdown(res)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:5]] == list(evaluation.METHODS)
    assert "| pooled | 92.00 | 100.00 | 100.00 | 96.80 |" in md


def test_missing_and_mismatched_prediction_name_the_file(two_scenes):
    pred_dir, scenes = two_scenes
    (pred_dir / "sceneB_prep_pred.nc").unlink()
    with pytest.raises(evaluation.PredictionError, match="sceneB_prep_pred.nc: prediction file not found"):
        evaluation.evaluate_predictions(str(pred_dir), list(scenes), scene_loader=scenes.get)
    h, w = 8, 9  # scene B is 8 x 8
    z = np.zeros((h, w))
    _write_prediction(pred_dir / "sceneB_prep_pred.nc", z, z, z)
    with pytest.raises(evaluation.PredictionError, match=r"sceneB_prep_pred.nc: ice_logit has dims .* shape \(8, 9\)"):
        evaluation.evaluate_predictions(str(pred_dir), list(scenes), scene_loader=scenes.get)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch" / "evaluate.py"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )


def _scene_module_or_skip():
    try:
        from seaice_jax.data import scene as scene_module
    except ImportError as e:
        pytest.skip(f"seaice_jax.data.scene is not importable yet ({e}); the CLI end-to-end test needs open_scene")
    return scene_module


def _write_minimal_rtt_scene(path: Path, h: int = 50, w: int = 50) -> None:
    """A small ready-to-train file in the AI4Arctic layout (all 24 channels, charts, tie points)."""
    from seaice_jax.data import channels as ch

    rng = np.random.default_rng(0)
    cols = np.broadcast_to(np.arange(w), (h, w))
    data = {}
    for name in ch.SAR_GRID_CHANNELS:
        data[name] = (SAR_DIMS, rng.normal(0, 1, (h, w)).astype(np.float32))
    data["nersc_sar_primary"] = (SAR_DIMS, np.where(cols % 7 < 3, 1.0, -1.0).astype(np.float32))
    data["distance_map"] = (SAR_DIMS, np.full((h, w), 1.0, np.float32))  # scaled: far from land
    gh, gw = -(-h // 25), -(-w // 25)
    for name in ch.GRID_2KM_CHANNELS:
        data[name] = (ch.GRID_2KM_DIMS, rng.normal(0, 1, (gh, gw)).astype(np.float32))
    sic = np.where(cols < w // 2, 5, 10).astype(np.uint8)
    sod = np.where(cols < w // 2, 3, 4).astype(np.uint8)
    floe = np.where(cols < w // 2, 2, 3).astype(np.uint8)
    for name, arr in (("SIC", sic), ("SOD", sod), ("FLOE", floe)):
        data[name] = (SAR_DIMS, arr)
    lat, lon = np.meshgrid(np.linspace(70, 71, 3), np.linspace(-60, -59, 3), indexing="ij")
    data["sar_grid2d_latitude"] = (ch.TIEPOINT_DIMS, lat)
    data["sar_grid2d_longitude"] = (ch.TIEPOINT_DIMS, lon)
    ds = xr.Dataset(data, attrs={"scene_id": path.stem})
    for name in ch.CHART_NAMES:
        ds[name].attrs.update(polygon="x", chart_fill_value=255)
    ds.to_netcdf(path)


def test_cli_bad_input_exits_nonzero_with_one_line(tmp_path):
    _scene_module_or_skip()  # the launcher lists scene files with seaice_jax.data.scene
    r = _run_cli("--pred", str(tmp_path), "--scenes", str(tmp_path / "nope.nc"), "--json", str(tmp_path / "o.json"))
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "nope.nc: no such file or folder" in r.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_end_to_end(tmp_path):
    scene_module = _scene_module_or_skip()
    # Predictions next to the scene: the folder expansion must skip *_pred.nc.
    scene_dir = pred_dir = tmp_path / "scenes"
    scene_dir.mkdir()
    scene_path = scene_dir / "20190430T101830_cis_prep.nc"
    _write_minimal_rtt_scene(scene_path)
    scene = scene_module.open_scene(str(scene_path))
    hh = scene.channels["nersc_sar_primary"]
    ice = np.where(scene.valid, hh > 0, FILL).astype(np.uint8)
    _write_prediction(pred_dir / f"{scene.name}_pred.nc", np.where(hh > 0, 1.0, -1.0), ice, ice,
                      charts={"SIC": scene.sic, "SOD": scene.sod, "FLOE": scene.floe})
    out = tmp_path / "results.json"

    r = _run_cli("--pred", str(pred_dir), "--scenes", str(scene_dir), "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "| otsu |" in r.stdout
    results = json.loads(out.read_text())
    assert set(results["scenes"]) == {scene.name}
    expected = evaluation.evaluate_predictions(str(pred_dir), [str(scene_path)])
    assert results == json.loads(json.dumps(expected))  # the CLI writes what the library computes
    # Chart heads equal the reference: perfect challenge scores.
    assert results["pooled"]["challenge"]["combined"] == pytest.approx(100.0)

    os.remove(pred_dir / f"{scene.name}_pred.nc")
    r = _run_cli("--pred", str(pred_dir), "--scenes", str(scene_path), "--json", str(out))
    assert r.returncode != 0 and f"{scene.name}_pred.nc: prediction file not found" in r.stderr
