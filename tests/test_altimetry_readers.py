"""Altimeter product readers: tiny files written by hand in each real layout, and writer round trips."""

import os

import h5py
import netCDF4
import numpy as np
import pytest

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import icesat2

FILL = np.float32(3.4028235e38)
T0 = 1553386937.0  # 2019-03-24T00:22:17Z
VLEN = h5py.string_dtype()
# `beam_fb_quality_flag` of a real release-006 ATL10 granule subset (NSIDC, written through netCDF-4:
# the string attributes are variable-length strings in one-element arrays)
REAL_ATL10_FLAG_ATTRS = {"flag_values": np.array([-1, 1, 2, 3, 4, 5], np.int8),
                         "flag_meanings": np.array(["invalid best high med low poor"], dtype=VLEN),
                         "valid_min": np.int8(-1), "valid_max": np.int8(5),
                         "units": np.array(["1"], dtype=VLEN)}


def _ds(g, name, data, dtype, fill=None, **attrs):
    d = g.create_dataset(name, data=np.asarray(data, dtype))
    if fill is not None:
        d.attrs["_FillValue"] = np.asarray(fill, dtype)
    for k, v in attrs.items():
        d.attrs[k] = v


def _hand_atl10(path, layout):
    """Two beams, sc_orient 1 (gt*r strong): gt1r has a fill, a bad-quality point and a lead."""
    with h5py.File(path, "w") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([1], np.int8))
        f.create_dataset("ancillary_data/atlas_sdp_gps_epoch", data=np.array([1198800018.0]))
        for beam, shift in (("gt1r", 0.0), ("gt1l", 1.0)):
            if layout == "006":
                base = f.create_group(f"{beam}/freeboard_segment")
                hs = base.create_group("heights")
            else:
                base = f.create_group(f"{beam}/freeboard_beam_segment/beam_freeboard")
                hs = f.create_group(f"{beam}/freeboard_beam_segment/height_segments")
            _ds(base, "latitude", [80.0, 80.001, 80.002, 80.003], np.float64)
            _ds(base, "longitude", [10.0, 10.0, 10.0, 370.0 - 360.0], np.float64)
            _ds(base, "delta_time", np.array([0.0, 1.0, 2.0, 3.0]) + 38_622_137.0 + shift, np.float64)
            _ds(base, "beam_fb_height", [0.31, FILL, 0.45, 0.02], np.float32, FILL)
            _ds(base, "beam_fb_sigma", [0.02, 0.02, 0.03, 0.01], np.float32, FILL)
            if layout == "006":  # the real release-006 attributes (vlen strings in arrays): 5 = poor is bad
                _ds(base, "beam_fb_quality_flag", [1, 1, 5, 2], np.int8, -1, **REAL_ATL10_FLAG_ATTRS)
            else:  # without attributes: -1 (fill / invalid) is bad, 0 (best in older files) good
                _ds(base, "beam_fb_quality_flag", [0, 0, -1, 0], np.int8, -1)
            _ds(hs, "height_segment_type", [1, 1, 1, 3], np.int8, -1)
            _ds(hs, "height_segment_ssh_flag", [0, 0, 0, 1], np.int8, -1)
            _ds(hs, "height_segment_length_seg", [40.0, 50.0, 12.0, FILL], np.float32, FILL)


@pytest.mark.parametrize("layout", ["006", "005"])
def test_hand_written_atl10_both_layouts(tmp_path, layout):
    path = tmp_path / f"ATL10-01_20190324002217_13070201_{layout}_01.h5"
    _hand_atl10(path, layout)
    tracks = alt.open_altimetry(path)
    assert [t.beam for t in tracks] == ["gt1r"]  # strong only, sc_orient 1
    t = tracks[0]
    assert t.product == "ATL10" and t.kind == "freeboard" and t.mission == "icesat2"
    assert np.isnan(t.value[1]) and not t.quality[1]  # fill masked from _FillValue
    assert not t.quality[2]  # quality flag 'invalid' (006) / fill (005)
    assert t.quality[0] and t.quality[3]
    np.testing.assert_allclose(t.value[[0, 2, 3]], [0.31, 0.45, 0.02], rtol=1e-6)
    assert list(t.surface) == [alt.FLOE, alt.FLOE, alt.FLOE, alt.LEAD]
    np.testing.assert_allclose(t.footprint_along, [40.0, 50.0, 17.0, icesat2.DEFAULT_SEGMENT_M])
    np.testing.assert_allclose(t.footprint_across, 17.0)
    # 2018-01-01 + 38 622 137 s = 2019-03-24T00:22:17Z
    np.testing.assert_allclose(t.time[0], T0)
    np.testing.assert_allclose(t.uncertainty[0], 0.02, rtol=1e-6)
    both = alt.read_icesat2(path, beams="all")
    assert sorted(tr.beam for tr in both) == ["gt1l", "gt1r"]


def test_hand_written_atl07_heights(tmp_path):
    path = tmp_path / "ATL07-01_20190324002217_13070201_006_01.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], np.int8))
        base = f.create_group("gt2l/sea_ice_segments")
        hs = base.create_group("heights")
        _ds(base, "latitude", [79.0, 79.001, 79.002], np.float64)
        _ds(base, "longitude", [-5.0, -5.0, -5.0], np.float64)
        _ds(base, "delta_time", [38_622_137.0, 38_622_138.0, 38_622_139.0], np.float64)
        _ds(hs, "height_segment_height", [0.4, 0.05, FILL], np.float32, FILL)
        _ds(hs, "height_segment_quality", [1, 1, 1], np.int8, -1)
        _ds(hs, "height_segment_type", [1, 7, 1], np.int8, -1)
        _ds(hs, "height_segment_ssh_flag", [0, 1, 0], np.int8, -1)
        _ds(hs, "height_segment_length_seg", [30.0, 80.0, 60.0], np.float32, FILL)
    (t,) = alt.open_altimetry(path)
    assert t.product == "ATL07" and t.kind == "height" and t.beam == "gt2l"
    assert list(t.surface) == [alt.FLOE, alt.LEAD, alt.FLOE]
    assert list(t.quality) == [True, True, False]


def _hand_cs2(path, baseline):
    """Flat 20 Hz file: packed int32 mm freeboard, fills, error bits from flag_masks."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time_20_ku", 5)
        v = ds.createVariable("time_20_ku", "f8", ("time_20_ku",))
        v.units = "seconds since 2000-01-01 00:00:00.0"
        v[:] = np.arange(5) * 0.05 + 606_702_137.0  # 2019-03-24T00:22:17Z
        for name, vals in (("lat_poca_20_ku", [80.0, 80.003, 80.006, 80.009, 80.012]),
                           ("lon_poca_20_ku", [10.0] * 5)):
            v = ds.createVariable(name, "i4", ("time_20_ku",), fill_value=2147483647)
            v.scale_factor = 1e-7
            v[:] = np.array(vals)
        fb = "radar_freeboard_20_ku" if baseline == "E" else "freeboard_20_ku"
        v = ds.createVariable(fb, "i4", ("time_20_ku",), fill_value=-2147483647)
        v.scale_factor = 0.001
        v.units = "m"
        v.set_auto_maskandscale(False)
        v[:] = np.array([250, 310, -2147483647, 180, 120], np.int32)
        v = ds.createVariable("flag_prod_status_20_ku", "u4", ("time_20_ku",))
        v.flag_masks = np.array([2, 4, 65536, 16777216], np.uint32)
        v.flag_meanings = "some_warning sig0_3_error freeboard_error height_1_error"
        # a warning, or another retracker's error (set on every SAR record), is not a freeboard error
        v[:] = np.array([2 | 4, 4, 4, 65536, 16777216], np.uint32)


@pytest.mark.parametrize("baseline", ["D", "E"])
def test_hand_written_cryosat2_baselines(tmp_path, baseline):
    path = tmp_path / f"CS_OFFL_SIR_SAR_2__20190324T002217_20190324T002500_{baseline}001.nc"
    _hand_cs2(path, baseline)
    (t,) = alt.open_altimetry(path)
    assert t.mission == "cryosat2" and t.attrs["baseline"] == baseline
    np.testing.assert_allclose(t.value[[0, 1, 3, 4]], [0.25, 0.31, 0.18, 0.12], atol=1e-6)
    assert list(t.quality) == [True, True, False, False, False]
    np.testing.assert_allclose(t.time[0], T0, atol=1e-3)
    np.testing.assert_allclose(t.latitude, [80.0, 80.003, 80.006, 80.009, 80.012], atol=1e-6)
    np.testing.assert_allclose(t.footprint_across, 1600.0)


def test_cryosat2_without_freeboard_is_one_clear_line(tmp_path):
    path = tmp_path / "CS_OFFL_SIR_SAR_2__20190324T002217_20190324T002500_E001.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time_20_ku", 2)
        ds.createVariable("lat_poca_20_ku", "f8", ("time_20_ku",))[:] = [80, 81]
    with pytest.raises(alt.AltimetryFormatError) as e:
        alt.open_altimetry(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "radar_freeboard_20_ku" in msg


def test_unknown_files_are_refused(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    with pytest.raises(alt.AltimetryFormatError, match="neither HDF5 nor netCDF"):
        alt.open_altimetry(junk)
    other = tmp_path / "other.nc"
    with netCDF4.Dataset(other, "w") as ds:
        ds.createDimension("x", 1)
        ds.createVariable("foo", "f4", ("x",))
    with pytest.raises(alt.AltimetryFormatError, match="not a supported altimeter product"):
        alt.open_altimetry(other)
    h5 = tmp_path / "ATL10-01_20190324002217_13070201_006_01.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("gt1l/freeboard_segment/latitude", data=[1.0])
        f.create_dataset("orbit_info/sc_orient", data=[0])
    with pytest.raises(alt.AltimetryFormatError, match="missing dataset /gt1l/freeboard_segment/longitude"):
        alt.open_altimetry(h5)


def _hand_swot(path):
    with netCDF4.Dataset(path, "w") as root:
        for side, offset in (("left", 0.3), ("right", -0.2)):
            g = root.createGroup(side)
            g.createDimension("num_lines", 2)
            g.createDimension("num_pixels", 3)
            v = g.createVariable("time", "f8", ("num_lines",))
            v.units = "seconds since 2000-01-01 00:00:00.0"
            v[:] = [606_702_137.0, 606_702_137.5]
            for name, val in (("latitude", 75.0), ("longitude", 350.0)):
                v = g.createVariable(name, "i4", ("num_lines", "num_pixels"), fill_value=2147483647)
                v.scale_factor = 1e-6
                v[:] = np.full((2, 3), val) + np.arange(3) * 0.002
            v = g.createVariable("ssh_karin_2", "i4", ("num_lines", "num_pixels"), fill_value=2147483647)
            v.scale_factor = 1e-4
            v.set_auto_maskandscale(False)
            raw = np.array([[12000, 12500, 2147483647], [13000, 11000, 12100]], np.int32)
            v[:] = raw
            v = g.createVariable("height_cor_xover", "i4", ("num_lines", "num_pixels"), fill_value=2147483647)
            v.scale_factor = 1e-4
            v[:] = np.full((2, 3), offset)
            v = g.createVariable("ssh_karin_2_qual", "u4", ("num_lines", "num_pixels"),
                                 fill_value=np.uint32(4294967295))
            v.flag_masks = np.array([1, 2], np.uint32)
            v.flag_meanings = "suspect_large_ssh_delta suspect_large_ssh_std"
            v.set_auto_maskandscale(False)
            v[:] = np.array([[0, 0, 0], [2, 0, 4294967295]], np.uint32)


def test_hand_written_swot_groups(tmp_path):
    path = tmp_path / "SWOT_L2_LR_SSH_Unsmoothed_486_005_20230409T233402_20230410T002508_PIA1_01.nc"
    _hand_swot(path)
    left, right = alt.open_altimetry(path)
    assert isinstance(left, alt.Swath) and left.side == "left" and right.side == "right"
    np.testing.assert_allclose(left.height[0, :2], [1.2 + 0.3, 1.25 + 0.3], atol=1e-4)
    np.testing.assert_allclose(right.height[1, 1], 1.1 - 0.2, atol=1e-4)
    assert np.isnan(left.height[0, 2])
    np.testing.assert_array_equal(left.quality, [[True, True, False], [False, True, False]])
    np.testing.assert_allclose(left.longitude[0, 0], -10.0, atol=1e-6)  # 0-360 -> [-180, 180)
    np.testing.assert_allclose(left.time[0], T0)


def _track(n=6, mission="cryosat2", beam=""):
    rng = np.random.default_rng(0)
    surface = np.array([alt.FLOE, alt.LEAD] * (n // 2), np.uint8)
    value = np.where(surface == alt.LEAD, 0.0, rng.uniform(0.1, 0.5, n))
    quality = np.ones(n, bool)
    quality[-1] = False
    return alt.Track(time=T0 + np.arange(n) * 0.05, latitude=80 + np.arange(n) * 1e-3,
                     longitude=np.full(n, 12.5), value=value, uncertainty=np.full(n, 0.03),
                     surface=surface, quality=quality, footprint_along=np.full(n, 33.0),
                     footprint_across=17.0, mission=mission, beam=beam)


@pytest.mark.parametrize("product", ["ATL10", "ATL10_r005", "ATL07"])
def test_icesat2_writer_round_trip(tmp_path, product):
    tracks = [_track(beam="gt1l"), _track(beam="gt1r")]
    (path,) = alt.write_tracks(tmp_path, tracks, product)
    assert os.path.basename(path).startswith(product[:5] + "-01_20190324002217_13070201_00")
    (t,) = alt.open_altimetry(path)  # sc_orient 0: gt1l strong
    assert t.beam == "gt1l"
    ref = tracks[0]
    np.testing.assert_array_equal(t.quality, ref.quality)
    np.testing.assert_array_equal(t.surface, ref.surface)
    np.testing.assert_allclose(t.value, ref.value, atol=1e-6)
    np.testing.assert_allclose(t.time, ref.time, atol=1e-6)
    np.testing.assert_allclose(t.footprint_along, 33.0)


@pytest.mark.parametrize("product,kw", [("SIR_SAR_2", {"baseline": "E"}), ("SIR_SAR_2", {"baseline": "D"}),
                                        ("SIR_SAR_2", {"surf_type_class": True}), ("SR_2_LAN_SI", {}),
                                        ("L2P", {}), ("L2P", {"kind": "cci"})])
def test_nc_writer_round_trip(tmp_path, product, kw):
    ref = _track()
    (path,) = alt.write_tracks(tmp_path, ref, product, **kw)
    name = os.path.basename(path)
    (t,) = alt.open_altimetry(path)
    if product == "L2P":
        ref = ref.select(ref.quality & (ref.surface == alt.FLOE))
        assert name.startswith("awi-siral-l2p" if not kw else "ESACCI-SEAICE-L2P")
    elif product == "SIR_SAR_2":
        assert name == f"CS_OFFL_SIR_SAR_2__20190324T002217_20190324T002217_{kw.get('baseline', 'E')}001.nc"
    else:
        assert name.startswith("S3A_SR_2_LAN_SI_20190324T002217") and name.endswith("_005.SEN3")
    np.testing.assert_array_equal(t.quality, ref.quality)
    good = ref.quality
    np.testing.assert_array_equal(t.surface[good], ref.surface[good])  # S3: a bad point is unclassified
    np.testing.assert_allclose(t.value[good], ref.value[good], atol=1e-3)
    np.testing.assert_allclose(t.latitude, ref.latitude, atol=1e-5)
    np.testing.assert_allclose(t.time, ref.time, atol=1e-3)


def test_swot_writer_round_trip(tmp_path):
    lat = 75 + np.arange(12).reshape(3, 4) * 1e-3
    sw = [alt.Swath(time=T0 + np.arange(3), latitude=lat, longitude=np.full((3, 4), -10.0),
                    height=np.full((3, 4), 1.0, np.float32) + 0.01 * np.arange(4), mss=np.full((3, 4), 0.9, np.float32),
                    quality=np.arange(12).reshape(3, 4) % 5 != 0, side=s) for s in ("left", "right")]
    path = alt.write_swot(tmp_path, sw, xover={"left": 0.4, "right": -0.1})
    assert os.path.basename(path).startswith("SWOT_L2_LR_SSH_Unsmoothed_486_005_20190324T002217")
    back = alt.open_altimetry(path)
    for a, b in zip(back, sw, strict=True):
        np.testing.assert_allclose(a.height, b.height, atol=2e-4)
        np.testing.assert_array_equal(a.quality, b.quality)
        np.testing.assert_allclose(a.longitude, b.longitude, atol=1e-6)
        np.testing.assert_allclose(a.anomaly(), b.height - 0.9, atol=3e-4)


def test_transition_orientation_reads_all_beams_and_swot_without_xover_is_refused(tmp_path):
    path = tmp_path / "ATL10-01_20190324002217_13070201_006_01.h5"
    _hand_atl10(path, "006")
    with h5py.File(path, "r+") as f:
        f["orbit_info/sc_orient"][...] = 2
    tracks = alt.read_icesat2(path)
    assert sorted(t.beam for t in tracks) == ["gt1l", "gt1r"]
    assert not any(t.attrs["strong"] for t in tracks)
    swot = tmp_path / "SWOT_L2_LR_SSH_Unsmoothed_486_005_20230409T233402_20230410T002508_PIA1_01.nc"
    _hand_swot(swot)
    with netCDF4.Dataset(swot, "a") as root:
        root.groups["left"].renameVariable("height_cor_xover", "something_else")
    with pytest.raises(alt.AltimetryFormatError, match="missing variable /left/height_cor_xover"):
        alt.open_altimetry(swot)


# ------------------------------------------------------------------ quality flags in the real layouts
def _atl10_flag_file(path, flags, **flag_attrs):
    """One strong beam (sc_orient 0: gt1l), one point per flag value, all freeboards valid."""
    n = len(flags)
    with h5py.File(path, "w") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], np.int8))
        base = f.create_group("gt1l/freeboard_segment")
        hs = base.create_group("heights")
        _ds(base, "latitude", 80.0 + np.arange(n) * 1e-3, np.float64)
        _ds(base, "longitude", np.full(n, 10.0), np.float64)
        _ds(base, "delta_time", 38_622_137.0 + np.arange(n), np.float64)
        _ds(base, "beam_fb_height", np.full(n, 0.3), np.float32, FILL)
        _ds(base, "beam_fb_quality_flag", flags, np.int8, -1, **flag_attrs)
        _ds(hs, "height_segment_type", np.ones(n), np.int8, -1)
        _ds(hs, "height_segment_ssh_flag", np.zeros(n), np.int8, -1)


def test_atl10_quality_without_flag_meanings_rejects_poor(tmp_path):
    # no flag attributes: 0-4 good (0 = best in older files, 1-4 best..low in release 006);
    # -1 (invalid / fill), 5 (poor: freeboards 0.24-1.09 m off) and unknown values are bad
    path = tmp_path / "ATL10-01_20190324002217_13070201_006_01.h5"
    _atl10_flag_file(path, [-1, 0, 1, 2, 3, 4, 5, 7])
    (t,) = alt.read_icesat2(path)
    assert list(t.quality) == [False, True, True, True, True, True, False, False]
    np.testing.assert_array_equal(t.attrs["flag_good"], t.quality)


@pytest.mark.parametrize("form", ["vlen-array", "fixed-bytes", "str", "fixed-bytes-array"])
def test_atl10_flag_meanings_in_every_string_form(tmp_path, form):
    text = "invalid best high med low poor"
    meanings = {"vlen-array": np.array([text], dtype=VLEN), "fixed-bytes": np.bytes_(text.encode()),
                "str": text, "fixed-bytes-array": np.array([text.encode()])}[form]
    path = tmp_path / "ATL10-01_20190324002217_13070201_006_01.h5"
    # meanings decide: a file whose values are listed with other meanings than the defaults'
    _atl10_flag_file(path, [-1, 1, 2, 3, 4, 5], flag_values=np.array([-1, 1, 2, 3, 4, 5], np.int8),
                     flag_meanings=meanings)
    (t,) = alt.read_icesat2(path)
    assert list(t.quality) == [False, True, True, True, True, False]
    # and where the meanings say otherwise, they win over the defaults (here 4 is 'invalid')
    path2 = tmp_path / "ATL10-01_20190324002217_13070201_006_02.h5"
    _atl10_flag_file(path2, [0, 4, 5], flag_values=np.array([0, 4, 5], np.int8),
                     flag_meanings=np.array(["best invalid good"], dtype=VLEN))
    (t2,) = alt.read_icesat2(path2)
    assert list(t2.quality) == [True, False, True]


def test_attribute_text_forms():
    from seaice_jax.altimetry._nc import attr_ints, attr_text
    assert attr_text(np.array(["a b", "c"], dtype=object)) == "a b c"
    assert attr_text(np.bytes_(b"bad_quality good_quality")) == "bad_quality good_quality"
    assert attr_text(np.array([b"003   "])) == "003"
    assert attr_text(None) == ""
    assert attr_ints(np.array([-1, 1, 5], np.int8)) == [-1, 1, 5]
    assert attr_ints("0 1") == [0, 1]


def test_atl10_writer_writes_the_real_release_006_flag_layout(tmp_path):
    tr = _track(beam="gt1l")
    tr.value[2] = np.nan
    path = alt.write_atl10(tmp_path, [tr])
    with h5py.File(path, "r") as f:
        d = f["gt1l/freeboard_segment/beam_fb_quality_flag"]
        assert d.dtype == np.int8
        np.testing.assert_array_equal(d.attrs["flag_values"], [-1, 1, 2, 3, 4, 5])
        assert list(d.attrs["flag_meanings"]) == ["invalid best high med low poor"]  # vlen strings in an array
        assert int(d.attrs["valid_min"]) == -1 and int(d.attrs["valid_max"]) == 5
        assert int(np.asarray(d.attrs["_FillValue"]).ravel()[0]) == -1
        # good 1, bad quality 5 (the last point), no value -1
        np.testing.assert_array_equal(d[...], [1, 1, -1, 1, 1, 5])
    (back,) = alt.open_altimetry(path)
    np.testing.assert_array_equal(back.quality, [True, True, False, True, True, False])
    r005 = alt.write_atl10(tmp_path / "r005", [tr], release=5)
    with h5py.File(r005, "r") as f:  # older releases: no flag attributes, the defaults apply
        assert "flag_meanings" not in f["gt1l/freeboard_beam_segment/beam_freeboard/beam_fb_quality_flag"].attrs
    np.testing.assert_array_equal(alt.open_altimetry(r005)[0].quality, back.quality)


# ----------------------------------------------------------------------- beams without segments
def _atl07_beam(f, beam, n, quality=None, ssh=None, heights=None, seg_type=None):
    base = f.create_group(f"{beam}/sea_ice_segments")
    hs = base.create_group("heights")
    _ds(base, "latitude", 79.0 + np.arange(n) * 1e-3, np.float64)
    _ds(base, "longitude", np.full(n, -5.0), np.float64)
    _ds(base, "delta_time", 38_622_137.0 + np.arange(n) * 0.01, np.float64)
    _ds(hs, "height_segment_height", np.full(n, 0.4) if heights is None else heights, np.float32, FILL)
    _ds(hs, "height_segment_quality", np.ones(n) if quality is None else quality, np.int8,
        flag_values=np.array([0, 1], np.int8), flag_meanings=np.bytes_(b"bad_quality good_quality"))
    _ds(hs, "height_segment_type", np.ones(n) if seg_type is None else seg_type, np.int8)
    _ds(hs, "height_segment_ssh_flag", np.zeros(n) if ssh is None else ssh, np.int8,
        flag_values=np.array([0, 1], np.int8), flag_meanings=np.bytes_(b"sea_ice sea_surface"))


def test_atl07_beams_without_segments_are_skipped_and_noted(tmp_path, caplog):
    path = tmp_path / "ATL07-01_20190324002217_13070201_006_01.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], np.int8))
        _atl07_beam(f, "gt1l", 4, quality=[1, 0, 1, 1])
        f.create_dataset("gt2l/sea_ice_segments/stats/ds_si_hist_bins", data=np.arange(5))  # only stats
        _atl07_beam(f, "gt3l", 0)  # zero segments
        _atl07_beam(f, "gt1r", 3)  # weak beam, read with beams='all'
    notes = []
    tracks = alt.open_altimetry(path, notes=notes)
    assert [t.beam for t in tracks] == ["gt1l"]
    assert list(tracks[0].quality) == [True, False, True, True]  # height_segment_quality by its meanings
    assert notes == [f"{path}: gt2l: no sea_ice_segments/latitude (only stats): skipped",
                     f"{path}: gt3l: 0 segments: skipped"]
    notes = []
    assert [t.beam for t in alt.read_icesat2(path, beams="all", notes=notes)] == ["gt1l", "gt1r"]
    assert len(notes) == 2
    notes = []
    assert alt.read_icesat2(path, beams=["gt2l", "gt2r"], notes=notes) == []  # every requested beam empty
    assert notes == [f"{path}: gt2r: no gt2r group in the granule: skipped",
                     f"{path}: gt2l: no sea_ice_segments/latitude (only stats): skipped"]
    with caplog.at_level("WARNING", logger="seaice_jax.altimetry.icesat2"):
        alt.read_icesat2(path)  # without a notes list the skips are logged, never silent
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 2


# ------------------------------------------------------------------------------- SWOT quality names
@pytest.mark.parametrize("qual", ["ssha_karin_2_qual", "ssh_karin_2_qual", "ssh_karin_qual", "ssha_karin_qual"])
def test_swot_screened_by_whichever_quality_variable_it_has(tmp_path, qual):
    path = tmp_path / "SWOT_L2_LR_SSH_Unsmoothed_486_005_20230409T233402_20230410T002508_PIA1_01.nc"
    _hand_swot(path)
    with netCDF4.Dataset(path, "a") as root:
        for side in ("left", "right"):
            if qual != "ssh_karin_2_qual":
                root.groups[side].renameVariable("ssh_karin_2_qual", qual)
    left, right = alt.open_altimetry(path)
    np.testing.assert_array_equal(left.quality, [[True, True, False], [False, True, False]])
    assert left.attrs["quality_variable"] == qual


def test_swot_without_a_quality_variable_is_refused(tmp_path):
    path = tmp_path / "SWOT_L2_LR_SSH_Unsmoothed_486_005_20230409T233402_20230410T002508_PIA1_01.nc"
    _hand_swot(path)
    with netCDF4.Dataset(path, "a") as root:
        root.groups["left"].renameVariable("ssh_karin_2_qual", "karin_quality_bits")
    with pytest.raises(alt.AltimetryFormatError) as e:
        alt.open_altimetry(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "no ssha_karin_2_qual / ssh_karin_2_qual quality variable: refusing to read SWOT pixels unscreened" in msg
