"""Issue 20: nothing lost, nothing silent. Each fault case of the issue as a test: the exit code, one
line naming the input and the cause, no traceback, and nothing left behind.

Training (real processes where a signal or a second process is the point): two train.py on one
workdir (the second refused, the first unharmed), SIGTERM (143) and SIGINT from a terminal (130) each
saving a checkpoint at the interrupted step, the reruns' losses equal to an uninterrupted run's and
metrics.jsonl holding each step once; a stale lock taken over; numbers out of range refused up front;
an unreadable checkpoint named, set aside and skipped. Inference, conversion, drift and the elevation
evaluation: bad numbers, bad inputs, nothing to analyse, a full disk (a real small tmpfs when this
machine lets the tests mount one, and always a simulated ENOSPC). Outputs: byte-reproducible shards,
the drift arrow key, the elevation plot, the freeboard panel, class maps masked in the CF file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import glob
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launcher(folder: str, name: str):
    """launch/<name>.py's (or data_prep/<name>.py's) main, loaded afresh (in-process: no JAX start-up)."""
    spec = importlib.util.spec_from_file_location(f"faults_{name}", os.path.join(ROOT, folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def launch(name):
    return _launcher("launch", name)


def one_line(err: str, *parts: str, prefix: str = "error: ") -> str:
    """The single non-empty line of `err` (no traceback), starting with `prefix`, containing `parts`."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def error_line(err: str, *parts: str) -> str:
    """The single `error:` line of `err` (a progress bar may precede it), no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def tree(folder) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + files]
    return sorted(out)


def usage_error(main, argv, capsys, *parts) -> str:
    """argparse refusals are one line and exit code 2 (SystemExit from parse_args)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return one_line(capsys.readouterr().err, *parts)


@pytest.fixture(scope="module")
def shards(trained_workdir):
    """The shards (and scene) the session's trained workdir was trained on (conftest)."""
    root = os.path.dirname(trained_workdir)
    return os.path.join(root, "shards"), glob.glob(os.path.join(root, "scenes", "*.nc"))


# ----------------------------------------------------------------------------------------------
# Training: the lock, SIGTERM / SIGINT, resume equality, metrics once per step


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _steps_logged(path) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        found = re.findall(r"^step (\d+)/", f.read(), re.M)
    return int(found[-1]) if found else 0


def test_two_runs_one_workdir_sigterm_then_sigint_resume_to_the_uninterrupted_losses(shards, tmp_path, monkeypatch):
    """Two train.py started together: one is refused in one line naming the other, which trains on.
    SIGTERM: it finishes the step, saves there, exits 143. Before the rerun, the workdir gets what a
    kill -9 leaves (a half-made newer step folder, a metrics row past the checkpoint): the rerun names
    and sets aside the step, drops the row, resumes from the SIGTERM checkpoint; Ctrl-C (SIGINT to its
    process group): 130 and a checkpoint. Its losses and weights equal an uninterrupted run's."""
    from seaice_jax import interrupts
    from seaice_jax.train import train_and_evaluate
    from tests.conftest import trained_config
    from tests.test_train import final_params, losses_of

    cfg = tmp_path / "cfg.py"  # the session model; a long run at a constant learning rate after warm-up
    cfg.write_text("from tests.conftest import trained_config\n\ndef get_config(arg=None):\n"
                   f"    c = trained_config({shards[0]!r})\n"
                   "    c.train.update(num_steps=100000, checkpoint_every=100000, log_every=1)\n"
                   "    c.optim.final_lr_fraction = 1.0\n    return c\n")
    work = str(tmp_path / "work")
    env = dict(os.environ, PYTHONPATH=ROOT, SEAICE_JAX_NO_REEXEC="1")
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), f"--config={cfg}", f"--workdir={work}"]

    def start(tag):
        with open(tmp_path / f"{tag}.out", "w") as out, open(tmp_path / f"{tag}.err", "w") as err:
            return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=err, start_new_session=True)

    procs = [start("a"), start("b")]  # started together: one trains, the other is refused
    try:
        loser = _wait_for(lambda: next((p for p in procs if p.poll() is not None), None), 900, "the refusal")
        winner = procs[1 - procs.index(loser)]
        tag_l, tag_w = ("a", "b") if loser is procs[0] else ("b", "a")
        err = (tmp_path / f"{tag_l}.err").read_text()
        line = one_line(err, f"--workdir {work}: in use by another run (host ", f", pid {winner.pid}, since ",
                        "wait for it to end or use another --workdir")
        assert loser.returncode == 1 and winner.poll() is None, line
        # SIGTERM (a cluster's preemption) once the winner trains: it finishes the step, saves, exits 143.
        _wait_for(lambda: _steps_logged(tmp_path / f"{tag_w}.out") >= 2, 900, "step 2")
        winner.send_signal(signal.SIGTERM)
        assert winner.wait(300) == 143
        err = (tmp_path / f"{tag_w}.err").read_text()
        n1 = int(re.search(r"stopped after step (\d+) of 100000", err).group(1))
        one_line(err, f"interrupted by SIGTERM: stopped after step {n1} of 100000, checkpoint saved "
                      f"({work}/checkpoints/{n1}); rerun the same command to resume", prefix="interrupted")
        assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == [str(n1)]
        assert not os.path.exists(os.path.join(work, "lock"))  # released
        # What a kill -9 during a later save leaves: a newer step folder without its items, a row past it.
        os.mkdir(os.path.join(work, "checkpoints", str(n1 + 1)))
        with open(os.path.join(work, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"step": n1 + 1, "split": "train", "loss": -1.0}) + "\n")
        # The same command resumes; Ctrl-C from a terminal (SIGINT to the process group): exit 130.
        again = start("c")
        _wait_for(lambda: _steps_logged(tmp_path / "c.out") >= n1 + 2, 900, "two resumed steps")
        os.killpg(again.pid, signal.SIGINT)
        assert again.wait(300) == 130
        out, err = (tmp_path / "c.out").read_text(), (tmp_path / "c.err").read_text()
        assert (f"warning: checkpoint {work}/checkpoints/{n1 + 1} is unreadable (KeyError" in out
                and f"; moved to {work}/checkpoints_unreadable/{n1 + 1}; resuming from step {n1}\n" in out), out
        assert f"resumed from step {n1}" in out
        # The first run's traced step read back (trace_cache); the losses below check it bit for bit.
        assert "(traced program read from the cache)" in out, out
        n2 = int(re.search(r"stopped after step (\d+) of", err).group(1))
        one_line(err, f"interrupted by SIGINT: stopped after step {n2} of 100000", prefix="interrupted")
        assert n2 > n1 and os.path.isdir(os.path.join(work, "checkpoints", str(n2)))
        assert os.listdir(os.path.join(work, "checkpoints_unreadable")) == [str(n1 + 1)]
    finally:
        for p in procs + ([again] if "again" in locals() else []):
            if p.poll() is None:
                p.kill()
                p.wait()
    rows = jsonl(os.path.join(work, "metrics.jsonl"))
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, n2 + 1))  # each step once
    # The uninterrupted reference: the same config from scratch, stopped after step n2 (in-process).
    monkeypatch.setattr(interrupts, "stop_requested", lambda step: step >= n2)
    c = trained_config(shards[0])
    c.train.update(num_steps=100000, checkpoint_every=100000, log_every=1)
    c.optim.final_lr_fraction = 1.0
    straight = str(tmp_path / "straight")
    with pytest.raises(interrupts.Interrupted):
        train_and_evaluate(c, straight)
    a, b = losses_of(straight), losses_of(work)
    np.testing.assert_array_equal([a[s] for s in range(1, n2 + 1)], [b[s] for s in range(1, n2 + 1)])
    pa, pb = final_params(straight), final_params(work)
    assert pa[0] == pb[0] == n2
    for x, y in zip(pa[1], pb[1], strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_lock_left_by_a_dead_process_is_taken_over_and_a_held_one_refuses(tmp_path):
    from seaice_jax import workdir_lock

    work = tmp_path / "w"
    work.mkdir()
    (work / "lock").write_text(json.dumps({"host": "gone", "pid": 999999, "since": "2020-01-01T00:00:00"}))
    notes = []
    lock = workdir_lock.WorkdirLock(str(work), note=notes.append).acquire()
    assert notes == [f"note: {work}: took over the lock left by a run that is gone "
                     "(host gone, pid 999999, since 2020-01-01T00:00:00)"]
    held = json.loads((work / "lock").read_text())
    assert held["pid"] == os.getpid()
    with pytest.raises(workdir_lock.WorkdirLockedError, match=rf"in use by another run \(host \S+, pid {os.getpid()}"):
        workdir_lock.WorkdirLock(str(work)).acquire()  # a second open file description: refused
    lock.release()
    assert os.listdir(work) == []


def test_a_sweep_on_a_workdir_in_use_is_refused_before_anything(tmp_path):
    from seaice_jax import workdir_lock
    from seaice_jax.sweep import run_sweep

    lock = workdir_lock.WorkdirLock(str(tmp_path / "sweep")).acquire()
    try:
        with pytest.raises(workdir_lock.WorkdirLockedError, match="in use by another run"):
            run_sweep(None, str(tmp_path / "sweep"))
        assert os.listdir(tmp_path / "sweep") == ["lock"]
    finally:
        lock.release()


def test_num_steps_and_batch_size_out_of_range_are_refused_up_front(shards, tmp_path):
    from seaice_jax.config_checks import ConfigRangeError
    from seaice_jax.train import train_and_evaluate
    from tests.conftest import trained_config

    for field, value, text in (("num_steps", -5, "--config.train.num_steps must be a whole number >= 1, got -5"),
                               ("batch_size", 0, "--config.train.batch_size must be a whole number >= 1, got 0")):
        c = trained_config(shards[0])
        c.train[field] = value
        with pytest.raises(ConfigRangeError) as e:
            train_and_evaluate(c, str(tmp_path / "w"))
        assert str(e.value) == text
    assert os.listdir(tmp_path) == []
    env = dict(os.environ, PYTHONPATH=ROOT, SEAICE_JAX_NO_REEXEC="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config=configs/quickstart.py",
                           f"--workdir={tmp_path / 'w'}", "--config.train.num_steps=0"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    one_line(proc.stderr, "error: --config.train.num_steps must be a whole number >= 1, got 0")
    assert os.listdir(tmp_path) == []


def test_unreadable_checkpoints_and_bad_tiling_flags_are_one_line(trained_workdir, shards, tmp_path, capsys):
    infer = launch("infer")
    scene = shards[1][0]
    for flag, value, text in (("--tile", "0", "--tile must be a whole number >= 1, got 0"),
                              ("--batch-size", "-1", "--batch-size must be a whole number >= 1, got -1"),
                              ("--stride", "x", "--stride must be a whole number >= 1, got 'x'")):
        usage_error(infer, ["--workdir", trained_workdir, "--scenes", scene, "--out", str(tmp_path / "o"),
                            flag, value], capsys, f"error: {text}")
    work = tmp_path / "work"
    shutil.copytree(trained_workdir, work)
    for f in glob.glob(str(work / "checkpoints" / "2" / "state" / "**" / "manifest.ocdbt"), recursive=True):
        with open(f, "r+b") as handle:  # a copy cut short: TensorStore fails deep down
            handle.truncate(20)
    (work / "checkpoints" / "3").mkdir()  # an empty step folder
    assert infer(["--workdir", str(work), "--scenes", scene, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Event loop is closed" not in err and "WARNING" not in err, err
    lines = [x for x in err.splitlines() if x]
    assert lines[0].startswith(f"warning: checkpoint {work}/checkpoints/3 is unreadable (KeyError: ")
    assert lines[1].startswith(f"warning: checkpoint {work}/checkpoints/2 is unreadable (ValueError: DATA_LOSS")
    assert lines[2:] == [f"error: infer: {work}: no readable checkpoint (see the warnings above)"]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# A full disk: infer and convert say "disk full writing X" and leave nothing (simulated, and real)


@contextlib.contextmanager
def small_filesystem(path, size="1m", leave_bytes=16 * 1024):
    """A tmpfs of `size` at `path`, filled until `leave_bytes` are free; skipped where mounting needs a
    privilege the test process has not (not root, or no CAP_SYS_ADMIN)."""
    os.makedirs(path)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the simulated ENOSPC tests cover the code")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine refuses to mount a tmpfs; the simulated ENOSPC tests cover the code")
    try:
        st = os.statvfs(path)
        with open(os.path.join(path, "filler"), "wb") as f:
            f.write(b"\0" * max(st.f_bavail * st.f_frsize - leave_bytes, 0))
        yield str(path)
    finally:
        import gc

        gc.collect()  # a NetCDF handle of the failed write, closed by its finaliser
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)  # still busy: detach it now


def test_infer_and_convert_on_a_really_full_disk(trained_workdir, shards, tmp_path, capsys):
    with small_filesystem(tmp_path / "fs") as fs:
        out = os.path.join(fs, "pred")
        code = launch("infer")(["--workdir", trained_workdir, "--scenes", *shards[1], "--out", out, "--png",
                                "--submission", os.path.join(fs, "upload.nc")])
        name = os.path.basename(shards[1][0])[: -len(".nc")]
        one_line(capsys.readouterr().err, f"error: infer: disk full writing {out}/{name}_pred.nc")
        assert code == 1 and os.listdir(fs) == ["filler"]
        convert = _launcher("data_prep", "convert")
        code = convert(["--input", *shards[1], "--output", os.path.join(fs, "shards"), "--patch-size", "32"])
        error_line(capsys.readouterr().err, f"error: disk full writing {fs}/shards/seaice-train.array_record-00000")
        assert code == 1 and os.listdir(fs) == ["filler"]


def test_a_simulated_enospc_is_one_line_and_leaves_nothing(trained_workdir, shards, tmp_path, capsys, monkeypatch):
    import array_record.python.array_record_module as arm

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "pred"
    with monkeypatch.context() as m:
        m.setattr(xr.Dataset, "to_netcdf", full)
        code = launch("infer")(["--workdir", trained_workdir, "--scenes", *shards[1], "--out", str(out)])
    name = os.path.basename(shards[1][0])[: -len(".nc")]
    one_line(capsys.readouterr().err, f"error: infer: disk full writing {out}/{name}_pred.nc")
    assert code == 1 and os.listdir(tmp_path) == []

    real = arm.ArrayRecordWriter

    class FullWriter:  # writes a few bytes, then the disk is full (as ArrayRecord reports it)
        def __init__(self, path, options):
            self.inner = real(path, options)

        def write(self, record):
            raise RuntimeError("write() failed: No space left on device; writing ...")

        def close(self):
            self.inner.close()

    monkeypatch.setattr(arm, "ArrayRecordWriter", FullWriter)
    code = _launcher("data_prep", "convert")(["--input", *shards[1], "--output", str(tmp_path / "s"),
                                              "--patch-size", "32"])
    error_line(capsys.readouterr().err, f"error: disk full writing {tmp_path}/s/seaice-train.array_record-00000 "
                                        "(0 of 1 scene(s) converted before; rerun once there is space")
    assert code == 1 and os.listdir(tmp_path) == []


def test_two_clean_conversions_give_the_same_bytes(shards, tmp_path):
    from seaice_jax.data.shards import PatchSpec, convert_scenes

    spec = PatchSpec(32, 32, 1, 16, ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v"))
    for k in (1, 2):
        convert_scenes(shards[1], str(tmp_path / str(k)), spec, progress=False)
    names = tree(tmp_path / "1")
    assert names == tree(tmp_path / "2") and any(n.startswith("seaice-train.array_record") for n in names)
    for n in names:
        assert (tmp_path / "1" / n).read_bytes() == (tmp_path / "2" / n).read_bytes(), n


# ----------------------------------------------------------------------------------------------
# drift.py: everything checked before the matching


@pytest.fixture(scope="module")
def drift_scenes(tmp_path_factory):
    """A small pair 20 h apart, the same pair's A as a second file with A's time, a scene elsewhere,
    and A with no SAR data."""
    from seaice_jax.synthetic import drift as known
    from tests.test_drift_cli import _write_rtt

    folder = tmp_path_factory.mktemp("drift_faults")
    shape, t0 = (96, 96), dt.datetime(2021, 3, 1, 6)
    model = known.KnownDrift(translation_m_per_day=(2000.0, 1000.0), divergence_per_day=0.0,
                             centre_px=(48.0, 48.0))
    hh_a, hh_b = known.synthetic_pair(shape, model, 20 / 24, seed=3)
    tie = known.synthetic_tie_points(shape, 80.0)
    paths = {}
    for key, image, t, tp in (("a", hh_a, t0, tie), ("b", hh_b, t0 + dt.timedelta(hours=20), tie),
                              ("a_again", hh_a, t0, tie),
                              ("far", hh_b, t0 + dt.timedelta(hours=20), known.synthetic_tie_points(shape, 80.0, 70))):
        sub = folder / key
        sub.mkdir()
        paths[key] = str(sub / f"{t:%Y%m%dT%H%M%S}_dmi_prep.nc")
        _write_rtt(paths[key], image, tp, t)
    with xr.open_dataset(paths["a"]) as ds:
        empty = ds.load()
    empty["nersc_sar_secondary"][:] = 0.0  # the RTT fill value: no data anywhere
    (folder / "empty").mkdir()
    paths["empty"] = str(folder / "empty" / os.path.basename(paths["a"]))
    empty.to_netcdf(paths["empty"])
    return paths


@pytest.mark.parametrize("case", ["no_sar", "same_file", "same_time", "reversed", "no_overlap"])
def test_drift_refuses_bad_scene_pairs_in_one_line(drift_scenes, tmp_path, capsys, case):
    s = drift_scenes
    a, b = {"no_sar": (s["empty"], s["b"]), "same_file": (s["a"], s["a"]), "same_time": (s["a"], s["a_again"]),
            "reversed": (s["b"], s["a"]), "no_overlap": (s["a"], s["far"])}[case]
    expected = {"no_sar": f"{s['empty']}: no SAR data in nersc_sar_secondary (no data or land at every pixel)",
                "same_file": f"--scenes: {a} is given twice",
                "same_time": f"--scenes: {b} starts at the same time as {a}",
                "reversed": f"--scenes: {b} starts 20.0 h before {a}",
                "no_overlap": f"--scenes: {a} and {b} do not overlap (0.0 % of A's data"}[case]
    # the hyphen spelling of every flag (--grid-step-km) is taken; the refusal is about the scenes
    code = launch("drift")(["--scenes", a, b, "--out", str(tmp_path / "d" / "drift.nc"), "--png",
                            "--grid-step-km", "2", "--coarse_factor", "4"])
    one_line(capsys.readouterr().err, f"error: drift: {expected}")
    assert code == 1 and os.listdir(tmp_path) == []


def test_drift_numbers_and_output_paths_are_checked_first(drift_scenes, tmp_path, capsys):
    drift = launch("drift")
    a, b = drift_scenes["a"], drift_scenes["b"]
    for flag, value, text in (("--grid_step_km", "0", "--grid-step-km must be a number > 0, got 0"),
                              ("--template-km", "-3", "--template-km must be a number > 0, got -3"),
                              ("--min-mcc", "2", "--min-mcc must be a number >= -1 and <= 1, got 2"),
                              ("--batch-size", "0", "--batch-size must be a whole number >= 1, got 0")):
        usage_error(drift, ["--scenes", a, b, "--out", str(tmp_path / "d.nc"), flag, value], capsys, f"error: {text}")
    code = drift(["--scenes", a, b, "--out", str(tmp_path / "d.nc"), "--template-km", "0.05"])
    one_line(capsys.readouterr().err, "error: drift: --template-km must span at least 3 pixels (0.24 km at 80 m)")
    assert code == 1
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code = drift(["--scenes", a, b, "--out", str(blocker / "d.nc")])
    one_line(capsys.readouterr().err, f"error: drift: --out {blocker / 'd.nc'}: {blocker} is a file, not a folder")
    assert code == 1 and tree(tmp_path) == ["a_file"]


def test_drift_with_no_valid_vector_exits_1_with_the_count(drift_scenes, tmp_path, capsys, monkeypatch):
    from seaice_jax.drift import estimation
    from seaice_jax.drift import io as drift_io
    from seaice_jax.synthetic import drift as known

    def nothing_valid(hh_a, tie_a, time_a, hh_b, tie_b, time_b, config, methods):
        model = known.KnownDrift(translation_m_per_day=(0.0, 0.0), divergence_per_day=0.0, centre_px=(48.0, 48.0))
        field = known.known_drift_field(model, 1.0, np.arange(20, 90, 10), np.arange(20, 90, 10), tie_a, time_a)
        field = dataclasses.replace(field, valid=np.zeros_like(field.valid), mcc=np.full(field.valid.shape, 0.21))
        return {m: dataclasses.replace(field, method=m) for m in methods}

    monkeypatch.setattr(estimation, "estimate_drift", nothing_valid)
    code = launch("drift")(["--scenes", drift_scenes["a"], drift_scenes["b"], "--out", str(tmp_path / "d.nc")])
    one_line(capsys.readouterr().err, "error: drift: no valid vector: 0 of 49 grid points passed the quality mask "
                                      "in pattern_matching, phase_correlation (best correlation peak 0.21, --min-mcc "
                                      "0.45); nothing written")
    assert code == 1 and os.listdir(tmp_path) == []
    # The PNG of a run with vectors has an arrow key (a round length near the typical vector).
    assert drift_io.arrow_key_km([0.4, 0.55, 0.6]) == 0.5 and drift_io.arrow_key_km([1.7, 2.2]) == 2.0
    keys = []
    import matplotlib.axes

    real_key = matplotlib.axes.Axes.quiverkey
    monkeypatch.setattr(matplotlib.axes.Axes, "quiverkey",
                        lambda self, *a, **k: keys.append(a) or real_key(self, *a, **k))
    field = nothing_valid(None, drift_io.read_scene_for_drift(drift_scenes["a"])[1], dt.datetime(2021, 3, 1), None,
                          None, None, None, ["pattern_matching"])["pattern_matching"]
    field = dataclasses.replace(field, valid=np.ones_like(field.valid), drow=np.full(field.valid.shape, 12.0),
                                dcol=np.full(field.valid.shape, 5.0))
    drift_io.plot_drift_png(str(tmp_path / "d.png"), np.zeros((96, 96), np.float32), field)
    assert keys and keys[0][-1] == "1 km" and keys[0][-2] == pytest.approx(12.5)  # 13 px * 80 m ~ 1 km


# ----------------------------------------------------------------------------------------------
# evaluate_elevation.py: inputs checked first, nothing to analyse is an error


@pytest.fixture(scope="module")
def elevation_data(tmp_path_factory):
    """One small scene with ICESat-2 tracks, its prediction with a freeboard map and one without, and
    the tracks of another scene (other place and day)."""
    from seaice_jax import synthetic
    from seaice_jax.data.channels import SAR_DIMS

    root = tmp_path_factory.mktemp("elevation_faults")
    scenes = synthetic.write_synthetic_scenes(str(root / "d"), 1, "rtt", "winter", (64, 64), 5, altimetry="icesat2")
    synthetic.write_synthetic_scenes(str(root / "other"), 1, "rtt", "summer", (64, 64), 9, altimetry="icesat2")
    name = os.path.basename(scenes[0])[: -len(".nc")]
    for folder, with_fb in (("pred", True), ("pred_no_fb", False)):
        (root / folder).mkdir()
        data = {"ice_logit": (SAR_DIMS, np.ones((64, 64), np.float32))}
        if with_fb:
            data["freeboard"] = (SAR_DIMS, np.full((64, 64), 0.3, np.float32))
        xr.Dataset(data).to_netcdf(root / folder / f"{name}_pred.nc")
    return {"root": root, "scenes": scenes, "tracks": str(root / "d" / "altimetry"),
            "other_tracks": str(root / "other" / "altimetry")}


def test_evaluate_elevation_refuses_what_it_cannot_use_in_one_line(elevation_data, tmp_path, capsys):
    e = elevation_data
    main = launch("evaluate_elevation")
    good = {"--pred": str(e["root"] / "pred"), "--scenes": e["scenes"][0], "--tracks": e["tracks"],
            "--json": str(tmp_path / "out" / "E.json")}
    bad_files = tmp_path / "bad_tracks"
    bad_files.mkdir()
    atl = sorted(glob.glob(os.path.join(e["tracks"], "*")))[0]
    with open(atl, "rb") as f:
        (bad_files / os.path.basename(atl)).write_bytes(f.read()[:3000])  # truncated
    shutil.copy(e["scenes"][0], bad_files / "a_scene.nc")  # a file of another kind
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [
        ({"--tracks": str(tmp_path / "no_tracks")}, f"--tracks {tmp_path / 'no_tracks'}: no such file or folder"),
        ({"--pred": str(tmp_path / "no_pred")}, f"--pred {tmp_path / 'no_pred'}: prediction folder not found"),
        ({"--tracks": str(bad_files)}, "--tracks: no laser altimeter track read (2 file(s) unreadable or of no known "
                                       "product"),
        ({"--pred": str(e["root"] / "pred_no_fb")}, "none of the 1 prediction(s) of the 1 scene(s) holds 'freeboard'"),
        ({"--json": str(blocker / "E.json")}, f"--json {blocker / 'E.json'}: {blocker} is a file, not a folder"),
        ({"--tracks": e["other_tracks"]}, "no laser track point falls on the 1 scene(s) within 6 h of their start"),
        ({"--max-time-gap-h": "0"}, "--max-time-gap-h must be a number > 0, got 0"),
    ]
    for change, text in cases:
        argv = [x for k, v in {**good, **change}.items() for x in (k, v)] + ["--no-loo"]
        if "--max-time-gap-h" in change:
            usage_error(main, argv, capsys, text)
        else:
            assert main(argv) == 1, text
            error_line(capsys.readouterr().err, text)  # warning lines (files skipped) may come first
        assert not (tmp_path / "out").exists() and blocker.read_text() == "x", text


def test_elevation_plot_has_no_empty_lines_or_axes_and_keeps_its_legend_off_the_lines(tmp_path, monkeypatch):
    import matplotlib.axes

    from seaice_jax.elevation.report import plot_rmse_vs_tracks

    def result(model):
        by_tracks = {str(k): {"methods": {"model": {"rmse_80m": model, "rmse_400m": model},
                                          "gp": {"rmse_80m": 0.1 / k, "rmse_400m": 0.05 / k}}} for k in (1, 2, 4, 8)}
        return {"pooled": {"methods": {"model": {}, "gp": {}}, "by_tracks": by_tracks}}

    legends = []
    real_legend = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend",
                        lambda self, *a, **k: legends.append((self.get_legend_handles_labels()[1], k))
                        or real_legend(self, *a, **k))
    assert plot_rmse_vs_tracks(result(None), str(tmp_path / "p.png")) == str(tmp_path / "p.png")
    labels, kwargs = legends[0]
    assert labels == ["gp 400m", "gp 80m"] and kwargs["bbox_to_anchor"][0] > 1  # beside the axes
    none = result(None)
    none["pooled"]["by_tracks"] = {k: {"methods": {m: {"rmse_80m": None, "rmse_400m": None} for m in ("model", "gp")}}
                                   for k in none["pooled"]["by_tracks"]}
    assert plot_rmse_vs_tracks(none, str(tmp_path / "q.png")) is None and not (tmp_path / "q.png").exists()


# ----------------------------------------------------------------------------------------------
# Products: the freeboard panel, classes masked in the CF file and kept in the upload file


def test_quicklook_has_a_freeboard_panel_and_the_cf_file_masks_class_maps(trained_workdir, shards, tmp_path):
    import matplotlib.image
    import netCDF4

    from seaice_jax import inference
    from seaice_jax.data.scene import open_scene
    from seaice_jax.inference.binarize import binary_maps

    work = tmp_path / "work"
    shutil.copytree(trained_workdir, work)
    (work / "checkpoints" / "7").mkdir()  # a step folder a killed save left empty: named, step 2 used
    with contextlib.redirect_stderr(io.StringIO()) as said:
        written = inference.predict_files(str(work), shards[1], str(tmp_path / "p"), png=True,
                                          submission=str(tmp_path / "upload.nc"))
    one_line(said.getvalue(), f"warning: checkpoint {work}/checkpoints/7 is unreadable (KeyError", "; using step 2",
             prefix="warning: ")
    scene = open_scene(shards[1][0], channels=("nersc_sar_primary", "distance_map"))
    with xr.open_dataset(written[0], mask_and_scale=False) as ds, netCDF4.Dataset(written[-1]) as sub:
        assert 0 < scene.valid.sum() < scene.valid.size
        for chart in ("SIC", "SOD", "FLOE"):
            np.testing.assert_array_equal(ds[chart].values == 255, ~scene.valid)
            assert ds[chart].attrs["_FillValue"] == 255
            upload = np.asarray(sub.variables[f"{scene.name[:19]}_{chart}"][:])
            assert (upload != 255).all()  # the upload file: a class at every pixel
            np.testing.assert_array_equal(upload[scene.valid], ds[chart].values[scene.valid])
        assert ds.attrs["checkpoint_step"] == 2
        pred = {"ice_logit": ds["ice_logit"].values}
    maps = binary_maps(scene, pred)
    plain = inference.write_quicklook(str(tmp_path / "plain.png"), scene, maps)
    with_fb = inference.write_quicklook(str(tmp_path / "fb.png"), scene, maps,
                                        freeboard=np.full(scene.shape, 0.25, np.float32))
    w_plain, w_fb = matplotlib.image.imread(plain).shape[1], matplotlib.image.imread(with_fb).shape[1]
    assert w_fb > w_plain * 1.15  # one more panel
