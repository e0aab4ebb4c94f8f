"""The trained model's checkpoint layout: the Orbax handler registry and preservation policy, and
checkpoints written before them (item_names / item_handlers / max_to_keep) still restoring."""

from __future__ import annotations

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from seaice_jax import trained_model
from seaice_jax.config import base_config


def tiny_config():
    c = base_config()
    c.data.channels = ["nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5v"]
    c.model.filters = [4, 8]
    c.train.keep_checkpoints = 2
    return c


def marked_state(config, value: float):
    """A TrainState whose every float leaf is `value` (so a restore cannot pass by chance)."""
    _, _, state = trained_model.initial_state(config)
    state = jax.tree.map(lambda a: np.full(a.shape, value, a.dtype) if np.issubdtype(a.dtype, np.floating) else a,
                         state)
    return state.replace(step=np.asarray(7, np.int32))


def data_iterator():
    it = iter(grain.MapDataset.range(100).to_iter_dataset())
    for _ in range(5):
        next(it)
    return it


def write_the_old_way(workdir: str, config, state, data_iter, step: int) -> None:
    """What train.py wrote before the handler registry: item_names, item_handlers and max_to_keep."""
    mngr = ocp.CheckpointManager(
        trained_model.checkpoint_dir(workdir),
        item_names=("state", "data"),
        item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()},
        options=ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints, create=True))
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            data=grain.checkpoint.CheckpointSave(data_iter)))
    mngr.wait_until_finished()
    mngr.close()
    trained_model.save_config(config, workdir)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_checkpoint_written_the_old_way_restores_for_inference_and_for_resume(tmp_path):
    config = tiny_config()
    workdir = str(tmp_path / "old")
    old_iter = data_iterator()
    state = marked_state(config, 0.25)
    write_the_old_way(workdir, config, state, old_iter, step=7)

    _, fns, params, batch_stats, step = trained_model.restore_for_inference(workdir)
    assert step == 7 and isinstance(fns, trained_model.ModelFns)
    for got, want in zip(leaves((params, batch_stats)), leaves((state.params, state.batch_stats)), strict=True):
        np.testing.assert_array_equal(got, want)

    # A resumed run reads the state and the iterator position through the new manager.
    mngr = trained_model.checkpoint_manager(workdir, config)
    assert mngr.latest_step() == 7
    new_iter = iter(grain.MapDataset.range(100).to_iter_dataset())
    _, _, template = trained_model.initial_state(config)
    restored = trained_model.restore_checkpoint(mngr, 7, template, new_iter)
    mngr.close()
    assert int(restored.step) == 7
    for got, want in zip(leaves(restored), leaves(state), strict=True):
        np.testing.assert_array_equal(got, want)
    assert next(new_iter) == next(old_iter) == 5


def test_new_manager_keeps_the_latest_steps_and_restores_what_it_saved(tmp_path):
    config = tiny_config()
    workdir = str(tmp_path / "new")
    mngr = trained_model.checkpoint_manager(workdir, config)
    data_iter = data_iterator()
    for step in (1, 2, 3):
        trained_model.save_checkpoint(mngr, step, marked_state(config, float(step)), data_iter)
    mngr.wait_until_finished()
    assert mngr.all_steps() == [2, 3]  # keep_checkpoints = 2
    mngr.close()
    trained_model.save_config(config, workdir)
    _, _, params, _, step = trained_model.restore_for_inference(workdir)
    assert step == 3 and all((leaf == 3.0).all() for leaf in leaves(params))
    _, _, params, _, step = trained_model.restore_for_inference(workdir, step=2)
    assert step == 2 and all((leaf == 2.0).all() for leaf in leaves(params))


def test_restore_without_checkpoint_names_the_workdir(tmp_path):
    config = tiny_config()
    trained_model.save_config(config, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no checkpoint to load"):
        trained_model.restore_for_inference(str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()  # reading creates nothing
