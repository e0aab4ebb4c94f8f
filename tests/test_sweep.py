"""Sweeps: a two-point grid end to end, a rerun that skips finished points, a failing point, the grid."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A sweep config file: tiny model, two 64 px training scenes, one held-out scene, four steps; three
# points, the middle one invalid (an atrous rate of 0 fails when its model is built).
TINY_SWEEP = '''
import ml_collections
from seaice_jax.config import base_config


def get_config(arg=None):
    b = base_config()
    b.data.channels = ["nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v"]
    b.data.patch_size = 32
    b.data.stride = 32
    b.data.max_regions = 16
    b.data.synthetic.train_scenes = 2
    b.data.synthetic.size = (64, 64)
    b.model.filters = [4, 8]
    b.train.batch_size = 4
    b.train.num_steps = 4
    b.train.log_every = 2
    b.train.checkpoint_every = 4
    b.optim.warmup_steps = 1
    b.eval.tile = 32
    b.eval.stride = 16
    b.eval.min_region_pixels = 16
    c = ml_collections.ConfigDict()
    c.base = b
    c.grid = {"model": {"aspp_rates": [[], [0], [1, 2]]}}
    c.short_names = {"model": {"aspp_rates": "aspp"}}
    c.eval = ml_collections.ConfigDict()
    c.eval.scenes = []
    c.eval.num_scenes = 1
    c.eval.size = (64, 80)
    c.eval.seed = 20_000
    c.eval.table_metrics = ["methods.als.pixel_accuracy", "methods.als.polygon_mae"]
    c.eval.plot_metrics = ["methods.als.pixel_accuracy"]
    return c
'''
NAMES = ["aspp=none", "aspp=0", "aspp=1-2"]
# Children would inherit conftest's four simulated CPU devices; one is faster and enough here (the
# rest of conftest's XLA flags, its optimisation level, stays).
CHILD_ENV = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=4", ""),
             "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny_sweep.py"
    path.write_text(TINY_SWEEP)
    return str(path)


@pytest.fixture(scope="module")
def first_sweep(config_file, tmp_path_factory):
    """The sweep through its launcher: (workdir, finished process)."""
    workdir = str(tmp_path_factory.mktemp("sweep"))
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch", "sweep.py"), f"--config={config_file}", f"--workdir={workdir}"],
        capture_output=True, text=True, env=dict(os.environ, **CHILD_ENV))
    return workdir, run


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_sweep_trains_evaluates_and_tabulates_every_point(first_sweep):
    workdir, run = first_sweep
    table = read_csv(os.path.join(workdir, "results.csv"))
    assert [t["name"] for t in table] == NAMES
    assert [t["status"] for t in table] == ["ok", "failed", "ok"], run.stdout[-3000:] + run.stderr[-3000:]
    assert [t["model.aspp_rates"] for t in table] == ["none", "0", "1-2"]
    for t in (table[0], table[2]):
        name = t["name"]
        with open(os.path.join(workdir, "points", name, "eval.json")) as f:
            pooled = json.load(f)["pooled"]
        for method in ("als", "sigmoid", "otsu"):
            value = float(t[f"methods.{method}.pixel_accuracy"])
            assert 0.0 <= value <= 1.0
            assert value == pytest.approx(pooled["methods"][method]["pixel_accuracy"])
        assert 0.0 <= float(t["methods.als.polygon_mae"]) <= 1.0
        assert float(t["seconds"]) > 0
        # Each point's config carries its override and the one shared shard folder.
        with open(os.path.join(workdir, "points", name, "config.json")) as f:
            config = json.load(f)
        assert config["model"]["aspp_rates"] == ([] if name == "aspp=none" else [1, 2])
        assert config["data"]["shards"] == os.path.join(workdir, "data", "shards")
        assert not os.path.exists(os.path.join(workdir, "points", name, "data"))  # no per-point data
    # The two models differ (ASPP adds parameters), so their logits on the held-out scene differ.
    import xarray as xr

    logits = []
    for name in ("aspp=none", "aspp=1-2"):
        pred_dir = os.path.join(workdir, "points", name, "predictions")
        (pred,) = [f for f in os.listdir(pred_dir) if f.endswith("_pred.nc")]
        with xr.open_dataset(os.path.join(pred_dir, pred)) as ds:
            logits.append(ds["ice_logit"].values)
    assert logits[0].shape == (64, 80) and not np.allclose(logits[0], logits[1])
    with open(os.path.join(workdir, "results.md")) as f:
        markdown = f.read()
    assert "| aspp=none | ok | none |" in markdown and "| aspp=1-2 | ok | 1-2 |" in markdown
    with open(os.path.join(workdir, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # Held-out scenes come from a seed the training scenes do not use: no file name in common.
    assert not set(os.listdir(os.path.join(workdir, "heldout"))) & set(
        os.listdir(os.path.join(workdir, "data", "train_scenes")))


def test_failing_point_is_reported_while_the_others_complete(first_sweep):
    workdir, run = first_sweep
    assert run.returncode == 1
    assert "failed: aspp=0" in run.stderr
    log = run.stdout
    assert log.index("[sweep] failed aspp=0") < log.index("[sweep] start aspp=1-2") < log.index("[sweep] done aspp=1-2")
    row = {t["name"]: t for t in read_csv(os.path.join(workdir, "results.csv"))}["aspp=0"]
    assert row["error"] == "ValueError: ASPP rates must be >= 1, got (0,)"
    assert row["methods.als.pixel_accuracy"] == ""
    with open(os.path.join(workdir, "results.md")) as f:
        markdown = f.read()
    assert "| aspp=0 | failed | 0 |" in markdown and "ASPP rates must be >= 1" in markdown
    assert "2 of 3 point(s) finished, 1 failed." in markdown
    assert not os.path.exists(os.path.join(workdir, "points", "aspp=0", "results.json"))


def _mtimes(folder):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files}


def test_rerun_skips_finished_points_and_retries_failed_ones(first_sweep, config_file, capsys):
    from seaice_jax.sweep import load_sweep_config, run_sweep

    workdir, _ = first_sweep
    finished = ("aspp=none", "aspp=1-2")
    before = {n: _mtimes(os.path.join(workdir, "points", n)) for n in finished}
    assert all(any("checkpoints" in p for p in m) for m in before.values())
    with open(os.path.join(workdir, "points", "aspp=1-2", "results.json")) as f:
        pooled = json.load(f)["pooled"]
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in CHILD_ENV.items():
            mp.setenv(k, v)
        rows = run_sweep(load_sweep_config(config_file), workdir)
    out = capsys.readouterr().out
    assert "[sweep] skip aspp=none (finished)" in out and "[sweep] skip aspp=1-2 (finished)" in out
    assert "[sweep] start aspp=0" in out and out.count("[sweep] start") == 1  # only the failed one reruns
    assert "warning" not in out  # the stored point configs read back equal to the sweep's
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[2]["pooled"] == pooled
    for name, mtimes in before.items():  # nothing of a finished point was rewritten: no retraining
        assert _mtimes(os.path.join(workdir, "points", name)) == mtimes


def test_grid_points_cross_in_order_with_readable_names():
    from seaice_jax.config import base_config
    from seaice_jax.sweep import apply_overrides, check_grid_keeps_shards, grid_points

    grid = {"model": {"aspp_rates": [[], [6, 12, 18]]}, "data": {"channels": [["sar"], ["sar", "amsr2"]]},
            "train.num_steps": [10, 20, 30]}
    points = grid_points(grid, order=["model.aspp_rates", "data.channels"],
                         short_names={"model": {"aspp_rates": "aspp"}, "data": {"channels": "inputs"}},
                         value_labels={"data": {"channels": ["sar", "sar+amsr2"]}})
    assert len(points) == 12
    assert points[0].name == "aspp=none,inputs=sar,num_steps=10"
    assert points[1].name == "aspp=none,inputs=sar,num_steps=20"  # last axis fastest
    assert points[-1].name == "aspp=6-12-18,inputs=sar+amsr2,num_steps=30"
    config = apply_overrides(base_config(), points[-1].overrides)
    assert config.model.aspp_rates == (6, 12, 18) and config.data.channels == ("sar", "amsr2")  # list fields are tuples
    assert config.train.num_steps == 30 and base_config().train.num_steps != 30
    with pytest.raises(KeyError, match="no field 'aspp_ratez'"):
        apply_overrides(base_config(), {"model.aspp_ratez": [1]})
    with pytest.raises(TypeError, match="model.norm=3"):
        apply_overrides(base_config(), {"model.norm": 3})
    with pytest.raises(ValueError, match="may not override data.patch_size"):
        check_grid_keeps_shards(grid_points({"data": {"patch_size": [32, 64]}}))
    with pytest.raises(ValueError, match="collide"):
        grid_points({"a.x": [[1, 2], "1-2"]})


def test_device_slots_split_accelerators_and_keep_cpu_sequential():
    from seaice_jax.sweep import device_slots

    assert device_slots("cpu", 4, 1) == [{}]
    assert device_slots("gpu", 8, 0) == [{}]
    slots = device_slots("gpu", 8, 2, env={"CUDA_VISIBLE_DEVICES": "1,3,5,7,9,11,13,15"})
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["1,3", "5,7", "9,11", "13,15"]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in device_slots("gpu", 4, 1, 3, env={})] == ["0", "1", "2"]
    tpu = device_slots("tpu", 4, 2, env={})
    assert [s["TPU_VISIBLE_CHIPS"] for s in tpu] == ["0,1", "2,3"]
    assert {s["TPU_CHIPS_PER_PROCESS_BOUNDS"] for s in tpu} == {"1,2,1"}
    assert len({s["TPU_MESH_CONTROLLER_PORT"] for s in tpu}) == 2
    with pytest.raises(ValueError, match="has 2 gpu"):
        device_slots("gpu", 2, 4, env={})
