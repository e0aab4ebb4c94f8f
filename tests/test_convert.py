"""NetCDF -> shards end to end: round trip, resume, bad files, cluster split, killed runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seaice_jax.data import shards, synthetic
from seaice_jax.data.scene import open_scene

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
    records = [shards.decode_patch(r) for r in reader.read_all()]
    reader.close()
    return records


def test_shard_records_equal_the_scene_arrays(scenes, tmp_path):
    _, files = scenes
    done, errors = shards.convert_scenes(files, str(tmp_path), SPEC, progress=False)
    assert not errors and len(done) == 3
    manifest = json.load(open(tmp_path / "manifest.json"))
    assert manifest["num_patches"] == sum(d["num_patches"] for d in done) > 0
    assert manifest["channels"] == list(SPEC.channels) and manifest["patch_shape"] == [48, 48]
    norm = json.load(open(tmp_path / "normalisation.json"))
    assert set(norm["measured"]) == set(SPEC.channels) and norm["pixels"] > 0
    for path in files:
        scene = open_scene(path)
        records = read_records(str(tmp_path / (scene.name + ".array_record")))
        assert len(records) == next(d["num_patches"] for d in done if d["scene"] == scene.name)
        x = scene.stack(SPEC.channels)
        for rec in records:
            r, c = rec["row"], rec["col"]
            win = (slice(r, r + 48), slice(c, c + 48))
            h, w = x[win].shape[:2]
            np.testing.assert_array_equal(rec["inputs"][:h, :w], x[win])
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
    mtime = os.path.getmtime(tmp_path / (os.path.basename(files[0])[:-3] + ".array_record"))
    done, errors = shards.convert_scenes(files, str(tmp_path), SPEC, progress=False)
    assert [d["scene"] for d in done] == [os.path.basename(files[2])[:-3]] and not errors
    assert os.path.getmtime(tmp_path / (os.path.basename(files[0])[:-3] + ".array_record")) == mtime
    # the measured HH statistics in physical units match the valid pixels of the patches
    norm = json.load(open(tmp_path / "normalisation.json"))
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
    data = open(files[0], "rb").read()
    (bad / "20200202T000000_cis_prep.nc").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "data_prep", "convert.py"), "--input", str(bad),
                           "--output", str(out), "--patch-size", "48", "--stride", "40", "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    err_lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(err_lines) == 2
    assert any("20200101T000000_dmi_prep.nc" in l for l in err_lines)
    assert any("20200202T000000_cis_prep.nc" in l for l in err_lines)
    manifest = json.load(open(out / "manifest.json"))
    assert sorted(s["scene"] for s in manifest["scenes"]) == sorted(os.path.basename(f)[:-3] for f in files[:2])
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_cluster_split_covers_every_scene_once(scenes, tmp_path):
    _, files = scenes
    names = []
    for i in range(2):
        done, _ = shards.convert_scenes(files, str(tmp_path), SPEC, shard_index=i, num_shards=2, progress=False)
        names += [d["scene"] for d in done]
    assert sorted(names) == sorted(os.path.basename(f)[:-3] for f in files)
    manifest = json.load(open(tmp_path / "manifest.json"))
    assert len(manifest["scenes"]) == 3


def test_a_run_killed_while_writing_leaves_no_shard_under_a_final_name(scenes, tmp_path, monkeypatch):
    _, files = scenes
    original = shards.extract_patches
    monkeypatch.setattr(shards, "extract_patches", lambda s, p: dying_gen(original, s, p))
    with pytest.raises(KeyboardInterrupt):
        shards.convert_scene(files[0], str(tmp_path), SPEC)
    assert os.listdir(tmp_path) == []  # no shard, no sidecar, no temporary file
    # a leftover temporary file of a SIGKILLed run does not count as done and is cleaned up
    name = os.path.basename(files[0])[:-3]
    (tmp_path / f"{name}.array_record.tmp.12345").write_bytes(b"partial")
    monkeypatch.setattr(shards, "extract_patches", original)
    assert not shards.is_converted(files[0], str(tmp_path), SPEC)
    shards.convert_scenes(files[:1], str(tmp_path), SPEC, progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted([f"{name}.array_record", f"{name}.json", "manifest.json",
                                                   "normalisation.json"])


def dying_gen(original, scene, spec):
    for i, patch in enumerate(original(scene, spec)):
        if i == 1:
            raise KeyboardInterrupt
        yield patch
