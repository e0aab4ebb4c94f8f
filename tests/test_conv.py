"""The conv hook (models/conv.py): forward, input and kernel gradients equal lax.conv_general_dilated's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from seaice_jax.models import conv

NHWC = ("NHWC", "HWIO", "NHWC")


def random(shape, seed):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def lax_conv(x, w, padding, dilation):
    return lax.conv_general_dilated(x, w, (1, 1), padding, rhs_dilation=dilation, dimension_numbers=NHWC)


def hook_conv(x, w, padding, dilation):
    return conv.conv_general_dilated(x, w, (1, 1), padding, rhs_dilation=dilation, dimension_numbers=NHWC)


def assert_close(actual, expected, rel=2e-5):
    """float32 agreement, relative to the largest magnitude (sums of ~100 products)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rel, atol=rel * np.abs(expected).max())


def value_and_grads(fn, x, w, g, padding, dilation):
    y, vjp = jax.vjp(lambda x_, w_: fn(x_, w_, padding, dilation), x, w)
    return (y, *vjp(g))


CASES = [
    # (batch, h, w, cin, cout, kernel, dilation, padding)
    (2, 9, 8, 3, 32, 3, 1, "SAME"),  # odd x even size, GEMM kernel gradient (cout >= 32)
    (1, 8, 7, 5, 40, 3, 2, "SAME"),  # dilation 2 (ASPP), GEMM kernel gradient
    (2, 6, 6, 4, 8, 3, 1, "SAME"),  # thin output: XLA's own kernel gradient
    (1, 7, 9, 6, 33, 3, 1, "VALID"),
    (1, 8, 8, 2, 32, 3, 1, ((2, 0), (1, 1))),  # explicit, asymmetric padding
    (2, 5, 7, 3, 32, 1, 1, "SAME"),  # 1x1 conv (ASPP projection, heads)
    (1, 11, 10, 4, 36, 3, 3, "SAME"),
]


@pytest.mark.parametrize("b,h,w,cin,cout,k,d,padding", CASES)
def test_hook_matches_lax_forward_and_gradients(b, h, w, cin, cout, k, d, padding):
    x, kernel = random((b, h, w, cin), 0), random((k, k, cin, cout), 1)
    y_ref = lax_conv(x, kernel, padding, (d, d))
    g = random(y_ref.shape, 2)
    expected = jax.jit(value_and_grads, static_argnums=(0, 4, 5))(lax_conv, x, kernel, g, padding, (d, d))
    actual = jax.jit(value_and_grads, static_argnums=(0, 4, 5))(hook_conv, x, kernel, g, padding, (d, d))
    if padding == "SAME":
        assert actual[0].shape == (b, h, w, cout)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        assert_close(got, want)


@pytest.mark.parametrize("h,w,cout,dilation", [(9, 8, 5, (1, 1)), (8, 11, 3, (2, 2)), (13, 5, 7, (2, 1))])
def test_tap_gemm_kernel_grad_matches_xla(h, w, cout, dilation):
    """The CPU kernel gradient itself, whatever the channel threshold (row counts not a multiple of
    GEMM_CHUNKS included)."""
    cin = 4
    x, kernel = random((2, h, w, cin), 3), random((3, 3, cin, cout), 4)
    pads = conv._explicit_padding("SAME", (3, 3), dilation)
    g = random((2, h, w, cout), 5)
    want = jax.vjp(lambda k_: lax_conv(x, k_, pads, dilation), kernel)[1](g)[0]
    got = jax.jit(conv._kernel_grad_by_tap_gemms, static_argnums=(2, 3, 4))(x, g, kernel.shape, pads, dilation)
    assert_close(got, want)


def test_tap_gemm_kernel_grad_by_hand():
    """1 x 1 image, 1 -> 1 channel, SAME 3x3: only the centre tap sees the pixel: dK = x * g there."""
    x = jnp.full((1, 1, 1, 1), 3.0)
    g = jnp.full((1, 1, 1, 1), 2.0)
    got = conv._kernel_grad_by_tap_gemms(x, g, (3, 3, 1, 1), ((1, 1), (1, 1)), (1, 1))
    want = np.zeros((3, 3, 1, 1), np.float32)
    want[1, 1] = 6.0
    np.testing.assert_array_equal(np.asarray(got), want)


def test_unsupported_cases_go_to_lax_unchanged():
    x, kernel = random((1, 8, 8, 4), 6), random((3, 3, 2, 6), 7)
    grouped = conv.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    want = lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    np.testing.assert_array_equal(np.asarray(grouped), np.asarray(want))


def test_nnx_conv_with_hook_matches_default():
    """As ConvNormReLU builds it: same output and parameter gradients as nnx.Conv's own conv."""
    layers = [
        nnx.Conv(5, 32, (3, 3), padding="SAME", use_bias=False, rngs=nnx.Rngs(0), **extra)
        for extra in ({}, {"conv_general_dilated": conv.conv_general_dilated})
    ]
    x = random((2, 7, 6, 5), 8)
    g = random((2, 7, 6, 32), 9)

    def loss(layer):
        return jnp.sum(layer(x) * g)

    grads = [nnx.grad(loss)(layer).kernel[...] for layer in layers]
    assert_close(layers[1](x), layers[0](x))
    assert_close(grads[1], grads[0])
