"""Atrous Spatial Pyramid Pooling (method.md section 7) and the conv/norm building blocks.

All tensors are channels-last: `x: [B, H, W, C]`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seaice_jax import platforms
from seaice_jax.models import upsample
from seaice_jax.models.conv import conv_general_dilated
from seaice_jax.models.upsample import Upsampled, upsampled_conv3x3

NORMS = ("batch", "group", "none")

# PyTorch BatchNorm2d defaults (momentum 0.1 there = 0.9 here), as in the challenge baseline.
BATCHNORM_MOMENTUM = 0.9
BATCHNORM_EPSILON = 1e-5
MAX_GROUPS = 8
MIN_KERNEL_DRAW = 1 << 14  # smallest random draw of conv_kernel_init: all small kernels share one
# Read at trace time (tests switch it off to compare with conv -> norm -> ReLU), see ConvNormReLU.
FOLD_BATCHNORM = True


def make_norm(
    features: int, norm: str, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs
) -> nnx.Module | None:
    """The normalisation layer after a conv: BatchNorm, GroupNorm or None."""
    if norm == "batch":
        return nnx.BatchNorm(
            features, momentum=BATCHNORM_MOMENTUM, epsilon=BATCHNORM_EPSILON,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )
    if norm == "group":
        # Largest group count <= MAX_GROUPS that divides the channels (GroupNorm needs a divisor).
        return nnx.GroupNorm(
            features, num_groups=math.gcd(features, MAX_GROUPS),
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def conv_kernel_init(gain: float = 2.0):
    """Variance-scaling normal init of a conv kernel [kh, kw, in, out]: std = sqrt(gain / fan_in).

    gain 2 is He init (a ReLU follows), gain 1 LeCun. The numbers are drawn as a flat vector and
    reshaped, its length rounded up to a power of two: XLA:CPU compiles the random generator
    anew for every shape, slowly (seconds per multi-dimensional kernel shape), which made
    building a model take half a minute. A flat power-of-two draw is the same distribution and
    needs only a few compilations (at least 2^14 numbers), shared by all layers.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        fan_in = int(np.prod(shape[:-1]))
        size = int(np.prod(shape))
        draw = max(1 << max(size - 1, 0).bit_length(), MIN_KERNEL_DRAW)
        flat = jax.random.normal(key, (draw,), jnp.float32)[:size]
        return (flat * np.sqrt(gain / fan_in)).reshape(tuple(shape)).astype(dtype)

    return init


class ConvNormReLU(nnx.Module):
    """Conv (no bias when a norm follows) -> norm -> ReLU. `x: [B, H, W, Cin] -> [B, H, W, Cout]`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernel_size: int = 3,
        dilation: int = 1,
        norm: str = "batch",
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.conv = nnx.Conv(
            in_features, out_features, (kernel_size, kernel_size),
            padding="SAME", kernel_dilation=(dilation, dilation),
            use_bias=norm == "none",  # a bias before a norm is redundant (baseline: bias=False)
            kernel_init=conv_kernel_init(gain=2.0),  # He init: a ReLU follows
            conv_general_dilated=conv_general_dilated,  # XLA's own, but a fast kernel grad on CPU
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )
        self.norm = make_norm(out_features, norm, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array | Sequence) -> jax.Array:
        """x: an array, or parts whose channel concatenation is the input (a decoder's `Upsampled`
        coarse map and its skip). On CPU a large enough Upsampled part is convolved at low
        resolution (`upsampled_conv3x3`) and the other parts' conv added; otherwise (and on every
        other platform, see `_conv`) the parts are materialised, concatenated and convolved once
        (what splitting alone gives was measured slower on CPU).

        In eval mode BatchNorm on running statistics is affine per channel and is folded into the
        kernel and a bias: one conv + bias + ReLU, equal to conv -> norm -> ReLU up to rounding.
        """
        parts = list(x) if isinstance(x, list) else [x]
        conv, norm = self.conv, self.norm
        kernel = conv.kernel[...]
        bias = conv.bias[...] if conv.use_bias else None
        if FOLD_BATCHNORM and isinstance(norm, nnx.BatchNorm) and norm.use_running_average:
            scale = norm.scale[...] * jax.lax.rsqrt(norm.var[...] + norm.epsilon)
            kernel = kernel * scale
            bias = norm.bias[...] - norm.mean[...] * scale
            norm = None
        y = self._conv(parts, kernel.astype(conv.dtype))
        if bias is not None:
            # The add in fp32 (fused into the conv's epilogue): in bf16 compute, the bias gradient is a
            # sum over every pixel, which a bf16 accumulation gets badly wrong (see test_bf16.py).
            y = (y.astype(jnp.float32) + bias.astype(jnp.float32)).astype(y.dtype)
        if norm is not None:
            y = norm(y)
        return jax.nn.relu(y)

    def _fusable(self, part) -> bool:
        return (isinstance(part, Upsampled) and upsample.FUSE_UPSAMPLED_CONV
                and part.height * part.width >= upsample.FUSE_MIN_PIXELS
                and self.conv.kernel_size == (3, 3) and tuple(self.conv.kernel_dilation) == (1, 1))

    def _plain_conv(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        return conv_general_dilated(x.astype(kernel.dtype), kernel, (1, 1), "SAME",
                                    rhs_dilation=self.conv.kernel_dilation,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def _conv(self, parts: list, kernel: jax.Array) -> jax.Array:
        """The conv of the channel concatenation of `parts`. With an `Upsampled` part, the
        formulation is chosen per platform ("fused_upsampling", see seaice_jax/platforms.py):
        `_conv_fused` where it was measured (CPU), else `_conv_materialized` (dense upsampling,
        concatenation, one plain conv)."""
        if not any(isinstance(part, Upsampled) for part in parts):
            return self._plain_conv(parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1), kernel)
        # In the compute dtype (the kernel's) on every path, as nnx.Conv casts its input.
        arrays = [(part.low if isinstance(part, Upsampled) else part).astype(kernel.dtype) for part in parts]

        def rebuild(arrays):
            return [part._replace(low=a) if isinstance(part, Upsampled) else a
                    for part, a in zip(parts, arrays, strict=True)]

        return platforms.choose(
            "fused_upsampling", arrays, kernel,
            special=lambda arrays, k: self._conv_fused(rebuild(arrays), k),
            plain=lambda arrays, k: self._conv_materialized(rebuild(arrays), k),
        )

    def _conv_materialized(self, parts: list, kernel: jax.Array) -> jax.Array:
        """Plain: every Upsampled part by the dense interpolation matrices, one conv of the concatenation."""
        arrays = [part.by_dense_matrices() if isinstance(part, Upsampled) else part for part in parts]
        return self._plain_conv(arrays[0] if len(arrays) == 1 else jnp.concatenate(arrays, axis=-1), kernel)

    def _conv_fused(self, parts: list, kernel: jax.Array) -> jax.Array:
        """CPU: a large enough Upsampled part convolved at low resolution (`upsampled_conv3x3`),
        the rest upsampled by gathers, concatenated and convolved once, and the two added."""
        fused, rest, start = [], [], 0
        for part in parts:
            channels = (part.low if isinstance(part, Upsampled) else part).shape[-1]
            k = kernel[:, :, start : start + channels]
            start += channels
            if self._fusable(part):
                fused.append(upsampled_conv3x3(part, k))
            else:
                rest.append((part.by_gathers() if isinstance(part, Upsampled) else part, k))
        if rest:
            x = rest[0][0] if len(rest) == 1 else jnp.concatenate([p for p, _ in rest], axis=-1)
            k = rest[0][1] if len(rest) == 1 else jnp.concatenate([k for _, k in rest], axis=2)
            fused.append(self._plain_conv(x, k))
        return sum(fused[1:], fused[0])


def same_window_counts(length: int, window: int) -> np.ndarray:
    """How many in-range positions a 'SAME'-padded window of `window` covers at each index.

    Matches lax.reduce_window's SAME padding: (window - 1) // 2 before, window // 2 after.
    """
    pad_before = (window - 1) // 2
    index = np.arange(length)
    start = np.maximum(index - pad_before, 0)
    stop = np.minimum(index - pad_before + window, length)
    return (stop - start).astype(np.float32)


def local_mean_pool(x: jax.Array, window: int) -> jax.Array:
    """Average over a window x window neighbourhood, 'SAME' size, counting only in-image pixels.

    x: [B, H, W, C] -> [B, H, W, C]. Separable box sums (2 * window adds per pixel, not window^2);
    dividing by the in-image count (not the window area) keeps a constant map constant up to the
    borders, so the pooled branch does not darken near scene edges. Sums in float32 (bf16 safe).
    """
    height, width = x.shape[1], x.shape[2]
    x32 = x.astype(jnp.float32)
    # The init value must be a Python scalar: JAX then sees a sum window (differentiable);
    # an array init makes a generic reduce_window with no reverse-mode rule.
    sums = jax.lax.reduce_window(x32, 0.0, jax.lax.add, (1, window, 1, 1), (1, 1, 1, 1), "SAME")
    sums = jax.lax.reduce_window(sums, 0.0, jax.lax.add, (1, 1, window, 1), (1, 1, 1, 1), "SAME")
    counts = np.outer(same_window_counts(height, window), same_window_counts(width, window))
    return (sums / counts[None, :, :, None]).astype(x.dtype)


class ASPP(nnx.Module):
    """Atrous Spatial Pyramid Pooling: `x: [B, H, W, in_features] -> [B, H, W, out_features]`.

    Branches: a 1x1 conv, one 3x3 conv per dilation rate, and an image-level branch (mean pool,
    1x1 conv, broadcast back); each is conv -> norm -> ReLU. They are concatenated and projected by
    a 1x1 conv -> norm -> ReLU. `pool_window == 0` pools the whole feature map (DeepLab); a
    positive window is a local average pool with SAME size, so the module is translation
    consistent away from the borders and a model trained on patches applies to whole scenes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rates: Sequence[int],
        pool_window: int = 0,
        *,
        norm: str = "batch",
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if pool_window < 0:
            raise ValueError(f"ASPP pool_window must be >= 0, got {pool_window}")
        if any(rate < 1 for rate in rates):
            raise ValueError(f"ASPP rates must be >= 1, got {tuple(rates)}")
        self.rates = tuple(int(rate) for rate in rates)
        self.pool_window = int(pool_window)
        self.out_features = out_features
        layer = dict(norm=norm, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.pointwise_branch = ConvNormReLU(in_features, out_features, kernel_size=1, **layer)
        self.dilated_branches = nnx.List([
            ConvNormReLU(in_features, out_features, kernel_size=3, dilation=rate, **layer)
            for rate in self.rates
        ])
        self.image_pool_conv = ConvNormReLU(in_features, out_features, kernel_size=1, **layer)
        num_branches = 2 + len(self.rates)
        self.projection = ConvNormReLU(
            num_branches * out_features, out_features, kernel_size=1, **layer
        )

    def image_branch(self, x: jax.Array) -> jax.Array:
        """Pooled context, conv'd and broadcast back: `[B, H, W, Cin] -> [B, H, W, Cout]`."""
        if self.pool_window == 0:
            pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
        else:
            pooled = local_mean_pool(x, self.pool_window)
        context = self.image_pool_conv(pooled)
        return jnp.broadcast_to(context, x.shape[:-1] + (self.out_features,))

    def __call__(self, x: jax.Array) -> jax.Array:
        branches = [self.pointwise_branch(x)]
        branches += [branch(x) for branch in self.dilated_branches]
        branches.append(self.image_branch(x))
        return self.projection(jnp.concatenate(branches, axis=-1))
