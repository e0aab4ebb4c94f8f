"""Whole-scene inference throughput (megapixels/s) through `inference.predict_scene`.

By default one tile is the whole scene with no margin: a single forward pass of the network over the
scene, as the PyTorch reference (benchmarks/torch_reference.py) times it, but counted from the host
[H, W, C] float32 scene to the finished host maps (ice logit, SIC / SOD / FLOE classes). `tile`,
`stride` and `margin` measure any tiling (blended on the host).
"""

from __future__ import annotations

import time

import numpy as np

from seaice_jax import inference, trained_model


def run(config, size: int = 1024, repeats: int = 5, tile: int | None = None, stride: int | None = None,
        margin: int = 0) -> dict:
    """{'inference': {'mpix_per_s', ...}} for the config's network on a size x size scene (fp32)."""
    fns, params, batch_stats = trained_model.create_model(config)
    c = len(trained_model.input_channels(config))
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
