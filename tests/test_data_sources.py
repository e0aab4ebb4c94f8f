"""One train step on each data source: host-expanded shards, compact shards expanded on device, and
device-resident scenes. The step is built here from the model and the losses (not via train.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, struct

from seaice_jax import losses, synthetic
from seaice_jax.config import base_config
from seaice_jax.data import device_augment, pipeline, resident, shards
from seaice_jax.models import build_model

CHANNELS = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v")
SPEC = shards.PatchSpec(32, 32, 1, 16, ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle",
                                          "distance_map", "btemp_36_5v"))


@struct.dataclass
class State:
    step: jax.Array
    params: object
    batch_stats: object
    opt_state: object


def tiny_step():
    c = base_config()
    c.model.filters = [4, 8]
    model = build_model(c.model, len(CHANNELS), nnx.Rngs(0))
    model.train()
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    tx = optax.adam(1e-3)

    def step(state, batch):
        def loss_fn(p):
            m = nnx.merge(graphdef, p, state.batch_stats, copy=True)
            loss, _ = losses.total_loss(m(batch["inputs"]), batch, c.loss)
            return loss, nnx.state(m, nnx.BatchStat)

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt = tx.update(grads, state.opt_state, state.params)
        return State(state.step + 1, optax.apply_updates(state.params, updates), new_stats, opt), loss

    return step, State(jnp.zeros((), jnp.int32), params, stats, tx.init(params))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    scenes = synthetic.write_synthetic_scenes(str(root / "scenes"), 2, "rtt", "winter", (80, 80), 1)
    _, errors = shards.convert_scenes(scenes, str(root / "shards"), SPEC, progress=False)
    assert not errors
    return scenes, str(root / "shards")


def run_one(step, state, batch_or_data):
    new, loss = jax.jit(step)(state, batch_or_data)
    assert np.isfinite(float(loss)) and int(new.step) == 1
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.params, state.params))
    assert any(moved)
    return float(loss)


def test_a_step_on_host_expanded_shards(files):
    _, folder = files
    step, state = tiny_step()
    ds = pipeline.make_dataset(folder, channels=CHANNELS, batch_size=4, process_index=0, process_count=1)
    run_one(step, state, next(iter(ds)))


def test_a_step_on_compact_shards_expanded_on_device_matches_the_host_expansion(files):
    _, folder = files
    step, state = tiny_step()
    kw = dict(channels=CHANNELS, batch_size=4, augment=False, process_index=0, process_count=1)
    host = next(iter(pipeline.make_dataset(folder, **kw)))
    packed = next(iter(pipeline.make_dataset(folder, expand="device", **kw)))
    layout = pipeline.load_layout(folder)
    dev_step = device_augment.with_device_batches(step, layout=layout, channels=CHANNELS, key=jax.random.key(0),
                                                  augment=False)
    a = run_one(dev_step, state, packed)
    b = run_one(step, state, host)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    aug_step = device_augment.with_device_batches(step, layout=layout, channels=CHANNELS, key=jax.random.key(0))
    run_one(aug_step, state, packed)


def test_a_step_on_device_resident_scenes(files):
    scenes, _ = files
    step, state = tiny_step()
    spec = resident.ResidentSpec(patch_size=32, downsample=1, max_regions=16, channels=CHANNELS)
    data = resident.load_resident(scenes, spec)
    res_step = resident.with_resident_batches(step, spec=spec, batch_size=4, key=jax.random.key(0))
    run_one(res_step, state, data)
