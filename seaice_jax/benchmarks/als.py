"""Speed of the on-device ALS and percentiles against the numpy/scipy reference.

`run(size, repeats, rounds)` times one synthetic size x size scene (a smooth random logit field with
fine noise and ~10 % invalid "land" pixels):
  als:       analytical_logit_scaling (jitted) vs als_reference_numpy (scipy gaussian_filter +
             np.percentile, the authors' recipe), in two kinds of process, `rounds` times
             interleaved: this one (a launcher: huge-page malloc on CPU, `runtime.prepare_process`)
             and a plain Python process (`python -m seaice_jax.benchmarks.als`, what a notebook or
             script is: no re-exec, one CPU device), which times the reference too.
             ms_launcher, ms_plain_process, reference_ms (this process), reference_ms_plain_process:
             medians over the rounds, *_range: [min, max]; jax_ms / speedup: the launcher's (as before);
             speedup_plain_process: the plain process's reference over its ALS.
  quantiles: masked_quantiles(x, valid, (0.02, 0.98)) vs np.percentile(x[valid], [2, 98]) vs
             jnp.percentile of the same compacted pixels (the sort that section 6 of method.md
             warns about).
Times are float milliseconds, the median over `repeats` calls after one warm-up (compile) call; JAX
results are waited for with block_until_ready.

  python -m seaice_jax.benchmarks.als --size N --repeats R   (the plain process: one JSON line)
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


def time_als(size: int, repeats: int, reference: bool = True) -> dict[str, float]:
    """This process's ALS time on the synthetic scene (and the reference's), in ms."""
    logits, valid = synthetic_logit_scene(size)
    device_logits, device_valid = jax.device_put(logits), jax.device_put(valid)
    out = {"jax_ms": _median_ms(lambda: analytical_logit_scaling(device_logits, device_valid), repeats)}
    if reference:
        out["reference_ms"] = _median_ms(lambda: als_reference_numpy(logits, valid), repeats)
    return out


def _plain_process(size: int, repeats: int) -> dict[str, float]:
    """time_als in a fresh plain Python process: no huge-page tunable, the device count JAX picks."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    tunables = [t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb")]
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    flags = [f for f in env.pop("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    proc = subprocess.run([sys.executable, "-m", "seaice_jax.benchmarks.als", "--size", str(size),
                           "--repeats", str(repeats)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError("the plain-process ALS timing failed: " + proc.stderr.strip()[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: int = 5000, repeats: int = 5, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Times ALS and the percentiles on one size x size scene; see the module docstring."""
    launcher, plain = [], []
    for _ in range(rounds):  # interleaved: a shared machine's load changes from minute to minute
        launcher.append(time_als(size, repeats))
        plain.append(_plain_process(size, repeats))

    def median(rows, key):
        return float(statistics.median(r[key] for r in rows))

    def spread(rows, key):
        return [float(min(r[key] for r in rows)), float(max(r[key] for r in rows))]

    als = {
        "ms_launcher": median(launcher, "jax_ms"), "ms_launcher_range": spread(launcher, "jax_ms"),
        "ms_plain_process": median(plain, "jax_ms"), "ms_plain_process_range": spread(plain, "jax_ms"),
        "reference_ms": median(launcher, "reference_ms"), "reference_ms_range": spread(launcher, "reference_ms"),
        "reference_ms_plain_process": median(plain, "reference_ms"),
        "reference_ms_plain_process_range": spread(plain, "reference_ms"),
        "rounds": rounds, "size": size,
    }
    als.update(jax_ms=als["ms_launcher"], speedup=als["reference_ms"] / als["ms_launcher"],
               speedup_plain_process=als["reference_ms_plain_process"] / als["ms_plain_process"],
               plain_over_launcher=als["ms_plain_process"] / als["ms_launcher"])

    logits, valid = synthetic_logit_scene(size)
    device_logits = jax.device_put(logits)
    device_valid = jax.device_put(valid)
    quantile_ms = _median_ms(lambda: masked_quantiles(device_logits, device_valid, _QUANTILES), repeats)
    numpy_ms = _median_ms(
        lambda: np.percentile(logits[valid], [100 * q for q in _QUANTILES]), repeats
    )
    compacted = jax.device_put(logits[valid])
    percentile = jax.jit(lambda x: jnp.percentile(x, jnp.asarray([100 * q for q in _QUANTILES])))
    jnp_percentile_ms = _median_ms(lambda: percentile(compacted), min(repeats, 3))  # a sort: seconds

    return {
        "als": als,
        "quantiles": {
            "jax_ms": quantile_ms,
            "numpy_ms": numpy_ms,
            "jnp_percentile_ms": jnp_percentile_ms,
        },
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="ALS timing in this (plain) process; one JSON line")
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(time_als(args.size, args.repeats)))
