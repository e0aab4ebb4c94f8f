"""Issue 13: the synthetic time series (synthesize --sequence), its truth files, evaluate_drift --truth D."""

import json
import os

import numpy as np
import pytest
import xarray as xr

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import io as drift_io
from seaice_jax.drift import motion
from seaice_jax.synthetic import drift as known
from seaice_jax.synthetic import sequence as seq

SIZE = (256, 256)
DRIFT = known.KnownDrift(translation_m_per_day=(3000.0, -4000.0), rotation_deg_per_day=0.8,
                                divergence_per_day=0.01, shear_per_day=0.02, lead_opening_m_per_day=300.0,
                                lead_angle_deg=40.0, lead_offset_px=20.0, pixel_spacing_m=80.0)


@pytest.fixture(scope="module")
def sequence_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sequence"))
    paths = seq.write_sequence(out, 2, "rtt", "winter", SIZE, 3, altimetry="icesat2", track_days=(-1, 1),
                               drift=DRIFT)
    return out, paths


def _tie(ds):
    return geo.tie_points_from_rtt(ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values,
                                   ds["ice_truth"].shape)


def test_sequence_files(sequence_dir):
    out, paths = sequence_dir
    meta = seq.read_sequence(out)
    assert [s["name"] for s in meta.scenes] == [os.path.basename(p) for p in paths]
    assert len(meta.pairs) == 1 and os.path.exists(os.path.join(out, seq.TRUTH_DIR, meta.pairs[0]["file"]))
    assert 0.8 < meta.pairs[0]["gap_days"] < 1.2
    assert meta.drift == DRIFT
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[1]) as b:
        # own pass geometry (tie points differ), own speckle; same kind of file
        assert not np.allclose(a["sar_grid2d_latitude"].values, b["sar_grid2d_latitude"].values)
        assert set(a.data_vars) == set(b.data_vars)
    # tracks on the scene days and on the days around them
    days = set()
    for name in os.listdir(os.path.join(out, "altimetry")):
        stamp = [p for p in name.split("_") if len(p) >= 14 and p[:8].isdigit()]
        if stamp:
            days.add(stamp[0][:8])
    assert len(days) >= 3


def test_sequence_is_one_field_moved_by_the_written_drift(sequence_dir):
    out, _ = sequence_dir
    meta = seq.read_sequence(out)
    pair = meta.pairs[0]
    truth = drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR, pair["file"]))["truth"]
    with xr.open_dataset(os.path.join(out, pair["a"])) as a, xr.open_dataset(os.path.join(out, pair["b"])) as b:
        fa, fb = a["freeboard_truth"].values, b["freeboard_truth"].values
        ia, ib = a["ice_truth"].values, b["ice_truth"].values
        tpb = _tie(b)
    # A's pixels (every 2nd) moved by the written drift (vectors interpolated in time with move_tracks)
    h, w = SIZE
    R, C = np.mgrid[0:h:2, 0:w:2].astype(float)
    R, C = R.ravel(), C.ravel()
    lat, lon = geo.pixel_latlon(_tie(xr.open_dataset(os.path.join(out, pair["a"]))), R, C)
    t = np.full(lat.shape, truth.time_a, dtype="datetime64[us]")
    mlat, mlon, _ = motion.move_tracks(lat, lon, t, [truth], np.datetime64(truth.time_b, "us"))
    rb, cb = geo.latlon_to_pixel(tpb, mlat, mlon)
    inside = np.isfinite(rb) & (rb > -0.5) & (rb < h - 0.5) & (cb > -0.5) & (cb < w - 0.5)
    assert inside.mean() > 0.5  # consecutive scenes overlap ...
    ri, ci = np.rint(rb[inside]).astype(int), np.rint(cb[inside]).astype(int)
    ra, ca = R[inside].astype(int), C[inside].astype(int)
    va, vb = fa[ra, ca], fb[ri, ci]
    away = np.isfinite(va) & np.isfinite(vb) & ~((ib[ri, ci] == 0) & (ia[ra, ca] == 1))  # not opened leads
    assert np.mean(ia[ra, ca][away] == ib[ri, ci][away]) > 0.97
    assert np.mean(np.abs(va[away] - vb[away]) < 0.01) > 0.5
    assert np.corrcoef(va[away], vb[away])[0, 1] > 0.7
    same = np.isfinite(fa) & np.isfinite(fb)  # ... but do not coincide: the same pixel is other ice
    assert np.corrcoef(fa[same], fb[same])[0, 1] < 0.5
    # and the drift opened some new water where the lead opens
    assert ((ib[ri, ci] == 0) & (ia[ra, ca] == 1)).sum() > 0


def test_truth_files_move_tracks_onto_the_true_flow(sequence_dir):
    out, _ = sequence_dir
    meta = seq.read_sequence(out)
    truth = drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR, meta.pairs[0]["file"]))["truth"]
    rng = np.random.default_rng(0)
    lat, lon = geo.pixel_latlon(_tie(xr.open_dataset(os.path.join(out, meta.pairs[0]["a"]))),
                                rng.uniform(0, 255, 200), rng.uniform(0, 255, 200))
    t = np.full(200, truth.time_a, dtype="datetime64[us]")
    mlat, mlon, _ = motion.move_tracks(lat, lon, t, [truth], np.datetime64(truth.time_b, "us"))
    tlat, tlon = seq.true_flow_latlon(meta, lat, lon, truth.time_a.timestamp(), truth.time_b.timestamp())
    from seaice_jax.drift.estimation import spherical_displacement
    e, n = spherical_displacement(tlat, tlon, mlat, mlon)
    err = np.hypot(e, n)
    assert np.median(err) < 20.0 and err.max() < 400.0  # the lead's jump is the only non-linear part


def test_evaluate_drift_truth_folder_known_answer(sequence_dir, tmp_path):
    import dataclasses

    from launch import evaluate_drift
    out, _ = sequence_dir
    meta = seq.read_sequence(out)
    truth = drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR, meta.pairs[0]["file"]))["truth"]
    exact = dataclasses.replace(truth, method="pattern_matching")
    off = dataclasses.replace(truth, method="phase_correlation", east_m=truth.east_m + 300.0,
                              north_m=truth.north_m - 400.0)
    dr = str(tmp_path / "DR.nc")
    drift_io.write_drift(dr, {"pattern_matching": exact, "phase_correlation": off})
    j = str(tmp_path / "J.json")
    assert evaluate_drift.main(["--drift", dr, "--truth", out, "--json", j]) == 0
    with open(j) as f:
        res = json.load(f)
    assert res["pattern_matching"]["rmse_m"] < 1.0
    assert abs(res["phase_correlation"]["rmse_m"] - 500.0) < 1.0
    assert res["pattern_matching"]["valid_fraction"] == 1.0
    assert res["pattern_matching"]["scene_a"] == meta.pairs[0]["a"]
    assert 0.8 < res["pattern_matching"]["gap_days"] < 1.2
    # a pair the folder does not hold: an error, not a wrong truth
    late = dataclasses.replace(truth, time_a=truth.time_b, time_b=truth.time_b + (truth.time_b - truth.time_a))
    drift_io.write_drift(dr, {"pattern_matching": late})
    assert evaluate_drift.main(["--drift", dr, "--truth", out, "--json", j]) == 1


def test_sequence_is_deterministic(tmp_path):
    a = seq.write_sequence(str(tmp_path / "a"), 2, "rtt", "winter", (64, 64), 5)
    b = seq.write_sequence(str(tmp_path / "b"), 2, "rtt", "winter", (64, 64), 5)
    for pa, pb in zip(a, b, strict=True):
        with xr.open_dataset(pa) as x, xr.open_dataset(pb) as y:
            assert os.path.basename(pa) == os.path.basename(pb)
            np.testing.assert_array_equal(x["nersc_sar_secondary"].values, y["nersc_sar_secondary"].values)


# --------------------------------------------------------------------------------------------
# drift-compensated tracks (seaice_jax.elevation.compensation)

def _points_track(lat, lon, t_unix, value):
    from seaice_jax.altimetry.track import Track
    n = lat.size
    return Track(time=np.full(n, t_unix), latitude=lat, longitude=lon, value=value, uncertainty=0.03,
                 surface=np.zeros(n, np.uint8), quality=np.ones(n, bool), footprint_along=17.0,
                 footprint_across=17.0, mission="icesat2", track_id="test:gt1l")


def test_compensation_true_drift_lands_on_the_truth(sequence_dir):
    from seaice_jax.altimetry.track import to_unix_seconds
    from seaice_jax.elevation import compensation
    out, _ = sequence_dir
    meta = seq.read_sequence(out)
    pair = meta.pairs[0]
    fa_ = xr.open_dataset(os.path.join(out, pair["a"]))
    fb_ = xr.open_dataset(os.path.join(out, pair["b"]))
    tpa, tpb = _tie(fa_), _tie(fb_)
    ta = to_unix_seconds(np.datetime64(meta.scenes[0]["time"]))
    tb = to_unix_seconds(np.datetime64(meta.scenes[1]["time"]))
    h, w = SIZE
    r, c = np.mgrid[0:h:3, 0:w:3]
    r, c = r.ravel().astype(float), c.ravel().astype(float)
    lat, lon = geo.pixel_latlon(tpa, r, c)
    track = _points_track(lat, lon, ta, fa_["freeboard_truth"].values[r.astype(int), c.astype(int)])
    # where each point really is at B's time: A's frame -> plane -> the known flow -> B's frame
    fr = [seq.Frame(tuple(s["frame"]["centre"]), s["frame"]["phi_rad"], tuple(s["frame"]["shape"]))
          for s in meta.scenes]
    er, ec = meta.drift.flow(*fr[0].to_plane(r, c), (tb - ta) / 86400.0)
    true_r, true_c = fr[1].from_plane(er, ec)
    moved = {}
    for mode, kw in (("true", {"true_flow": seq.true_flow(meta)}), ("none", {}),
                     ("estimated", {"fields": [drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR,
                                                                                  pair["file"]))["truth"]]})):
        got = compensation.compensate_tracks([track], tb, mode, **kw)[0]
        assert np.all(got.time == tb) and np.all(got.attrs["original_time"] == ta)
        moved[mode] = geo.latlon_to_pixel(tpb, got.latitude, got.longitude)
    # true drift: exactly where the ice went (tie-point interpolation only)
    err = np.hypot(moved["true"][0] - true_r, moved["true"][1] - true_c)
    assert np.nanmax(err) < 0.05  # px
    inside = (true_r > -0.5) & (true_r < h - 0.5) & (true_c > -0.5) & (true_c < w - 0.5)
    vb = fb_["freeboard_truth"].values
    ib = fb_["ice_truth"].values
    ia = fa_["ice_truth"].values[r.astype(int), c.astype(int)]

    def agreement(mode):
        rr, cc = moved[mode]
        ok = inside & np.isfinite(rr) & (rr > -0.5) & (rr < h - 0.5) & (cc > -0.5) & (cc < w - 0.5)
        ri, ci = np.rint(rr[ok]).astype(int), np.rint(cc[ok]).astype(int)
        keep = np.isfinite(track.value[ok]) & np.isfinite(vb[ri, ci]) & ~((ib[ri, ci] == 0) & (ia[ok] == 1))
        return np.mean(np.abs(track.value[ok][keep] - vb[ri, ci][keep]) < 0.01), np.mean(ok)

    exact_true, _ = agreement("true")
    exact_est, _ = agreement("estimated")
    exact_none, _ = agreement("none")
    assert exact_true > 0.5 and exact_est > 0.5
    assert exact_none < 0.2  # uncompensated points sit on other ice
    # estimated drift: uncertainty grows with the pair's nominal error pro rata of the time moved
    f = drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR, pair["file"]))["truth"]
    f = __import__("dataclasses").replace(f, uncertainty_m=500.0)
    got = compensation.compensate_tracks([track], tb, "estimated", fields=[f])[0]
    np.testing.assert_allclose(got.attrs["position_uncertainty_m"], 500.0, rtol=1e-3)
    np.testing.assert_allclose(got.uncertainty, np.hypot(0.03, 500.0 * compensation.FREEBOARD_PER_POSITION),
                               rtol=1e-3)
    with pytest.raises(ValueError):
        compensation.compensate_tracks([track], tb, "estimated")


def test_tracks_within_gap():
    from seaice_jax.elevation import compensation
    t0 = 1.6e9
    tr = _points_track(np.zeros(5), np.zeros(5), 0.0, np.zeros(5))
    tr.time = t0 + np.array([0.1, -0.9, 1.2, 3.0, -7.2]) * 86400
    assert [len(t) for t in compensation.tracks_within([tr], t0, 0)] == [1]
    assert [len(t) for t in compensation.tracks_within([tr], t0, 1)] == [2]
    assert [len(t) for t in compensation.tracks_within([tr], t0, 7)] == [1]


def test_evaluate_elevation_by_compensation(sequence_dir, tmp_path):
    from launch import evaluate_elevation
    out, paths = sequence_dir
    meta = seq.read_sequence(out)
    truth = drift_io.read_drift(os.path.join(out, seq.TRUTH_DIR, meta.pairs[0]["file"]))["truth"]
    dr = str(tmp_path / "DR.nc")
    import dataclasses
    drift_io.write_drift(dr, {"pattern_matching": dataclasses.replace(truth, method="pattern_matching")})
    pred = tmp_path / "pred"
    pred.mkdir()
    j = str(tmp_path / "E" / "E.json")
    rc = evaluate_elevation.main(["--pred", str(pred), "--scenes", *paths, "--tracks", os.path.join(out, "altimetry"),
                                  "--json", j, "--no_loo", "--methods", "nearest",
                                  "--drift-compensation", "none", "estimated", "true",
                                  "--drift", dr])
    assert rc == 0
    with open(j) as f:
        res = json.load(f)["by_compensation"]
    assert set(res) == {"none", "estimated", "true"}
    for mode in res:
        assert set(res[mode]["by_gap_days"]) == {"0", "1", "3", "7"}
        assert res[mode]["rmse_80m"] is not None and res[mode]["rmse_400m"] is not None
    assert res["true"]["by_gap_days"]["1"]["rmse_80m"] < res["none"]["by_gap_days"]["1"]["rmse_80m"]
    assert os.path.exists(str(tmp_path / "E" / "E_compensation.png"))
