import numpy as np

from seaice_jax.data import compact, shards
from seaice_jax.data import scene as scene_reader
from seaice_jax.data.scene_types import Scene

# float16 storage of the SAR-grid channels: round to nearest, relative error <= 2**-11 (and an absolute
# 2**-25 for the subnormal range); the 2 km channels are stored as float32 cells and come back exactly.
F16_RTOL, F16_ATOL = 2.0**-11, 2.0**-25
CELLS = ("btemp_18_7h", "t2m")


def make_scene(h=20, w=30, seed=0, name="20190101T000000_cis_prep", cells=False) -> Scene:
    """A small RTT scene; with cells=True also two 2 km channels upsampled by the reader (f = 25)."""
    rng = np.random.default_rng(seed)
    region_ids = np.zeros((h, w), np.int32)
    region_ids[:, w // 2 :] = 1
    region_ids[:2] = -1  # a land strip
    valid = region_ids >= 0
    channels = {"nersc_sar_primary": rng.standard_normal((h, w)).astype(np.float32),
                "nersc_sar_secondary": rng.standard_normal((h, w)).astype(np.float32)}
    grids = {}
    if cells:
        for n in CELLS:
            grids[n] = rng.standard_normal((h // 25, w // 25)).astype(np.float32)
            channels[n] = scene_reader.upsample_2km(grids[n], (h, w), 25)
    s = Scene(
        name=name, path=name + ".nc", product="rtt", channels=channels,
        sic=np.where(valid, rng.integers(0, 11, (h, w)), 255).astype(np.uint8),
        sod=np.where(valid, 3, 255).astype(np.uint8), floe=np.where(valid, 2, 255).astype(np.uint8),
        region_ids=region_ids, region_conc=np.array([0.3, 0.8], np.float32), valid=valid,
        ice_truth=np.where(valid, rng.integers(0, 2, (h, w)), 255).astype(np.uint8),
    )
    return s, grids


SPEC = shards.PatchSpec(patch_size=8, stride=8, max_regions=4,
                        channels=("nersc_sar_primary", "nersc_sar_secondary"))
CELL_SPEC = shards.PatchSpec(patch_size=32, stride=24, max_regions=4,
                             channels=("nersc_sar_primary",) + CELLS + ("nersc_sar_secondary",))


def test_patch_origins_cover_the_scene_with_one_flush_patch():
    assert shards.patch_origins(20, 8, 8) == [0, 8, 12]
    assert shards.patch_origins(16, 8, 8) == [0, 8]
    assert shards.patch_origins(5, 8, 8) == [0]


def test_compact_patches_round_trip_to_the_readers_full_resolution_channels():
    scene, _ = make_scene(h=80, w=110, cells=True)
    layout = CELL_SPEC.layout
    patches = list(shards.extract_patches(scene, CELL_SPEC))
    assert len(patches) == 3 * 5  # rows [0, 24, 48] x cols [0, 24, 48, 72, 78]
    full = scene.stack(CELL_SPEC.channels)
    for p in patches:
        q = shards.decode_patch(shards.encode_patch(p, layout), layout)
        assert q["sar"].dtype == np.float16 and q["cells"].dtype == np.float32
        assert q["region_ids"].dtype == np.int8 and q["valid"].dtype == np.uint8
        e = compact.expand_patch(q, layout, CELL_SPEC.channels)
        r, c = q["row"], q["col"]
        win = (slice(r, r + 32), slice(c, c + 32))
        # 2 km channels: bit-equal to the reader's upsampling of the whole scene
        np.testing.assert_array_equal(e["inputs"][..., 1:3], full[win][..., 1:3])
        np.testing.assert_allclose(e["inputs"][..., [0, 3]], full[win][..., [0, 3]], rtol=F16_RTOL, atol=F16_ATOL)
        np.testing.assert_array_equal(e["sic"], scene.sic[win])
        np.testing.assert_array_equal(e["ice_truth"], scene.ice_truth[win])
        np.testing.assert_array_equal(e["valid"], scene.valid[win])
        ids = e["region_ids"]
        conc_px = np.where(ids >= 0, e["region_conc"][np.maximum(ids, 0)], np.nan)
        want = np.where(scene.region_ids[win] >= 0, scene.region_conc[np.maximum(scene.region_ids[win], 0)], np.nan)
        np.testing.assert_array_equal(conc_px, want)
        assert q["scene"] == scene.name


def test_cell_grids_given_explicitly_equal_those_read_back_from_the_upsampled_channels():
    scene, grids = make_scene(h=80, w=110, cells=True)
    a = list(shards.extract_patches(scene, CELL_SPEC))
    b = list(shards.extract_patches(scene, CELL_SPEC, grids=grids))
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p["cells"], q["cells"])


def test_region_ids_use_the_smallest_integer_type():
    assert compact.region_dtype(64) == np.int8 and compact.region_dtype(128) == np.int8
    assert compact.region_dtype(129) == np.int16 and compact.region_dtype(40000) == np.int32


def test_a_full_patch_of_all_24_channels_is_under_one_megabyte():
    layout = shards.PatchSpec().layout
    assert layout.patch_bytes() < 1_000_000


def test_localise_regions_keeps_the_largest_and_pads_with_nan():
    ids = np.array([[5, 5, 5, 2], [2, 9, -1, 5]], np.int32)
    conc = np.linspace(0, 1, 10).astype(np.float32)
    local, c = shards.localise_regions(ids, conc, max_regions=2)
    np.testing.assert_array_equal(local, [[0, 0, 0, 1], [1, -1, -1, 0]])  # region 9 dropped
    np.testing.assert_allclose(c, [conc[5], conc[2]])
    local, c = shards.localise_regions(ids, conc, max_regions=4)
    assert np.isnan(c[3]) and c[2] == conc[9]


def test_downsample_averages_inputs_and_samples_labels():
    scene, _ = make_scene(h=8, w=8)
    small = shards.downsample_scene(scene, 2)
    x = scene.channels["nersc_sar_primary"]
    np.testing.assert_allclose(small.channels["nersc_sar_primary"][1, 2], x[2:4, 4:6].mean(), rtol=1e-6)
    assert small.sic[1, 2] == scene.sic[3, 5]
    assert small.region_ids.shape == (4, 4)


def test_patches_of_only_land_are_skipped_and_small_scenes_are_padded():
    scene, _ = make_scene(h=6, w=5)
    patches = list(shards.extract_patches(scene, SPEC))
    assert len(patches) == 1
    p = patches[0]
    assert p["sar"].shape == (8, 8, 2)
    assert (p["sic"][6:] == 255).all() and (p["region_ids"][:, 5:] == -1).all() and not p["valid"][6:].any()
