"""The model as a trained object: config -> network, split into pure functions, checkpoint layout, restore.

Everything that holds or reads a trained model imports this module: training (`train.py`), inference
(`inference/`), Grad-CAM (`explain.py`), sweeps and the benchmarks. The NNX model is split once into
(graphdef, params, batch statistics) so that jitted code is a pure function of arrays (`ModelFns`).

A training workdir holds
  config.json           the full config of the run (`save_config` / `load_config`)
  checkpoints/<step>/   Orbax items 'state' (a `TrainState`: step, params, batch_stats, opt_state)
                        and 'data' (the grain iterator position)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
import orbax.checkpoint as ocp
from flax import nnx, struct

from seaice_jax import fileio
from seaice_jax.config import freeboard_kinds, predicts_uncertainty
from seaice_jax.data import channels as ch
from seaice_jax.models import build_model

CHECKPOINT_DIR = "checkpoints"
CONFIG_JSON = "config.json"
STATE_ITEM = "state"  # TrainState
DATA_ITEM = "data"  # grain iterator position


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


@dataclasses.dataclass
class ModelFns:
    """The split model: pure functions of (params, batch_stats, inputs)."""

    graphdef_train: Any
    graphdef_eval: Any
    # what the model's traced programs depend on besides their arguments (the config it was built
    # from; `model_fingerprint`): functions that keep a traced program (trace_cache) key it with this,
    # and "" keeps none
    fingerprint: str = ""

    def apply_train(self, params, batch_stats, x):
        # copy: fresh Variables at this trace level (merge would reuse the outer-trace ones).
        model = nnx.merge(self.graphdef_train, params, batch_stats, copy=True)
        out = model(x)
        return out, nnx.state(model, nnx.BatchStat)

    def apply_eval(self, params, batch_stats, x):
        return nnx.merge(self.graphdef_eval, params, batch_stats, copy=True)(x)


def input_channels(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The model's input channel names, in input order."""
    return ch.resolve_channels(list(config.data.channels))


def model_fingerprint(config: ml_collections.ConfigDict) -> str:
    """The whole config as sorted JSON: everything a model built from it can depend on."""
    return json.dumps(config.to_dict(), sort_keys=True, default=repr)


def _split(model, fingerprint: str = "") -> tuple[ModelFns, Any, Any]:
    model.train()
    graphdef_train, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    model.eval()
    graphdef_eval, _, _ = nnx.split(model, nnx.Param, nnx.BatchStat)
    return ModelFns(graphdef_train, graphdef_eval, fingerprint), params, batch_stats


def _build(config: ml_collections.ConfigDict, seed: int):
    channels = input_channels(config)
    return build_model(config.model, len(channels), nnx.Rngs(seed),
                       freeboard_kinds=freeboard_kinds(config), uncertainty=predicts_uncertainty(config),
                       point_pairs=ch.point_channel_pairs(channels))


def _abstract_model(config: ml_collections.ConfigDict):
    """(ModelFns, params, batch_stats) with jax.ShapeDtypeStruct leaves: nothing initialised."""
    return _split(nnx.eval_shape(lambda: _build(config, config.seed)), model_fingerprint(config))


def create_model(config: ml_collections.ConfigDict, seed: int | None = None):
    """(ModelFns, params, batch_stats) for the config; parameters live in float32."""
    return _split(_build(config, config.seed if seed is None else seed), model_fingerprint(config))


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """The learning rate of update `count` (0 for the first step): linear warmup, then cosine decay."""
    o = config.optim
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=o.lr, warmup_steps=o.warmup_steps,
        decay_steps=max(config.train.num_steps, o.warmup_steps + 1), end_value=o.lr * o.final_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    o = config.optim
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm),
        optax.adamw(learning_rate_schedule(config), b1=o.b1, b2=o.b2, weight_decay=o.weight_decay),
    )


def initial_state(config: ml_collections.ConfigDict) -> tuple[ModelFns, optax.GradientTransformation, TrainState]:
    """(ModelFns, optimizer, TrainState at step 0) for the config."""
    fns, params, batch_stats = create_model(config)
    tx = make_optimizer(config)
    return fns, tx, TrainState(jnp.zeros((), jnp.int32), params, batch_stats, tx.init(params))


def abstract_state(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding):
    """`initial_state` with jax.ShapeDtypeStruct leaves placed by `sharding`: a template to restore a
    checkpoint into, with nothing computed (initialising the parameters runs dozens of small
    programs, each compiled first: ~6 s for the quickstart model on 2 CPU cores)."""
    fns, params, batch_stats = _abstract_model(config)
    tx = make_optimizer(config)
    state = TrainState(jax.ShapeDtypeStruct((), jnp.int32), params, batch_stats, jax.eval_shape(tx.init, params))
    return fns, tx, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


# ----------------------------------------------------------------------------------------------
# Checkpoint layout


def checkpoint_dir(workdir: str) -> str:
    return os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))


def _handler_registry(with_data: bool) -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """Which Orbax handler writes and reads each item of a step folder (with_data=False: a read-only
    reader of the weights, which restores part of the state item, see `restore_weights`)."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    if not with_data:
        registry.add(STATE_ITEM, ocp.args.PyTreeRestore, ocp.PyTreeCheckpointHandler)
        return registry
    registry.add(STATE_ITEM, ocp.args.StandardSave, ocp.StandardCheckpointHandler)
    registry.add(STATE_ITEM, ocp.args.StandardRestore, ocp.StandardCheckpointHandler)
    if with_data:
        import grain  # here, not at the top: inference reads checkpoints without grain (0.4-0.8 s to import)

        registry.add(DATA_ITEM, grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointHandler)
        registry.add(DATA_ITEM, grain.checkpoint.CheckpointRestore, grain.checkpoint.CheckpointHandler)
    return registry


def checkpoint_manager(workdir: str, config) -> ocp.CheckpointManager:
    """The training run's manager: keeps the latest `config.train.keep_checkpoints` steps."""
    policy = ocp.checkpoint_managers.LatestN(n=config.train.keep_checkpoints)
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True)
    from seaice_jax.checkpoint_recovery import quiet

    with quiet():  # a damaged step's metadata is said in one line by checkpoint_recovery, not logged here
        return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                     handler_registry=_handler_registry(with_data=True))


def save_checkpoint(mngr: ocp.CheckpointManager, step: int, state: TrainState, data_iter) -> None:
    """State and iterator position in one step folder: a resume then continues both together."""
    items = {STATE_ITEM: ocp.args.StandardSave(state)}
    if data_iter is not None:  # None: device-resident data, whose position is the step itself
        import grain

        items[DATA_ITEM] = grain.checkpoint.CheckpointSave(data_iter)
    mngr.save(step, args=ocp.args.Composite(**items))


def restore_checkpoint(mngr: ocp.CheckpointManager, step: int, template: TrainState, data_iter=None) -> TrainState:
    """The state of `step` shaped, typed and sharded like `template`; with `data_iter`, the iterator's
    position is restored into it too."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    items = {STATE_ITEM: ocp.args.StandardRestore(abstract)}
    if data_iter is not None:
        import grain

        items[DATA_ITEM] = grain.checkpoint.CheckpointRestore(data_iter)
    return mngr.restore(step, args=ocp.args.Composite(**items))[STATE_ITEM]


def abstract_weights(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding):
    """(ModelFns, {'step', 'params', 'batch_stats'} as jax.ShapeDtypeStruct placed by `sharding`): what
    inference restores of a `TrainState`, built without the optimizer."""
    fns, params, batch_stats = _abstract_model(config)
    weights = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params, "batch_stats": batch_stats}
    return fns, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), weights)


def restore_weights(mngr: ocp.CheckpointManager, step: int, template: dict) -> TrainState:
    """Step, params and batch statistics of `step` (a manager with `_handler_registry(with_data=False)`),
    shaped like `template` (`abstract_weights`); the optimizer state on disk (twice the parameters)
    is not read. A TrainState with opt_state None."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    args = ocp.args.PyTreeRestore(item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                                  partial_restore=True)
    got = mngr.restore(step, args=ocp.args.Composite(**{STATE_ITEM: args}))[STATE_ITEM]
    return TrainState(got["step"], got["params"], got["batch_stats"], None)


def has_checkpoint(workdir: str) -> bool:
    """Whether workdir holds a finished checkpoint step (a folder named by its step number)."""
    folder = checkpoint_dir(workdir)
    return os.path.isdir(folder) and any(n.isdigit() for n in os.listdir(folder))


# Fields a rerun may change: they steer how long the loop runs, what it logs and evaluates and on how
# many devices (same losses), not the model, the optimizer or the data order that the checkpoint
# continues. Everything else must equal the stored config.json.
RESUMABLE_FIELDS = ("train.num_steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
                    "train.keep_checkpoints", "train.num_devices", "data.worker_count", "data.val_scenes",
                    "eval.*")


class ConfigMismatchError(ValueError):
    """A rerun's config differs from the stored one in a field the checkpoint depends on."""


def _flat_config(tree, prefix: str = "") -> dict:
    """{'model': {'filters': [4, 8]}} -> {'model.filters': (4, 8)}: lists and tuples alike (config.json
    stores tuples as lists), NaN equal to itself."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flat_config(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, (list, tuple)):
        return {prefix[:-1]: tuple(_flat_config(v, "_.")["_"] for v in tree)}
    if isinstance(tree, float) and tree != tree:
        return {prefix[:-1]: "NaN"}
    return {prefix[:-1]: tree}


def _resumable(path: str) -> bool:
    return any(path == f or (f.endswith(".*") and path.startswith(f[:-1])) for f in RESUMABLE_FIELDS)


def config_changes(stored: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
    """{dotted path: (stored value, new value)} of every field that differs (missing = None)."""
    old = _flat_config(stored)
    new = _flat_config(json.loads(config.to_json_best_effort()))
    return {p: (old.get(p), new.get(p)) for p in sorted(set(old) | set(new)) if old.get(p) != new.get(p)}


def _shown(value) -> str:
    return "(" + ", ".join(map(_shown, value)) + ")" if isinstance(value, tuple) else repr(value)


def check_resumable(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Raise ConfigMismatchError, before anything is written, when workdir holds a checkpoint trained
    with a config that differs from `config` in a field outside RESUMABLE_FIELDS."""
    path = os.path.join(workdir, CONFIG_JSON)
    if not (os.path.exists(path) and has_checkpoint(workdir)):
        return
    with open(path) as f:
        stored = json.load(f)
    fixed = {p: v for p, v in config_changes(stored, config).items() if not _resumable(p)}
    if fixed:
        diffs = ", ".join(f"{p} {_shown(a)} -> {_shown(b)}" for p, (a, b) in fixed.items())
        raise ConfigMismatchError(
            f"{workdir} holds a run trained with another config ({diffs}); a rerun may change only "
            f"{', '.join(RESUMABLE_FIELDS)}: use a new --workdir or the stored values ({path})")


def save_config(config, workdir: str) -> None:
    if jax.process_index() == 0:
        fileio.write_text(os.path.join(workdir, CONFIG_JSON), config.to_json_best_effort(indent=1))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no config.json; is this a training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_for_inference(workdir: str, step: int | None = None, note=None):
    """(config, ModelFns, params, batch_stats, step) from the latest readable (or given) checkpoint of
    workdir. An unreadable latest step is named in one `warning:` line (`note`, default stderr) and
    the next older one used; none readable (or the given step unreadable) raises FileNotFoundError."""
    from seaice_jax import checkpoint_recovery

    config = load_config(workdir)
    fns, template = abstract_weights(config, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    checkpoint_recovery.install_noise_filters()  # Orbax's "read only" warning, TensorStore's late reports
    # Read-only: no folder is created and no step deleted; the iterator item is not read.
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    with checkpoint_recovery.quiet():  # a damaged step's metadata: said below in one line, not logged here
        mngr = ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                     handler_registry=_handler_registry(with_data=False))
    with mngr:
        if step is None:
            found, state = checkpoint_recovery.newest_readable(
                mngr, template, workdir, set_aside=False, restore=restore_weights,
                note=note or (lambda line: print(line, file=sys.stderr, flush=True)), using="using step",
                check_data=False)
            if found is None:
                raise FileNotFoundError(f"{workdir}: no checkpoint to load" if not mngr.all_steps() else
                                        f"{workdir}: no readable checkpoint (see the warnings above)")
            step = found
        else:
            try:
                with checkpoint_recovery.quiet():
                    state = restore_weights(mngr, step, template)
            except Exception as e:  # noqa: BLE001 - a given step that does not read is one line
                raise FileNotFoundError(f"{os.path.join(checkpoint_dir(workdir), str(step))}: checkpoint cannot "
                                        f"be read ({checkpoint_recovery.short_reason(e)})") from None
    return config, fns, state.params, state.batch_stats, int(step)
