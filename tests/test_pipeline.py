import numpy as np
import pytest

from seaice_jax.data import manifest, pipeline, shards
from tests.test_shards import CELL_SPEC, SPEC, make_scene


def write_folder(folder, spec, size):
    for i in range(2):
        scene, _ = make_scene(h=size, w=size, seed=i, name=f"2019010{i}T000000_cis_prep",
                              cells=bool(spec.layout.cell_channels))
        count, stats = shards.write_shard(f"{folder}/{shards.shard_name('train', i)}",
                                          shards.extract_patches(scene, spec), spec.layout)
        shards.write_sidecar(folder, scene, scene.path, count, stats, spec, "train", i)
    manifest.write_manifest(folder)
    return folder


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    return write_folder(str(tmp_path_factory.mktemp("shards")), SPEC, 24)


@pytest.fixture(scope="module")
def cell_dir(tmp_path_factory):
    return write_folder(str(tmp_path_factory.mktemp("cells")), CELL_SPEC, 60)


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
    for s, a, b in zip(single, p0, p1, strict=True):
        np.testing.assert_array_equal(s["inputs"], np.concatenate([a["inputs"], b["inputs"]]))


def test_shuffle_depends_on_the_seed_and_epochs_differ(shard_dir):
    def first_col(seed):
        ds = pipeline.make_dataset(shard_dir, channels=SPEC.channels, batch_size=18, seed=seed, augment=False,
                                   process_index=0, process_count=1)
        return [b["inputs"][:, 0, 0, 0] for b in batches(ds, 2)]

    e1, e2 = first_col(0)
    assert not np.array_equal(e1, e2) and np.allclose(np.sort(e1), np.sort(e2))  # same patches, new order
    assert not np.array_equal(first_col(0)[0], first_col(1)[0])


def test_device_batches_expand_on_device_to_the_host_batches(cell_dir):
    import jax

    from seaice_jax.data import device_augment

    kw = dict(channels=("t2m", "nersc_sar_secondary", "btemp_18_7h"), batch_size=3, seed=2, augment=False,
              process_index=0, process_count=1)
    host = batches(pipeline.make_dataset(cell_dir, **kw), 2)
    compact_batches = batches(pipeline.make_dataset(cell_dir, expand="device", **kw), 2)
    layout = pipeline.load_layout(cell_dir)
    prepare = jax.jit(lambda b: device_augment.prepare_batch_on_device(
        b, None, layout=layout, channels=kw["channels"], augment=False))
    for h, c in zip(host, compact_batches, strict=True):
        assert c["sar"].dtype == np.float16 and c["cells"].shape[1:3] == (layout.cells, layout.cells)
        d = jax.device_get(prepare(c))
        assert set(d) == set(h)
        # XLA fuses the interpolation's multiply-adds (FMA): within a few float32 ulps of numpy's
        np.testing.assert_allclose(d["inputs"], h["inputs"], rtol=1e-6, atol=1e-6)
        for k in ("sic", "sod", "floe", "region_ids", "valid", "ice_truth"):
            np.testing.assert_array_equal(d[k], h[k])
            assert d[k].dtype == h[k].dtype
        np.testing.assert_array_equal(d["region_conc"], h["region_conc"])


def test_the_split_argument_selects_scenes(tmp_path):
    folder = str(tmp_path)
    for i, split in enumerate(("train", "validation")):
        scene, _ = make_scene(h=24, w=24, seed=i, name=f"2019010{i}T000000_cis_prep")
        count, stats = shards.write_shard(f"{folder}/{shards.shard_name(split, 0)}",
                                          shards.extract_patches(scene, SPEC), SPEC.layout)
        shards.write_sidecar(folder, scene, scene.path, count, stats, SPEC, split, 0)
    manifest.write_manifest(folder)
    assert [p.rsplit("/", 1)[1] for p in pipeline.shard_paths(folder)] == [shards.shard_name("train", 0)]
    assert len(pipeline.shard_paths(folder, split=None)) == 2
