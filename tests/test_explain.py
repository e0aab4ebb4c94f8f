"""Grad-CAM: hand-derived maps at the last decoder layer, bounds and shape, errors, and the CLI."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from seaice_jax.config import base_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNELS = ["nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v"]


def tiny_model_config():
    c = base_config()
    c.data.channels = list(CHANNELS)
    c.model.filters = [4, 8]
    c.model.heads.sod = True
    return c


@pytest.fixture(scope="module")
def model():
    """A randomly initialised tiny model with non-zero head biases, and one input [40, 48, 3]."""
    from seaice_jax.trained_model import create_model

    fns, params, batch_stats = create_model(tiny_model_config())
    params["heads"]["ice"]["bias"][...] = jnp.array([0.3], jnp.float32)
    params["heads"]["SOD"]["bias"][...] = jnp.linspace(-0.5, 0.5, 6, dtype=jnp.float32)
    x = np.random.default_rng(0).normal(size=(40, 48, len(CHANNELS))).astype(np.float32)
    return fns, params, batch_stats, x


@pytest.mark.parametrize("task,class_index", [("ice", None), ("ice", 0), ("ice", 1), ("SOD", 2)])
def test_last_decoder_layer_map_is_the_rectified_logit_minus_bias(model, task, class_index):
    # The heads are 1x1 convs on decoder_1, so dS/dA_c = W_c / |pixels scored| on the scored pixels and
    # the channel weight (spatial mean) is W_c / P: cam = ReLU(+-(logit - bias)) / P, then / max.
    from seaice_jax.explain import grad_cam

    fns, params, batch_stats, x = model
    out = fns.apply_eval(params, batch_stats, x[None])
    if task == "ice":
        centred = np.asarray(out["ice"][0]) - 0.3
        centred = -centred if class_index == 0 else centred
    else:
        centred = np.asarray(out["SOD"][0, ..., class_index]) - float(params["heads"]["SOD"]["bias"][...][class_index])
    expected = np.maximum(centred, 0.0)
    expected /= expected.max()
    cam = grad_cam(fns, params, batch_stats, x, task, class_index, "decoder_1")
    assert cam.shape == (40, 48)
    np.testing.assert_allclose(cam, expected, atol=1e-5)


def test_coarse_layer_map_is_upsampled_finite_and_in_unit_range(model):
    from seaice_jax.explain import grad_cam

    fns, params, batch_stats, x = model
    valid = np.zeros((40, 48), bool)
    valid[5:30, 10:40] = True
    cam = grad_cam(fns, params, batch_stats, x, "SOD", 4, "bridge", valid=valid)  # bridge is 10 x 12
    assert cam.shape == (40, 48) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() == pytest.approx(1.0)
    assert cam.std() > 1e-3  # not constant
    assert (cam[~valid] == 0).all() and cam[valid].max() == pytest.approx(1.0)  # scaled on valid pixels


def test_unknown_layer_and_bad_class_raise_one_line_errors(model):
    from seaice_jax.explain import grad_cam, list_layers

    fns, params, batch_stats, x = model
    assert list_layers(fns, params, batch_stats) == ("encoder_0", "encoder_1", "bridge", "decoder_0", "decoder_1")
    with pytest.raises(ValueError, match="valid layers: encoder_0, encoder_1, bridge, decoder_0, decoder_1"):
        grad_cam(fns, params, batch_stats, x, "ice", None, "aspp")  # no ASPP in this model
    with pytest.raises(ValueError, match=r"class must be in \[0, 6\)"):
        grad_cam(fns, params, batch_stats, x, "SOD", 6, "bridge")
    with pytest.raises(ValueError, match="no such head"):
        grad_cam(fns, params, batch_stats, x, "FLOE", 1, "bridge")


@pytest.fixture(scope="module")
def workdir_and_scene(trained_workdir, tmp_path_factory):
    """The session's trained tiny model (conftest: same channels, an SOD head among others, two
    steps) and a second scene to explain."""
    from seaice_jax import synthetic

    root = tmp_path_factory.mktemp("explain")
    scene = synthetic.write_synthetic_scenes(str(root / "scene"), 1, "rtt", "winter", (72, 80), 2)[0]
    return trained_workdir, scene


def test_cli_writes_a_png_and_reports_an_unknown_layer(workdir_and_scene, tmp_path):
    import matplotlib.image

    from seaice_jax.explain import explain_scene

    workdir, scene = workdir_and_scene
    out = tmp_path / "cam.png"
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch", "explain.py"), f"--workdir={workdir}", f"--scene={scene}",
         "--task=SOD", "--class=1", "--layer=encoder_1", f"--out={out}"],
        capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert run.returncode == 0, run.stderr[-2000:]
    image = matplotlib.image.imread(str(out))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert image[..., :3].std() > 0.01  # drawn, not blank
    # A window smaller than the scene: the centre crop is what gets explained.
    cam = explain_scene(workdir, scene, str(tmp_path / "crop.png"), task="ice", class_index=None,
                        layer="decoder_1", max_size=48)
    assert cam.shape == (48, 48) and np.isfinite(cam).all() and 0.0 <= cam.min() and cam.max() <= 1.0
    with pytest.raises(ValueError, match="unknown layer 'nope'; valid layers: encoder_0"):
        explain_scene(workdir, scene, str(tmp_path / "x.png"), task="ice", class_index=None, layer="nope")
    assert not (tmp_path / "x.png").exists()
