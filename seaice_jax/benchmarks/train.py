"""Training-step throughput: compile time and steady-state images/s on random 256 x 256 batches."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax import parallel, trained_model
from seaice_jax.train_step import make_train_step


def random_batch(config, batch_size: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    c = len(trained_model.input_channels(config))
    k = config.data.max_regions
    return {
        "inputs": rng.standard_normal((batch_size, size, size, c), np.float32),
        "sic": rng.integers(0, 11, (batch_size, size, size), np.uint8),
        "sod": rng.integers(0, 6, (batch_size, size, size), np.uint8),
        "floe": rng.integers(0, 7, (batch_size, size, size), np.uint8),
        "region_ids": rng.integers(-1, 8, (batch_size, size, size)).astype(np.int32),
        "region_conc": np.where(np.arange(k) < 8, rng.uniform(0, 1, (batch_size, k)), np.nan).astype(np.float32),
        "valid": np.ones((batch_size, size, size), bool),
        "ice_truth": rng.integers(0, 2, (batch_size, size, size), np.uint8),
    }


def run(config, batch_size: int = 8, size: int = 256, steps: int = 10) -> dict:
    """{'train': {'images_per_s', 'compile_s', 'batch_size', 'devices', ...}} for the config's network."""
    mesh = parallel.make_mesh(parallel.mesh_device_count(config.train.get("num_devices", 0), batch_size))
    with jax.set_mesh(mesh):  # scoped: later benchmarks in this process run without it
        fns, params, batch_stats = trained_model.create_model(config)
        tx = trained_model.make_optimizer(config)
        state = trained_model.TrainState(jnp.zeros((), jnp.int32), params, batch_stats, tx.init(params))
        state = jax.device_put(state, jax.NamedSharding(mesh, jax.P()))
        batch = parallel.global_batch(random_batch(config, batch_size, size), mesh)
        step = jax.jit(make_train_step(fns, tx, config.loss), donate_argnums=(0,))
        t0 = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t0
        state, m = compiled(state, batch)  # first run: allocation, caches
        jax.block_until_ready(m["loss"])
        times, cpu = [], []
        for _ in range(steps):
            t, c = time.perf_counter(), time.process_time()
            state, m = compiled(state, batch)
            jax.block_until_ready(m["loss"])
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    step_s = float(np.median(times))
    n_params = sum(x.size for x in jax.tree.leaves(params))
    return {"train": {
        "images_per_s": batch_size / step_s, "step_ms": step_s * 1e3, "compile_s": compile_s,
        # CPU seconds per step (all threads): a load-independent measure on a shared machine
        "cpu_s_per_step": float(np.median(cpu)),
        "batch_size": batch_size, "devices": mesh.size, "patch_size": size,
        "params": int(n_params), "dtype": config.model.dtype,
    }}
