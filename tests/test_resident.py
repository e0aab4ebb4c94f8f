"""Device-resident data: crops inside the scenes, exact resume, host-equal regions, the memory check."""

import dataclasses

import jax
import numpy as np
import pytest

from seaice_jax.data import resident, shards
from tests.test_shards import CELLS, make_scene

CHANNELS = ("nersc_sar_primary",) + CELLS + ("nersc_sar_secondary",)
SPEC = resident.ResidentSpec(patch_size=16, downsample=1, max_regions=4, channels=CHANNELS)


def scenes_and_data(spec=SPEC):
    out = []
    for i, (h, w) in enumerate(((60, 80), (75, 50), (30, 40))):
        scene, grids = make_scene(h=h, w=w, seed=i, name=f"2019010{i}T000000_cis_prep", cells=True)
        # more regions than slots, so the localisation has to choose
        scene.region_ids = np.where(scene.region_ids >= 0, (np.arange(h * w).reshape(h, w) // 97) % 7,
                                    -1).astype(np.int32)
        scene.region_conc = np.linspace(0, 1, 7).astype(np.float32)
        out.append((scene, np.stack([grids[n] for n in CELLS], -1)))
    sizes = [resident.scene_sizes(s.shape, s.product, spec) for s, _ in out]
    return out, resident.from_scenes(out, sizes, spec, with_truth=True)


@pytest.fixture(scope="module")
def loaded():
    return scenes_and_data()


def draw(data, key, step, batch_size=6, augment=False):
    fn = jax.jit(lambda d, k, s: resident.draw_batch(d, k, s, spec=SPEC, batch_size=batch_size, augment=augment))
    return jax.device_get(fn(data, key, step))


def test_crops_lie_inside_their_scenes_and_equal_the_scene_arrays(loaded):
    scenes, data = loaded
    key = jax.random.key(0)
    for step in range(3):
        k_pos, _ = jax.random.split(jax.random.fold_in(key, step))
        s_idx, rows, cols = jax.device_get(resident.crop_positions(data, k_pos, 6, SPEC.patch_size))
        batch = draw(data, key, step)
        for b, (s, r, c) in enumerate(zip(s_idx, rows, cols, strict=True)):
            scene, _ = scenes[s]
            h, w = scene.shape
            assert 0 <= r and r + 16 <= h and 0 <= c and c + 16 <= w
            win = (slice(r, r + 16), slice(c, c + 16))
            full = scene.stack(CHANNELS)[win]
            np.testing.assert_allclose(batch["inputs"][b], full, rtol=2.0**-11, atol=1e-6)
            np.testing.assert_array_equal(batch["sic"][b], scene.sic[win])
            np.testing.assert_array_equal(batch["valid"][b], scene.valid[win])
            np.testing.assert_array_equal(batch["ice_truth"][b], scene.ice_truth[win])
            local, conc = shards.localise_regions(scene.region_ids[win], scene.region_conc, SPEC.max_regions)
            np.testing.assert_array_equal(batch["region_ids"][b], local)
            np.testing.assert_array_equal(batch["region_conc"][b], conc)


def test_same_step_and_key_give_the_same_batch_so_resume_is_exact(loaded):
    _, data = loaded
    key = jax.random.key(7)
    a = draw(data, key, 5, augment=True)
    b = draw(data, key, 5, augment=True)  # e.g. after restoring the step from a checkpoint
    c = draw(data, key, 6, augment=True)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["inputs"], c["inputs"])


def test_crops_of_a_scene_smaller_than_the_patch_are_padded_as_invalid():
    spec = dataclasses.replace(SPEC, patch_size=40)  # scene 2 is 30 x 40
    scenes, data = scenes_and_data(spec)
    key = jax.random.key(1)
    batch = jax.device_get(jax.jit(lambda d, k: resident.draw_batch(d, k, 0, spec=spec, batch_size=48,
                                                                    augment=False))(data, key))
    k_pos, _ = jax.random.split(jax.random.fold_in(key, 0))
    s_idx, rows, _ = jax.device_get(resident.crop_positions(data, k_pos, 48, 40))
    assert 2 in s_idx
    for b, s in enumerate(s_idx):
        h = scenes[s][0].shape[0]
        if h < 40:
            assert rows[b] == 0 and not batch["valid"][b, h:].any() and (batch["sic"][b, h:] == 255).all()
            assert (batch["region_ids"][b, h:] == -1).all()


def test_the_memory_check_fails_with_one_clear_line():
    sizes = [resident.scene_sizes((5000, 5000), "rtt", resident.ResidentSpec())] * 513
    need = resident.estimate_bytes(sizes, resident.ResidentSpec())
    with pytest.raises(MemoryError) as err:
        resident.check_fits(need, 16 * 10**9)
    msg = str(err.value)
    assert "\n" not in msg and "GB" in msg and "downsample" in msg
    resident.check_fits(need, 141 * 10**9)  # the AI4Arctic train split at 160 m fits one H200
    assert 40e9 < need < 70e9
    at_80m = resident.estimate_bytes([resident.scene_sizes((5000, 5000), "rtt", resident.ResidentSpec(downsample=1))]
                                     * 513, resident.ResidentSpec(downsample=1))
    with pytest.raises(MemoryError):
        resident.check_fits(at_80m, 141 * 10**9)


def test_load_resident_checks_before_reading(tmp_path):
    from seaice_jax import synthetic

    files = synthetic.write_synthetic_scenes(str(tmp_path), 1, "rtt", "winter", (60, 60), 0)
    with pytest.raises(MemoryError, match="needs"):
        resident.load_resident(files, SPEC, available=1000)
    data = resident.load_resident(files, SPEC)
    assert data.num_scenes == 1 and data.sar.dtype == np.float16
