"""The altimetry folder index: time span and unit-sphere boxes per file, candidates for a scene (at the
pole, across the antimeridian, far in time or space), and the cache (reused, re-read, dropped)."""

import json
import os

import h5py
import netCDF4
import numpy as np
import pytest

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import index as aidx

T0 = 1553386937.0  # 2019-03-24T00:22:17Z
HOUR, DAY = 3600.0, 86400.0


def _great_circle(lat0, lon0, lat1, lon1, n):
    a, b = aidx.unit_vectors([lat0, lat1], [lon0, lon1])
    omega = np.arccos(np.clip(a @ b, -1, 1))
    f = np.linspace(0, 1, n)[:, None]
    p = (np.sin((1 - f) * omega) * a + np.sin(f * omega) * b) / np.sin(omega)
    return np.rad2deg(np.arcsin(p[:, 2])), np.rad2deg(np.arctan2(p[:, 1], p[:, 0]))


def _line(lat0, lon0, lat1, lon1, t0, n=300, mission="cryosat2", beam="", seconds=60.0):
    lat, lon = _great_circle(lat0, lon0, lat1, lon1, n)
    surface = np.where(np.arange(n) % 7 == 0, alt.LEAD, alt.FLOE).astype(np.uint8)
    return alt.Track(time=t0 + np.linspace(0, seconds, n), latitude=lat, longitude=lon,
                     value=np.where(surface == alt.LEAD, 0.0, 0.3), uncertainty=0.05, surface=surface,
                     quality=np.ones(n, bool), footprint_along=300.0, footprint_across=1600.0, mission=mission,
                     beam=beam)


def _scene_region(lat_c, lon_c, half_m=40_000.0, margin_m=1000.0):
    """A scene's tie points: a 9 x 9 grid +-half_m around (lat_c, lon_c) in a local tangent plane."""
    c = aidx.unit_vectors([lat_c], [lon_c])[0]
    east = np.cross([0.0, 0.0, 1.0], c)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-9 else np.array([0.0, 1.0, 0.0])
    north = np.cross(c, east)
    u = np.linspace(-half_m, half_m, 9) / aidx.EARTH_RADIUS_M
    p = c + u[:, None, None] * east + u[None, :, None] * north
    p /= np.linalg.norm(p, axis=-1, keepdims=True)
    lat, lon = np.rad2deg(np.arcsin(p[..., 2])), np.rad2deg(np.arctan2(p[..., 1], p[..., 0]))
    return aidx.region_of_points(lat, lon, margin_m), lat, lon


def test_regions_at_the_pole_and_across_the_antimeridian():
    pole, lat, _ = _scene_region(90.0, 0.0)
    assert lat.min() > 89.4  # corners 57 km from the pole
    over_pole = aidx.region_of_points(*_great_circle(88.0, 0.0, 88.0, 180.0, 50))  # passes the pole
    at_86 = aidx.region_of_points(*_great_circle(86.0, 0.0, 86.0, 60.0, 50))
    assert pole.intersects(over_pole) and not pole.intersects(at_86)
    am, _, lon = _scene_region(75.0, 180.0)
    assert lon.max() > 179.0 and lon.min() < -179.0  # the tie points straddle the antimeridian
    crossing = aidx.region_of_points(*_great_circle(74.0, 179.9, 76.0, 179.9, 50))
    west = aidx.region_of_points(*_great_circle(74.0, -178.0, 76.0, -178.0, 50))  # ~43 km beyond the edge
    greenwich = aidx.region_of_points(*_great_circle(74.0, 0.0, 76.0, 0.0, 50))
    assert am.intersects(crossing) and not am.intersects(west) and not am.intersects(greenwich)
    assert am.padded(50_000.0).intersects(west)  # ... but within a 50 km margin
    assert aidx.region_of_points([np.nan], [np.nan]) is None


def test_point_sets_sharing_a_location_always_intersect():
    rng = np.random.default_rng(0)
    for _ in range(200):
        la, lo = rng.uniform(-90, 90, 2), rng.uniform(-180, 180, 2)
        shared_lat, shared_lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        a = aidx.region_of_points(np.r_[la[0] + rng.normal(0, 5, 5), shared_lat],
                                  np.r_[lo[0] + rng.normal(0, 5, 5), shared_lon])
        b = aidx.region_of_points(np.r_[la[1] + rng.normal(0, 5, 5), shared_lat],
                                  np.r_[lo[1] + rng.normal(0, 5, 5), shared_lon + 360.0])
        assert a.intersects(b)


def _folder(root):
    """Files of every kind under root/ (nested), and what each is."""
    os.makedirs(root / "is2" / "2019", exist_ok=True)
    os.makedirs(root / "cs2", exist_ok=True)
    files = {}
    files["pole"] = alt.write_atl10(root / "is2" / "2019", [_line(88.0, 0.0, 88.0, 180.0, T0 + HOUR, n=400,
                                                                   mission="icesat2", beam="gt1l")])
    files["antimeridian"] = alt.write_cryosat2_l2(root / "cs2", _line(74.0, 179.9, 76.0, 179.9, T0 + HOUR),
                                                  name="CS_OFFL_SIR_SAR_2__20190324T012217_20190324T012317_E001.nc")
    files["west"] = alt.write_cryosat2_l2(root / "cs2", _line(74.0, -178.0, 76.0, -178.0, T0 + HOUR),
                                          name="CS_OFFL_SIR_SAR_2__20190324T012217_20190324T012317_E002.nc")
    files["at_86"] = alt.write_cryosat2_l2(root / "cs2", _line(86.0, 0.0, 86.0, 60.0, T0),
                                           name="CS_OFFL_SIR_SAR_2__20190324T002217_20190324T002317_E001.nc")
    files["later"] = alt.write_sentinel3(root, _line(74.5, 179.95, 75.5, -179.95, T0 + 30 * DAY, mission="sentinel3a"))
    sw = alt.Swath(time=T0 + np.arange(4.0), latitude=70.0 + np.arange(12).reshape(4, 3) * 0.01,
                   longitude=np.full((4, 3), 100.0), height=np.ones((4, 3), np.float32),
                   mss=np.zeros((4, 3), np.float32), quality=np.ones((4, 3), bool), side="left")
    files["swot"] = alt.write_swot(root, [sw])
    files["swot_unscreened"] = alt.write_swot(root / "cs2", [sw], pass_number=6)
    with netCDF4.Dataset(files["swot_unscreened"], "a") as ds:
        ds.groups["left"].renameVariable("ssh_karin_2_qual", "bits")
    files["empty"] = str(root / "is2" / "ATL07-01_20190324002217_13070201_006_01.h5")
    with h5py.File(files["empty"], "w") as f:  # every beam holds only stats
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], np.int8))
        for beam in ("gt1l", "gt2l", "gt3l"):
            f.create_dataset(f"{beam}/sea_ice_segments/stats/ds_si_hist_bins", data=np.arange(3))
    files["junk"] = str(root / "notes.txt")
    (root / "notes.txt").write_text("not altimetry")
    (root / ".DS_Store").write_text("x")
    return {k: os.path.realpath(v) for k, v in files.items()}


def test_candidates_by_time_and_place(tmp_path):
    files = _folder(tmp_path / "alt")
    idx = alt.build_index(tmp_path / "alt")
    assert idx.stats["files"] == 9 and idx.stats["hidden_skipped"] == 1
    assert (idx.stats["ok"], idx.stats["empty"], idx.stats["unusable"]) == (6, 1, 2)
    unusable = {e.full_path: e.reason for e in idx.of_status("unusable")}
    assert set(unusable) == {files["junk"], files["swot_unscreened"]}
    assert "neither HDF5 nor netCDF" in unusable[files["junk"]]
    assert "refusing to read SWOT pixels unscreened" in unusable[files["swot_unscreened"]]
    summary = idx.summary()  # the one progress line names each file it could not use, with the reason
    assert all(path in summary for path in unusable) and "neither HDF5 nor netCDF" in summary
    (empty,) = idx.of_status("empty")
    assert empty.full_path == files["empty"] and len(empty.notes) == 3 and empty.n_points == 0
    by_path = {e.full_path: e for e in idx.entries}
    pole = by_path[files["pole"]]
    assert pole.product == "ATL10" and pole.n_points == 400 and pole.n_good == 400
    assert pole.t_min == pytest.approx(T0 + HOUR, abs=1e-3) and pole.t_max == pytest.approx(T0 + HOUR + 60, abs=1e-3)
    assert by_path[files["swot"]].n_points == 12 and by_path[files["later"]].path.endswith(".SEN3")

    def cands(lat_c, lon_c, t):
        region = _scene_region(lat_c, lon_c)[0]
        return [os.path.realpath(p) for p in alt.candidates(idx, t - 3 * HOUR, t + 3 * HOUR, region)]

    assert cands(90.0, 0.0, T0) == [files["pole"]]  # not the 86 N track, nor anything else
    assert cands(75.0, 180.0, T0) == [files["antimeridian"]]  # not 'west', not 'later' (30 days on)
    assert cands(75.0, 180.0, T0 + 30 * DAY) == [files["later"]]
    assert cands(75.0, 180.0, T0 + 365 * DAY) == []  # far in time
    assert cands(-70.0, 0.0, T0) == []  # far in space
    assert cands(70.02, 100.0, T0) == [files["swot"]]
    # without bounds: every usable file
    assert len(idx.candidates(None, None, None)) == 6


def test_the_cache_is_reused_changed_files_reread_deleted_dropped(tmp_path, monkeypatch):
    files = _folder(tmp_path / "alt")
    cache = str(tmp_path / "shards" / aidx.CACHE_NAME)
    reads = []
    real = aidx.open_altimetry

    def counting(path, *args, **kwargs):
        reads.append(os.path.realpath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(aidx, "open_altimetry", counting)
    first = alt.build_index([tmp_path / "alt"], cache)
    assert len(reads) == 9 and first.stats["read"] == 9
    with open(cache) as f:
        data = json.load(f)
    assert data["format"] == aidx.INDEX_FORMAT and list(data["folders"]) == [os.path.realpath(tmp_path / "alt")]
    assert not [n for n in os.listdir(tmp_path / "shards") if n != aidx.CACHE_NAME]  # no temporary left
    region = _scene_region(90.0, 0.0)[0]

    reads.clear()
    second = alt.build_index([tmp_path / "alt"], cache)
    assert reads == [] and second.stats["reused"] == 9 and second.stats["read"] == 0
    assert second.candidates(T0, T0 + 2 * HOUR, region) == first.candidates(T0, T0 + 2 * HOUR, region)
    assert [e.pieces for e in second.entries] == [e.pieces for e in first.entries]

    # the pole granule rewritten 2 days later, the 86 N file deleted, a new file added
    os.remove(files["pole"])
    moved = alt.write_atl10(os.path.dirname(files["pole"]), [_line(88.0, 0.0, 88.0, 180.0, T0 + 2 * DAY, n=200,
                                                                   mission="icesat2", beam="gt1l")],
                            name=os.path.basename(files["pole"]))
    os.utime(moved, ns=(10**18, 10**18))
    os.remove(files["at_86"])
    new = alt.write_cryosat2_l2(tmp_path / "alt" / "cs2", _line(89.8, 0.0, 89.8, 180.0, T0),
                                name="CS_OFFL_SIR_SAR_2__20190324T002217_20190324T002317_E003.nc")
    reads.clear()
    third = alt.build_index([tmp_path / "alt"], cache)
    assert sorted(reads) == sorted([files["pole"], os.path.realpath(new)])
    assert (third.stats["read"], third.stats["reused"], third.stats["dropped"]) == (2, 7, 1)
    assert [os.path.realpath(p) for p in third.candidates(T0 - HOUR, T0 + 2 * HOUR, region)] == [os.path.realpath(new)]
    assert third.candidates(T0 + 2 * DAY - HOUR, T0 + 2 * DAY + HOUR, region) == [files["pole"]]
    assert files["at_86"] not in [e.full_path for e in third.entries]

    # a moved folder is a new folder: read again, the old one's entries dropped with a note
    os.rename(tmp_path / "alt", tmp_path / "alt2")
    reads.clear()
    fourth = alt.build_index([tmp_path / "alt2"], cache)
    assert len(reads) == 9 and fourth.stats["dropped"] == 9
    assert any("cached entries dropped (folder not indexed this time)" in n for n in fourth.notes)
    assert all(os.path.exists(e.full_path) for e in fourth.entries)

    # other settings, or another index version: rebuilt, with a note
    reads.clear()
    fifth = alt.build_index([tmp_path / "alt2"], cache, beams="all")
    assert len(reads) == 9 and any("rebuilt" in n for n in fifth.notes)
    with open(cache) as f:
        data = json.load(f)
    data["version"] = 0
    with open(cache, "w") as f:
        json.dump(data, f)
    reads.clear()
    sixth = alt.build_index([tmp_path / "alt2"], cache, beams="all")
    assert len(reads) == 9 and any("index version 0" in n for n in sixth.notes)
    reads.clear()
    alt.build_index([tmp_path / "alt2"], cache, beams="all")
    assert reads == []
    # a file there that is not an index is someone else's: refused, not overwritten
    for text in ("{ not json", '{"manifest": 1}'):
        with open(cache, "w") as f:
            f.write(text)
        with pytest.raises(ValueError, match="not an altimetry index"):
            alt.build_index([tmp_path / "alt2"], cache)
        with open(cache) as f:
            assert f.read() == text


def test_single_files_are_indexed_alone(tmp_path):
    files = _folder(tmp_path / "alt")
    idx = alt.build_index([files["pole"], files["later"], tmp_path / "alt" / "cs2"])
    got = sorted(os.path.relpath(e.full_path, tmp_path / "alt") for e in idx.entries)
    assert got == sorted([os.path.relpath(files[k], tmp_path / "alt")
                          for k in ("pole", "later", "antimeridian", "west", "at_86", "swot_unscreened")])


def test_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="altimetry folder does not exist"):
        alt.build_index(tmp_path / "nowhere")
