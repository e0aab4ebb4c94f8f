"""Training: `train_and_evaluate(config, workdir)`, the loop, data-parallel over every device and host.

The pieces it puts together live in their own modules: the model, its optimizer and checkpoint layout
in `trained_model`, the jitted step in `train_step`, the mesh and global batches in `parallel`, the
data in `data.prepare` and `data.pipeline`, metrics files in `metric_writer`, and the held-out
evaluation in `inference.validate`. The step is a pure jitted function of a `TrainState` pytree with
donated buffers, batches sharded along the mesh axis 'data', so BatchNorm statistics are computed over
the global batch. Orbax checkpoints hold the state and the grain iterator position, so rerunning with
the same workdir resumes exactly. Only launchers and tests import this module.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from seaice_jax import trained_model
from seaice_jax.data.prepare import prepare_data
from seaice_jax.data.sources import make_train_source
from seaice_jax.inference.validate import evaluate_scenes
from seaice_jax.metric_writer import MetricsWriter
from seaice_jax.parallel import make_mesh, mesh_device_count
from seaice_jax.train_step import make_train_step


class NonFiniteLossError(RuntimeError):
    pass


def held_out_summary(result: dict, workdir: str) -> str | None:
    """The line launch/train.py prints after a run that evaluated on scenes with ice_truth, else None."""
    if result.get("pixel_accuracy_als") is None:
        return None
    return ("held-out pixel accuracy of the binary ice map vs ice_truth: "
            f"ALS {result['pixel_accuracy_als']:.4f}, concentration-preserving {result['pixel_accuracy_conc']:.4f}, "
            f"sigmoid>=0.5 {result['pixel_accuracy_sigmoid']:.4f} (all-ice baseline "
            f"{result['pixel_accuracy_all_ice']:.4f}); checkpoint in {workdir}/checkpoints")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train per config, checkpointing and evaluating as it goes; returns the final metrics."""
    if config.get("elevation") is not None:  # freeboard head + footprint loss (issue 12)
        from seaice_jax.elevation.train import train_elevation
        return train_elevation(config, workdir)
    # ---- Data on disk, the mesh -------------------------------------------------------------
    os.makedirs(workdir, exist_ok=True)
    trained_model.save_config(config, workdir)
    shard_dir, val_scenes = prepare_data(config, workdir)
    mesh = make_mesh(mesh_device_count(config.train.num_devices, config.train.batch_size))
    n_dev, n_proc = mesh.size, jax.process_count()
    gb = config.train.batch_size
    if gb % n_dev:
        raise ValueError(f"train.batch_size {gb} must be a multiple of the device count {n_dev}")
    if jax.process_index() == 0:
        logging.info("process %d of %d, %d local / %d global devices, mesh of %d; workdir %s",
                     jax.process_index(), n_proc, jax.local_device_count(), jax.device_count(), n_dev, workdir)
        logging.info("config:\n%s", config)
    # Scoped: the mesh is gone when this returns (evaluation and benchmarks after it run without).
    with jax.set_mesh(mesh):
        return _train(config, workdir, mesh, shard_dir, val_scenes)


def _train(config: ml_collections.ConfigDict, workdir: str, mesh, shard_dir: str, val_scenes: list[str]) -> dict:
    # ---- Model, optimizer and input pipeline -------------------------------------------------
    n_proc = jax.process_count()
    gb = config.train.batch_size
    fns, tx, state = trained_model.initial_state(config)
    if jax.process_index() == 0:
        logging.info("model: %d parameters", sum(x.size for x in jax.tree.leaves(state.params)))
    state = jax.device_put(state, jax.NamedSharding(mesh, jax.P()))  # replicated on every device

    channels = trained_model.input_channels(config)
    # Shards through grain (each process reads its own slice of every global batch) or scenes resident
    # in device memory (data/sources.py); either way the step gets one data argument.
    source = make_train_source(config, shard_dir, mesh, channels)
    data_iter = source.iterator  # None for resident data: the step is the position
    if jax.process_index() == 0:
        logging.info("data: %s", source.description)

    # ---- Resume -------------------------------------------------------------------------------
    # The iterator is restored in place with the state: both continue from the same step.
    mngr = trained_model.checkpoint_manager(workdir, config)
    start = mngr.latest_step()
    if start is not None:
        state = trained_model.restore_checkpoint(mngr, start, state, data_iter)
        if jax.process_index() == 0:
            logging.info("resumed from step %d", start)
    start = int(start or 0)

    # ---- Main loop ----------------------------------------------------------------------------
    step_fn = jax.jit(source.wrap_step(make_train_step(fns, tx, config.loss)), donate_argnums=(0,))
    writer = MetricsWriter(workdir)
    num_steps = config.train.num_steps
    # Metrics stay on device until a log step, so no step waits for the previous one to finish.
    pending: list[dict] = []
    t_last, step_last = time.perf_counter(), start
    # Time in next(data_iter), logged per step as data_wait_s: says when device prefetch would pay.
    data_wait = 0.0
    final: dict = {}
    try:
        for step in range(start + 1, num_steps + 1):
            t_data = time.perf_counter()
            data = source.next_input()
            data_wait += time.perf_counter() - t_data
            state, metrics = step_fn(state, data)
            pending.append(metrics)
            if step % config.train.log_every == 0 or step == num_steps:
                means = {k: float(np.mean([jax.device_get(m[k]) for m in pending])) for k in pending[0]}
                if means.pop("nonfinite") > 0:
                    raise NonFiniteLossError(
                        f"non-finite loss between steps {step - len(pending) + 1} and {step}; "
                        f"stopping, last good checkpoint: step {mngr.latest_step()}")
                pending = []
                now = time.perf_counter()
                sps = (step - step_last) / (now - t_last)
                means.update(steps_per_s=sps, images_per_s=sps * gb, data_wait_s=data_wait / (step - step_last))
                t_last, step_last, data_wait = now, step, 0.0
                writer.write(step, means)
                if jax.process_index() == 0:
                    logging.info("step %d/%d loss %.4f %.2f steps/s %.1f images/s",
                                 step, num_steps, means["loss"], sps, sps * gb)
            # ---- Checkpoint, evaluate --------------------------------------------------------
            # Saved after the step that consumed the batch, so state and iterator position agree.
            if step % config.train.checkpoint_every == 0 or step == num_steps:
                trained_model.save_checkpoint(mngr, step, state, data_iter)
            if val_scenes and (step % config.train.eval_every == 0 or step == num_steps):
                mngr.wait_until_finished()  # this step's checkpoint complete on disk before the evaluation
                final = evaluate_scenes(config, fns, state.params, state.batch_stats, val_scenes)
                writer.write(step, final, prefix="eval")
                if jax.process_index() == 0:
                    logging.info("eval %s", " ".join(f"{k} {v:.4f}" for k, v in final.items() if v is not None))
    finally:
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
    final = dict(final, step=num_steps)
    return final
