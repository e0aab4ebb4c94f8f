"""Per-platform formulations (seaice_jax/platforms.py): which branch each platform lowers to, and the
CPU-specific forms equal the plain ones in float32 (forward and gradients)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from seaice_jax import platforms
from seaice_jax.models import aspp, build_model, conv, upsample
from seaice_jax.models.upsample import Upsampled

NHWC = ("NHWC", "HWIO", "NHWC")
GEMM_ENV = platforms.env_name("tap_gemm_kernel_grad")
UPSAMPLE_ENV = platforms.env_name("fused_upsampling")


def random(shape, seed):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def op_counts(traced, platform):
    """Counts of the StableHLO ops that tell the formulations apart, lowered for `platform`
    (no device of that platform is needed to lower)."""
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    return {op: text.count(f"stablehlo.{op}") for op in ("convolution", "dot_general", "gather", "scatter")}


@pytest.fixture
def default_switches(monkeypatch):
    monkeypatch.delenv(GEMM_ENV, raising=False)
    monkeypatch.delenv(UPSAMPLE_ENV, raising=False)


def test_switches(default_switches, monkeypatch):
    assert platforms.platforms_for("tap_gemm_kernel_grad") == ("cpu",)
    assert platforms.platforms_for("fused_upsampling") == ("cpu",)
    monkeypatch.setenv(GEMM_ENV, "cpu, CUDA")
    assert platforms.platforms_for("tap_gemm_kernel_grad") == ("cpu", "cuda")
    monkeypatch.setenv(GEMM_ENV, "")
    assert platforms.platforms_for("tap_gemm_kernel_grad") == ()
    monkeypatch.setenv(GEMM_ENV, "gpu")
    with pytest.raises(ValueError, match="gpu"):
        platforms.platforms_for("tap_gemm_kernel_grad")
    with pytest.raises(KeyError):
        platforms.platforms_for("nonsense")


def _conv_grad(fn):
    x, w = random((2, 9, 8, 4), 0), random((3, 3, 4, 32), 1)

    def loss(x, w):
        return jnp.sum(fn(x, w, (1, 1), "SAME", dimension_numbers=NHWC) ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).trace(x, w)


def test_conv_kernel_gradient_per_platform(default_switches, monkeypatch):
    """CPU: forward and input gradient are convolutions, the kernel gradient 9 tap GEMMs. CUDA, ROCm
    and TPU: XLA's three convolutions and nothing else, the same ops as lax's own gradient."""
    plain = {"convolution": 3, "dot_general": 0, "gather": 0, "scatter": 0}
    assert op_counts(_conv_grad(conv.conv_general_dilated), "cpu") == dict(plain, convolution=2, dot_general=9)
    for platform in ("cuda", "rocm", "tpu"):
        assert op_counts(_conv_grad(conv.conv_general_dilated), platform) == plain
        assert op_counts(_conv_grad(jax.lax.conv_general_dilated), platform) == plain
    monkeypatch.setenv(GEMM_ENV, "cpu,cuda")  # once measured faster on a GPU
    assert op_counts(_conv_grad(conv.conv_general_dilated), "cuda")["dot_general"] == 9
    monkeypatch.setenv(GEMM_ENV, "")
    assert op_counts(_conv_grad(conv.conv_general_dilated), "cpu") == plain


def _decoder_layer_grad(layer, low, skip, out):
    graphdef, params = nnx.split(layer, nnx.Param)
    weights = random((low.shape[0], *out, 6), 9)

    def loss(params, low, skip):
        y = nnx.merge(graphdef, params)([Upsampled(low, *out), skip])
        return jnp.sum(y * weights)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def test_decoder_conv_per_platform(default_switches, monkeypatch):
    """A decoder's (upsampled, skip) conv: on CPU the fused form (gathers, the 3x3 conv at low
    resolution), elsewhere the dense interpolation matmuls and one plain conv, with no gather or
    scatter in forward or backward."""
    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    layer = aspp.ConvNormReLU(7, 6, norm="none", rngs=nnx.Rngs(0))
    low, skip = random((2, 6, 5, 4), 1), random((2, 13, 11, 3), 2)
    traced = _decoder_layer_grad(layer, low, skip, (13, 11)).trace(nnx.split(layer, nnx.Param)[1], low, skip)
    cpu = op_counts(traced, "cpu")
    assert cpu["gather"] > 0 and cpu["scatter"] == 0
    for platform in ("cuda", "tpu"):
        # 1 forward conv + 2 gradient convs; 2 interpolation matmuls forward + 2 for the low-res gradient
        assert op_counts(traced, platform) == {"convolution": 3, "dot_general": 4, "gather": 0, "scatter": 0}
    monkeypatch.setenv(UPSAMPLE_ENV, "")
    assert op_counts(_decoder_layer_grad(layer, low, skip, (13, 11)).trace(
        nnx.split(layer, nnx.Param)[1], low, skip), "cpu")["gather"] == 0


@pytest.mark.parametrize("low, out", [((6, 5), (12, 10)), ((6, 5), (13, 11)), ((1, 3), (3, 7))])
def test_upsampling_formulations_agree(low, out):
    """Gathers and dense matrices, both equal to jax.image.scale_and_translate set up for align
    corners (output j samples input j (n - 1) / (2n - 1)), then zero-padded."""
    x = random((2, *low, 3), 3)
    gathers = Upsampled(x, *out).by_gathers()
    dense = jax.jit(lambda x: Upsampled(x, *out).by_dense_matrices())(x)
    assert gathers.shape == dense.shape == (2, *out, 3)
    np.testing.assert_allclose(dense, gathers, rtol=1e-6, atol=1e-6)
    if min(low) > 1:
        scale = jnp.array([(2 * n - 1) / (n - 1) for n in low])
        reference = jax.image.scale_and_translate(x, (2, 2 * low[0], 2 * low[1], 3), (1, 2), scale, 0.5 - 0.5 * scale,
                                                  "linear", antialias=False)
        np.testing.assert_allclose(upsample.pad_to_match(reference, *out), dense, rtol=1e-6, atol=1e-6)


def test_decoder_conv_fused_equals_plain_in_fp32(default_switches, monkeypatch):
    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    layer = aspp.ConvNormReLU(7, 6, norm="none", rngs=nnx.Rngs(0))
    low, skip = random((2, 6, 5, 4), 1), random((2, 13, 11, 3), 2)
    params = nnx.split(layer, nnx.Param)[1]
    fused = _decoder_layer_grad(layer, low, skip, (13, 11))(params, low, skip)
    monkeypatch.setenv(UPSAMPLE_ENV, "")
    plain = _decoder_layer_grad(layer, low, skip, (13, 11))(params, low, skip)
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(np.asarray(b)).max())


def tiny_config(dtype="float32"):
    return ml_collections.ConfigDict(dict(
        filters=[4, 8], convs_per_block=1, norm="batch", upsample="bilinear", aspp_rates=[], aspp_channels=0,
        aspp_pool_window=0, heads=dict(ice=True, sic="none", sod=True, floe=False), dtype=dtype,
    ))


def loss_and_grads(model, x, train):
    """((loss, outputs), parameter gradients) in train (batch statistics) or eval mode (BatchNorm
    folded). Traced afresh: the switches are read at trace time."""
    model.train() if train else model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, rest):
        out = nnx.merge(graphdef, params, rest, copy=True)(x)
        total = sum(jnp.sum(v * random(v.shape, 20 + i)) for i, v in enumerate(out.values()))
        return total, out

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rest)


@pytest.mark.parametrize("train", [True, False])
def test_unet_cpu_forms_equal_plain_forms_in_fp32(default_switches, monkeypatch, train):
    """The whole U-Net, every CPU form switched on at every layer (GEMM kernel gradient for any
    width, fused upsampled conv at every level): the same outputs and parameter gradients as with
    the plain forms, to float32 rounding."""
    monkeypatch.setattr(conv, "GEMM_MIN_OUT_FEATURES", 1)
    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    model = build_model(tiny_config(), in_channels=3, rngs=nnx.Rngs(0))
    x = random((2, 20, 16, 3), 4)
    (loss_cpu, out_cpu), grads_cpu = loss_and_grads(model, x, train)
    monkeypatch.setenv(GEMM_ENV, "")
    monkeypatch.setenv(UPSAMPLE_ENV, "")
    (loss_plain, out_plain), grads_plain = loss_and_grads(model, x, train)
    np.testing.assert_allclose(loss_cpu, loss_plain, rtol=1e-5)
    for name in out_plain:
        scale = np.abs(np.asarray(out_plain[name])).max()
        np.testing.assert_allclose(out_cpu[name], out_plain[name], rtol=1e-5, atol=1e-5 * scale, err_msg=name)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(grads_cpu)[0], jax.tree.leaves(grads_plain),
                            strict=True):
        scale = np.abs(np.asarray(b)).max()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale, err_msg=jax.tree_util.keystr(path))


def test_platform_choice_under_a_data_parallel_mesh(default_switches, monkeypatch):
    """The train step is jitted over a batch-sharded mesh: the platform conditionals partition like
    any op (same loss and gradients as on one device)."""
    monkeypatch.setattr(conv, "GEMM_MIN_OUT_FEATURES", 1)
    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    devices = jax.devices()[:2]
    if len(devices) < 2:
        pytest.skip("needs 2 devices")
    mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)
    model = build_model(tiny_config(), in_channels=3, rngs=nnx.Rngs(0))
    x = random((2, 20, 16, 3), 4)
    (loss_one, _), grads_one = loss_and_grads(model, x, True)
    x = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    (loss_mesh, _), grads_mesh = loss_and_grads(model, x, True)
    np.testing.assert_allclose(loss_mesh, loss_one, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_mesh), jax.tree.leaves(grads_one), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(np.asarray(b)).max())


def test_unet_train_step_on_accelerators_has_no_cpu_forms(default_switches):
    """The whole model's loss and gradients lowered for GPU / TPU: no gather or scatter anywhere
    (the upsampling is matmuls); for CPU the gathers are there."""
    model = build_model(tiny_config(), in_channels=3, rngs=nnx.Rngs(0))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = random((2, 20, 16, 3), 4)

    def loss(params, rest):
        out = nnx.merge(graphdef, params, rest, copy=True)(x)
        return sum(jnp.sum(v) for v in out.values())

    traced = jax.jit(jax.grad(loss)).trace(params, rest)
    assert op_counts(traced, "cpu")["gather"] > 0
    for platform in ("cuda", "tpu"):
        counts = op_counts(traced, platform)
        assert counts["gather"] == counts["scatter"] == 0, (platform, counts)


def test_large_scene_scaling_is_row_blocked_on_cpu_only(monkeypatch):
    """ALS, the blur and the quantiles of a large scene lower to loops over row blocks on CPU and to
    whole-array passes (no loop) for the accelerators."""
    from seaice_jax import scaling

    monkeypatch.delenv(platforms.env_name("row_blocked_scaling"), raising=False)
    x = jax.ShapeDtypeStruct((1024, 1024), jnp.float32)
    valid = jax.ShapeDtypeStruct((1024, 1024), bool)
    traced = [jax.jit(lambda a, v: scaling.analytical_logit_scaling(a, v)).trace(x, valid),
              jax.jit(scaling.gaussian_blur).trace(x),
              jax.jit(lambda a, v: scaling.masked_quantiles(a, v, (0.02, 0.98))).trace(x, valid)]
    for t in traced:
        assert "stablehlo.while" in t.lower(lowering_platforms=("cpu",)).as_text()
        for platform in ("cuda", "rocm", "tpu"):
            assert "stablehlo.while" not in t.lower(lowering_platforms=(platform,)).as_text(), platform
