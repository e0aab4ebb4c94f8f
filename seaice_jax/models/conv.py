"""A drop-in `conv_general_dilated` whose kernel gradient is fast on XLA:CPU.

XLA:CPU computes the gradient of a convolution w.r.t. its kernel as a convolution whose "kernel" is
the whole output-gradient image, which its CPU backend runs several times slower than the forward
pass (a 3x3, 32 -> 32 conv on 8 x 256 x 256: ~5x). Written instead as one GEMM per kernel tap over a
flattened, padded image, it becomes plain matrix products, which XLA:CPU runs near peak.

The forward pass and the input gradient are always XLA's own. The kernel gradient is the tap-GEMM
form only on the platforms of `platforms.platforms_for("tap_gemm_kernel_grad")` (default: CPU,
the only place it was measured), chosen by `lax.platform_dependent` inside the traced function;
on GPU / TPU it is XLA's own conv gradient (`jax.vjp` of `lax.conv_general_dilated`), so the
accelerator program is the one plain autodiff gives. See seaice_jax/platforms.py to change that.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from seaice_jax import platforms

# Read at trace time; the benchmark turns it off to measure what it gives (on every platform).
FAST_CPU_KERNEL_GRAD = True
GEMM_CHUNKS = 16
# Below this many output channels the tap GEMMs are too thin and the shifted copies dominate;
# measured per layer on a 2-core CPU: 16 -> XLA's own is faster, 32 and 64 -> GEMMs ~2x faster.
GEMM_MIN_OUT_FEATURES = 32  # the tap GEMMs are batched over row chunks so both cores share them


def _kernel_grad_by_tap_gemms(x, g, kernel_shape, padding, dilation):
    """d(conv)/d(kernel) for stride 1, NHWC / HWIO: sum over taps of shifted-image^T @ out-grad.

    x: [B, H, W, Cin]; g: [B, Ho, Wo, Cout]; padding ((top, bottom), (left, right)).
    Flattening the padded image [B, Hp, Wp, Cin] to rows makes every tap's shifted window one
    contiguous row range, so no im2col buffer is built.
    """
    kh, kw, cin, cout = kernel_shape
    dh, dw = dilation
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    b, hp, wp, _ = xp.shape
    ho, wo = g.shape[1], g.shape[2]
    gp = jnp.pad(g, ((0, 0), (0, hp - ho), (0, wp - wo), (0, 0))).reshape(-1, cout)
    rows = gp.shape[0]
    max_offset = dh * (kh - 1) * wp + dw * (kw - 1)
    m = rows - max_offset  # past m, every output-gradient row is padding
    m_pad = -(-m // GEMM_CHUNKS) * GEMM_CHUNKS
    xf = jnp.pad(xp.reshape(-1, cin), ((0, m_pad - m), (0, 0)))
    gm = jnp.pad(gp[:m], ((0, m_pad - m), (0, 0))).reshape(GEMM_CHUNKS, -1, cout)
    taps = []
    for u in range(kh):
        for v in range(kw):
            off = dh * u * wp + dw * v
            xs = lax.dynamic_slice_in_dim(xf, off, m_pad).reshape(GEMM_CHUNKS, -1, cin)
            # batched [Cin, Cout] products per chunk, then a small sum: XLA:CPU threads a batched
            # GEMM, but runs one GEMM with a huge contraction and a tiny output on one core.
            taps.append(jnp.einsum("knc,kno->kco", xs, gm, preferred_element_type=jnp.float32).sum(0))
    return jnp.stack(taps).reshape(kernel_shape)


def _plain_conv(x, w, padding, dilation):
    return lax.conv_general_dilated(x, w, (1, 1), padding, rhs_dilation=dilation,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_nhwc(x, w, padding, dilation):
    return _plain_conv(x, w, padding, dilation)


def _conv_fwd(x, w, padding, dilation):
    return _plain_conv(x, w, padding, dilation), (x, w)


def _conv_bwd(padding, dilation, res, g):
    x, w = res
    _, input_vjp = jax.vjp(lambda x_: _plain_conv(x_, w, padding, dilation), x)
    (dx,) = input_vjp(g)

    def xla_kernel_grad(x, g):
        return jax.vjp(lambda w_: _plain_conv(x, w_, padding, dilation), w)[1](g)[0]

    def gemm_kernel_grad(x, g):
        return _kernel_grad_by_tap_gemms(x, g, w.shape, padding, dilation).astype(w.dtype)

    if not FAST_CPU_KERNEL_GRAD or w.shape[-1] < GEMM_MIN_OUT_FEATURES:
        return dx, xla_kernel_grad(x, g)
    dw = platforms.choose("tap_gemm_kernel_grad", x, g, special=gemm_kernel_grad, plain=xla_kernel_grad)
    return dx, dw


_conv_nhwc.defvjp(_conv_fwd, _conv_bwd)


def _explicit_padding(padding, kernel_hw, dilation):
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0), (0, 0))
        if padding.upper() == "SAME":
            pads = []
            for k, d in zip(kernel_hw, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"unsupported padding {padding!r}")
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def conv_general_dilated(lhs, rhs, window_strides=None, padding="SAME", lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None, **kwargs):
    """`lax.conv_general_dilated` with the fast CPU kernel gradient for the case the U-Net uses
    (2-D, NHWC / HWIO, stride 1, no input dilation, no groups); anything else goes to lax as is."""
    strides = tuple(window_strides or (1, 1))
    lhs_dil = tuple(lhs_dilation or (1, 1))
    rhs_dil = tuple(rhs_dilation or (1, 1))
    dn = dimension_numbers
    simple = (
        lhs.ndim == 4 and strides == (1, 1) and lhs_dil == (1, 1) and feature_group_count == 1
        and batch_group_count == 1 and preferred_element_type is None and precision is None
        and all(v is None for v in kwargs.values())  # e.g. out_sharding
        and (dn is None or tuple(dn) == ("NHWC", "HWIO", "NHWC")
             or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dn)
             == lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")))
    )
    if not simple:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count,
                                        precision, preferred_element_type, **kwargs)
    pads = _explicit_padding(padding, rhs.shape[:2], rhs_dil)
    return _conv_nhwc(lhs, rhs, pads, rhs_dil)
