"""Footprint averaging of a predicted freeboard map, the masked, uncertainty-weighted Huber loss and the
Gaussian negative log-likelihood of a predicted uncertainty (JAX).

Inputs are fixed-shape arrays (`Collocation.padded`, or the patch records' points): index / weight
[..., N, K] (flat pixel indices into the map, area fractions; padding weight 0), value / sigma / mask
[..., N].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def footprint_mean(pred, index, weight):
    """Footprint-weighted mean of `pred` [H, W] (or [B, H, W] with index [B, N, K]) -> [N] ([B, N])."""
    if pred.ndim == 3:
        return jax.vmap(footprint_mean)(pred, index, weight)
    flat = pred.reshape(-1)
    g = flat[index]
    wsum = jnp.sum(weight, axis=-1)
    return jnp.sum(g * weight, axis=-1) / jnp.where(wsum > 0, wsum, 1.0)


def huber(x, delta):
    a = jnp.abs(x)
    return jnp.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))


def masked_huber_loss(pred, index, weight, value, sigma, mask, delta: float = 0.1, sigma_floor: float = 0.01,
                      point_weight=None):
    """sum_i w_i huber(footprint_mean_i - value_i) / sum_i w_i, w_i = mask_i p_i / max(sigma_i, floor)^2
    (p_i: `point_weight`, 1 when None).

    Points pooled over the batch; 0 when no point is masked in.
    """
    m = footprint_mean(pred, index, weight)
    s = jnp.maximum(sigma, sigma_floor)
    w = mask.astype(m.dtype) / (s * s)
    if point_weight is not None:
        w = w * point_weight
    r = jnp.where(mask, m - value, 0.0)
    total = jnp.sum(w)
    return jnp.sum(w * huber(r, delta)) / jnp.where(total > 0, total, 1.0)


def gaussian_nll(residual, predicted_sigma, stated_sigma, mask):
    """Mean over masked points of 0.5 ((r^2 / v) + log v), v = predicted^2 + stated^2: the likelihood of
    the measurement under the model's spread and the product's own uncertainty (docs/method.md).
    0 when no point is masked in."""
    v = jnp.square(predicted_sigma) + jnp.square(stated_sigma)
    per_point = 0.5 * (jnp.square(residual) / v + jnp.log(v))
    m = mask.astype(per_point.dtype)
    n = jnp.sum(m)
    return jnp.sum(jnp.where(mask, per_point, 0.0)) / jnp.where(n > 0, n, 1.0)
