"""The synthesizer's --altimetry output: freeboard truth in the scene files, tracks and a swath in the real
layouts, read back by the readers and collocated; deterministic for a seed."""

import glob
import os

import numpy as np
import xarray as xr

from data_prep import synthesize
from seaice_jax.altimetry import Swath, Track, open_altimetry
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.data.scene import open_scene
from seaice_jax.synthetic import synthesize_scene


def _write(out, seed=5):
    assert synthesize.main(["--out", str(out), "--scenes", "1", "--product", "rtt", "--season", "winter",
                            "--size", "160", "160", "--seed", str(seed), "--altimetry", "all"]) == 0
    return sorted(glob.glob(os.path.join(out, "*_prep.nc"))), sorted(os.listdir(os.path.join(out, "altimetry")))


def test_altimetry_written_in_real_layouts_and_read_back(tmp_path):
    scenes, files = _write(tmp_path / "a")
    assert len(scenes) == 1
    assert any(f.startswith("ATL10-01_") and f.endswith(".h5") for f in files)
    assert any(f.startswith("CS_OFFL_SIR_SAR_2__") for f in files)
    assert any(f.startswith("S3A_SR_2_LAN_SI_") for f in files)
    assert any(f.startswith("SWOT_L2_LR_SSH_Unsmoothed_") for f in files)
    with xr.open_dataset(scenes[0]) as ds:
        fb = ds["freeboard_truth"].values
        ice_truth = ds["ice_truth"].values
        radar = ds["radar_freeboard_truth"].values
    assert np.all(fb[(ice_truth == 0) & np.isfinite(fb)] == 0)  # open water / leads at the sea surface
    ice = np.isfinite(fb) & (ice_truth == 1)
    assert ice.any() and np.nanmean(fb[ice]) > 0.05
    assert np.nanmean(radar[ice]) < np.nanmean(fb[ice])  # snow: radar below laser
    scene = open_scene(scenes[0])
    tracks, swaths = [], []
    for f in files:
        got = open_altimetry(os.path.join(tmp_path / "a" / "altimetry", f))
        (swaths if isinstance(got[0], Swath) else tracks).extend(got)
    assert all(isinstance(t, Track) for t in tracks) and swaths
    assert {t.mission for t in tracks} >= {"icesat2", "cryosat2", "sentinel3a"}
    c = collocate(scene, [t for t in tracks if t.mission == "icesat2"])
    assert len(c) > 50
    # measured laser freeboard at floe points ~ footprint mean of the truth (3 cm noise)
    from seaice_jax.altimetry.metrics import footprint_means
    from seaice_jax.altimetry.track import FLOE
    floe = c.surface == FLOE
    err = footprint_means(np.nan_to_num(fb), c)[floe] - c.value[floe]
    assert np.sqrt(np.mean(err ** 2)) < 0.1
    # deterministic for a seed
    scenes2, files2 = _write(tmp_path / "b")
    assert files2 == files
    with xr.open_dataset(scenes2[0]) as ds2:
        np.testing.assert_array_equal(ds2["freeboard_truth"].values, fb)


def test_scene_without_altimetry_unchanged_and_roughness_brightens():
    a = synthesize_scene("rtt", "winter", (96, 96), 11)
    b = synthesize_scene("rtt", "winter", (96, 96), 11, freeboard=True)
    assert "freeboard_truth" not in a and "freeboard_truth" in b
    np.testing.assert_array_equal(a["ice_truth"].values, b["ice_truth"].values)
    np.testing.assert_array_equal(a["nersc_sar_primary"].values == 0, b["nersc_sar_primary"].values == 0)
    assert float(b["nersc_sar_primary"].values.mean()) > float(a["nersc_sar_primary"].values.mean())
