"""Collocation with a scene's tie-point geolocation, footprints on the SAR grid, and the masked loss."""

import dataclasses
import datetime as dt

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax import altimetry as alt
from seaice_jax.altimetry import collocate as col
from seaice_jax.altimetry import loss
from seaice_jax.data import geolocation as geo

H, W = 120, 100
T_SAR = dt.datetime(2019, 3, 24, 8, 0, 0)


def _tie_points(heading_deg=-12.0, spacing=80.0):
    lines, samples = np.linspace(0, H - 1, 5), np.linspace(0, W - 1, 4)
    hd = np.deg2rad(heading_deg)
    along = (lines[:, None] - H / 2) * spacing
    across = (samples[None, :] - W / 2) * spacing
    north = along * np.cos(hd) - across * np.sin(hd)
    east = along * np.sin(hd) + across * np.cos(hd)
    lat = 78.0 + north / 111_195.0
    lon = -20.0 + east / (111_195.0 * np.cos(np.deg2rad(lat)))
    return geo.tie_points_from_raw(*[a.ravel() for a in np.meshgrid(lines, samples, indexing="ij")],
                                   lat.ravel(), lon.ravel())


@dataclasses.dataclass
class FakeScene:
    shape: tuple
    tie_points: object
    start_time: object
    valid: np.ndarray | None = None


def _track_through(tp, rows, cols, dt_s, along=300.0, across=1600.0, quality=None):
    lat, lon = geo.pixel_latlon(tp, rows, cols)
    n = len(rows)
    return alt.Track(time=np.full(n, T_SAR.replace(tzinfo=dt.UTC).timestamp()) + dt_s, latitude=lat,
                     longitude=lon, value=np.linspace(0.1, 0.5, n), uncertainty=np.full(n, 0.1),
                     surface=np.zeros(n, np.uint8), quality=np.ones(n, bool) if quality is None else quality,
                     footprint_along=along, footprint_across=across, mission="cryosat2", track_id="t")


def test_pixel_spacing_from_tie_points():
    sp = col.pixel_spacing_m(_tie_points())
    np.testing.assert_allclose(sp, (80.0, 80.0), rtol=2e-3)


def test_collocate_positions_time_quality_and_scene_bounds():
    tp = _tie_points()
    rows = np.array([10.0, 30.0, 50.0, 70.0, 90.0, 110.0, 150.0])  # last one outside the scene
    cols = np.full(7, 50.0)
    dts = np.array([0.0, 600.0, -900.0, 7200.0, 100.0, 0.0, 0.0])  # 7200 s beyond the gap
    quality = np.array([True, True, True, True, False, True, True])
    tr = _track_through(tp, rows, cols, dts, quality=quality)
    scene = FakeScene((H, W), tp, T_SAR)
    c = col.collocate(scene, [tr], max_time_gap=dt.timedelta(hours=1))
    np.testing.assert_array_equal(c.point_index, [0, 1, 2, 5])
    np.testing.assert_allclose(c.row, rows[[0, 1, 2, 5]], atol=1e-5)
    np.testing.assert_allclose(c.col, 50.0, atol=1e-5)
    np.testing.assert_allclose(c.time_offset, dts[[0, 1, 2, 5]], atol=1e-3)
    np.testing.assert_allclose(c.weight.sum(1), 1.0, rtol=1e-6)
    # invalid pixels drop the point whose centre is on them
    valid = np.ones((H, W), bool)
    valid[28:33, :] = False
    c2 = col.collocate(FakeScene((H, W), tp, T_SAR.isoformat(), valid), [tr], max_time_gap=3600)
    np.testing.assert_array_equal(c2.point_index, [0, 2, 5])


def test_cryosat2_footprint_extent_and_orientation():
    tp = _tie_points()
    rows = np.arange(40.0, 81.0, 4.0)  # a track along the lines
    tr = _track_through(tp, rows, np.full(rows.size, 50.0), np.zeros(rows.size))
    c = col.collocate(FakeScene((H, W), tp, T_SAR), [tr], max_time_gap=60)
    j = 5
    pix = c.index[j][c.weight[j] > 0]
    r, cc = pix // W, pix % W
    # 300 m along lines (~3.75 px) x 1600 m across (~20 px)
    assert 4 <= np.ptp(r) + 1 <= 5 and 20 <= np.ptp(cc) + 1 <= 22
    # footprint mean of a linear ramp = the ramp at the centre (symmetric footprint)
    ramp = (np.arange(H)[:, None] * 0.01 + np.arange(W)[None, :] * 0.003).astype(np.float32)
    m = np.asarray(loss.footprint_mean(jnp.asarray(ramp), jnp.asarray(c.index), jnp.asarray(c.weight)))
    np.testing.assert_allclose(m, c.row * 0.01 + c.col * 0.003, atol=2e-3)


def test_icesat2_footprint_is_small_and_clipped_at_edge():
    tp = _tie_points()
    tr = _track_through(tp, np.array([0.2, 60.0, 60.5]), np.array([50.0, 50.0, 50.0]), np.zeros(3), along=50.0,
                        across=17.0)
    c = col.collocate(FakeScene((H, W), tp, T_SAR), [tr], max_time_gap=None)
    assert len(c) == 3 and (c.weight > 0).sum(1).max() <= 4
    np.testing.assert_allclose(c.weight.sum(1), 1.0, rtol=1e-6)


def test_padded_and_truncated_shapes():
    tp = _tie_points()
    rows = np.arange(40.0, 81.0, 4.0)
    tr = _track_through(tp, rows, np.full(rows.size, 50.0), np.zeros(rows.size))
    c = col.collocate(FakeScene((H, W), tp, T_SAR), [tr], max_pixels=64)
    assert c.index.shape == (rows.size, 64)
    np.testing.assert_allclose(c.weight.sum(1), 1.0, rtol=1e-5)
    p = c.padded(16)
    assert p["index"].shape == (16, 64) and p["mask"].sum() == rows.size


def test_masked_huber_loss_hand_computed():
    pred = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    index = jnp.array([[0, 1], [3, 0], [2, 0]])
    weight = jnp.array([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]])
    value = jnp.array([0.3, 2.0, 9.0])
    sigma = jnp.array([0.1, 0.2, 0.1])
    mask = jnp.array([True, True, False])
    # means 0.5, 3.0 (third masked); residuals 0.2, 1.0; huber(delta=0.5): 0.02, 0.5*(1-0.25)=0.375
    # weights 100, 25 -> (100*0.02 + 25*0.375) / 125
    expect = (100 * 0.02 + 25 * 0.375) / 125
    got = loss.masked_huber_loss(pred, index, weight, value, sigma, mask, delta=0.5)
    np.testing.assert_allclose(float(got), expect, rtol=1e-6)
    batched = loss.masked_huber_loss(jnp.stack([pred, pred]), jnp.stack([index, index]),
                                     jnp.stack([weight, weight]), jnp.stack([value, value]),
                                     jnp.stack([sigma, sigma]), jnp.stack([mask, mask]), delta=0.5)
    np.testing.assert_allclose(float(batched), expect, rtol=1e-6)
    assert float(loss.masked_huber_loss(pred, index, weight, value, sigma, mask & False)) == 0.0
    # jit-friendly and differentiable: d/dpred of the first point's term spreads over its footprint
    f = jax.jit(lambda p: loss.masked_huber_loss(p, index, weight, value, sigma, mask, delta=0.5))
    np.testing.assert_allclose(float(f(pred)), expect, rtol=1e-6)
    g = np.asarray(jax.grad(f)(pred))
    np.testing.assert_allclose(g, [[100 * 0.2 * 0.5 / 125, 100 * 0.2 * 0.5 / 125], [0.0, 25 * 0.5 / 125]],
                               rtol=1e-5)


def test_footprint_oriented_across_a_diagonal_track():
    tp = _tie_points(heading_deg=0.0)
    s = np.arange(-20.0, 21.0, 4.0)
    rows, cols = 60 + s * np.cos(np.pi / 4), 50 + s * np.sin(np.pi / 4)
    tr = _track_through(tp, rows, cols, np.zeros(rows.size))
    c = col.collocate(FakeScene((H, W), tp, T_SAR), [tr])
    j = rows.size // 2
    pix, wts = c.index[j][c.weight[j] > 0], c.weight[j][c.weight[j] > 0]
    rc = np.stack([pix // W, pix % W], 1).astype(float)
    mean = (rc * wts[:, None]).sum(0)
    cov = ((rc - mean).T * wts) @ (rc - mean)
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, -1]
    along = np.array([1.0, 1.0]) / np.sqrt(2)
    assert abs(major @ along) < 0.1  # the long (1.6 km) axis is across the track
    np.testing.assert_allclose(mean, [c.row[j], c.col[j]], atol=0.3)
    # a far-away point (other latitude band) and one outside the time window are skipped cheaply
    far = _track_through(tp, np.array([60.0]), np.array([50.0]), np.array([0.0]))
    far.latitude[:] = 60.0
    assert len(col.collocate(FakeScene((H, W), tp, T_SAR), [far], max_time_gap=10)) == 0


def test_vectorised_footprints_equal_the_per_point_reference():
    """collocate's footprints of all points at once: the same pixels and weights as footprint_pixels
    point by point (then normalised by the inside share), for footprints of several sizes, at the
    scene edge and across it."""
    tp = _tie_points()
    sp = col.pixel_spacing_m(tp)
    rng = np.random.default_rng(0)
    n = 60
    rows, cols = rng.uniform(-3, H + 2, n), rng.uniform(-3, W + 2, n)
    along, across = rng.uniform(20.0, 400.0, n), rng.choice([17.0, 250.0, 1600.0], n)
    d = rng.normal(size=(n, 2))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    point, pix, frac = col.footprints(rows, cols, along, across, d[:, 0], d[:, 1], (H, W), sp)
    for i in range(n):
        ref_pix, ref_frac = col.footprint_pixels(rows[i], cols[i], along[i], across[i], tuple(d[i]), (H, W), sp)
        mine = point == i
        np.testing.assert_array_equal(pix[mine], ref_pix)
        np.testing.assert_allclose(frac[mine], ref_frac, rtol=1e-12)
    # through collocate: weights sum to 1, the K largest kept
    track = _track_through(tp, np.linspace(2, H - 3, 25), np.linspace(3, W - 4, 25), 0.0)
    c = col.collocate(FakeScene((H, W), tp, T_SAR), [track], max_pixels=8)
    assert 20 <= len(c) <= 25 and c.index.shape == (len(c), 8)  # 1.6 km wide: edge points mostly outside
    for j in range(len(c)):  # each kept point: its 8 largest reference pixels, renormalised
        i = c.point_index[j]
        d = col._directions(*geo.latlon_to_pixel(tp, track.latitude, track.longitude), col.pixel_spacing_m(tp))
        ref_pix, ref_frac = col.footprint_pixels(c.row[j], c.col[j], 300.0, 1600.0, (d[0][i], d[1][i]), (H, W),
                                                 col.pixel_spacing_m(tp))
        top = np.argsort(-ref_frac, kind="stable")[:8]
        np.testing.assert_array_equal(c.index[j], ref_pix[top])
        np.testing.assert_allclose(c.weight[j], ref_frac[top] / ref_frac[top].sum(), rtol=1e-5)
    np.testing.assert_allclose(c.weight.sum(1), 1.0, rtol=1e-5)
    assert np.all(np.diff(c.weight, axis=1) <= 1e-7)  # decreasing weights
