"""Inference as a user meets it: bad scenes skipped, one-line failures that write nothing, one flag
spelling, the test split with --submission and evaluate, the downsampled model, blend and land mask."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from seaice_jax import evaluation, inference
from seaice_jax.data.channels import CHART_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNELS = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v")
NUM_CLASSES = {"SIC": 11, "SOD": 6, "FLOE": 7}


def _launcher(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_launcher", os.path.join(ROOT, "launch", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _tree(folder) -> list[str]:
    """Every path under `folder` (files and folders), relative, sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + files]
    return sorted(out)


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """Two RTT test-split scenes: `_prep.nc` without charts, each with its `_prep_reference.nc`."""
    from seaice_jax import synthetic

    root = tmp_path_factory.mktemp("test_split")
    paths = synthetic.write_synthetic_scenes(str(root), 2, "rtt", "winter", (64, 80), 11, split="test")
    assert all(os.path.exists(p.replace("_prep.nc", "_prep_reference.nc")) for p in paths)
    return str(root), paths


def _one_line(err: str, *parts: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------------------------
# infer.py: a bad scene is named and skipped, the exit code says so at the end


def test_infer_skips_a_bad_scene_names_it_and_exits_1(trained_workdir, test_split, tmp_path, capsys):
    _, paths = test_split
    corrupt = tmp_path / "20190101T000000_cis_prep.nc"
    corrupt.write_bytes(b"not a netcdf file")
    out = tmp_path / "out"
    rc = _launcher("infer")(["--workdir", trained_workdir, "--scenes", str(corrupt), paths[0], "--out", str(out),
                             "--submission", str(tmp_path / "upload" / "upload.nc"), "--batch_size", "4"])
    captured = capsys.readouterr()
    assert rc == 1
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == 2 and progress[0].startswith("[1/2] " + corrupt.name + ": skipped")
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: infer: 1 of 2 scene(s) failed (no submission written)")
    assert corrupt.name in errors[0]
    name = os.path.basename(paths[0])[: -len(".nc")]
    assert captured.out.split() == [str(out / f"{name}_pred.nc")]  # the good scene's file, printed
    assert _tree(out) == [f"{name}_pred.nc"]  # no temporary file
    assert not (tmp_path / "upload").exists()  # no submission, no folder made for it


# ----------------------------------------------------------------------------------------------
# Test split: infer --submission and evaluate on `_prep.nc` + `_prep_reference.nc`


def test_test_split_submission_layout_and_evaluation(trained_workdir, test_split, tmp_path):
    import netCDF4

    folder, paths = test_split
    out = tmp_path / "pred"
    written = inference.predict_files(trained_workdir, [folder], str(out), submission=str(out / "upload.nc"))
    assert written[-1] == str(out / "upload.nc") and len(written) == 3
    names = [os.path.basename(p)[: -len(".nc")] for p in paths]
    with netCDF4.Dataset(out / "upload.nc") as sub:
        expected = {f"{n[:19]}_{c}" for n in names for c in CHART_NAMES}
        assert set(sub.variables) == expected
        for name in names:
            with xr.open_dataset(out / f"{name}_pred.nc") as ds:
                shape = ds["ice_logit"].shape
                assert ds.attrs["conc_target_source"] == "chart"  # the reference's charts were paired
            for chart in CHART_NAMES:
                var = sub.variables[f"{name[:19]}_{chart}"]
                assert var.dimensions == (f"{name[:19]}_{chart}_dim0", f"{name[:19]}_{chart}_dim1")
                assert var.dtype == np.uint8 and var.shape == shape
                assert var.filters()["zlib"] and var.filters()["complevel"] == 1
                values = np.asarray(var[:])
                assert values.max() < NUM_CLASSES[chart]  # a class at every pixel, land included
    results = evaluation.evaluate_predictions(str(out), paths)
    assert set(results["scenes"]) == set(names)
    assert results["pooled"]["challenge"]["combined"] is not None


# ----------------------------------------------------------------------------------------------
# evaluate.py and explain.py: one line, exit 1, nothing written


def test_evaluate_rejects_a_prediction_of_another_scene(trained_workdir, test_split, tmp_path, capsys):
    _, paths = test_split
    out = tmp_path / "pred"
    inference.predict_files(trained_workdir, paths[:1], str(out))
    names = [os.path.basename(p)[: -len(".nc")] for p in paths]
    # The first scene's prediction under the second's name (the grids are the same size).
    shutil.copy(out / f"{names[0]}_pred.nc", out / f"{names[1]}_pred.nc")
    before = _tree(tmp_path)
    rc = _launcher("evaluate")(["--pred", str(out), "--scenes", paths[1], "--json", str(tmp_path / "r.json"),
                                "--min_region_pixels", "10"])
    _one_line(capsys.readouterr().err, f"{names[1]}_pred.nc: prediction of scene {names[0]}, not of {names[1]}")
    assert rc == 1 and _tree(tmp_path) == before
    # A file without the attribute (older files) is not checked.
    with xr.open_dataset(out / f"{names[0]}_pred.nc", mask_and_scale=False) as ds:
        old = ds.load()
    del old.attrs["scene_name"]
    old.to_netcdf(out / f"{names[1]}_pred.nc")
    pred = evaluation.load_prediction(str(out / f"{names[1]}_pred.nc"), old["ice_logit"].shape, names[1])
    assert pred.ice_binary_als.dtype == np.uint8 and set(pred.charts) == set(CHART_NAMES)


def test_evaluate_json_under_a_file_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    main = _launcher("evaluate")
    for target, message in ((blocker / "sub" / "r.json", "is a file, not a folder"),
                            (tmp_path, "is a folder, not a file")):
        before = _tree(tmp_path)
        rc = main(["--pred", str(tmp_path), "--scenes", str(tmp_path / "none.nc"), "--json", str(target),
                   "--min-region-pixels", "5"])
        _one_line(capsys.readouterr().err, "evaluate: --json", message)
        assert rc == 1 and _tree(tmp_path) == before and blocker.read_text() == "x"


def test_outputs_in_an_unwritable_folder_fail_in_one_line(tmp_path, capsys, monkeypatch):
    from seaice_jax import output_paths

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Root may write anywhere, so the folder is made unwritable for the check itself.
    monkeypatch.setattr(output_paths.os, "access",
                        lambda p, mode: False if os.path.abspath(p) == str(locked) else real_access(p, mode))
    rc = _launcher("evaluate")(["--pred", str(tmp_path), "--scenes", str(tmp_path / "x.nc"),
                                "--json", str(locked / "new" / "r.json")])
    _one_line(capsys.readouterr().err, "evaluate: --json", f"folder {locked} is not writable")
    assert rc == 1 and not os.listdir(locked)
    rc = _launcher("infer")(["--workdir", str(tmp_path), "--scenes", str(tmp_path), "--out", str(tmp_path / "o"),
                             "--submission", str(locked / "u.nc")])
    _one_line(capsys.readouterr().err, "infer: --submission", "is not writable")
    assert rc == 1 and not os.listdir(locked) and not (tmp_path / "o").exists()
    with pytest.raises(output_paths.OutputError, match="--out .*cam.png: folder .* is not writable"):
        output_paths.check_output_file(str(locked / "cam.png"), "--out")  # what explain.py checks first


def test_explain_out_under_a_file_is_one_line_and_writes_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    before = _tree(tmp_path)
    # --max-size (hyphen) is accepted; the output check runs before the model is loaded.
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch", "explain.py"), "--workdir", str(tmp_path / "w"),
         "--scene", str(tmp_path / "s.nc"), "--layer", "bridge", "--max-size", "64", "--out",
         str(blocker / "cam.png")], capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT))
    _one_line(run.stderr, "explain: --out", "is a file, not a folder")
    assert run.returncode == 1 and _tree(tmp_path) == before


def test_infer_out_under_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    before = _tree(tmp_path)
    rc = _launcher("infer")(["--workdir", str(tmp_path), "--scenes", str(tmp_path), "--out", str(blocker / "o"),
                             "--batch-size", "2"])
    _one_line(capsys.readouterr().err, "infer: --out", "is a file, not a folder")
    assert rc == 1 and _tree(tmp_path) == before


# ----------------------------------------------------------------------------------------------
# A model trained on downsampled patches predicts on the scene downsampled the same way


@pytest.fixture(scope="module")
def downsampled_workdir(trained_workdir, tmp_path_factory):
    """The shared tiny model with config.data.downsample = 2 (the weights do not depend on it)."""
    work = tmp_path_factory.mktemp("ds2") / "work"
    shutil.copytree(trained_workdir, work)
    config = json.loads((work / "config.json").read_text())
    config["data"]["downsample"] = 2
    (work / "config.json").write_text(json.dumps(config))
    return str(work)


def test_downsampled_model_predicts_on_the_downsampled_scene_and_maps_back(downsampled_workdir, test_split,
                                                                             tmp_path):
    from seaice_jax.data.scene import open_scene
    from seaice_jax.data.shards import downsample_scene
    from seaice_jax.trained_model import restore_for_inference

    _, paths = test_split
    written = inference.predict_files(downsampled_workdir, paths[:1], str(tmp_path))
    scene = open_scene(paths[0], channels=CHANNELS)
    config, fns, params, batch_stats, _ = restore_for_inference(downsampled_workdir)
    small = downsample_scene(scene, 2)
    expected = inference.predict_scene(fns, params, batch_stats, small.stack(CHANNELS), tile=32, stride=16,
                                       margin=inference.default_margin(32, 16, 4), align=4)
    with xr.open_dataset(written[0], mask_and_scale=False) as ds:
        assert ds["ice_logit"].shape == scene.shape and ds.attrs["downsample"] == 2
        logit = ds["ice_logit"].values
        np.testing.assert_allclose(logit[::2, ::2], expected["ice_logit"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(logit[1::2, 1::2], logit[::2, ::2])  # block replication
        sod = ds["SOD"].values
        np.testing.assert_array_equal(sod[::2, ::2][small.valid & scene.valid[::2, ::2]],
                                      expected["SOD"][small.valid & scene.valid[::2, ::2]])
        conc = ds["ice_binary_conc"].values
        # Binarized at full resolution: every chart region holds exactly its ice count.
        counts = inference.region_ice_counts(logit, scene.region_ids, scene.region_conc)
        inside = scene.region_ids >= 0
        got = np.bincount(scene.region_ids[inside], weights=(conc[inside] == 1), minlength=len(counts))
        np.testing.assert_array_equal(got, counts)
        np.testing.assert_array_equal(conc == 255, ~scene.valid)


def test_upsample_blocks_repeats_blocks_and_the_last_one_past_the_edge():
    from seaice_jax.inference.run import upsample_blocks

    small = np.array([[1, 2], [3, 4]], np.uint8)
    np.testing.assert_array_equal(upsample_blocks(small, 2, (5, 4)),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4], [3, 3, 4, 4]])


# ----------------------------------------------------------------------------------------------
# Blend and land mask (configs/als_paper.py: average of whole tiles, land = SAR no data)


def test_average_blend_is_the_plain_mean_of_whole_tiles():
    import jax.numpy as jnp

    from seaice_jax.trained_model import create_model
    from tests.conftest import trained_config

    fns, params, batch_stats = create_model(trained_config())
    x = np.random.default_rng(0).normal(size=(64, 64, 3)).astype(np.float32)
    got = inference.predict_scene(fns, params, batch_stats, x, tile=32, stride=16, margin=0, align=4,
                                  blend="average", batch_size=4)
    total, count = np.zeros((64, 64)), np.zeros((64, 64))
    for r in (0, 16, 32):
        for c in (0, 16, 32):
            out = fns.apply_eval(params, batch_stats, jnp.asarray(x[None, r : r + 32, c : c + 32]))
            total[r : r + 32, c : c + 32] += np.asarray(out["ice"][0])
            count[r : r + 32, c : c + 32] += 1
    np.testing.assert_allclose(got["ice_logit"], total / count, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="blend must be one of core, average"):
        inference.predict_scene(fns, params, batch_stats, x, tile=32, stride=16, margin=0, align=4, blend="x")


def test_als_paper_config_averages_whole_tiles_and_masks_sar_no_data():
    import dataclasses

    from configs.als_paper import get_config
    from seaice_jax.data.scene_types import Scene
    from seaice_jax.inference.run import apply_land_mask, inference_options

    options = inference_options(get_config())
    assert options.tiling["blend"] == "average" and options.tiling["margin"] == 0
    assert (options.tiling["tile"], options.tiling["stride"]) == (256, 64)
    assert options.land_mask == "sar_no_data" and options.needs == ("nersc_sar_primary",)
    hh = np.array([[0.0, 1.0], [-0.5, 0.0]], np.float32)
    charts = np.zeros((2, 2), np.uint8)
    scene = Scene("s", "s.nc", "rtt", {"nersc_sar_primary": hh}, charts, charts, charts,
                  np.full((2, 2), -1, np.int32), np.zeros(0, np.float32), np.array([[False, False], [True, True]]))
    np.testing.assert_array_equal(apply_land_mask(scene, "sar_no_data").valid, hh != 0)
    assert apply_land_mask(scene, "distance_map") is scene
    bad = get_config()
    bad.eval.land_mask = "coast"
    with pytest.raises(ValueError, match="land_mask must be one of distance_map, sar_no_data"):
        inference_options(bad)
    assert options.tiling["tta"] == "none"
    bad = get_config()
    bad.eval.tta = "rot"
    with pytest.raises(ValueError, match="tta must be one of none, flips, d4"):
        inference_options(bad)
    del dataclasses
