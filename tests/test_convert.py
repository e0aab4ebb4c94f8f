"""NetCDF -> shards end to end: round trip, resume, bad files, cluster split, killed runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seaice_jax import synthetic
from seaice_jax.data import channels as ch
from seaice_jax.data import compact, shards
from seaice_jax.data.scene import open_scene
from tests.test_shards import F16_ATOL, F16_RTOL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = shards.PatchSpec(patch_size=48, stride=40, max_regions=16)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    rtt = synthetic.write_synthetic_scenes(str(folder), 2, "rtt", "winter", (100, 90), 3)
    raw = synthetic.write_synthetic_scenes(str(folder), 1, "raw", "summer", (120, 110), 4)
    return str(folder), rtt + raw


def read_records(path):
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(path)
    records = [shards.decode_patch(r, SPEC.layout) for r in reader.read_all()]
    reader.close()
    return records


def shard_of(folder, scene_name):
    return os.path.join(str(folder), json.load(open(os.path.join(str(folder), scene_name + ".json")))["shard"])


def test_shard_records_equal_the_scene_arrays(scenes, tmp_path):
    _, files = scenes
    done, errors = shards.convert_scenes(files, str(tmp_path), SPEC, progress=False)
    assert not errors and len(done) == 3
    with open(tmp_path / "manifest.json") as f:
        manifest = json.load(f)
    assert manifest["num_patches"] == sum(d["num_patches"] for d in done) > 0
    assert manifest["channels"] == list(SPEC.channels) and manifest["patch_shape"] == [48, 48]
    with open(tmp_path / "normalisation.json") as f:
        norm = json.load(f)
    assert set(norm["measured"]) == set(SPEC.channels) and norm["pixels"] > 0
    for path in files:
        scene = open_scene(path)
        records = read_records(shard_of(tmp_path, scene.name))
        assert len(records) == next(d["num_patches"] for d in done if d["scene"] == scene.name)
        x = scene.stack(SPEC.channels)
        for packed in records:
            rec = compact.expand_patch(packed, SPEC.layout, SPEC.channels)
            r, c = packed["row"], packed["col"]
            win = (slice(r, r + 48), slice(c, c + 48))
            h, w = x[win].shape[:2]
            # SAR-grid channels (the first 4) in float16, the 2 km channels exactly the reader's
            n2 = 4 + len(ch.GRID_2KM_CHANNELS)
            np.testing.assert_allclose(rec["inputs"][:h, :w, :4], x[win][..., :4], rtol=F16_RTOL, atol=F16_ATOL)
            np.testing.assert_array_equal(rec["inputs"][:h, :w, 4:n2], x[win][..., 4:n2])
            # Derived inputs travel as 2 km cells too: equal between cell centres up to rounding, and
            # held constant beyond the outermost centres (at most 1.5 cells: 37 px RTT, 75 px raw),
            # where the reader's latitude keeps its slope: within the slope x that distance.
            derived = x[..., n2:]
            slope = max(np.abs(np.diff(derived, axis=a)).max() for a in (0, 1))
            reach = 1.5 * ch.PIXELS_PER_2KM[scene.product]
            np.testing.assert_allclose(rec["inputs"][:h, :w, n2:], x[win][..., n2:], rtol=0,
                                       atol=reach * slope + 1e-5)
            np.testing.assert_array_equal(rec["sic"][:h, :w], scene.sic[win])
            np.testing.assert_array_equal(rec["sod"][:h, :w], scene.sod[win])
            np.testing.assert_array_equal(rec["floe"][:h, :w], scene.floe[win])
            np.testing.assert_array_equal(rec["ice_truth"][:h, :w], scene.ice_truth[win])
            ids = rec["region_ids"][:h, :w]
            local_conc = np.where(ids >= 0, rec["region_conc"][np.maximum(ids, 0)], -1)
            scene_ids = scene.region_ids[win]
            want = np.where(ids >= 0, scene.region_conc[np.maximum(scene_ids, 0)], -1)
            np.testing.assert_array_equal(local_conc, want)


def test_rerun_skips_done_scenes_and_measured_statistics_match_the_data(scenes, tmp_path):
    _, files = scenes
    shards.convert_scenes(files[:2], str(tmp_path), SPEC, progress=False)
    first = shard_of(tmp_path, os.path.basename(files[0])[:-3])
    mtime = os.path.getmtime(first)
    done, errors = shards.convert_scenes(files, str(tmp_path), SPEC, progress=False)
    assert [d["scene"] for d in done] == [os.path.basename(files[2])[:-3]] and not errors
    assert os.path.getmtime(first) == mtime
    # the measured HH statistics in physical units match the valid pixels of the patches
    with open(tmp_path / "normalisation.json") as f:
        norm = json.load(f)
    mean_db = norm["measured"]["nersc_sar_primary"][0]
    assert -35 < mean_db < 0


def test_different_patch_settings_in_one_folder_are_refused(scenes, tmp_path):
    _, files = scenes
    shards.convert_scenes(files[:1], str(tmp_path), SPEC, progress=False)
    before = sorted(os.listdir(tmp_path))
    other = shards.PatchSpec(patch_size=32, stride=32, max_regions=16)
    with pytest.raises(ValueError, match="other patch settings"):
        shards.convert_scenes(files[1:2], str(tmp_path), other, progress=False)
    assert sorted(os.listdir(tmp_path)) == before  # refused before the second scene was written


def test_corrupt_and_truncated_files_are_named_while_the_others_convert(scenes, tmp_path):
    folder, files = scenes
    bad = tmp_path / "in"
    bad.mkdir()
    for f in files[:2]:
        os.symlink(f, bad / os.path.basename(f))
    (bad / "20200101T000000_dmi_prep.nc").write_bytes(os.urandom(5000))
    with open(files[0], "rb") as f:
        data = f.read()
    (bad / "20200202T000000_cis_prep.nc").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "data_prep", "convert.py"), "--input", str(bad),
                           "--output", str(out), "--patch-size", "48", "--stride", "40", "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    err_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 2
    assert any("20200101T000000_dmi_prep.nc" in line for line in err_lines)
    assert any("20200202T000000_cis_prep.nc" in line for line in err_lines)
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    assert sorted(s["scene"] for s in manifest["scenes"]) == sorted(os.path.basename(f)[:-3] for f in files[:2])
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_cluster_split_covers_every_scene_once(scenes, tmp_path):
    _, files = scenes
    names = []
    for i in range(2):
        done, _ = shards.convert_scenes(files, str(tmp_path), SPEC, shard_index=i, num_shards=2, progress=False)
        names += [d["scene"] for d in done]
    assert sorted(names) == sorted(os.path.basename(f)[:-3] for f in files)
    with open(tmp_path / "manifest.json") as f:
        manifest = json.load(f)
    assert len(manifest["scenes"]) == 3


def test_a_run_killed_while_writing_leaves_no_shard_under_a_final_name(scenes, tmp_path, monkeypatch):
    _, files = scenes
    original = shards.extract_patches
    monkeypatch.setattr(shards, "extract_patches", lambda s, p, **kw: dying_gen(original, s, p))
    with pytest.raises(KeyboardInterrupt):
        shards.convert_scene(files[0], str(tmp_path), SPEC)
    assert os.listdir(tmp_path) == []  # no shard, no sidecar, no temporary file
    # a leftover temporary file of a SIGKILLed run does not count as done and is cleaned up
    name = os.path.basename(files[0])[:-3]
    shard = shards.shard_name("train", 0)
    (tmp_path / f"{shard}.tmp.12345").write_bytes(b"partial")
    monkeypatch.setattr(shards, "extract_patches", original)
    assert not shards.is_converted(files[0], str(tmp_path), SPEC)
    shards.convert_scenes(files[:1], str(tmp_path), SPEC, progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted([shard, f"{name}.json", "manifest.json", "normalisation.json",
                                                   "dataset_info.json", "features.json", "metadata.json"])


def dying_gen(original, scene, spec):
    for i, patch in enumerate(original(scene, spec)):
        if i == 1:
            raise KeyboardInterrupt
        yield patch


def test_tfds_reads_the_converted_folder_and_gets_the_patches_grain_reads(scenes, tmp_path):
    import tensorflow_datasets as tfds

    from seaice_jax.data import pipeline

    _, files = scenes
    val = os.path.basename(files[1])
    shards.convert_scenes(files, str(tmp_path), SPEC, progress=False, validation_scenes=[val])
    builder = tfds.builder_from_directory(str(tmp_path))
    assert str(builder.info.version) == f"{shards.FORMAT_VERSION}.0.0"
    assert set(builder.info.splits) == {"train", "validation"}
    meta = builder.info.metadata
    assert meta["layout"]["sar_channels"][:2] == ["nersc_sar_primary", "nersc_sar_secondary"]
    assert set(meta["normalisation"]["published"]) == set(SPEC.channels)
    for split in ("train", "validation"):
        source = builder.as_data_source(split=split)
        grain_records = []
        for path in pipeline.shard_paths(str(tmp_path), split=split):
            grain_records += read_records(path)
        assert len(source) == len(grain_records) == builder.info.splits[split].num_examples > 0
        for i, rec in enumerate(grain_records):
            t = source[i]
            assert (t["scene"].decode() if isinstance(t["scene"], bytes) else t["scene"]) == rec["scene"]
            for k in compact.Layout.field_shapes(SPEC.layout):
                np.testing.assert_array_equal(t[k], rec[k])
                assert t[k].dtype == rec[k].dtype
    with open(tmp_path / "manifest.json") as f:
        manifest = json.load(f)
    assert {s["scene"] for s in manifest["scenes"] if s["split"] == "validation"} == {val[:-3]}
    # tfds.data_source by name, with the folder placed as <data_dir>/seaice/<version>
    root = tmp_path / "tfds_root"
    (root / "seaice").mkdir(parents=True)
    os.symlink(tmp_path, root / "seaice" / f"{shards.FORMAT_VERSION}.0.0")
    by_name = tfds.data_source("seaice", split="train", data_dir=str(root))
    np.testing.assert_array_equal(by_name[0]["sar"], builder.as_data_source(split="train")[0]["sar"])
