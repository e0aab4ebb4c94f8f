
import numpy as np

from seaice_jax.data import shards
from seaice_jax.data.scene_types import Scene


def make_scene(h=20, w=30, seed=0, name="20190101T000000_cis_prep") -> Scene:
    rng = np.random.default_rng(seed)
    region_ids = np.zeros((h, w), np.int32)
    region_ids[:, w // 2 :] = 1
    region_ids[:2] = -1  # a land strip
    valid = region_ids >= 0
    return Scene(
        name=name, path=name + ".nc", product="rtt",
        channels={"nersc_sar_primary": rng.standard_normal((h, w)).astype(np.float32),
                  "nersc_sar_secondary": rng.standard_normal((h, w)).astype(np.float32)},
        sic=np.where(valid, rng.integers(0, 11, (h, w)), 255).astype(np.uint8),
        sod=np.where(valid, 3, 255).astype(np.uint8), floe=np.where(valid, 2, 255).astype(np.uint8),
        region_ids=region_ids, region_conc=np.array([0.3, 0.8], np.float32), valid=valid,
        ice_truth=np.where(valid, rng.integers(0, 2, (h, w)), 255).astype(np.uint8),
    )


SPEC = shards.PatchSpec(patch_size=8, stride=8, max_regions=4,
                        channels=("nersc_sar_primary", "nersc_sar_secondary"))


def test_patch_origins_cover_the_scene_with_one_flush_patch():
    assert shards.patch_origins(20, 8, 8) == [0, 8, 12]
    assert shards.patch_origins(16, 8, 8) == [0, 8]
    assert shards.patch_origins(5, 8, 8) == [0]


def test_patches_equal_the_source_arrays_after_an_encode_decode_round_trip():
    scene = make_scene()
    patches = list(shards.extract_patches(scene, SPEC))
    assert len(patches) == 3 * 4  # rows [0, 8, 12] x cols [0, 8, 16, 22]
    for p in patches:
        q = shards.decode_patch(shards.encode_patch(p))
        r, c = q["row"], q["col"]
        win = (slice(r, r + 8), slice(c, c + 8))
        np.testing.assert_array_equal(q["inputs"], scene.stack(SPEC.channels)[win])
        np.testing.assert_array_equal(q["sic"], scene.sic[win])
        np.testing.assert_array_equal(q["ice_truth"], scene.ice_truth[win])
        np.testing.assert_array_equal(q["valid"].astype(bool), scene.valid[win])
        # local region ids point at the right concentration
        ids = q["region_ids"]
        conc_px = np.where(ids >= 0, q["region_conc"][np.maximum(ids, 0)], np.nan)
        want = np.where(scene.region_ids[win] >= 0, scene.region_conc[np.maximum(scene.region_ids[win], 0)], np.nan)
        np.testing.assert_array_equal(conc_px, want)
        assert q["scene"] == scene.name


def test_localise_regions_keeps_the_largest_and_pads_with_nan():
    ids = np.array([[5, 5, 5, 2], [2, 9, -1, 5]], np.int32)
    conc = np.linspace(0, 1, 10).astype(np.float32)
    local, c = shards.localise_regions(ids, conc, max_regions=2)
    np.testing.assert_array_equal(local, [[0, 0, 0, 1], [1, -1, -1, 0]])  # region 9 dropped
    np.testing.assert_allclose(c, [conc[5], conc[2]])
    local, c = shards.localise_regions(ids, conc, max_regions=4)
    assert np.isnan(c[3]) and c[2] == conc[9]


def test_downsample_averages_inputs_and_samples_labels():
    scene = make_scene(h=8, w=8)
    small = shards.downsample_scene(scene, 2)
    x = scene.channels["nersc_sar_primary"]
    np.testing.assert_allclose(small.channels["nersc_sar_primary"][1, 2], x[2:4, 4:6].mean(), rtol=1e-6)
    assert small.sic[1, 2] == scene.sic[3, 5]
    assert small.region_ids.shape == (4, 4)


def test_patches_of_only_land_are_skipped_and_small_scenes_are_padded():
    scene = make_scene(h=6, w=5)
    patches = list(shards.extract_patches(scene, SPEC))
    assert len(patches) == 1
    p = patches[0]
    assert p["inputs"].shape == (8, 8, 2)
    assert (p["sic"][6:] == 255).all() and (p["region_ids"][:, 5:] == -1).all() and not p["valid"][6:].any()
