"""The training step: a pure function of (TrainState, batch), jitted with donated state by train.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from seaice_jax import losses
from seaice_jax.trained_model import ModelFns, TrainState


def make_train_step(fns: ModelFns, tx: optax.GradientTransformation, loss_cfg):
    """step(state, batch) -> (state, metrics). A non-finite loss leaves the state unchanged."""

    def step(state: TrainState, batch: dict):
        def loss_fn(params):
            out, new_stats = fns.apply_train(params, state.batch_stats, batch["inputs"])
            loss, metrics = losses.total_loss(out, batch, loss_cfg)
            return loss, (metrics, new_stats)

        (loss, (metrics, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
        new = TrainState(state.step + 1, params, new_stats, opt_state)
        # Keep the last good state when the loss blows up; the host stops the run at the next log.
        kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        kept = kept.replace(step=state.step + 1)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                       nonfinite=(~finite).astype(jnp.float32))
        return kept, metrics

    return step
