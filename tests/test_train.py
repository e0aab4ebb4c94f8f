"""Training: the quickstart, 1 vs 4 devices, exact resume, two processes, a NaN stop, and what a rerun
with another config, a config typo or a failed first run leave behind (nothing)."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from seaice_jax.compile_cache import CacheSettings
from seaice_jax.config import base_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two small synthetic training scenes as shards and one validation scene."""
    from seaice_jax import synthetic
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


def test_quickstart_style_run_trains_evaluates_and_leaves_a_checkpoint(data, tmp_path, capsys):
    from seaice_jax.train import train_and_evaluate

    shards, val = data
    result = train_and_evaluate(tiny_config(shards, val, num_steps=8), str(tmp_path))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training on 4 of 4 cpu device(s)"
    assert any(line.startswith("data: shards in ") and "expanded on the device" in line for line in out)
    i = next(k for k, line in enumerate(out) if "compiled the train step in" in line)
    assert out[i + 1].startswith("step 1/8 loss ")
    assert " lr 0.00e+00 " in out[i + 1] and " lr 1.50e-03 " in out[i + 2]  # warmup over 2 steps to 3e-3
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
    with open(tmp_path / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [r["lr"] for r in rows if r["split"] == "train"][:3] == pytest.approx([0.0, 1.5e-3, 3e-3])

    # The same command again: nothing to train, says so and gives the final evaluation as it was.
    again = train_and_evaluate(tiny_config(shards, val, num_steps=8), str(tmp_path))
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"{tmp_path} already holds step 8 (train.num_steps=8): nothing to train; "
                      "raise --config.train.num_steps to continue")
    assert out[2].startswith("eval pixel_accuracy") and again == result
    with open(tmp_path / "metrics.jsonl") as f:
        assert len(rows) == len(f.readlines())


def test_one_device_and_four_devices_give_the_same_losses(data, six_steps_on_four_devices, tmp_path, capsys):
    import jax

    from seaice_jax.train import train_and_evaluate

    assert jax.device_count() == 4
    shards, val = data
    train_and_evaluate(tiny_config(shards, [], num_devices=1), str(tmp_path / "one"))
    assert "training on 1 of 4 cpu device(s) (train.num_devices=1)\n" in capsys.readouterr().out
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
    for x, y in zip(a[1], b[1], strict=True):
        np.testing.assert_array_equal(x, y)
    la, lb = losses_of(straight), losses_of(resumed)
    np.testing.assert_array_equal([la[s] for s in range(4, 7)], [lb[s] for s in range(4, 7)])


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(data, three_steps, tmp_path):
    from seaice_jax import trained_model
    from seaice_jax.train import NonFiniteLossError, train_and_evaluate

    shards, val = data
    workdir = continued(three_steps, str(tmp_path / "run"))
    before = final_params(workdir)
    cfg = tiny_config(shards, [], num_steps=6)
    cfg.optim.lr = float("nan")  # every update is NaN from step 4 on
    trained_model.save_config(cfg, workdir)  # as if the run had had this config all along
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        train_and_evaluate(cfg, workdir)
    after = final_params(workdir)
    for x, y in zip(before[1], after[1], strict=True):
        np.testing.assert_array_equal(x, y)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(cfg_path, workdir, log_dir, meanwhile=None) -> list[str]:
    """launch/train.py with `cfg_path` in two processes joined by jax.distributed (two simulated CPU
    devices each) on `workdir`; `meanwhile()` runs here while they train. Asserts both exit 0 and
    returns their outputs (stdout and stderr together)."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS=os.environ["XLA_FLAGS"].replace("device_count=4", "device_count=2"))
    port = free_port()
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), f"--config={cfg_path}"]
    logs = [log_dir / f"process_{i}.log" for i in range(2)]
    with contextlib.ExitStack() as stack:  # the log files are closed once both processes ended
        files = [stack.enter_context(open(log, "w")) for log in logs]
        procs = [subprocess.Popen(cmd + [f"--workdir={workdir}", f"--coordinator=127.0.0.1:{port}",
                                         "--num-processes=2", f"--process-id={i}"],
                                  env=env, stdout=files[i], stderr=subprocess.STDOUT, cwd=ROOT)
                 for i in range(2)]
        try:
            if meanwhile is not None:
                meanwhile()
            for p in procs:
                p.wait(timeout=400)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    outs = [log.read_text() for log in logs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    return outs


def test_two_processes_joined_by_jax_distributed_match_one_process(data, tmp_path):
    shards, val = data
    cfg_path = tmp_path / "cfg.py"
    cfg_path.write_text(
        "import json\nfrom seaice_jax.config import base_config\n"
        "from tests.test_train import tiny_config\n"
        f"def get_config(arg=None):\n    return tiny_config({shards!r}, [], num_steps=4, checkpoint_every=2)\n")
    from seaice_jax.train import train_and_evaluate

    # The one-process reference runs here, on this process's four devices, while the pair trains.
    outs = run_two_processes(cfg_path, tmp_path / "multi", tmp_path, meanwhile=lambda: train_and_evaluate(
        tiny_config(shards, [], num_steps=4, checkpoint_every=2), str(tmp_path / "single")))
    # Quiet by default: the step lines, no Orbax / JAX INFO lines (absl's 'I1201 10:00:00.0 ...').
    lines = outs[0].splitlines()
    # The opening lines: where the compilation cache is (the test session's), then the devices.
    assert lines[0] == CacheSettings(os.environ["JAX_COMPILATION_CACHE_DIR"]).line, outs[0][:3000]
    assert lines[1] == "training on 4 of 4 cpu device(s) in 2 processes", outs[0][:3000]
    steps = [line.split(" loss")[0] for line in lines if line.startswith("step ")]
    assert steps == [f"step {i}/4" for i in range(1, 5)]
    assert not [line for line in lines if line[:1] in "IW" and line[1:5].isdigit()], outs[0][:3000]
    assert "training on" not in outs[1] and "step " not in outs[1]  # progress lines from process 0 only
    multi, single = losses_of(str(tmp_path / "multi")), losses_of(str(tmp_path / "single"))
    assert sorted(multi) == sorted(single) == [1, 2, 3, 4]
    np.testing.assert_allclose([multi[s] for s in range(1, 5)], [single[s] for s in range(1, 5)], rtol=2e-4)


def listing(folder):
    """{path: (size, mtime)} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            st = os.stat(os.path.join(root, f))
            out[os.path.relpath(os.path.join(root, f), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def test_rerun_with_another_config_is_refused_before_anything_is_written(data, three_steps, tmp_path):
    from seaice_jax import trained_model
    from seaice_jax.train import train_and_evaluate

    shards, val = data
    workdir = continued(three_steps, str(tmp_path / "run"))
    before = listing(workdir)
    with open(os.path.join(workdir, "config.json"), "rb") as f:
        config_bytes = f.read()
    assert b'"filters": [\n' in config_bytes  # stored as lists; the tuples of the config compare equal
    assert trained_model.config_changes(json.loads(config_bytes), tiny_config(shards, [], num_steps=3)) == {}
    cfg = tiny_config(shards, [], num_steps=9)
    cfg.model.norm = "group"
    cfg.model.filters = (4, 16)
    with pytest.raises(trained_model.ConfigMismatchError) as e:
        train_and_evaluate(cfg, workdir)
    assert str(e.value) == (
        f"{workdir} holds a run trained with another config (model.filters (4, 8) -> (4, 16), "
        "model.norm 'batch' -> 'group'); a rerun may change only train.num_steps, train.log_every, "
        "train.eval_every, train.checkpoint_every, train.keep_checkpoints, train.num_devices, "
        "data.worker_count, data.val_scenes, eval.*: use a new --workdir or the stored values "
        f"({workdir}/config.json)")
    assert listing(workdir) == before
    with open(os.path.join(workdir, "config.json"), "rb") as f:
        assert f.read() == config_bytes
    assert final_params(workdir)[0] == 3  # inference still loads it


def test_a_failed_first_run_leaves_no_workdir(data, tmp_path):
    from seaice_jax.train import train_and_evaluate

    shards, val = data
    bad_model = tiny_config(shards, [])
    bad_model.model.norm = "grup"
    with pytest.raises(ValueError, match="norm"):  # refused before any file
        train_and_evaluate(bad_model, str(tmp_path / "a"))
    with pytest.raises(FileNotFoundError):  # fails reading the data (no manifest), after the workdir was made
        train_and_evaluate(tiny_config(str(tmp_path / "no_such_shards"), []), str(tmp_path / "b"))
    assert sorted(os.listdir(tmp_path)) == []


def test_list_fields_override_as_tuples_and_a_typo_is_one_line(tmp_path):
    from absl import flags
    from ml_collections import config_flags

    argv = ["prog", f"--config={ROOT}/configs/quickstart.py", "--config.model.filters=(8,16,32)",
            "--config.data.channels=('sar',)", "--config.model.aspp_rates=(1,2)"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True, sys_argv=argv)
    values(argv)
    c = values.config
    assert (c.model.filters, c.data.channels, c.model.aspp_rates) == ((8, 16, 32), ("sar",), (1, 2))
    assert c.model.heads.sic == "classification" and c.model.heads.sod and c.model.heads.floe

    env = dict(os.environ, PYTHONPATH=ROOT, SEAICE_JAX_NO_REEXEC="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "train.py"),
                           "--config=configs/quickstart.py", f"--workdir={tmp_path / 'w'}",
                           "--config.train.num_stepz=5"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == ("error: --config.train.num_stepz: the config has no field train.num_stepz; "
                           "did you mean train.num_steps?\n")
    assert not (tmp_path / "w").exists()
