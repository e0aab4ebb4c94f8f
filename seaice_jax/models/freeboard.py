"""The freeboard heads' outputs: metres, held at the sea surface on leads by the ice map, and their
predicted uncertainty.

freeboard = p_ice * softplus(raw), p_ice = sigmoid(ice logit) with its gradient stopped (the ice head is
trained by the region loss only; the freeboard loss shapes `raw`). Without an ice head: softplus(raw).
One head per freeboard kind (data.points.HEAD_OF_KIND: `freeboard` = ICESat-2 total freeboard,
`radar_freeboard` = CryoSat-2 / Sentinel-3 radar freeboard), never mixed; with
`elevation.uncertainty` each gets `<head>_uncertainty` = softplus(raw) + UNCERTAINTY_FLOOR_M, one
standard deviation in metres, trained with a Gaussian negative log-likelihood (losses.freeboard_loss).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FREEBOARD_HEADS = ("freeboard", "radar_freeboard")
UNCERTAINTY_SUFFIX = "_uncertainty"
UNCERTAINTY_FLOOR_M = 0.005  # the smallest predicted sigma (keeps the likelihood finite)


def freeboard_from_head(raw: jax.Array, ice_logit: jax.Array | None = None) -> jax.Array:
    fb = jax.nn.softplus(raw.astype(jnp.float32))
    if ice_logit is None:
        return fb
    return jax.lax.stop_gradient(jax.nn.sigmoid(ice_logit.astype(jnp.float32))) * fb


def uncertainty_from_head(raw: jax.Array) -> jax.Array:
    return jax.nn.softplus(raw.astype(jnp.float32)) + UNCERTAINTY_FLOOR_M


def finish_freeboard_outputs(outputs: dict) -> dict:
    """The raw head outputs -> metres: every freeboard head and its uncertainty head."""
    out = dict(outputs)
    for head in FREEBOARD_HEADS:
        if head in out:
            out[head] = freeboard_from_head(out[head], out.get("ice"))
        if head + UNCERTAINTY_SUFFIX in out:
            out[head + UNCERTAINTY_SUFFIX] = uncertainty_from_head(out[head + UNCERTAINTY_SUFFIX])
    return out
