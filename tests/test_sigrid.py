"""SIGRID-3 code rules (shared docs ai4arctic-format.md, "Ice-chart codes")."""

import math

import numpy as np
import pytest

from seaice_jax.data import sigrid
from seaice_jax.data.channels import POLYGON_CODES_HEADER
from seaice_jax.data.scene_types import SceneError


def polygon(**codes):
    """A polygon row with every code not filled (-9), POLY_TYPE I, overridden by `codes`."""
    row = {c: -9 for c in sigrid.CODE_COLUMNS}
    row["POLY_TYPE"] = "I"
    row.update(codes)
    return row


@pytest.mark.parametrize(
    "ct, conc, sic",
    [
        (0, 0.0, 0), (1, 0.0, 0), (2, 0.0, 0), (55, 0.0, 0),
        (10, 0.1, 1), (20, 0.2, 2), (50, 0.5, 5), (90, 0.9, 9),
        (91, 0.95, 10), (92, 1.0, 10),
        (21, 0.6, 6), (51, 0.75, 8), (81, 0.9, 9),  # X1: X/10 to 10/10
        (57, 0.6, 6), (68, 0.7, 7), (79, 0.8, 8), (89, 0.85, 9),  # 0.85 rounds half up
        (12, 0.15, 2), (13, 0.2, 2), (24, 0.3, 3), (35, 0.4, 4), (46, 0.5, 5), (19, 0.5, 5),
    ],
)
def test_concentration_codes(ct, conc, sic):
    assert sigrid.concentration_from_ct(ct) == pytest.approx(conc, abs=1e-12)
    assert sigrid.sic_class_from_ct(ct) == sic


@pytest.mark.parametrize("ct", [-9, 99, 3, 33, 100, 11, 98, 77, 93])
def test_unknown_concentration_codes_are_nan_never_water(ct):
    assert math.isnan(sigrid.concentration_from_ct(ct))
    assert sigrid.sic_class_from_ct(ct) == 255


def test_range_codes_are_never_water():
    for low in range(1, 9):
        for high in range(low + 1, 10):
            code = 10 * low + high
            assert sigrid.concentration_from_ct(code) == pytest.approx((low + high) / 20)
            assert sigrid.sic_class_from_ct(code) >= 1


def test_water_land_no_data_polygons():
    assert sigrid.polygon_classes(polygon(POLY_TYPE="W")) == (0, 0, 0)
    assert sigrid.polygon_classes(polygon(POLY_TYPE="W", CT=90, SA=87, FA=4)) == (0, 0, 0)
    assert sigrid.polygon_classes(polygon(POLY_TYPE="L", CT=90, SA=87, FA=4)) == (255, 255, 255)
    assert sigrid.polygon_classes(polygon(POLY_TYPE="N", CT=90, SA=87, FA=4)) == (255, 255, 255)
    assert sigrid.polygon_concentration(polygon(POLY_TYPE="W")) == 0.0
    assert math.isnan(sigrid.polygon_concentration(polygon(POLY_TYPE="L", CT=90)))


def test_ice_polygon_with_unknown_ct_is_masked():
    assert sigrid.polygon_classes(polygon(CT=99, CA=90, SA=87, FA=4)) == (255, 255, 255)
    assert sigrid.polygon_classes(polygon(CT=-9, SA=87, FA=4)) == (255, 255, 255)


def test_ice_polygon_with_water_ct_is_all_zero():
    # SIC 0 => SOD and FLOE 0, whatever the stage / form codes say.
    assert sigrid.polygon_classes(polygon(CT=1, CA=-9, SA=95, FA=5)) == (0, 0, 0)
    assert sigrid.polygon_classes(polygon(CT=0, SA=87, FA=4)) == (0, 0, 0)


def test_ca_not_filled_takes_ct():
    # Single ice type: CA empty -> CA = CT = 100 % of CT, so SA / FA decide.
    assert sigrid.polygon_classes(polygon(CT=91, SA=87, FA=4)) == (10, 3, 3)
    # CT 90 with CA empty: CA := 90 in old ice / vast floe, so 90 >= 0.65 * 90 despite a 20 % CB.
    assert sigrid.polygon_classes(polygon(CT=90, SA=95, FA=6, CB=20, SB=81, FB=2)) == (9, 5, 5)


def test_sod_dominance_met_and_not_met():
    # 60 of CT 90 in thin FYI (87) + 10 in 88 (same class 3): 70 >= 0.65 * 90 = 58.5 -> class 3.
    met = polygon(CT=90, CA=60, SA=87, FA=4, CB=10, SB=88, FB=4, CC=20, SC=95, FC=4)
    assert sigrid.polygon_classes(met) == (9, 3, 3)
    # 50 of CT 90 in class 3, 40 in old ice (95): 50 < 58.5 and 40 < 58.5 -> 255.
    not_met = polygon(CT=90, CA=50, SA=87, FA=4, CB=40, SB=95, FB=4)
    assert sigrid.polygon_classes(not_met)[1] == 255
    # CT 91 (100 %): CA 70 >= 65 -> class; CA 60 + CB 40 of another class -> 255; exactly 65 %
    # (range code 67 = 60-70 %, mid 65 %) counts.
    assert sigrid.polygon_classes(polygon(CT=91, CA=70, SA=83, FA=3, CB=30, SB=86, FB=3))[1] == 2
    assert sigrid.polygon_classes(polygon(CT=91, CA=60, SA=83, FA=3, CB=40, SB=86, FB=3))[1] == 255
    assert sigrid.polygon_classes(polygon(CT=91, CA=67, SA=83, FA=3, CB=30, SB=86, FB=4)) == (10, 2, 2)


def test_sod_masked_stage_never_wins():
    # Glacier (98) and unknown (99) stages map to 255 even when dominant.
    assert sigrid.polygon_classes(polygon(CT=90, SA=98, FA=4))[1] == 255
    assert sigrid.polygon_classes(polygon(CT=90, CA=80, SA=99, FA=4, CB=10, SB=87, FB=4))[1] == 255


def test_floe_dominance_met_and_not_met():
    # Forms 6 and 7 are both vast floe (5): 40 + 30 of CT 90 = 70 >= 58.5.
    met = polygon(CT=90, CA=40, SA=87, FA=6, CB=30, SB=87, FB=7, CC=20, SC=87, FC=2)
    assert sigrid.polygon_classes(met) == (9, 3, 5)
    not_met = polygon(CT=90, CA=40, SA=87, FA=6, CB=30, SB=87, FB=3, CC=20, SC=87, FC=2)
    assert sigrid.polygon_classes(not_met) == (9, 3, 255)
    # Shuga (1), pancake (22), level ice (21) are masked forms.
    assert sigrid.polygon_classes(polygon(CT=90, SA=87, FA=22))[2] == 255


def test_partial_concentrations_may_be_range_codes():
    # CT 79 (80 %), CA 57 (60 %) in class 4 and CB 20 in class 1: 60 >= 0.65 * 80 = 52 -> class 4.
    assert sigrid.polygon_classes(polygon(CT=79, CA=57, SA=91, FA=5, CB=20, SB=81, FB=2)) == (8, 4, 4)


def test_fast_ice_floe_code_masks_floe_only():
    row = polygon(CT=92, CA=60, SA=95, FA=8, CB=40, SB=95, FB=5)
    assert sigrid.polygon_classes(row) == (10, 5, 255)
    # Even a minor fast-ice floe code masks FLOE.
    row = polygon(CT=91, CA=80, SA=95, FA=5, CB=20, SB=95, FB=8)
    assert sigrid.polygon_classes(row) == (10, 5, 255)


def _table_lines(*rows):
    return [POLYGON_CODES_HEADER, *rows]


def test_parse_polygon_codes_and_lookup():
    lines = _table_lines(
        "1;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;W",
        b"4;57;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",  # bytes rows occur in real files
        "6;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;L",
        "7;91.0;;95;8;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",  # '91.0' and '' (not filled) are accepted
    )
    table = sigrid.parse_polygon_codes(lines, "scene.nc")
    assert sorted(table) == [1, 4, 6, 7]
    assert table[4]["CT"] == 57 and table[4]["SA"] == 87 and table[4]["POLY_TYPE"] == "I"
    assert table[7]["CT"] == 91 and table[7]["CA"] == -9

    lookup = sigrid.polygon_tables_to_lookup(table)
    raster = np.array([[1, 4, 6], [7, 3, np.nan]], np.float32)  # 3 not in the table, NaN fill
    sic, sod, floe = sigrid.charts_from_polygons(lookup, raster)
    np.testing.assert_array_equal(sic, [[0, 6, 255], [10, 255, 255]])
    np.testing.assert_array_equal(sod, [[0, 3, 255], [5, 255, 255]])
    np.testing.assert_array_equal(floe, [[0, 3, 255], [255, 255, 255]])
    conc = lookup.conc[lookup.index_of(raster)]
    np.testing.assert_allclose(conc[0, :2], [0.0, 0.6])
    assert np.isnan(conc[0, 2]) and conc[1, 0] == pytest.approx(0.95) and np.isnan(conc[1, 1:]).all()
    # Integer rasters work the same way.
    np.testing.assert_array_equal(lookup.index_of(np.array([[4, -1, 99]])), [[4, 8, 8]])


@pytest.mark.parametrize(
    "lines, problem",
    [
        (["id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;POLY_TYPE"], "header"),
        ([], "empty"),
        (_table_lines("1;90;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;I"), "fields"),
        (_table_lines("1;9x;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I"), "row 1"),
        (_table_lines("1;90;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;Q"), "POLY_TYPE"),
        (_table_lines("1;90;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
                      "1;90;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I"), "repeats"),
    ],
)
def test_bad_polygon_codes_raise_naming_the_file(lines, problem):
    with pytest.raises(SceneError) as err:
        sigrid.parse_polygon_codes(lines, "bad_scene.nc")
    message = str(err.value)
    assert message.startswith("bad_scene.nc: ") and problem in message and "\n" not in message


def test_real_layout_rows_zero_padded_codes_and_compound_cf():
    lines = [POLYGON_CODES_HEADER,
             "76;02;-9;98;10;-9;-9;-9;-9;-9;-9;-9;-9;10-9;W",
             "3;08;-9;87;04;-9;-9;-9;-9;-9;-9;-9;-9;08-9;I"]
    assert POLYGON_CODES_HEADER.startswith("poly_id;")
    table = sigrid.parse_polygon_codes(lines, "real.nc")
    assert table[76]["CT"] == 2 and table[76]["CF"] == "10-9" and table[76]["POLY_TYPE"] == "W"
    assert table[3]["CT"] == 8 and table[3]["FA"] == 4 and table[3]["CF"] == "08-9"
    # The writer side: the same row strings come back.
    assert sigrid.polygon_code_line(76, table[76]) == lines[1]
    assert sigrid.polygon_code_line(3, table[3]) == lines[2]
    # The older synthetic header `id;...` still parses.
    legacy = sigrid.parse_polygon_codes(["id" + POLYGON_CODES_HEADER[len("poly_id"):], lines[2]], "old.nc")
    assert legacy[3]["CT"] == 8


def test_unknown_codes_are_named():
    assert sigrid.unknown_codes(polygon(CT=77, SA=42, FA=4)) == ["CT=77", "SA=42"]
    assert sigrid.unknown_codes(polygon(CT=90, CA=60, SA=87, FA=4, CB=30, SB=95, FB=13)) == ["FB=13"]
    # Codes in the tables, masked or not, are not unknown; water rows are not checked.
    assert sigrid.unknown_codes(polygon(CT=99, SA=98, FA=22)) == []
    assert sigrid.unknown_codes(polygon(CT=81, SA=86, FA=8)) == []
    assert sigrid.unknown_codes(polygon(POLY_TYPE="W", CT=2, SA=98, FA=10)) == []
    lookup = sigrid.polygon_tables_to_lookup({5: polygon(CT=77, SA=87, FA=4), 6: polygon(CT=90, SA=87, FA=4)})
    assert lookup.unknown == {5: ["CT=77"]} and math.isnan(lookup.conc[5])


def test_whole_raster_passes_in_slices_give_the_one_pass_results(monkeypatch):
    """index_of, polygon_regions and chart_report work on a raster slice by slice (for memory): the
    same numbers as the one-pass formulas, with slices that do not divide the raster."""
    from seaice_jax.data import regions

    lookup = sigrid.polygon_tables_to_lookup({
        1: polygon(POLY_TYPE="W"), 4: polygon(CT=57, SA=87, FA=4),
        5: polygon(CT=77, SA=87, FA=4),  # an unknown CT: NaN concentration, reported
        7: polygon(CT=91, SA=95, FA=8)})
    assert lookup.unknown
    rng = np.random.default_rng(0)
    raster = rng.choice(np.array([1, 4, 5, 7, 3, -2, 99, np.nan], np.float32), size=(13, 11))
    usable = rng.random((13, 11)) < 0.7
    missing = lookup.missing_index

    def one_pass_index(r):
        ids = np.where(np.isfinite(r), r, -1)
        return np.where((ids < 0) | (ids >= missing), missing, ids).astype(np.int32)

    def one_pass_regions(index, ok, conc):
        ok = ok & np.isfinite(conc)[index]
        used = np.bincount(index[ok].ravel(), minlength=len(conc)) > 0
        new_id = np.cumsum(used, dtype=np.int64) - 1
        return np.where(ok, new_id[index], -1).astype(np.int32), conc[np.flatnonzero(used)]

    expected_index = one_pass_index(raster)
    expected_ids, expected_conc = one_pass_regions(expected_index, usable, lookup.conc)
    expected_report = regions.chart_report(lookup, expected_index, usable)
    assert expected_report["pixels"] > 0
    monkeypatch.setattr(sigrid, "INDEX_SLICE", 7)
    monkeypatch.setattr(regions, "ID_SLICE", 5)
    index = lookup.index_of(raster)
    assert index.dtype == np.int32
    np.testing.assert_array_equal(index, expected_index)
    int_raster = np.nan_to_num(raster, nan=-1).astype(np.int64)
    np.testing.assert_array_equal(lookup.index_of(int_raster), one_pass_index(int_raster))
    ids, conc = regions.polygon_regions(index, usable, lookup.conc)
    assert ids.dtype == np.int32 and conc.dtype == np.float32
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(conc, expected_conc)
    assert regions.chart_report(lookup, index, usable) == expected_report
