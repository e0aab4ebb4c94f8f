"""Synthetic freeboard truth, simulated tracks / swath, written through the real layouts and read back."""

import datetime as dt

import numpy as np

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import collocate as col
from seaice_jax.altimetry import metrics
from seaice_jax.data import geolocation as geo
from seaice_jax.synthetic import freeboard
from seaice_jax.synthetic import tracks as simulated

H, W = 96, 80
T_SAR = dt.datetime(2019, 3, 24, 8, 0, 0)


def _tie_points(spacing=80.0):
    lines, samples = np.linspace(0, H - 1, 4), np.linspace(0, W - 1, 4)
    along = (lines[:, None] - H / 2) * spacing
    across = (samples[None, :] - W / 2) * spacing
    lat = 78.0 + along / 111_195.0 + 0 * across
    lon = -20.0 + across / (111_195.0 * np.cos(np.deg2rad(lat)))
    return geo.TiePoints(lines, samples, lat, lon)


def _maps():
    stage = np.full((H, W), 4, np.int16)
    stage[:, W // 2:] = 5
    stage[:4, :4] = 255  # no data
    lead = np.zeros((H, W), bool)
    lead[40:43, :] = True
    stage[80:, :10] = 0  # open water
    deform = np.zeros((H, W))
    deform[10:30, 50:75] = 1.0
    return stage, lead, deform


def test_truth_consistent_with_floes_leads_age_and_deformation():
    stage, lead, deform = _maps()
    t = freeboard.freeboard_truth(0, stage, lead, deform)
    assert np.all(t.laser_freeboard[lead] == 0) and np.all(t.radar_freeboard[80:, :10] == 0)
    assert np.all(np.isnan(t.ice_freeboard[:4, :4])) and not t.valid[:4, :4].any()
    ice = t.valid & ~t.lead
    np.testing.assert_allclose(t.laser_freeboard[ice], (t.ice_freeboard + t.snow_depth)[ice], atol=1e-6)
    np.testing.assert_allclose(t.radar_freeboard[ice], (t.ice_freeboard - 0.25 * t.snow_depth)[ice], atol=1e-6)
    level_fyi = t.ice_freeboard[50:80, 10:35].mean()
    level_old = t.ice_freeboard[50:80, 45:75].mean()
    assert level_old > level_fyi > 0
    deformed = t.roughness[10:30, 50:75].mean()
    level = t.roughness[50:80, 45:75].mean()
    assert deformed > 3 * level
    assert t.ice_freeboard[10:30, 50:75].max() > 0.5  # ridges
    db = freeboard.roughness_brightening_db(1, t.roughness)
    assert db[10:30, 50:75].mean() > db[50:80, 45:75].mean() + 0.5
    # roughness -> dB has scatter (not a lookup)
    r = t.roughness[10:30, 50:75].ravel()
    b = db[10:30, 50:75].ravel()
    assert 0.3 < np.corrcoef(r, b)[0, 1] < 0.99
    again = freeboard.freeboard_truth(0, stage, lead, deform)
    np.testing.assert_array_equal(again.laser_freeboard, t.laser_freeboard)


def test_tracks_noise_classification_and_determinism():
    stage, lead, deform = _maps()
    t = freeboard.freeboard_truth(0, stage, lead, deform)
    tp = _tie_points()
    cs = simulated.simulate_track(3, t, tp, T_SAR, "cryosat2", angle_deg=5.0, lead_error=0.0, noise_m=0.1)
    assert len(cs) > 20 and cs.mission == "cryosat2"
    floe = cs.surface == alt.FLOE
    resid = cs.value[floe] - cs.attrs["true_value"][floe]
    assert 0.05 < resid.std() < 0.15
    good = cs.good()
    np.testing.assert_array_equal(good.attrs["true_value"], cs.attrs["true_value"][cs.quality])
    assert (cs.surface == alt.LEAD).any()  # the lead band at rows 40-42 (1.6 km across footprint)
    np.testing.assert_array_equal(simulated.simulate_track(3, t, tp, T_SAR, "cryosat2", angle_deg=5.0,
                                                     lead_error=0.0, noise_m=0.1).value, cs.value)
    flipped = simulated.simulate_track(3, t, tp, T_SAR, "cryosat2", angle_deg=5.0, lead_error=0.5)
    assert (flipped.surface != cs.surface).mean() > 0.2
    beams = simulated.simulate_icesat2(4, t, tp, T_SAR, angle_deg=0.0, time_offset_s=1800.0)
    assert [b.beam for b in beams] == ["gt1l", "gt2l", "gt3l"]
    mid = beams[1]
    assert np.all((mid.footprint_along >= 27) & (mid.footprint_along <= 200))
    f = mid.surface == alt.FLOE
    assert np.std(mid.value[f] - mid.attrs["true_value"][f]) < 0.06


def test_written_in_real_layouts_and_collocated_back(tmp_path):
    stage, lead, deform = _maps()
    t = freeboard.freeboard_truth(0, stage, lead, deform)
    tp = _tie_points()
    tracks = [simulated.simulate_track(1, t, tp, T_SAR, "cryosat2", angle_deg=5.0, time_offset_s=-3600),
              simulated.simulate_track(2, t, tp, T_SAR, "sentinel3a", angle_deg=-20.0, offset_px=10.0)]
    tracks += simulated.simulate_icesat2(3, t, tp, T_SAR, angle_deg=80.0)
    sw = simulated.simulate_swath(5, t, tp, T_SAR, angle_deg=90.0, offset_px=-30.0 * 1000 / 80, inner_km=10,
                            outer_km=40)
    assert sw[0], "swath misses the scene"
    paths = simulated.write_synthetic_altimetry(tmp_path, tracks, sw)
    names = sorted(p.split("/")[-1] for p in paths)
    assert any(n.startswith("ATL10-01_20190324080000_1307") for n in names)
    assert any(n.startswith("CS_OFFL_SIR_SAR_2__20190324T070000") and n.endswith("_E001.nc") for n in names)
    assert any(n.startswith("S3A_SR_2_LAN_SI_") and n.endswith(".SEN3") for n in names)
    assert any(n.startswith("SWOT_L2_LR_SSH_Unsmoothed_") for n in names)
    read = [x for p in paths for x in alt.open_altimetry(p)]
    read_tracks = [x for x in read if isinstance(x, alt.Track)]
    swaths = [x for x in read if isinstance(x, alt.Swath)]
    assert len(read_tracks) == 5 and len(swaths) >= 1

    class Scene:
        shape, tie_points, start_time, valid = (H, W), tp, T_SAR, t.valid

    c = col.collocate(Scene, read_tracks, max_time_gap=dt.timedelta(hours=2))
    assert len(c) > 50
    # the truth scores well against its own tracks; a constant map does not
    radar = np.array([c.missions[i] != "icesat2" for i in c.track_index])
    truth_pts = metrics.point_metrics(t.radar_freeboard, c, mask=radar)
    const_pts = metrics.point_metrics(np.full((H, W), 0.5), c, mask=radar)
    assert truth_pts["rmse"] < 0.2 < const_pts["rmse"]
    laser_pts = metrics.point_metrics(t.laser_freeboard, c, mask=~radar)
    assert laser_pts["n"] > 0 and laser_pts["rmse"] < 0.1
    sm = metrics.swath_metrics(t.laser_freeboard, Scene, swaths, lead_mask=t.lead)
    assert sm["n"] > 0 and sm["rmse"] < 0.15


def test_end_to_end_baselines_and_metrics_json():
    """Truth -> SAR-like HV from roughness -> tracks -> collocation -> three baselines -> the JSON row."""
    import json

    from seaice_jax.altimetry import baselines

    stage, lead, deform = _maps()
    t = freeboard.freeboard_truth(0, stage, lead, deform)
    tp = _tie_points()
    hv = -22.0 + freeboard.roughness_brightening_db(1, t.roughness) + 2.0 * (stage == 5)
    tracks = [simulated.simulate_track(10 + k, t, tp, T_SAR, "cryosat2", angle_deg=a, offset_px=o, lead_error=0.0)
              for k, (a, o) in enumerate([(5.0, -25.0), (5.0, 0.0), (-5.0, 25.0)])]

    class Scene:
        shape, tie_points, start_time, valid = (H, W), tp, T_SAR, t.valid

    c = col.collocate(Scene, tracks, max_time_gap=3600)
    assert len(np.unique(c.track_index)) == 3
    floe = t.valid & ~t.lead
    feats = np.stack([hv, floe.astype(float)], -1)
    methods = {
        "quantile_mapping": lambda cc: baselines.quantile_mapping_from(cc, hv, floe, t.valid),
        "nearest": lambda cc: baselines.nearest_track_from(cc, t.valid, t.lead),
        "gp": lambda cc: baselines.gp_from(cc, feats, valid=t.valid, lead_mask=t.lead, max_points=200),
    }
    rows = {}
    for name, fn in methods.items():
        field = fn(c)
        assert field.shape == (H, W) and np.all(field[t.lead & t.valid] == 0)
        grid = metrics.grid_metrics(field, t.radar_freeboard, t.valid)
        loo = metrics.leave_one_track_out(fn, c)
        rows[name] = metrics.method_summary(grid, loo, None)
        assert rows[name]["rmse_80m"] < 0.3 and rows[name]["loo_rmse"] is not None
    assert rows["quantile_mapping"]["rmse_400m"] <= rows["quantile_mapping"]["rmse_80m"] + 1e-9
    json.dumps({"pooled": {"methods": rows}})


def test_simulate_altimetry_missions_deterministic(tmp_path):
    stage, lead, deform = _maps()
    t = freeboard.freeboard_truth(0, stage, lead, deform)
    tp = _tie_points()
    tracks, sw = simulated.simulate_altimetry(7, t, tp, T_SAR, "all")
    assert {tr.mission for tr in tracks} == {"icesat2", "cryosat2", "sentinel3a"}
    again, sw2 = simulated.simulate_altimetry(7, t, tp, T_SAR, "all")
    for a, b in zip(tracks, again, strict=True):
        np.testing.assert_array_equal(a.value, b.value)
        np.testing.assert_array_equal(a.latitude, b.latitude)
    only, _ = simulated.simulate_altimetry(7, t, tp, T_SAR, "sentinel3", swath=False)
    assert {tr.mission for tr in only} == {"sentinel3a"}
    start = T_SAR.replace(tzinfo=dt.UTC).timestamp()
    assert all(abs(tr.time.min() - start) <= 3 * 3600 + 60 for tr in tracks)
    assert sw is not None and sw[0] and all(s.quality.any() for s in sw[0])
    paths = simulated.write_synthetic_altimetry(tmp_path, tracks, sw)
    assert len(paths) == 5  # 1 ATL10 granule, 2 CS2, 1 S3, 1 SWOT
