"""bf16 compute with fp32 parameters (model.dtype = "bfloat16") on every path: the tap-GEMM kernel
gradient, the fused upsampled conv, the plain (accelerator) forms, BatchNorm folding in eval mode.

Tolerances. One bf16 rounding is a relative error of at most 2^-9 (0.2 %). A linear op (conv,
upsampled conv) whose inputs are already bf16 numbers must agree with fp32 to 1 % (relative L2),
values and gradients. Behind a ReLU, a pre-activation that bf16 rounds across zero flips the mask,
and a kernel gradient is a sum of random-sign terms (size ~sqrt(N)) to which each flip adds O(1):
a single conv -> norm -> ReLU layer's kernel gradient differs by 4-10 % (measured) with correct
code, so layers are checked to 1 % in value and by gradient direction (cosine >= 0.99, relative
error < 15 % per leaf). Through a whole network: outputs to 6 % of their largest magnitude, the
gradient by its direction (cosine >= 0.95); per-leaf errors of 5-30 % are normal in these tiny
random nets (the plain flax ConvTranspose path shows the same) and are not asserted.
"""

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
PLAIN_ENV = {platforms.env_name(name): "" for name in platforms.DEFAULT_PLATFORMS}
PATHS = ["cpu_forms", "plain_forms"]


def random(shape, seed, dtype=jnp.float32):
    """Normal numbers that bf16 represents exactly (so fp32 and bf16 runs see the same inputs)."""
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32).astype(jnp.bfloat16).astype(dtype)


def rel_l2(actual, expected):
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Every CPU form on at every size (cpu_forms), or the plain forms the accelerators use."""
    monkeypatch.setattr(conv, "GEMM_MIN_OUT_FEATURES", 1)
    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    for name, value in PLAIN_ENV.items():
        if request.param == "plain_forms":
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    return request.param


def test_conv_hook_bf16(path):
    x, w = random((2, 9, 8, 8), 0), random((3, 3, 8, 32), 1) * 0.2
    g = random((2, 9, 8, 32), 2)

    def value_and_grads(x, w):
        y, vjp = jax.vjp(lambda x, w: conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC), x, w)
        return (y, *vjp(g.astype(y.dtype)))

    low = jax.jit(value_and_grads)(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    high = jax.jit(value_and_grads)(x, w)
    for name, a, b in zip(("y", "dx", "dw"), low, high, strict=True):
        assert a.dtype == jnp.bfloat16, name
        assert rel_l2(a, b) < 1e-2, (name, rel_l2(a, b))


@pytest.mark.parametrize("out", [(12, 10), (13, 11)])
def test_upsampled_conv_bf16(path, out):
    """conv3x3(pad(upsample(low))): fused on CPU (`upsampled_conv3x3`), dense matrices + conv else."""
    low, kernel = random((2, 6, 5, 8), 10), random((3, 3, 8, 16), 11) * 0.2
    g = random((2, *out, 16), 12)
    layer = aspp.ConvNormReLU(8, 16, norm="none", rngs=nnx.Rngs(0))

    def value_and_grads(low, kernel):
        y, vjp = jax.vjp(lambda low, kernel: layer._conv([Upsampled(low, *out)], kernel), low, kernel)
        return (y, *vjp(g.astype(y.dtype)))

    results = [jax.jit(value_and_grads)(low.astype(dtype), kernel.astype(dtype))
               for dtype in (jnp.bfloat16, jnp.float32)]
    for name, a, b in zip(("y", "d_low", "d_kernel"), *results, strict=True):
        assert a.dtype == jnp.bfloat16, name
        assert rel_l2(a, b) < 1e-2, (name, rel_l2(a, b))


def cosine(a, b):
    a = np.concatenate([np.ravel(np.asarray(x, np.float32)) for x in jax.tree.leaves(a)])
    b = np.concatenate([np.ravel(np.asarray(x, np.float32)) for x in jax.tree.leaves(b)])
    assert np.isfinite(a).all()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _layer_value_and_grads(layer, parts_fn, weights):
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

    def loss(params, rest, *arrays):
        y = nnx.merge(graphdef, params, rest, copy=True)(parts_fn(*arrays))
        return jnp.sum(y.astype(jnp.float32) * weights), y

    return jax.jit(jax.value_and_grad(loss, has_aux=True)), params, rest


@pytest.mark.parametrize("norm, train", [("none", True), ("batch", True), ("batch", False)])
def test_decoder_layer_bf16(path, norm, train):
    """The (upsampled, skip) conv -> norm -> ReLU: fused on CPU, dense + plain conv otherwise;
    eval mode with BatchNorm folds it into the kernel (running statistics randomised)."""
    low, skip = random((2, 6, 5, 4), 3), random((2, 13, 11, 3), 4)
    weights = random((2, 13, 11, 6), 5)
    results = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        layer = aspp.ConvNormReLU(7, 6, norm=norm, dtype=dtype, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
        if norm == "batch":
            layer.norm.mean[...] = random((6,), 6) * 0.3
            layer.norm.var[...] = jnp.exp(random((6,), 7) * 0.3)
        layer.train() if train else layer.eval()
        fn, params, rest = _layer_value_and_grads(layer, lambda low, skip: [Upsampled(low, 13, 11), skip], weights)
        results[dtype] = fn(params, rest, low, skip)
    ((_, y16), g16), ((_, y32), g32) = results[jnp.bfloat16], results[jnp.float32]
    assert y16.dtype == jnp.bfloat16
    assert rel_l2(y16, y32) < 1e-2
    assert cosine(g16, g32) >= 0.99
    for (key, a), b in zip(jax.tree_util.tree_flatten_with_path(g16)[0], jax.tree.leaves(g32), strict=True):
        assert a.dtype == jnp.float32, jax.tree_util.keystr(key)  # fp32 master weights, fp32 gradients
        assert rel_l2(a, b) < 0.15, (jax.tree_util.keystr(key), rel_l2(a, b))


def test_bias_gradients_are_summed_in_fp32():
    """d(sum of a head's logits)/d(its bias) is the pixel count exactly; a bf16 accumulation stalls
    at 256 (256 + 1 rounds back to 256 in bf16)."""
    model = build_model(model_config("bfloat16", norm="none"), in_channels=3, rngs=nnx.Rngs(0))
    x = random((2, 16, 24, 3), 8)
    graphdef, params = nnx.split(model, nnx.Param)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x)["ice"])))(params)
    np.testing.assert_array_equal(grads["heads"]["ice"]["bias"][...], [2 * 16 * 24])


def model_config(dtype, **overrides):
    cfg = dict(filters=[4, 8], convs_per_block=1, norm="batch", upsample="bilinear", aspp_rates=[1], aspp_channels=0,
               aspp_pool_window=3, heads=dict(ice=True, sic="regression", sod=True, floe=False), dtype=dtype)
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)


@pytest.mark.parametrize("train", [True])  # eval mode: the decoder-layer tests (norm none / batch)
def test_unet_bf16_matches_fp32(path, train):
    x = random((2, 24, 16, 3), 9)
    results = {}
    for dtype in ("float32", "bfloat16"):
        model = build_model(model_config(dtype), in_channels=3, rngs=nnx.Rngs(0))
        model.train() if train else model.eval()
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))

        def loss(params, rest, graphdef=graphdef):
            model = nnx.merge(graphdef, params, rest, copy=True)
            out = model(x)
            total = sum(jnp.sum(v * random(v.shape, 30 + i)) for i, v in enumerate(out.values()))
            return total, (out, nnx.state(model, nnx.BatchStat))

        results[dtype] = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rest)
    ((_, (out16, stats16)), g16), ((_, (out32, _)), g32) = results["bfloat16"], results["float32"]
    for name in out32:
        assert out16[name].dtype == jnp.float32
        error = np.abs(np.asarray(out16[name]) - np.asarray(out32[name])).max()
        assert error <= 0.06 * np.abs(np.asarray(out32[name])).max(), name
    assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(stats16))  # running statistics stay fp32
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(g16))
    assert cosine(g16, g32) >= 0.95
