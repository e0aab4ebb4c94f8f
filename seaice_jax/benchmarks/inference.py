"""Whole-scene inference throughput (megapixels/s) through the tiled, blended predictor."""

from __future__ import annotations

import time

import numpy as np

from seaice_jax import inference, train


def run(config, size: int = 1024, repeats: int = 3) -> dict:
    """{'inference': {'mpix_per_s', ...}} for the config's network on a size x size scene (fp32)."""
    fns, params, batch_stats = train.create_model(config)
    c = len(train.input_channels(config))
    scene = np.random.default_rng(0).standard_normal((size, size, c), np.float32)
    kw = dict(tile=config.eval.tile, stride=config.eval.stride, batch_size=config.eval.batch_size)
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
        "tile": kw["tile"], "stride": kw["stride"], "dtype": config.model.dtype,
    }}
