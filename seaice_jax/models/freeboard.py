"""The freeboard head's output (issue 12): metres, held at the sea surface on leads by the ice map.

freeboard = p_ice * softplus(raw), p_ice = sigmoid(ice logit) with its gradient stopped (the ice head is
trained by the region loss only; the freeboard loss shapes `raw`). Without an ice head: softplus(raw).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def freeboard_from_head(raw: jax.Array, ice_logit: jax.Array | None = None) -> jax.Array:
    fb = jax.nn.softplus(raw.astype(jnp.float32))
    if ice_logit is None:
        return fb
    return jax.lax.stop_gradient(jax.nn.sigmoid(ice_logit.astype(jnp.float32))) * fb
