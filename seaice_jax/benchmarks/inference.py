"""Whole-scene inference throughput (megapixels/s) through the tiled, blended predictor.

Measured as one tile covering the whole scene plus a 32-pixel margin (so the figure compares with a
single forward pass of the same network elsewhere); `tile`/`stride` arguments measure any tiling.
"""

from __future__ import annotations

import time

import numpy as np

from seaice_jax import inference, train


def run(config, size: int = 1024, repeats: int = 3, tile: int | None = None, stride: int | None = None,
        margin: int = 32) -> dict:
    """{'inference': {'mpix_per_s', ...}} for the config's network on a size x size scene (fp32)."""
    fns, params, batch_stats = train.create_model(config)
    c = len(train.input_channels(config))
    align = inference.tile_alignment(config.model)
    scene = np.random.default_rng(0).standard_normal((size, size, c), np.float32)
    tile = tile or -(-(size + 2 * margin) // align) * align
    stride = stride or tile - 2 * margin
    kw = dict(tile=tile, stride=stride, batch_size=1, margin=margin, align=align)
    t0 = time.perf_counter()
    inference.predict_scene(fns, params, batch_stats, scene, **kw)  # compile + first run
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        inference.predict_scene(fns, params, batch_stats, scene, **kw)
        times.append(time.perf_counter() - t)
    s = float(np.median(times))
    return {"inference": {
        "mpix_per_s": size * size / s / 1e6, "scene_s": s, "first_call_s": first_s, "size": size,
        "tile": tile, "stride": stride, "margin": margin, "dtype": config.model.dtype,
    }}
