"""Training: the quickstart, 1 vs 4 devices, exact resume, two processes, and a NaN stop."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from seaice_jax.config import base_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two small synthetic training scenes as shards and one validation scene."""
    from seaice_jax.data import synthetic
    from seaice_jax.data.shards import PatchSpec, convert_scenes

    root = tmp_path_factory.mktemp("data")
    train = synthetic.write_synthetic_scenes(str(root / "train"), 2, "rtt", "winter", (96, 96), 1)
    val = synthetic.write_synthetic_scenes(str(root / "val"), 1, "rtt", "winter", (64, 80), 2)
    spec = PatchSpec(32, 32, 1, 16, ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle",
                                      "distance_map", "btemp_36_5v"))
    _, errors = convert_scenes(train, str(root / "shards"), spec, progress=False)
    assert not errors
    return str(root / "shards"), val


def tiny_config(shards, val, **train):
    c = base_config()
    c.data.shards = shards
    c.data.val_scenes = list(val)
    c.data.channels = ["nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v"]
    c.model.filters = [4, 8]
    c.eval.tile = 32
    c.eval.stride = 16
    c.train.batch_size = 4
    c.train.num_steps = 6
    c.train.log_every = 1
    c.train.checkpoint_every = 3
    c.train.eval_every = 1000
    c.optim.warmup_steps = 2
    c.train.update(train)
    return c


def losses_of(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def final_params(workdir):
    import jax

    from seaice_jax.trained_model import restore_for_inference

    _, _, params, batch_stats, step = restore_for_inference(workdir)
    return step, [np.asarray(x) for x in jax.tree.leaves((params, batch_stats))]


@pytest.fixture(scope="module")
def six_steps_on_four_devices(data, tmp_path_factory):
    """One 6-step run on all four devices, the reference of both the 1-vs-4-devices and the resume test."""
    from seaice_jax.train import train_and_evaluate

    workdir = str(tmp_path_factory.mktemp("six_steps"))
    train_and_evaluate(tiny_config(data[0], [], num_devices=4), workdir)
    return workdir


@pytest.fixture(scope="module")
def three_steps(data, tmp_path_factory):
    """A run stopped after step 3 (its checkpoint), copied by the tests that continue it."""
    from seaice_jax.train import train_and_evaluate

    workdir = str(tmp_path_factory.mktemp("three_steps"))
    train_and_evaluate(tiny_config(data[0], [], num_steps=3), workdir)
    return workdir


def continued(workdir: str, to: str) -> str:
    shutil.copytree(workdir, to)
    return to


def test_quickstart_style_run_trains_evaluates_and_leaves_a_checkpoint(data, tmp_path):
    from seaice_jax.train import train_and_evaluate

    shards, val = data
    result = train_and_evaluate(tiny_config(shards, val, num_steps=8), str(tmp_path))
    for method in ("sigmoid", "als", "conc", "all_ice"):
        assert 0.0 <= result[f"pixel_accuracy_{method}"] <= 1.0
    assert 0.0 <= result["polygon_mae_als"] <= 1.0
    # the concentration-preserving map meets each chart region's concentration by construction
    assert result["polygon_mae_conc"] < 0.02 < result["polygon_mae_sigmoid"]
    losses = losses_of(str(tmp_path))
    assert sorted(losses) == list(range(1, 9)) and all(np.isfinite(list(losses.values())))
    step, leaves = final_params(str(tmp_path))
    assert step == 8 and all(np.isfinite(x).all() for x in leaves)
    assert os.path.exists(tmp_path / "tensorboard")


def test_one_device_and_four_devices_give_the_same_losses(data, six_steps_on_four_devices, tmp_path):
    import jax

    from seaice_jax.train import train_and_evaluate

    assert jax.device_count() == 4
    shards, val = data
    train_and_evaluate(tiny_config(shards, [], num_devices=1), str(tmp_path / "one"))
    one, four = losses_of(str(tmp_path / "one")), losses_of(six_steps_on_four_devices)
    # Same global batch, BatchNorm over the global batch: only reduction order differs.
    np.testing.assert_allclose([four[s] for s in sorted(four)], [one[s] for s in sorted(one)], rtol=2e-4)


def test_interrupted_run_resumed_equals_uninterrupted(data, six_steps_on_four_devices, three_steps, tmp_path):
    from seaice_jax.train import train_and_evaluate

    shards, val = data
    straight = six_steps_on_four_devices  # num_devices 4 = all of them, as the default 0 gives here
    # "Interrupted" after step 3 (a checkpoint), then the same command resumes to step 6.
    resumed = continued(three_steps, str(tmp_path / "resumed"))
    train_and_evaluate(tiny_config(shards, [], num_steps=6), resumed)
    a, b = final_params(straight), final_params(resumed)
    assert a[0] == b[0] == 6
    for x, y in zip(a[1], b[1]):
        np.testing.assert_array_equal(x, y)
    la, lb = losses_of(straight), losses_of(resumed)
    np.testing.assert_array_equal([la[s] for s in range(4, 7)], [lb[s] for s in range(4, 7)])


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(data, three_steps, tmp_path):
    from seaice_jax.train import NonFiniteLossError, train_and_evaluate

    shards, val = data
    workdir = continued(three_steps, str(tmp_path / "run"))
    before = final_params(workdir)
    cfg = tiny_config(shards, [], num_steps=6)
    cfg.optim.lr = float("nan")  # every update is NaN from step 4 on
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        train_and_evaluate(cfg, workdir)
    after = final_params(workdir)
    for x, y in zip(before[1], after[1]):
        np.testing.assert_array_equal(x, y)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_joined_by_jax_distributed_match_one_process(data, tmp_path):
    shards, val = data
    cfg_path = tmp_path / "cfg.py"
    cfg_path.write_text(
        "import json\nfrom seaice_jax.config import base_config\n"
        "from tests.test_train import tiny_config\n"
        f"def get_config(arg=None):\n    return tiny_config({shards!r}, [], num_steps=4, checkpoint_every=2)\n")
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    port = free_port()
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), f"--config={cfg_path}"]
    logs = [tmp_path / f"process_{i}.log" for i in range(2)]
    files = [open(log, "w") for log in logs]
    procs = [subprocess.Popen(cmd + [f"--workdir={tmp_path / 'multi'}", f"--coordinator=127.0.0.1:{port}",
                                     "--num-processes=2", f"--process-id={i}"],
                              env=env, stdout=files[i], stderr=subprocess.STDOUT, cwd=ROOT)
             for i in range(2)]
    # The one-process reference runs here, on this process's four devices, while the pair trains.
    from seaice_jax.train import train_and_evaluate

    try:
        train_and_evaluate(tiny_config(shards, [], num_steps=4, checkpoint_every=2), str(tmp_path / "single"))
        for p in procs:
            p.wait(timeout=400)
    finally:
        for p, f in zip(procs, files):
            if p.poll() is None:
                p.kill()
                p.wait()
            f.close()
    outs = [log.read_text() for log in logs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    multi, single = losses_of(str(tmp_path / "multi")), losses_of(str(tmp_path / "single"))
    assert sorted(multi) == sorted(single) == [1, 2, 3, 4]
    np.testing.assert_allclose([multi[s] for s in range(1, 5)], [single[s] for s in range(1, 5)], rtol=2e-4)
