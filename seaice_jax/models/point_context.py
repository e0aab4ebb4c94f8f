"""Dense context from sparse altimeter points, in front of the network (normalised convolution).

A track is a line one pixel wide in `freeboard_points` / `freeboard_mask`: a 3 x 3 convolution learns
slowly to carry its values kilometres across the image. `point_context` turns each (values, mask) input
pair into, for every window half-size s (pixels), the mean value of the points within the
(2 s + 1)^2 window around each pixel (0 where none) and a confidence min(1, (2 s + 1) x the share of
the window's pixels that hold a point) (about 1 where a track crosses the window). The sums are box
filters by cumulative sums (O(H W) for any s), parameter-free and the same in training (a patch) and
inference (a tile). Normalised convolution: Knutsson & Westin 1993; its use for sparse depth:
Eldesokey et al. 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


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


def point_context(x: jax.Array, pairs: Sequence[tuple[int, int]], scales: Sequence[int]) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C + 2 len(pairs) len(scales)]: the inputs, then per (values channel,
    mask channel) pair and scale the window mean of the points and its confidence (float32)."""
    if not pairs or not scales:
        return x
    feats = []
    for vi, mi in pairs:
        m = jax.lax.stop_gradient(x[..., mi].astype(jnp.float32))
        v = jax.lax.stop_gradient(x[..., vi].astype(jnp.float32)) * m
        for s in scales:
            den = box_sum(m, int(s))
            feats.append(jnp.where(den > 0.5, box_sum(v, int(s)) / jnp.maximum(den, 1.0), 0.0))
            feats.append(jnp.minimum(den / (2 * int(s) + 1), 1.0))
    return jnp.concatenate([x, jnp.stack(feats, -1).astype(x.dtype)], axis=-1)
