"""Dense context from sparse altimeter points (normalised convolution), and the network's correction of
its SAR-only freeboard by the residuals at the tracks it is given.

A track is a line one pixel wide in `freeboard_points` / `freeboard_mask`: a 3 x 3 convolution learns
slowly to carry its values kilometres across the image. `window_means` turns (values, mask) into, for
every window half-size s (pixels), the mean value of the points within the (2 s + 1)^2 window around
each pixel (0 where none) and a confidence min(1, (2 s + 1) x the share of the window's pixels that hold
a point) (about 1 where a track crosses the window). The sums are box filters by cumulative sums
(O(H W) for any s), parameter-free and the same in training (a patch) and inference (a tile).
Normalised convolution: Knutsson & Westin 1993; its use for sparse depth: Eldesokey et al. 2019.

`TrackCorrection` is the guided completion: the U-Net predicts freeboard and its uncertainty from the
SAR alone; the residuals of the given tracks against that prediction (what the SAR could not tell) are
made dense at several scales and a small convolution without biases turns them into a correction of
the mean and a factor on the uncertainty. Without a track the correction is exactly 0 (no bias, ReLU),
so the SAR-only map is the same network with no tracks given (residual kriging, learned).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def box_sum(a: jax.Array, s: int) -> jax.Array:
    """Sum of a [B, H, W] over the (2 s + 1)^2 window around each pixel, clipped at the borders."""
    _, h, w = a.shape
    c = jnp.pad(jnp.cumsum(jnp.cumsum(a, axis=1), axis=2), ((0, 0), (1, 0), (1, 0)))
    r1 = jnp.minimum(jnp.arange(h) + s, h - 1) + 1
    r0 = jnp.maximum(jnp.arange(h) - s, 0)
    c1 = jnp.minimum(jnp.arange(w) + s, w - 1) + 1
    c0 = jnp.maximum(jnp.arange(w) - s, 0)
    rows1, rows0 = c[:, r1], c[:, r0]
    return rows1[:, :, c1] - rows0[:, :, c1] - rows1[:, :, c0] + rows0[:, :, c0]


def window_means(values: jax.Array, mask: jax.Array, scales: Sequence[int]) -> jax.Array:
    """values, mask [B, H, W] -> [B, H, W, 2 len(scales)] float32: per scale the window mean of the
    masked values and its confidence (see the module doc)."""
    m = mask.astype(jnp.float32)
    v = values.astype(jnp.float32) * m
    feats = []
    for s in scales:
        den = box_sum(m, int(s))
        feats.append(jnp.where(den > 0.5, box_sum(v, int(s)) / jnp.maximum(den, 1.0), 0.0))
        feats.append(jnp.minimum(den / (2 * int(s) + 1), 1.0))
    return jnp.stack(feats, -1)


class TrackCorrection(nnx.Module):
    """(residual window means [B, H, W, 2 S]) -> (mean correction, log-uncertainty correction) [B, H, W]
    each: 3 x 3 then 1 x 1 convolutions, no biases, so no track gives no correction."""

    def __init__(self, num_scales: int, hidden: int = 16, *, rngs: nnx.Rngs):
        self.first = nnx.Conv(2 * num_scales, hidden, (3, 3), use_bias=False, rngs=rngs)
        self.second = nnx.Conv(hidden, 2, (1, 1), use_bias=False, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, context: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = self.second(jax.nn.relu(self.first(context)))
        return out[..., 0], out[..., 1]
