"""A real ICESat-2 ATL07 release-003 granule subset (NSIDC ordering service, Disko Bay, 2019-02-22; see
tests/data/PROVENANCE.md): every beam read, the beam holding only `stats` skipped with a note."""

import dataclasses
import hashlib
import os

import numpy as np
import pytest

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import kinds

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NAME = "processed_ATL07-01_20190222003738_08490201_003_02.h5"
PATH = os.path.join(DATA, NAME)
SHA256 = "a17ff2ecf91ef4991fbc809ad9a76105fa877b00638f472de095b691b5104b5e"
SEGMENTS = {"gt1l": 75, "gt1r": 33, "gt2l": 27, "gt3l": 368, "gt3r": 304}
FILLED = {"gt1l": 33, "gt1r": 0, "gt2l": 26, "gt3l": 53, "gt3r": 0}  # height fill 3.4028235e38
SSH_FLAGGED = {"gt1l": 0, "gt1r": 0, "gt2l": 0, "gt3l": 10, "gt3r": 15}


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_the_file_is_the_one_of_the_provenance_note():
    assert _sha256(PATH) == SHA256
    with open(os.path.join(DATA, "PROVENANCE.md")) as f:
        assert f"{SHA256}  {NAME}" in f.read()


@pytest.fixture(scope="module")
def all_beams():
    notes = []
    tracks = alt.open_altimetry(PATH, notes=notes, beams="all")
    return {t.beam: t for t in tracks}, notes


def test_every_beam_with_segments_is_read(all_beams):
    tracks, notes = all_beams
    assert {b: len(t) for b, t in tracks.items()} == SEGMENTS
    assert notes == [f"{PATH}: gt2r: no sea_ice_segments/latitude (only stats): skipped"]
    for beam, t in tracks.items():
        assert t.product == "ATL07" and t.kind == "height" and t.mission == "icesat2"
        assert t.attrs["strong"] == beam.endswith("l")  # sc_orient 0: the left beams are strong
        assert int(np.isnan(t.value).sum()) == FILLED[beam]  # fills masked, not 3.4e38 m
        assert np.nanmax(np.abs(t.value)) < 1.0
        assert int(t.attrs["ssh_flag"].sum()) == SSH_FLAGGED[beam]
        # 2019-02-22, about 01:06 UTC, Disko Bay
        assert 1550797590 < t.time.min() <= t.time.max() < 1550797597
        assert 69.2 < t.latitude.min() and t.latitude.max() < 69.5
        assert -51.33 < t.longitude.min() and t.longitude.max() < -51.08
        assert t.attrs["uncertainty_source"].endswith("height_segment_surface_error_est")
    # the beams begin with fill values
    assert np.isnan(tracks["gt1l"].value[0]) and np.isnan(tracks["gt3l"].value[:8]).all()


def test_height_segment_quality_is_zero_everywhere_so_no_point_is_usable(all_beams):
    # Read faithfully: `height_segment_quality` (flag_values [0 1], 'bad_quality good_quality') is 0 on
    # every segment of this release-003 subset, so every point is bad quality.
    tracks, _ = all_beams
    for t in tracks.values():
        assert t.attrs["quality_flag"] == "height_segment_quality"
        assert int(t.attrs["flag_good"].sum()) == 0
        assert int(t.quality.sum()) == 0


def test_strong_beams_by_default():
    notes = []
    tracks = alt.open_altimetry(PATH, notes=notes)
    assert [t.beam for t in tracks] == ["gt1l", "gt2l", "gt3l"] and notes == []


def test_no_freeboard_for_training_from_this_subset(all_beams):
    tracks, _ = all_beams
    notes = []
    assert alt.freeboard_tracks(list(tracks.values()), "laser", notes) == []
    assert alt.freeboard_tracks(list(tracks.values()), "radar", notes=[]) == []
    assert len(notes) == 5
    assert f"ATL07 {NAME}:gt1l: no lead segment (height_segment_ssh_flag) to reference the heights: refused" in notes
    assert (f"ATL07 {NAME}:gt3r: no good-quality lead segment (15 with height_segment_ssh_flag, none good) "
            "to reference the heights: refused") in notes


def test_sea_surface_reference_on_real_geometry_if_the_quality_flag_were_ignored(all_beams):
    # Not a use of the file (its quality flag rejects every segment): the along-track reference on a
    # real beam's geometry, with the flag overridden, to check distances and windows on real data.
    tracks, _ = all_beams
    t = tracks["gt3r"]
    forced = dataclasses.replace(t, quality=np.isfinite(t.value) & (t.surface != alt.UNKNOWN))
    s = kinds.along_track_m(forced)
    assert np.all(np.diff(s[np.argsort(t.time)]) >= 0)
    assert 25_000 < np.nanmax(s) < 35_000  # the beam's 304 segments span about 30 km
    fb = alt.atl07_freeboard(forced)
    assert fb is not None and fb.kind == "freeboard" and alt.freeboard_kind(fb) == "laser"
    leads = forced.attrs["ssh_flag"]
    # each point's reference is the mean of the lead heights within 5 km of it
    for i in np.flatnonzero(fb.quality)[::25]:
        near = leads & (np.abs(s - s[i]) <= 5000.0)
        w = 1.0 / forced.uncertainty[near].astype(np.float64) ** 2
        ref = np.sum(w * forced.value[near]) / np.sum(w)
        np.testing.assert_allclose(fb.value[i], forced.value[i] - ref, atol=1e-5)
    # points farther than 5 km from every lead get no freeboard
    far = np.array([not np.any(leads & (np.abs(s - si) <= 5000.0)) for si in s])
    assert far.any() and not fb.quality[far].any()
    np.testing.assert_allclose(np.nanmedian(fb.value[fb.quality & leads]), 0.0, atol=0.02)
