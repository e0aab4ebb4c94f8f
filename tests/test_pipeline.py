import numpy as np
import pytest

from seaice_jax.data import pipeline, shards
from tests.test_shards import SPEC, make_scene


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("shards"))
    for i in range(2):
        scene = make_scene(h=24, w=24, seed=i, name=f"2019010{i}T000000_cis_prep")
        count, stats = shards.write_shard(f"{folder}/{scene.name}.array_record",
                                          shards.extract_patches(scene, SPEC), 2)
        shards.write_sidecar(folder, scene, scene.path, count, stats, SPEC)
    shards.write_manifest(folder)
    return folder


def batches(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_flip_rotate_moves_inputs_labels_regions_and_truth_together():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 6))
    patch = {
        "inputs": np.stack([base, 2 * base], -1).astype(np.float32),
        "sic": (base > 0).astype(np.uint8), "sod": (base > 0.5).astype(np.uint8),
        "floe": (base > -0.5).astype(np.uint8), "region_ids": (base > 0).astype(np.int32),
        "valid": base > -1, "ice_truth": (base > 0).astype(np.uint8),
        "region_conc": np.array([0.1, 0.9], np.float32),
    }
    for fh in (False, True):
        for fw in (False, True):
            for k in range(4):
                out = pipeline.flip_rotate(patch, fh, fw, k)
                x = out["inputs"][..., 0]
                np.testing.assert_array_equal(out["inputs"][..., 1], 2 * x)
                for key, f in (("sic", x > 0), ("sod", x > 0.5), ("floe", x > -0.5), ("region_ids", x > 0),
                               ("valid", x > -1), ("ice_truth", x > 0)):
                    np.testing.assert_array_equal(out[key], f.astype(out[key].dtype))
                np.testing.assert_array_equal(out["region_conc"], patch["region_conc"])
                # the pixel multiset is unchanged
                np.testing.assert_allclose(np.sort(x.ravel()), np.sort(base.ravel()), rtol=1e-6)


def test_batches_have_the_selected_channels_and_shapes(shard_dir):
    ds = pipeline.make_dataset(shard_dir, channels=["nersc_sar_secondary"], batch_size=3, seed=0,
                               process_index=0, process_count=1)
    b = batches(ds, 1)[0]
    assert b["inputs"].shape == (3, 8, 8, 1) and b["region_conc"].shape == (3, 4)
    assert b["valid"].dtype == bool and b["region_ids"].dtype == np.int32


def test_restored_iterator_gives_the_same_next_batch(shard_dir):
    ds = pipeline.make_dataset(shard_dir, channels=SPEC.channels, batch_size=4, seed=3,
                               process_index=0, process_count=1)
    it = iter(ds)
    for _ in range(7):  # past one epoch (18 patches)
        next(it)
    state = it.get_state()
    want = next(it)
    it2 = iter(ds)
    it2.set_state(state)
    got = next(it2)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_two_processes_together_read_the_single_process_batches(shard_dir):
    kw = dict(channels=SPEC.channels, seed=5)
    single = batches(pipeline.make_dataset(shard_dir, batch_size=4, process_index=0, process_count=1, **kw), 5)
    p0 = batches(pipeline.make_dataset(shard_dir, batch_size=2, process_index=0, process_count=2, **kw), 5)
    p1 = batches(pipeline.make_dataset(shard_dir, batch_size=2, process_index=1, process_count=2, **kw), 5)
    for s, a, b in zip(single, p0, p1):
        np.testing.assert_array_equal(s["inputs"], np.concatenate([a["inputs"], b["inputs"]]))


def test_shuffle_depends_on_the_seed_and_epochs_differ(shard_dir):
    def first_col(seed):
        ds = pipeline.make_dataset(shard_dir, channels=SPEC.channels, batch_size=18, seed=seed, augment=False,
                                   process_index=0, process_count=1)
        return [b["inputs"][:, 0, 0, 0] for b in batches(ds, 2)]

    e1, e2 = first_col(0)
    assert not np.array_equal(e1, e2) and np.allclose(np.sort(e1), np.sort(e2))  # same patches, new order
    assert not np.array_equal(first_col(0)[0], first_col(1)[0])
