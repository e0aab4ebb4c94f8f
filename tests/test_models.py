"""U-Net / ASPP: shapes, the baseline's parameter count, align-corners upsampling, ASPP locality."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from seaice_jax.models import ASPP, UNet, build_model
from seaice_jax.models.aspp import local_mean_pool
from seaice_jax.models.upsample import upsample_bilinear_x2


def model_config(**overrides) -> ml_collections.ConfigDict:
    cfg = dict(
        filters=[4, 8, 8], convs_per_block=2, norm="batch", upsample="bilinear",
        aspp_rates=[], aspp_channels=0, aspp_pool_window=0,
        heads=dict(ice=True, sic="classification", sod=True, floe=True), dtype="float32",
    )
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)


def random_input(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def run(model, x, **kwargs):
    """model(x, **kwargs) compiled as one program: eager dispatch compiles every primitive of the
    U-Net separately for each new shape, several seconds per test."""
    return nnx.jit(lambda m, x: m(x, **kwargs))(model, x)


@pytest.mark.parametrize(
    "heads, expected",
    [
        (dict(ice=True, sic="none", sod=False, floe=False), {"ice": (2, 32, 24)}),
        (
            dict(ice=True, sic="regression", sod=True, floe=True),
            {"ice": (2, 32, 24), "SIC": (2, 32, 24), "SOD": (2, 32, 24, 6), "FLOE": (2, 32, 24, 7)},
        ),
        (dict(ice=False, sic="classification", sod=True, floe=False), {"SIC": (2, 32, 24, 11), "SOD": (2, 32, 24, 6)}),
    ],
)
def test_head_shapes_and_dtypes(heads, expected):
    model = build_model(model_config(heads=heads), in_channels=3, rngs=nnx.Rngs(0))
    outputs = run(model, random_input((2, 32, 24, 3)))
    assert {name: out.shape for name, out in outputs.items()} == expected
    assert all(out.dtype == jnp.float32 for out in outputs.values())


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(upsample="transpose", norm="group"),
        dict(norm="none", aspp_rates=[1, 2], aspp_channels=6, aspp_pool_window=3),
        dict(filters=[4, 4, 8, 8], aspp_rates=[1], aspp_pool_window=0),
    ],
)
def test_odd_input_size_works(overrides):
    model = build_model(model_config(**overrides), in_channels=2, rngs=nnx.Rngs(0))
    outputs = run(model, random_input((1, 60, 52, 2)))
    assert outputs["ice"].shape == (1, 60, 52)
    assert outputs["FLOE"].shape == (1, 60, 52, 7)
    assert all(np.all(np.isfinite(out)) for out in outputs.values())


def test_input_smaller_than_depth_is_refused():
    model = build_model(model_config(), in_channels=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="smaller than 8"):
        model(random_input((1, 6, 16, 2)))


def count_params(model) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_baseline_parameter_count():
    model = nnx.eval_shape(lambda: UNet(24, heads={"SIC": 12, "SOD": 7, "FLOE": 8}, rngs=nnx.Rngs(0)))

    def double_conv(n_in, n_out):  # two bias-free 3x3 convs + two BatchNorms (scale, bias)
        return 9 * n_in * n_out + 9 * n_out * n_out + 4 * n_out

    expected = (
        double_conv(24, 16) + double_conv(16, 32) + double_conv(32, 64) + double_conv(64, 64)  # encoder
        + double_conv(64, 64)  # bridge
        + double_conv(128, 64) + double_conv(128, 64) + double_conv(96, 32) + double_conv(48, 16)  # decoder
        + (16 + 1) * (12 + 7 + 8)  # 1x1 heads with bias
    )
    assert count_params(model) == expected == 491_723
    assert abs(count_params(model) - 0.49e6) / 0.49e6 < 0.02  # the PyTorch baseline's ~0.49 M


def reference_align_corners_x2(image: np.ndarray) -> np.ndarray:
    """Direct per-pixel bilinear interpolation with align_corners=True (PyTorch semantics)."""
    h, w = image.shape[:2]
    out = np.zeros((2 * h, 2 * w) + image.shape[2:], np.float64)
    for i in range(2 * h):
        y = i * (h - 1) / (2 * h - 1) if h > 1 else 0.0
        y0 = int(math.floor(y))
        y1 = min(y0 + 1, h - 1)
        wy = y - y0
        for j in range(2 * w):
            x = j * (w - 1) / (2 * w - 1) if w > 1 else 0.0
            x0 = int(math.floor(x))
            x1 = min(x0 + 1, w - 1)
            wx = x - x0
            out[i, j] = ((1 - wy) * (1 - wx) * image[y0, x0] + (1 - wy) * wx * image[y0, x1]
                         + wy * (1 - wx) * image[y1, x0] + wy * wx * image[y1, x1])
    return out


@pytest.mark.parametrize("shape", [(3, 5, 2), (1, 4, 1), (4, 4, 3)])
def test_align_corners_upsample_matches_numpy(shape):
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    upsampled = np.asarray(upsample_bilinear_x2(jnp.asarray(image)[None]))[0]
    np.testing.assert_allclose(upsampled, reference_align_corners_x2(image), rtol=1e-5, atol=1e-6)
    for corner_out, corner_in in [((0, 0), (0, 0)), ((0, -1), (0, -1)), ((-1, 0), (-1, 0)), ((-1, -1), (-1, -1))]:
        np.testing.assert_array_equal(upsampled[corner_out], image[corner_in])  # exact


def reference_local_mean(image: np.ndarray, window: int) -> np.ndarray:
    """Mean over the in-image pixels of a SAME window (pad (window-1)//2 before)."""
    h, w = image.shape[:2]
    before = (window - 1) // 2
    out = np.zeros_like(image, np.float64)
    for i in range(h):
        for j in range(w):
            rows = slice(max(i - before, 0), min(i - before + window, h))
            cols = slice(max(j - before, 0), min(j - before + window, w))
            out[i, j] = image[rows, cols].mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("window", [3, 4, 9])
def test_local_mean_pool_matches_numpy(window):
    image = np.random.default_rng(1).normal(size=(7, 6, 2)).astype(np.float32)
    pooled = np.asarray(local_mean_pool(jnp.asarray(image)[None], window))[0]
    np.testing.assert_allclose(pooled, reference_local_mean(image, window), rtol=1e-5, atol=1e-6)


def test_aspp_local_pooling_any_size():
    aspp = ASPP(5, 6, rates=(1, 2), pool_window=4, rngs=nnx.Rngs(0))
    assert aspp(random_input((2, 12, 10, 5))).shape == (2, 12, 10, 6)
    assert aspp(random_input((2, 7, 9, 5))).shape == (2, 7, 9, 6)


def shifted_crops(shift=(4, 2), size=16, channels=5):
    """Two crops of one larger map, B offset from A by `shift`."""
    big = random_input((1, size + 8, size + 8, channels), seed=3)
    dy, dx = shift
    return big[:, :size, :size], big[:, dy:dy + size, dx:dx + size]


def test_aspp_local_pooling_is_translation_consistent():
    """What this checks: with a local pool, ASPP (eval mode, so every op is pointwise or local)
    applied to a crop shifted by (dy, dx) gives, at every position whose receptive field (the
    largest dilation or the pool radius, here 2) stays inside both crops, exactly the output of
    the unshifted crop at the shifted position. With global pooling the image branch depends on
    the crop, so the same comparison fails (checked as a control)."""
    crop_a, crop_b = shifted_crops()
    margin = 2
    for pool_window, consistent in [(3, True), (5, True), (0, False)]:
        aspp = ASPP(5, 6, rates=(1, 2), pool_window=pool_window, rngs=nnx.Rngs(0))
        aspp.eval()
        for fn in (aspp.image_branch, aspp):
            out_a, out_b = np.asarray(fn(crop_a)), np.asarray(fn(crop_b))
            # B's (i, j) is A's (i + 4, j + 2); interior: i in [2, 10), j in [2, 12).
            region_b = out_b[:, margin:16 - 4 - margin, margin:16 - 2 - margin]
            region_a = out_a[:, 4 + margin:16 - margin, 2 + margin:16 - margin]
            if consistent:
                np.testing.assert_allclose(region_a, region_b, rtol=1e-5, atol=1e-5)
            else:
                assert not np.allclose(region_a, region_b, atol=1e-5)


def test_bf16_compute_close_to_fp32():
    settings = dict(filters=[4, 8], aspp_rates=[1, 2], aspp_pool_window=3)
    model32 = build_model(model_config(**settings), in_channels=3, rngs=nnx.Rngs(0))
    model16 = build_model(model_config(**settings, dtype="bfloat16"), in_channels=3, rngs=nnx.Rngs(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(model16, nnx.Param)))
    model32.eval()
    model16.eval()
    x = random_input((2, 16, 16, 3))
    out32, out16 = run(model32, x), run(model16, x)
    for name in out32:
        assert out16[name].dtype == jnp.float32
        scale = float(np.abs(out32[name]).max())
        error = float(np.abs(out32[name] - out16[name]).max())
        assert 0.0 < error < 0.05 * scale  # bf16 really used, yet close


def test_batchnorm_train_and_eval_modes():
    model = build_model(model_config(), in_channels=3, rngs=nnx.Rngs(0))
    x = random_input((2, 16, 16, 3)) * 3.0 + 1.0
    first_norm = model.encoder_blocks[0].layers[0].norm
    assert np.all(np.asarray(first_norm.mean[...]) == 0.0)
    forward = nnx.jit(lambda m, x: m(x)["ice"])  # retraces on a mode switch (static module attributes)
    model.train()
    train_out = forward(model, x)
    assert np.any(np.asarray(first_norm.mean[...]) != 0.0)  # running stats updated in train mode
    model.eval()
    eval_out = forward(model, x)
    np.testing.assert_array_equal(eval_out, forward(model, x))  # deterministic
    assert not np.allclose(train_out, eval_out, atol=1e-3)
    # Eval mode normalises with running stats: one image gives the same result alone or in a batch.
    np.testing.assert_allclose(forward(model, x[:1]), eval_out[:1], rtol=1e-5, atol=1e-5)


def test_features_and_offsets_for_grad_cam():
    model = build_model(model_config(filters=[4, 8], aspp_rates=[1]), in_channels=3, rngs=nnx.Rngs(0))
    model.eval()
    x = random_input((1, 16, 16, 3))
    assert model.feature_layers() == ("encoder_0", "encoder_1", "bridge", "aspp", "decoder_0", "decoder_1")
    outputs = run(model, x, return_features=("bridge", "decoder_1"))
    assert outputs["features/bridge"].shape == (1, 4, 4, 8)
    assert outputs["features/decoder_1"].shape == (1, 16, 16, 4)
    zeros = jnp.zeros_like(outputs["features/bridge"])
    np.testing.assert_array_equal(run(model, x, feature_offsets={"bridge": zeros})["ice"], outputs["ice"])

    def score(offset):
        return model(x, feature_offsets={"bridge": offset})["SOD"][0, 8, 8, 2]

    grad = nnx.jit(jax.grad(score))(zeros)
    assert grad.shape == zeros.shape and np.all(np.isfinite(grad)) and np.any(grad != 0.0)
    with pytest.raises(ValueError, match="unknown feature"):
        model(x, return_features=("nope",))


def test_jitted_training_gradient_is_finite():
    cfg = model_config(filters=[4, 8], aspp_rates=[1, 2], aspp_pool_window=3)
    model = build_model(cfg, in_channels=3, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def loss_fn(params, rest, x):
        m = nnx.merge(graphdef, params, rest)
        return sum(jnp.mean(out ** 2) for out in m(x).values())  # every head

    grads = jax.grad(loss_fn)(params, rest, random_input((2, 14, 10, 3)))
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert sum(float(np.abs(leaf).sum()) > 0 for leaf in leaves) == len(leaves)  # every param learns


def test_conv_kernel_init_is_he_normal():
    from seaice_jax.models.aspp import conv_kernel_init

    kernel = np.asarray(conv_kernel_init(2.0)(jax.random.key(0), (3, 3, 64, 64)))
    assert kernel.shape == (3, 3, 64, 64)
    assert abs(kernel.mean()) < 0.01 * kernel.std()
    assert kernel.std() == pytest.approx(math.sqrt(2.0 / (3 * 3 * 64)), rel=0.02)
    small = np.asarray(conv_kernel_init(1.0)(jax.random.key(1), (1, 1, 4, 3)))
    assert small.shape == (1, 1, 4, 3) and len(np.unique(small)) == 12


def _randomise_batch_stats(model, seed=1):
    """Non-trivial running statistics, so folding BatchNorm has something to fold."""
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.BatchNorm):
            n = module.mean[...].shape[0]
            module.mean[...] = jnp.asarray(rng.normal(size=n), jnp.float32)
            module.var[...] = jnp.asarray(rng.uniform(0.2, 3.0, size=n), jnp.float32)
            module.scale[...] = jnp.asarray(rng.uniform(0.5, 2.0, size=n), jnp.float32)
            module.bias[...] = jnp.asarray(rng.normal(size=n), jnp.float32)


def _jitted(model, **kwargs):
    """A freshly traced jitted forward (module flags are read at trace time)."""
    graphdef, state = nnx.split(model)
    return jax.jit(lambda state, x: nnx.merge(graphdef, state)(x, **kwargs)), state


def test_eval_forward_equals_the_unfused_layers(monkeypatch):
    """Inference folds BatchNorm into the conv, convolves a decoder's (upsampled, skip) pair without
    concatenating it, convolves the upsampled map at low resolution (upsampled_conv3x3), and runs all
    heads as one product; each must equal its plain formulation: conv -> BatchNorm(running stats) ->
    ReLU, conv of the materialised concatenation, one nnx.Conv per head."""
    from seaice_jax.models import aspp, upsample

    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)  # fuse at every decoder level of the small net
    model = build_model(model_config(aspp_rates=[1, 2]), in_channels=5, rngs=nnx.Rngs(0))
    _randomise_batch_stats(model)
    model.eval()
    x = random_input((2, 24, 16, 5))
    forward, state = _jitted(model, return_features=("decoder_2",))
    fast = forward(state, x)
    monkeypatch.setattr(aspp, "FOLD_BATCHNORM", False)
    monkeypatch.setattr(upsample, "FUSE_UPSAMPLED_CONV", False)
    forward, state = _jitted(model, return_features=("decoder_2",))
    plain = forward(state, x)
    for name in ("ice", "SIC", "SOD", "FLOE", "features/decoder_2"):
        np.testing.assert_allclose(fast[name], plain[name], rtol=2e-5, atol=2e-5, err_msg=name)
    # By hand for one layer: conv -> (x - mean) / sqrt(var + eps) * scale + bias -> ReLU.
    layer = model.encoder_blocks[0].layers[0]
    norm = layer.norm
    conv = jax.lax.conv_general_dilated(x, layer.conv.kernel[...], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    expected = jax.nn.relu((conv - norm.mean[...]) / jnp.sqrt(norm.var[...] + norm.epsilon) * norm.scale[...]
                           + norm.bias[...])
    monkeypatch.setattr(aspp, "FOLD_BATCHNORM", True)
    np.testing.assert_allclose(layer(x), expected, rtol=2e-5, atol=2e-5)
    # Heads: the stacked product equals each head's own 1x1 conv on the last decoder features.
    h = fast["features/decoder_2"]
    for name, head in model.heads.items():
        own = head(h)
        np.testing.assert_allclose(fast[name], own[..., 0] if own.shape[-1] == 1 else own, rtol=1e-5, atol=1e-5)


def test_fused_decoder_conv_gradients_equal_concatenated(monkeypatch):
    """Training goes through the fused (upsampled, skip) conv too: the same loss and parameter
    gradients as the conv of the materialised concatenation."""
    from seaice_jax.models import aspp, upsample
    from seaice_jax.models.upsample import Upsampled

    monkeypatch.setattr(upsample, "FUSE_MIN_PIXELS", 0)
    layer = aspp.ConvNormReLU(7, 6, norm="none", rngs=nnx.Rngs(0))
    low, skip = random_input((2, 6, 5, 4), seed=1), random_input((2, 13, 11, 3), seed=2)
    graphdef, params = nnx.split(layer, nnx.Param)

    def loss(params, low, skip, fuse):
        monkeypatch.setattr(upsample, "FUSE_UPSAMPLED_CONV", fuse)
        return jnp.sum(nnx.merge(graphdef, params)([Upsampled(low, 13, 11), skip]) ** 2)

    fused = jax.jit(jax.value_and_grad(loss), static_argnums=3)(params, low, skip, True)
    whole = jax.jit(jax.value_and_grad(loss), static_argnums=3)(params, low, skip, False)
    np.testing.assert_allclose(fused[0], whole[0], rtol=1e-5)
    for g1, g2 in zip(jax.tree.leaves(fused[1]), jax.tree.leaves(whole[1]), strict=True):
        np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("low, out", [((6, 5), (13, 11))])
def test_upsampled_conv_equals_conv_of_the_upsampled_map(low, out):
    """conv3x3(pad(upsample(x))) computed at low resolution, odd target sizes (the decoder pads) and
    a 1-pixel map included: values and both gradients equal the materialised form."""
    from seaice_jax.models.upsample import Upsampled, upsampled_conv3x3

    x = random_input((2, *low, 3), seed=3)
    kernel = random_input((3, 3, 3, 4), seed=4)
    weights = random_input((2, *out, 4), seed=5)

    def materialised(x, kernel):
        up = Upsampled(x, *out).materialize()
        assert up.shape == (2, *out, 3)
        return jax.lax.conv_general_dilated(up, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def fused(x, kernel):
        return upsampled_conv3x3(Upsampled(x, *out), kernel)

    results = []
    for f in (fused, materialised):
        value_and_grads = jax.jit(lambda a, k, f=f: (f(a, k), jax.grad(lambda a, k: jnp.sum(f(a, k) * weights),
                                                                        argnums=(0, 1))(a, k)))
        results.append(value_and_grads(x, kernel))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
