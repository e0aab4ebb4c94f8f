"""Baselines: quantile mapping and the GP against numpy / scipy references; nearest-track interpolation."""

import numpy as np
from scipy import linalg, stats

from seaice_jax.altimetry import baselines, gp


def test_average_ranks_match_scipy():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 5.0])
    np.testing.assert_array_equal(baselines.average_ranks(x), stats.rankdata(x))


def test_quantile_mapping_matches_scipy_reference():
    rng = np.random.default_rng(1)
    hv = np.round(rng.normal(size=(12, 10)), 1)  # ties on purpose
    floe = rng.uniform(size=hv.shape) > 0.2
    valid = np.ones(hv.shape, bool)
    valid[0, :3] = False
    fb = rng.gamma(2.0, 0.1, size=37)
    out = baselines.quantile_mapping(hv, floe, fb, valid)
    f = valid & floe
    p = (stats.rankdata(hv[f]) - 0.5) / f.sum()
    np.testing.assert_allclose(out[f], np.quantile(fb, p), rtol=1e-5, atol=1e-6)
    assert np.all(out[valid & ~floe] == 0.0) and np.all(np.isnan(out[~valid]))
    # monotone in HV: brighter floe -> higher freeboard
    order = np.argsort(hv[f], kind="stable")
    assert np.all(np.diff(out[f][order]) >= -1e-7)


def test_nearest_track():
    out = baselines.nearest_track((4, 5), [0.0, 3.0], [0.0, 4.0], [1.0, 2.0],
                                  lead_mask=np.eye(4, 5, dtype=bool) & False)
    assert out[0, 0] == 1.0 and out[3, 4] == 2.0 and out[0, 1] == 1.0 and out[3, 3] == 2.0
    lead = np.zeros((4, 5), bool)
    lead[1, 1] = True
    valid = np.ones((4, 5), bool)
    valid[2, 2] = False
    out = baselines.nearest_track((4, 5), [0.0, 3.0], [0.0, 4.0], [1.0, 2.0], valid=valid, lead_mask=lead,
                                  max_distance_px=2.5)
    assert out[1, 1] == 0.0 and np.isnan(out[2, 2]) and np.isnan(out[0, 4])


def _numpy_gp(params, x, y, nv, xq):
    ls, s2, t2 = np.exp(params.log_lengthscale), np.exp(2 * params.log_signal), np.exp(2 * params.log_nugget)

    def k(a, b):
        d = (a[:, None, :] - b[None, :, :]) / ls
        return s2 * np.exp(-0.5 * np.sum(d * d, -1))

    kxx = k(x, x) + np.diag(nv + t2 + gp.JITTER * s2)
    c = linalg.cho_factor(kxx, lower=True)
    ks = k(xq, x)
    mean = params.mean + ks @ linalg.cho_solve(c, y - params.mean)
    var = s2 - np.einsum("ij,ji->i", ks, linalg.cho_solve(c, ks.T))
    nlml = -stats.multivariate_normal(np.full(y.size, params.mean), kxx).logpdf(y)
    return mean, var, nlml


def test_gp_posterior_and_likelihood_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 5, size=(30, 3))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 2] + rng.normal(0, 0.05, 30)
    nv = np.full(30, 0.05 ** 2)
    params = gp.GPParams(np.log(np.array([1.2, 2.0, 3.0])), np.log(0.8), np.log(0.02), 0.1)
    xq = rng.uniform(0, 5, size=(17, 3))
    m, v = gp.gp_predict(params, x, y, nv, xq, chunk=8)
    m_ref, v_ref, nlml_ref = _numpy_gp(params, x, y, nv, xq)
    np.testing.assert_allclose(m, m_ref, atol=2e-3)
    np.testing.assert_allclose(v, v_ref, atol=2e-3)
    np.testing.assert_allclose(gp.gp_nlml(params, x, y, nv), nlml_ref, rtol=2e-3, atol=0.05)


def test_gp_fit_improves_marginal_likelihood_and_maps():
    rng = np.random.default_rng(3)
    h, w = 16, 14
    feats = rng.normal(size=(h, w, 2)).astype(np.float32)
    truth = 0.3 + 0.1 * feats[..., 1]
    rows = rng.integers(0, h, 40).astype(float)
    cols = rng.integers(0, w, 40).astype(float)
    ri, ci = rows.astype(int), cols.astype(int)
    vals = truth[ri, ci] + rng.normal(0, 0.01, 40)
    x = gp.gp_inputs(feats, rows, cols)
    init = gp.default_params(x, vals)
    fitted = gp.fit_gp(x, vals, np.full(40, 1e-4), init)
    assert gp.gp_nlml(fitted, x, vals, np.full(40, 1e-4)) < gp.gp_nlml(init, x, vals, np.full(40, 1e-4))
    m, v, _ = gp.gp_map(feats, rows, cols, vals, 0.01, params=fitted)
    assert m.shape == (h, w) and np.all(v >= 0)
    assert np.sqrt(np.mean((m - truth) ** 2)) < 0.05


def test_host_likelihood_gradient_matches_jax_autodiff():
    """The float64 host likelihood and its analytic gradient (what fit_gp optimises) against the JAX form
    and its automatic derivative."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(0, 5, (30, 2)), rng.normal(size=(30, 2))], 1)
    y = np.sin(x[:, 0]) + 0.1 * x[:, 2] + 0.05 * rng.normal(size=30)
    nv = np.full(30, 0.02 ** 2)
    v = np.array([0.3, 0.5, 0.1, -0.2, np.log(0.7), np.log(0.05), 0.2])
    val, grad = gp.nlml_and_grad(v, x, y, nv)
    with jax.enable_x64(True):
        ref_val, ref_grad = jax.value_and_grad(gp._nlml_flat)(jnp.asarray(v), jnp.asarray(x), jnp.asarray(y),
                                                               jnp.asarray(nv))
    np.testing.assert_allclose(val, float(ref_val), rtol=1e-9)
    np.testing.assert_allclose(grad, np.asarray(ref_grad), rtol=1e-6, atol=1e-8)
