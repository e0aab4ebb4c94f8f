"""The elevation training run: `python launch/train.py --config configs/elevation.py --workdir W`.

Synthesizes `config.data.synthetic` scenes with altimetry into `<workdir>/data/elevation_train` (seed
`config.data.synthetic.seed`; a rerun reuses them), collocates the tracks of `config.elevation.kind`
with each scene, and trains one network with two heads: the ice logit (region concentration loss, as
the quickstart) and the freeboard (`models/freeboard.py`: p_ice * softplus(raw), leads at 0) with the
masked footprint Huber loss (`altimetry.loss.masked_huber_loss`, weighted by the stated uncertainty).
The checkpoint layout is the one `trained_model.restore_for_inference` reads (state item only).
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from seaice_jax import losses, trained_model
from seaice_jax.altimetry.loss import masked_huber_loss
from seaice_jax.elevation.data import CropSampler, load_elevation_scenes, read_altimetry, tracks_of_kind
from seaice_jax.metric_writer import MetricsWriter
from seaice_jax.prepare import synthesize_elevation_scenes


def elevation_loss(outputs, batch, loss_cfg, ecfg):
    """(loss, metrics): the ice head's region + entropy terms (losses.total_loss) plus
    `ecfg.weight` x the masked footprint Huber loss of the freeboard head."""
    ice_out = {k: v for k, v in outputs.items() if k == "ice"}
    loss, metrics = losses.total_loss(ice_out, batch, loss_cfg)
    fb = masked_huber_loss(outputs["freeboard"], batch["fb_index"], batch["fb_weight"], batch["fb_value"],
                           batch["fb_sigma"], batch["fb_mask"], delta=ecfg.huber_delta, sigma_floor=ecfg.sigma_floor)
    loss = loss + ecfg.weight * fb
    metrics = dict(metrics, freeboard=fb, loss=loss, points=jnp.sum(batch["fb_mask"]).astype(jnp.float32))
    return loss, metrics


def make_elevation_step(fns, tx, loss_cfg, ecfg):
    def step(state, batch):
        def loss_fn(params):
            out, new_stats = fns.apply_train(params, state.batch_stats, batch["inputs"])
            loss, metrics = elevation_loss(out, batch, loss_cfg, ecfg)
            return loss, (metrics, new_stats)

        (loss, (metrics, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss)
        new = trained_model.TrainState(state.step + 1, params, new_stats, opt_state)
        kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        return kept, dict(metrics, nonfinite=(~finite).astype(jnp.float32))

    return step


def _manager(workdir: str, config) -> ocp.CheckpointManager:
    policy = ocp.checkpoint_managers.LatestN(n=config.train.keep_checkpoints)
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True)
    return ocp.CheckpointManager(trained_model.checkpoint_dir(workdir), options=options,
                                 handler_registry=trained_model._handler_registry(with_data=False))


def train_elevation(config, workdir: str) -> dict:
    """Train the ice + freeboard model per config; returns the final metrics (see module doc)."""
    t0, c0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    trained_model.save_config(config, workdir)
    e = config.elevation
    paths, alt_dir = synthesize_elevation_scenes(config, workdir)
    tracks, _ = read_altimetry(alt_dir)
    tracks = tracks_of_kind(tracks, e.kind)
    channels = trained_model.input_channels(config)
    scenes = load_elevation_scenes(paths, tracks, channels, max_time_gap_s=e.max_time_gap_h * 3600.0,
                                   max_pixels=e.max_pixels)
    n_pts = sum(len(s.colloc) for s in scenes)
    print(f"elevation: {len(scenes)} scenes, {len(tracks)} {e.kind} tracks, {n_pts} collocated points "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    sampler = CropSampler(scenes, config.data.patch_size, e.points_per_crop, config.data.max_regions, config.seed)
    fns, tx, state = trained_model.initial_state(config)
    step_fn = jax.jit(make_elevation_step(fns, tx, config.loss, e), donate_argnums=(0,))
    mngr = _manager(workdir, config)
    start = mngr.latest_step()
    if start is not None:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        state = mngr.restore(start, args=ocp.args.Composite(
            **{trained_model.STATE_ITEM: ocp.args.StandardRestore(abstract)}))[trained_model.STATE_ITEM]
        sampler.rng = np.random.default_rng([config.seed, int(start)])
        print(f"resumed from step {start}", file=sys.stderr)
    start = int(start or 0)
    writer = MetricsWriter(workdir)
    num_steps = config.train.num_steps
    pending, final = [], {}
    t_last, step_last = time.perf_counter(), start
    try:
        for step in range(start + 1, num_steps + 1):
            batch = sampler.batch(config.train.batch_size)
            state, metrics = step_fn(state, batch)
            pending.append(metrics)
            if step % config.train.log_every == 0 or step == num_steps:
                means = {k: float(np.mean([jax.device_get(m[k]) for m in pending])) for k in pending[0]}
                if means.pop("nonfinite") > 0:
                    raise RuntimeError(f"non-finite loss before step {step}")
                pending = []
                now = time.perf_counter()
                means["steps_per_s"] = (step - step_last) / (now - t_last)
                t_last, step_last = now, step
                writer.write(step, means)
                final = means
                print(f"step {step}/{num_steps} loss {means['loss']:.4f} freeboard {means['freeboard']:.4f} "
                      f"region {means.get('region', 0.0):.4f} {means['steps_per_s']:.2f} steps/s", flush=True)
            if step % config.train.checkpoint_every == 0 or step == num_steps:
                mngr.save(step, args=ocp.args.Composite(
                    **{trained_model.STATE_ITEM: ocp.args.StandardSave(state)}))
    finally:
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"elevation training: {wall:.0f} s wall, {cpu:.0f} s CPU; checkpoint in "
          f"{trained_model.checkpoint_dir(workdir)}", flush=True)
    return dict(final, step=num_steps, wall_s=wall, cpu_s=cpu)
