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

import contextlib
import os
import shutil
import time

import jax
import ml_collections
import numpy as np

from seaice_jax import checkpoint_recovery, interrupts, trace_cache, trained_model, workdir_lock
from seaice_jax.config_checks import check_training_config
from seaice_jax.data.sources import make_train_source
from seaice_jax.inference.validate import evaluate_scenes
from seaice_jax.metric_writer import MetricsWriter, read_rows
from seaice_jax.parallel import make_mesh, mesh_device_count
from seaice_jax.prepare import prepare_data
from seaice_jax.train_step import make_train_step


class NonFiniteLossError(RuntimeError):
    pass


def say(line: str) -> None:
    """A progress line on stdout, from process 0 only."""
    if jax.process_index() == 0:
        print(line, flush=True)


def held_out_summary(result: dict, workdir: str) -> str | None:
    """The line launch/train.py prints after a run that evaluated on scenes with ice_truth, else None."""
    if result.get("pixel_accuracy_als") is None:
        return None
    return ("held-out pixel accuracy of the binary ice map vs ice_truth: "
            f"ALS {result['pixel_accuracy_als']:.4f}, concentration-preserving {result['pixel_accuracy_conc']:.4f}, "
            f"sigmoid>=0.5 {result['pixel_accuracy_sigmoid']:.4f} (all-ice baseline "
            f"{result['pixel_accuracy_all_ice']:.4f}); checkpoint in {workdir}/checkpoints")


def devices_line(num_used: int, config: ml_collections.ConfigDict) -> str:
    """Which devices a run uses, and why when it leaves some out."""
    total, procs = jax.device_count(), jax.process_count()
    line = f"training on {num_used} of {total} {jax.default_backend()} device(s)"
    line += f" in {procs} processes" if procs > 1 else ""
    if num_used < total:
        line += (f" (train.num_devices={config.train.num_devices})" if config.train.num_devices else
                 f" (the most that divide train.batch_size={config.train.batch_size}; CPU devices share the cores)")
    return line


@contextlib.contextmanager
def removed_if_failed(workdir: str):
    """A workdir this call creates is removed again when the run fails before its first checkpoint:
    a failed first run leaves nothing behind (no config.json, no half-made data folder)."""
    fresh = not os.path.exists(workdir) or workdir_lock.created_by_this_run(workdir)
    try:
        yield
    except BaseException:  # an interrupt (interrupts.Interrupted) too
        if fresh and jax.process_index() == 0 and not trained_model.has_checkpoint(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
        raise


@workdir_lock.locked_workdir  # one run per workdir: a second is refused in one line naming the holder
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train per config, checkpointing and evaluating as it goes; returns the final metrics.

    What can be refused is refused before anything is written: a config that differs from the
    workdir's stored one (`trained_model.check_resumable`), a device count that does not fit the
    batch, a model the config cannot build.
    """
    check_training_config(config)  # numbers in range, the field named (config_checks)
    # ---- Checks, the mesh, the model -----------------------------------------------------------
    trained_model.check_resumable(config, workdir)
    n_used = mesh_device_count(config.train.num_devices, config.train.batch_size)
    if n_used > jax.device_count():
        raise ValueError(f"train.num_devices {n_used}: only {jax.device_count()} device(s) here")
    mesh = make_mesh(n_used)
    gb = config.train.batch_size
    if gb % mesh.size:
        raise ValueError(f"train.batch_size {gb} must be a multiple of the device count {mesh.size}")
    fns, tx, state = trained_model.initial_state(config)
    say(devices_line(mesh.size, config))

    # ---- Data on disk --------------------------------------------------------------------------
    with removed_if_failed(workdir):
        os.makedirs(workdir, exist_ok=True)
        shard_dir, val_scenes = prepare_data(config, workdir)
        # Scoped: the mesh is gone when this returns (evaluation and benchmarks after it run without).
        with jax.set_mesh(mesh):
            return _train(config, workdir, mesh, (fns, tx, state), shard_dir, val_scenes)


def config_fingerprint(config: ml_collections.ConfigDict, mesh) -> str:
    """What the train step's traced program depends on besides the code and its arguments."""
    return trained_model.model_fingerprint(config) + repr(dict(mesh.shape))


def _stored_evaluation(workdir: str, step: int) -> dict:
    rows = [r for r in read_rows(workdir, "eval") if r["step"] == step]
    return {k: v for k, v in rows[-1].items() if k not in ("step", "split")} if rows else {}


def _print_eval(final: dict) -> None:
    say("eval " + " ".join(f"{k} {v:.4f}" for k, v in final.items() if v is not None))


def _train(config: ml_collections.ConfigDict, workdir: str, mesh, model, shard_dir: str,
           val_scenes: list[str]) -> dict:
    # ---- Model, optimizer; a finished run ------------------------------------------------------
    gb = config.train.batch_size
    fns, tx, state = model
    state = jax.device_put(state, jax.NamedSharding(mesh, jax.P()))  # replicated on every device
    mngr = trained_model.checkpoint_manager(workdir, config)
    start = checkpoint_recovery.newest_readable_step(  # unreadable steps named, set aside, skipped
        mngr, state, workdir, set_aside=True, note=say, restore=trained_model.restore_checkpoint)
    num_steps = config.train.num_steps
    if start is not None and start >= num_steps:  # nothing to train: no data source needed
        state = trained_model.restore_checkpoint(mngr, start, state)
        mngr.close()
        return _finished(config, workdir, fns, state, start, val_scenes)
    say(f"model: {sum(x.size for x in jax.tree.leaves(state.params))} parameters")

    # ---- Input pipeline -----------------------------------------------------------------------
    channels = trained_model.input_channels(config)
    # Shards through grain (each process reads its own slice of every global batch) or scenes resident
    # in device memory (data/sources.py); either way the step gets one data argument.
    source = make_train_source(config, shard_dir, mesh, channels)
    data_iter = source.iterator  # None for resident data: the step is the position
    say(f"data: {source.description}")

    # ---- Resume -------------------------------------------------------------------------------
    # The iterator is restored in place with the state: both continue from the same step.
    if start is not None:
        state = trained_model.restore_checkpoint(mngr, start, state, data_iter)
        say(f"resumed from step {start}")
    start = int(start or 0)

    # ---- Main loop ----------------------------------------------------------------------------
    # jax.jit, with the traced program kept beside the compilation cache when the launcher turned that
    # on (trace_cache): a second start reads it back instead of tracing. The step closes over the
    # config's values (loss weights, schedule, augmentation), so the whole config is in its key.
    step_fn = trace_cache.cached_jit(source.wrap_step(make_train_step(fns, tx, config.loss)), name="train_step",
                                     fingerprint=config_fingerprint(config, mesh), donate_argnums=(0,), note=say)
    lr = trained_model.learning_rate_schedule(config)
    writer = MetricsWriter(workdir, resume_step=start)  # rows past the restored step go (a killed run's)
    # Metrics stay on device until a log step, so no step waits for the previous one to finish.
    pending: list[dict] = []
    t_last, step_last = time.perf_counter(), start
    # Time in next(data_iter), logged per step as data_wait_s: says when device prefetch would pay.
    data_wait = 0.0
    config_saved = False
    final: dict = {}
    say(f"training steps {start + 1} to {num_steps}; compiling the train step ...")
    try:
        for step in range(start + 1, num_steps + 1):
            t_data = time.perf_counter()
            data = source.next_input()
            data_wait += time.perf_counter() - t_data
            t_step = time.perf_counter()
            state, metrics = step_fn(state, data)
            if step == start + 1:  # the first call traces and compiles before it dispatches
                how = {"read": " (traced program read from the cache)"}.get(step_fn.source, "")
                say(f"compiled the train step in {time.perf_counter() - t_step:.1f} s{how}")
            pending.append(metrics)
            stopping = interrupts.stop_requested(step)  # SIGINT / SIGTERM: log, save and stop after this step
            if step % config.train.log_every == 0 or step == num_steps or stopping:
                means = {k: float(np.mean([jax.device_get(m[k]) for m in pending])) for k in pending[0]}
                if means.pop("nonfinite") > 0:
                    raise NonFiniteLossError(
                        f"non-finite loss between steps {step - len(pending) + 1} and {step}; "
                        f"stopping, last good checkpoint: step {mngr.latest_step()}")
                pending = []
                now = time.perf_counter()
                sps = (step - step_last) / (now - t_last)
                means.update(steps_per_s=sps, images_per_s=sps * gb, data_wait_s=data_wait / (step - step_last),
                             lr=float(lr(step - 1)))  # optax counts updates from 0
                t_last, step_last, data_wait = now, step, 0.0
                writer.write(step, means)
                say(f"step {step}/{num_steps} loss {means['loss']:.4f} lr {means['lr']:.2e} "
                    f"{sps:.2f} steps/s {sps * gb:.1f} images/s")
            # ---- Checkpoint, evaluate --------------------------------------------------------
            # Saved after the step that consumed the batch, so state and iterator position agree.
            if step % config.train.checkpoint_every == 0 or step == num_steps or stopping:
                if not config_saved:  # written with this run's first checkpoint: it describes that one
                    trained_model.save_config(config, workdir)
                    config_saved = True
                trained_model.save_checkpoint(mngr, step, state, data_iter)
            if val_scenes and not stopping and (step % config.train.eval_every == 0 or step == num_steps):
                mngr.wait_until_finished()  # this step's checkpoint complete on disk before the evaluation
                say(f"evaluating on {len(val_scenes)} held-out scene(s) ...")
                final = evaluate_scenes(config, fns, state.params, state.batch_stats, val_scenes)
                writer.write(step, final, prefix="eval")
                _print_eval(final)
            if stopping:
                raise interrupts.stopped_after(step, num_steps, os.path.join(trained_model.checkpoint_dir(workdir),
                                                                              str(step)))
    finally:
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
    final = dict(final, step=num_steps)
    return final


def _finished(config: ml_collections.ConfigDict, workdir: str, fns, state, step: int,
              val_scenes: list[str]) -> dict:
    """A rerun of a run that is done: say so and give its final evaluation (stored, or made now)."""
    say(f"{workdir} already holds step {step} (train.num_steps={config.train.num_steps}): nothing to "
        "train; raise --config.train.num_steps to continue")
    final = _stored_evaluation(workdir, step)
    if not final and val_scenes:
        say(f"evaluating on {len(val_scenes)} held-out scene(s) ...")
        final = evaluate_scenes(config, fns, state.params, state.batch_stats, val_scenes)
    if final:
        _print_eval(final)
    return dict(final, step=step)
