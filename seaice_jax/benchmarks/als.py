"""Speed of the on-device ALS and percentiles against the numpy/scipy reference.

`run(size, repeats)` times one synthetic size x size scene (a smooth random logit field with fine
noise and ~10 % invalid "land" pixels):
  als:       analytical_logit_scaling (jitted) vs als_reference_numpy (scipy gaussian_filter +
             np.percentile, the authors' recipe);
  quantiles: masked_quantiles(x, valid, (0.02, 0.98)) vs np.percentile(x[valid], [2, 98]) vs
             jnp.percentile of the same compacted pixels (the sort that section 6 of method.md
             warns about).
Times are float milliseconds, the median over `repeats` after one warm-up (compile) call; JAX
results are waited for with block_until_ready.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from seaice_jax.scaling import als_reference_numpy, analytical_logit_scaling, masked_quantiles

_QUANTILES = (0.02, 0.98)


def synthetic_logit_scene(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A realistic-looking logit map and valid mask, both [size, size].

    logits: float32, a smooth field (features ~20 px) of amplitude ~6 plus pixel noise, like a
    network's whole-scene output; valid: bool, False on a ~10 % connected "land" region.
    """
    rng = np.random.default_rng(seed)
    coarse_size = max(size // 20, 2)
    zoom = size / coarse_size
    coarse = rng.standard_normal((coarse_size, coarse_size)).astype(np.float32)
    smooth = scipy.ndimage.zoom(coarse, zoom, order=1)[:size, :size]
    logits = 6.0 * smooth + rng.standard_normal((size, size), dtype=np.float32)
    land_field = scipy.ndimage.zoom(
        scipy.ndimage.gaussian_filter(rng.standard_normal((coarse_size, coarse_size)), 3.0),
        zoom,
        order=1,
    )[:size, :size]
    valid = land_field < np.quantile(land_field[:: max(size // 500, 1), :: max(size // 500, 1)], 0.9)
    return logits.astype(np.float32), valid


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `call` in ms over `repeats`, after one warm-up call."""
    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times))


def run(size: int = 5000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Times ALS and the percentiles on one size x size scene; see the module docstring."""
    logits, valid = synthetic_logit_scene(size)
    device_logits = jax.device_put(logits)
    device_valid = jax.device_put(valid)

    als_ms = _median_ms(lambda: analytical_logit_scaling(device_logits, device_valid), repeats)
    reference_ms = _median_ms(lambda: als_reference_numpy(logits, valid), repeats)

    quantile_ms = _median_ms(lambda: masked_quantiles(device_logits, device_valid, _QUANTILES), repeats)
    numpy_ms = _median_ms(
        lambda: np.percentile(logits[valid], [100 * q for q in _QUANTILES]), repeats
    )
    compacted = jax.device_put(logits[valid])
    percentile = jax.jit(lambda x: jnp.percentile(x, jnp.asarray([100 * q for q in _QUANTILES])))
    jnp_percentile_ms = _median_ms(lambda: percentile(compacted), repeats)

    return {
        "als": {
            "jax_ms": als_ms,
            "reference_ms": reference_ms,
            "speedup": reference_ms / als_ms,
        },
        "quantiles": {
            "jax_ms": quantile_ms,
            "numpy_ms": numpy_ms,
            "jnp_percentile_ms": jnp_percentile_ms,
        },
    }
