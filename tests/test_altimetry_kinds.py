"""Laser and radar freeboards apart; ATL07 heights become freeboards only through a local sea surface
from the beam's own lead segments (files written by hand in the real ATL07 layout)."""

import h5py
import numpy as np
import pytest

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import kinds

FILL = np.float32(3.4028235e38)
T0 = 1553386937.0  # 2019-03-24T00:22:17Z
M_PER_DEG = np.pi * 6_371_000.0 / 180.0


def _ds(g, name, data, dtype, **attrs):
    d = g.create_dataset(name, data=np.asarray(data, dtype))
    for k, v in attrs.items():
        d.attrs[k] = v


def _write_atl07(path, beams: dict):
    """beams: name -> dict(height, ssh, quality, spacing_m, sigma); points along the 0 E meridian
    from 80 N, one every `spacing_m` metres, 0.01 s apart (real-layout attributes)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], np.int8))
        f.create_dataset("ancillary_data/atlas_sdp_gps_epoch", data=np.array([1198800018.0]))
        for beam, b in beams.items():
            h = np.asarray(b["height"], np.float64)
            n = h.size
            ssh = np.asarray(b.get("ssh", np.zeros(n)), np.int8)
            base = f.create_group(f"{beam}/sea_ice_segments")
            hs = base.create_group("heights")
            _ds(base, "latitude", 80.0 + np.arange(n) * b.get("spacing_m", 100.0) / M_PER_DEG, np.float64)
            _ds(base, "longitude", np.zeros(n), np.float64)
            _ds(base, "delta_time", 38_622_137.0 + np.arange(n) * 0.01, np.float64)
            _ds(hs, "height_segment_height", np.where(np.isfinite(h), h, FILL), np.float32, _FillValue=FILL)
            _ds(hs, "height_segment_surface_error_est", np.full(n, b.get("sigma", 0.02)), np.float32, _FillValue=FILL)
            _ds(hs, "height_segment_quality", b.get("quality", np.ones(n)), np.int8,
                flag_values=np.array([0, 1], np.int8), flag_meanings=np.bytes_(b"bad_quality good_quality"))
            _ds(hs, "height_segment_type", np.where(ssh == 1, 3, 1), np.int8)
            _ds(hs, "height_segment_ssh_flag", ssh, np.int8,
                flag_values=np.array([0, 1], np.int8), flag_meanings=np.bytes_(b"sea_ice sea_surface"))
    return path


def _floes(n, rng):
    return rng.uniform(0.05, 0.6, n)


def test_atl07_freeboard_is_height_minus_the_lead_offset(tmp_path):
    rng = np.random.default_rng(1)
    n, offset = 200, 0.37  # 20 km at 100 m
    fb_true = _floes(n, rng)
    ssh = np.zeros(n, np.int8)
    ssh[::17] = 1
    fb_true[ssh == 1] = 0.0
    path = _write_atl07(tmp_path / "ATL07-01_20190324002217_13070201_006_01.h5",
                        {"gt1l": {"height": fb_true + offset, "ssh": ssh}})
    (t,) = alt.open_altimetry(path)
    assert t.kind == "height" and alt.freeboard_kind(t) is None  # heights are never a freeboard as read
    np.testing.assert_array_equal(t.attrs["ssh_flag"], ssh == 1)
    np.testing.assert_array_equal(t.select(slice(0, 40)).attrs["ssh_flag"], ssh[:40] == 1)  # select carries it
    fb = alt.atl07_freeboard(t)
    assert fb.kind == "freeboard" and fb.product == "ATL07" and alt.freeboard_kind(fb) == "laser"
    assert fb.attrs["freeboard_from"].startswith("ATL07 heights - local sea surface")
    assert fb.quality.all()
    np.testing.assert_allclose(fb.value, fb_true, atol=1e-5)
    np.testing.assert_allclose(fb.attrs["sea_surface"], offset, atol=1e-6)
    np.testing.assert_allclose(fb.attrs["height"], fb_true + offset, atol=1e-6)
    # leads every 1.7 km, a +-5 km window; 1 / sigma^2 weights of 0.02 m: the reference's sigma is
    # 0.02 / sqrt(leads in the window)
    s = kinds.along_track_m(t)
    n_win = fb.attrs["sea_surface_leads"]
    np.testing.assert_array_equal(n_win, [np.sum((ssh == 1) & (np.abs(s - si) <= 5000.0)) for si in s])
    assert n_win.min() == 3 and n_win.max() == 6
    np.testing.assert_allclose(fb.uncertainty, 0.02 * np.sqrt(1 + 1 / n_win), rtol=1e-5)
    assert kinds.along_track_m(t)[-1] == pytest.approx((n - 1) * 100.0, rel=1e-3)


def test_atl07_sea_surface_is_local_to_each_section(tmp_path):
    # 60 km: leads at 0.10 m in the first 20 km, none in the middle, at 0.40 m in the last 20 km
    rng = np.random.default_rng(2)
    n = 600
    s = np.arange(n) * 100.0
    sea = np.where(s < 30_000, 0.10, 0.40)
    fb_true = _floes(n, rng)
    ssh = np.zeros(n, np.int8)
    ssh[(s < 20_000) & (np.arange(n) % 10 == 0)] = 1
    ssh[(s >= 40_000) & (np.arange(n) % 10 == 0)] = 1
    fb_true[ssh == 1] = 0.0
    path = _write_atl07(tmp_path / "ATL07-01_20190324002217_13070201_006_01.h5",
                        {"gt1l": {"height": fb_true + sea, "ssh": ssh}})
    (t,) = alt.open_altimetry(path)
    fb = alt.atl07_freeboard(t, section_m=10_050.0)  # window edges between points, not on them
    last_lead_a, first_lead_b = s[ssh == 1][s[ssh == 1] < 30_000].max(), s[ssh == 1][s[ssh == 1] >= 30_000].min()
    covered = (s <= last_lead_a + 5025.0) | (s >= first_lead_b - 5025.0)
    assert (~covered).sum() == 109  # leads every km up to 19 km and from 40 km: 24.1 to 34.9 km uncovered
    np.testing.assert_array_equal(fb.quality, covered)  # no lead within 5 km: no freeboard
    np.testing.assert_allclose(fb.value[covered], fb_true[covered], atol=1e-5)
    assert np.isnan(fb.value[~covered]).all()


def test_atl07_beam_without_leads_is_refused_with_a_note(tmp_path):
    path = _write_atl07(tmp_path / "ATL07-01_20190324002217_13070201_006_01.h5", {
        "gt1l": {"height": np.full(50, 0.3)},  # no lead segment
        "gt2l": {"height": np.full(50, 0.3), "ssh": np.arange(50) % 5 == 0, "quality": np.arange(50) % 5 != 0},
        "gt3l": {"height": np.r_[np.full(79, 0.3), 0.0], "ssh": np.arange(80) == 79, "spacing_m": 110.0},
    })
    tracks = alt.open_altimetry(path)
    notes = []
    assert alt.atl07_freeboard(tracks[0], notes=notes) is None
    laser = alt.freeboard_tracks(tracks, "laser", notes)
    name = path.name
    assert [t.beam for t in laser] == ["gt3l"]
    assert notes == [
        f"ATL07 {name}:gt1l: no lead segment (height_segment_ssh_flag) to reference the heights: refused",
        f"ATL07 {name}:gt1l: no lead segment (height_segment_ssh_flag) to reference the heights: refused",
        f"ATL07 {name}:gt2l: no good-quality lead segment (10 with height_segment_ssh_flag, none good) "
        "to reference the heights: refused"]
    np.testing.assert_allclose(laser[0].value[-6:], [0.3] * 5 + [0.0], atol=1e-6)
    assert laser[0].quality.sum() == 46  # within 5 km of the one lead: 45 x 110 m before it, and itself
    assert laser[0].quality[-46:].all()


def _track(n=6, mission="cryosat2", beam="", seed=0):
    rng = np.random.default_rng(seed)
    surface = np.array([alt.FLOE, alt.LEAD] * (n // 2), np.uint8)
    value = np.where(surface == alt.LEAD, 0.0, rng.uniform(0.1, 0.5, n))
    return alt.Track(time=T0 + np.arange(n) * 0.05, latitude=80 + np.arange(n) * 1e-3,
                     longitude=np.full(n, 12.5), value=value, uncertainty=np.full(n, 0.03),
                     surface=surface, quality=np.ones(n, bool), footprint_along=np.full(n, 33.0),
                     footprint_across=17.0, mission=mission, beam=beam)


def test_kinds_are_never_mixed(tmp_path):
    paths = []
    paths += alt.write_tracks(tmp_path, [_track(beam="gt1l")], "ATL10")
    paths += alt.write_tracks(tmp_path, [_track(beam="gt2l", seed=1)], "ATL07")  # leads: ssh_flag 1
    paths += alt.write_tracks(tmp_path, _track(seed=2), "SIR_SAR_2", baseline="E")
    paths += alt.write_tracks(tmp_path / "d", _track(seed=3), "SIR_SAR_2", baseline="D")
    paths += alt.write_tracks(tmp_path, _track(mission="sentinel3a", seed=4), "SR_2_LAN_SI")
    paths += alt.write_tracks(tmp_path, _track(seed=5), "L2P")
    tracks = [t for p in paths for t in alt.open_altimetry(p)]
    tracks += alt.cryosat2.read_l2p(paths[-1], variable="sea_ice_freeboard")  # ice freeboard: neither kind
    sw = alt.Swath(time=T0 + np.arange(2), latitude=np.full((2, 2), 75.0), longitude=np.zeros((2, 2)),
                   height=np.ones((2, 2), np.float32), mss=np.zeros((2, 2), np.float32), quality=np.ones((2, 2), bool),
                   side="left", track_id="swot:left")
    items = tracks + [sw, sw.as_track()]
    by_product = {(t.product, t.attrs.get("freeboard_variable")): alt.freeboard_kind(t) for t in tracks}
    assert by_product == {("ATL10", None): "laser", ("ATL07", None): None,
                          ("SIR_SAR_2", "radar_freeboard_20_ku"): "radar", ("SIR_SAR_2", "freeboard_20_ku"): "radar",
                          ("SR_2_LAN_SI", "radar_freeboard_20_ku"): "radar",
                          ("L2P", "radar_freeboard"): "radar", ("L2P", "sea_ice_freeboard"): None}
    notes_l, notes_r = [], []
    laser = alt.freeboard_tracks(items, "laser", notes_l)
    radar = alt.freeboard_tracks(items, "radar", notes_r)
    assert sorted(t.product for t in laser) == ["ATL07", "ATL10"]
    assert all(t.mission == "icesat2" and t.kind == "freeboard" for t in laser)  # never an ATL07 height
    assert sorted(t.product for t in radar) == ["L2P", "SIR_SAR_2", "SIR_SAR_2", "SR_2_LAN_SI"]
    assert not any(t.mission == "icesat2" for t in radar)  # a CryoSat-2 track is never laser, nor ICESat-2 radar
    assert not {id(t) for t in laser} & {id(t) for t in radar}
    for notes in (notes_l, notes_r):  # the ice freeboard, the swath and the swath's heights are noted
        assert len(notes) == 3
        assert any("sea_ice_freeboard: ice freeboard" in n for n in notes)
        assert any("SWOT swath" in n for n in notes)
        assert any("heights, not a freeboard" in n for n in notes)
    with pytest.raises(ValueError, match="not one of"):
        alt.freeboard_tracks(items, "total")
    # both kinds at once: the same lists, each refusal noted once
    notes = []
    both = alt.tracks_by_kind(items, notes=notes)
    assert [t.track_id for t in both["laser"]] == [t.track_id for t in laser]
    assert [t.track_id for t in both["radar"]] == [t.track_id for t in radar]
    assert notes == notes_l


def test_selection_goes_by_product_not_mission():
    t = _track(mission="icesat2")  # an ICESat-2 mission label on a track of no known product
    assert alt.freeboard_kind(t) is None
    t.product = "SIR_SAR_2"
    assert alt.freeboard_kind(t) == "radar"
    t.product, t.kind = "ATL10", "height"
    assert alt.freeboard_kind(t) is None
    t.kind, t.mission = "freeboard", "cryosat2"
    assert alt.freeboard_kind(t) == "laser"
    t.product = "ATL07"  # marked freeboard but never referenced to a sea surface
    assert alt.freeboard_kind(t) is None
