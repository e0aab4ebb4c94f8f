"""Elevation metrics on cases with known answers."""

import json

import numpy as np

from seaice_jax.altimetry import metrics
from seaice_jax.altimetry.collocate import Collocation


def test_block_average_integer_and_non_integer():
    x = np.arange(20, dtype=float).reshape(4, 5)
    m, cov = metrics.block_average(x, 2.0)
    np.testing.assert_allclose(m, x[:4, :4].reshape(2, 2, 2, 2).mean((1, 3)))
    np.testing.assert_allclose(cov, 1.0)
    ramp = np.tile(np.arange(10, dtype=float), (5, 1))
    m, cov = metrics.block_average(ramp, 1.25)  # cell 0 = pixel 0 + 1/4 of pixel 1
    assert m.shape == (4, 8)
    np.testing.assert_allclose(m[0, 0], 0.25 / 1.25)
    np.testing.assert_allclose(m[0, 1], (0.75 * 1 + 0.5 * 2) / 1.25)
    nan = ramp.copy()
    nan[:, 0] = np.nan
    m, cov = metrics.block_average(nan, 2.0)
    np.testing.assert_allclose(m[0, 0], 1.0)
    np.testing.assert_allclose(cov[0, 0], 0.5)


def test_grid_metrics_known_answer():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 0.5, size=(20, 20))
    d = 0.1
    err = np.where(np.arange(20)[None, :] % 2 == 0, d, -d) * np.ones((20, 1))
    g = metrics.grid_metrics(truth + err, truth, resolutions=(80, 160, 400))
    np.testing.assert_allclose(g["80m"]["rmse"], d)
    np.testing.assert_allclose(g["80m"]["mae"], d)
    np.testing.assert_allclose(g["80m"]["bias"], 0.0, atol=1e-12)
    np.testing.assert_allclose(g["160m"]["rmse"], 0.0, atol=1e-12)  # +d/-d pairs cancel
    np.testing.assert_allclose(g["400m"]["rmse"], d / 5)  # 3 even, 2 odd columns per 5
    shifted = metrics.grid_metrics(truth + 0.07, truth)
    np.testing.assert_allclose(shifted["100m"]["bias"], 0.07)
    np.testing.assert_allclose(shifted["200m"]["r"], 1.0)
    empty = metrics.grid_metrics(truth, truth, valid=np.zeros_like(truth, bool))
    assert empty["400m"]["rmse"] is None and empty["80m"]["n"] == 0
    json.dumps(g)


def _colloc(values, track_index, shape=(4, 4)):
    n = len(values)
    return Collocation(shape=shape, track_ids=["a", "b"], track_index=np.asarray(track_index, np.int32),
                       point_index=np.arange(n, dtype=np.int32), row=np.zeros(n), col=np.arange(n, dtype=float),
                       time_offset=np.zeros(n), value=np.asarray(values, np.float32),
                       uncertainty=np.full(n, 0.1, np.float32), surface=np.zeros(n, np.uint8),
                       footprint_along=np.ones(n, np.float32), footprint_across=np.ones(n, np.float32),
                       index=np.arange(n, dtype=np.int32)[:, None], weight=np.ones((n, 1), np.float32))


def test_leave_one_track_out_known_answer():
    c = _colloc([1.0, 1.0, 3.0, 3.0], [0, 0, 1, 1])
    loo = metrics.leave_one_track_out(lambda tr: np.full(c.shape, tr.value.mean()), c)
    np.testing.assert_allclose(loo["pooled"]["rmse"], 2.0)
    np.testing.assert_allclose(loo["pooled"]["bias"], 0.0)
    np.testing.assert_allclose(loo["by_track"]["a"]["bias"], 2.0)
    np.testing.assert_allclose(loo["by_track"]["b"]["bias"], -2.0)
    pm = metrics.point_metrics(np.full(c.shape, 2.0), c)
    np.testing.assert_allclose([pm["rmse"], pm["bias"]], [1.0, 0.0])
    row = metrics.method_summary(metrics.grid_metrics(np.ones((8, 8)), np.ones((8, 8))), loo, None)
    assert set(row) == {"rmse_80m", "rmse_400m", "mae_400m", "bias", "r", "loo_rmse", "swath_rmse"}
    assert row["swath_rmse"] is None and row["r"] is None and row["loo_rmse"] == 2.0
    json.dumps(row)


def test_error_sums_pool_exactly():
    rng = np.random.default_rng(5)
    p1, t1 = rng.normal(size=30), rng.normal(size=30)
    p2, t2 = rng.normal(size=20) + 1, rng.normal(size=20)
    pooled = metrics.ErrorSums().add(p1, t1).merge(metrics.ErrorSums().add(p2, t2)).stats()
    ref = metrics.error_stats(np.concatenate([p1, p2]), np.concatenate([t1, t2]))
    p, t = np.concatenate([p1, p2]), np.concatenate([t1, t2])
    for k in ("rmse", "mae", "bias", "r"):
        np.testing.assert_allclose(pooled[k], ref[k], rtol=1e-9)
    np.testing.assert_allclose(ref["r"], np.corrcoef(p, t)[0, 1], rtol=1e-9)
    np.testing.assert_allclose(ref["rmse"], np.sqrt(np.mean((p - t) ** 2)), rtol=1e-12)
    assert pooled["n"] == 50
