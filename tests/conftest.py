"""Four simulated CPU devices for every test (must be set before JAX is imported), and one persistent
compilation cache for the session, so the many tiny runs that compile the same step (in this process,
in the CLI subprocesses and in pytest-xdist's workers, which all inherit the environment) compile it
once. The cache is set up as the launchers set it up (`runtime.setup`: the project's thresholds,
atomic writes), in a folder of the session's own: the user's cache is never touched.

The suite compiles hundreds of small programs and runs each on a few tiny arrays, so XLA's backend
optimisations cost far more than they save: they run at level 1 of 3
(`--xla_backend_optimization_level=1`: a U-Net's gradient compiles in 15 s instead of 26; level 0
saves more but changed the numerics: the training tests hit a non-finite loss at step 3). The tests
compare programs with each other and with numpy, never against figures measured with the optimised
build; SEAICE_JAX_TEST_OPTIMISED=1 runs them with XLA's defaults. pytest-xdist runs the files on
every core (pyproject's addopts); `-n 0` runs them in one process."""

import atexit
import os
import shutil
import tempfile

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    flags = " --xla_force_host_platform_device_count=4"
    if not os.environ.get("SEAICE_JAX_TEST_OPTIMISED"):
        flags += " --xla_backend_optimization_level=1"
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + flags
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process (pytest's controller): its workers share it
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="seaice_jax_test_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import pytest  # noqa: E402  (after the environment above: JAX must not start before it)

from seaice_jax import runtime  # noqa: E402

runtime.setup(announce=False, cpu_devices=False)

TRAINED_CHANNELS = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v")


def trained_config(shards: str = ""):
    """The tiny model of `trained_workdir`: 3 input channels, filters [4, 8], ice + SIC (classes) +
    SOD + FLOE heads, 2 steps on one device."""
    from tests.test_train import tiny_config

    c = tiny_config(shards, [], num_steps=2, checkpoint_every=2, num_devices=1)
    c.model.heads.sic = "classification"
    c.model.heads.sod = True
    c.model.heads.floe = True
    return c


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
    """One trained workdir (config.json + a checkpoint at step 2) for every test that needs a trained
    model from disk: the inference, Grad-CAM and CLI tests. Training compiles a step, so it runs
    once per session instead of once per test module."""
    from seaice_jax import synthetic
    from seaice_jax.data.shards import PatchSpec, convert_scenes
    from seaice_jax.train import train_and_evaluate

    root = tmp_path_factory.mktemp("trained")
    scenes = synthetic.write_synthetic_scenes(str(root / "scenes"), 1, "rtt", "winter", (64, 64), 1)
    spec = PatchSpec(32, 32, 1, 16, TRAINED_CHANNELS + ("sar_incidenceangle", "distance_map"))
    _, errors = convert_scenes(scenes, str(root / "shards"), spec, progress=False)
    assert not errors
    train_and_evaluate(trained_config(str(root / "shards")), str(root / "work"))
    return str(root / "work")


@pytest.fixture(autouse=True)
def _no_traced_programs_in_process():
    """A launcher's main run in this process turns the traced-program cache on (`trace_cache`); the
    next test may monkeypatch what a traced program holds, so it is off again after every test.
    The launchers' subprocesses keep it (they share the session's cache folder)."""
    yield
    from seaice_jax import trace_cache

    trace_cache.enable(False)
