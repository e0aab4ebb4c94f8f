"""Gaussian-process freeboard baseline: track points, inputs = position (km) + SAR features.

Model: y = mu + f(x) + e, f ~ GP(0, s^2 exp(-0.5 sum_d ((x_d - x'_d) / l_d)^2)), e ~ N(0, sigma_i^2 + tau^2)
with sigma_i the stated per-point uncertainty and tau a learned nugget. Hyperparameters (log l_d, log s,
log tau, mu) maximise the marginal likelihood (L-BFGS-B). The N x N work (Cholesky, the likelihood and
its analytic gradient) runs in float64 on the host with LAPACK: XLA's CPU Cholesky of 300 x 300 took
0.42 s against scipy's 6 ms (measured here), and N is small on every platform. The Q x N prediction
(the big product) is jitted, in chunks. `gp_nlml` keeps the JAX form (autodiff checks the gradient).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

JITTER = 1e-5


@dataclasses.dataclass
class GPParams:
    log_lengthscale: np.ndarray  # [D]
    log_signal: float
    log_nugget: float
    mean: float

    def flat(self) -> np.ndarray:
        return np.concatenate([np.asarray(self.log_lengthscale, np.float64),
                               [self.log_signal, self.log_nugget, self.mean]])

    @staticmethod
    def unflat(v) -> GPParams:
        v = np.asarray(v, np.float64)
        return GPParams(v[:-3], float(v[-3]), float(v[-2]), float(v[-1]))


def _kernel(xa, xb, log_l, log_s):
    a, b = xa / jnp.exp(log_l), xb / jnp.exp(log_l)
    d2 = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return jnp.exp(2.0 * log_s) * jnp.exp(-0.5 * jnp.maximum(d2, 0.0))


def _nlml_flat(v, x, y, noise_var):
    d = x.shape[1]
    log_l, log_s, log_t, mu = v[:d], v[d], v[d + 1], v[d + 2]
    n = x.shape[0]
    k = _kernel(x, x, log_l, log_s) + jnp.diag(noise_var + jnp.exp(2.0 * log_t) + JITTER * jnp.exp(2.0 * log_s))
    chol = jnp.linalg.cholesky(k)
    r = y - mu
    alpha = jax.scipy.linalg.cho_solve((chol, True), r)
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(chol))) + 0.5 * n * jnp.log(2.0 * jnp.pi)


_nlml_jit = jax.jit(_nlml_flat)
_nlml_grad = jax.jit(jax.value_and_grad(_nlml_flat))


def gp_nlml(params: GPParams, x, y, noise_var) -> float:
    """Negative log marginal likelihood."""
    return float(_nlml_jit(jnp.asarray(params.flat(), jnp.float32), jnp.asarray(x, jnp.float32),
                           jnp.asarray(y, jnp.float32), jnp.asarray(noise_var, jnp.float32)))


def default_params(x, y, position_dims: int = 2, position_scale: float = 2.0) -> GPParams:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x.shape[1]
    ls = np.ones(d)
    ls[:position_dims] = position_scale
    ls[position_dims:] = np.maximum(x[:, position_dims:].std(0), 1e-3) if d > position_dims else ls[position_dims:]
    return GPParams(np.log(ls), float(np.log(max(y.std(), 1e-3))), float(np.log(0.01)), float(y.mean()))


def _host_kernel(x, v):
    """(K [N, N] with its noise diagonal, the signal part Kf, squared scaled distances per dim [D, N, N])."""
    d = x.shape[1]
    log_l, log_s, log_t = v[:d], v[d], v[d + 1]
    z = x / np.exp(log_l)
    sq = (z[:, None, :] - z[None, :, :]) ** 2  # [N, N, D]
    kf = np.exp(2.0 * log_s) * np.exp(-0.5 * sq.sum(-1))
    return kf, np.moveaxis(sq, -1, 0), np.exp(2.0 * log_t), np.exp(2.0 * log_s)


def nlml_and_grad(v, x, y, noise_var) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient in (log l_d, log s, log tau, mu), float64 on
    the host (the same function as `_nlml_flat`):  0.5 r' K^-1 r + sum log diag L + n/2 log 2 pi, and
    dL/dtheta = 0.5 tr((K^-1 - a a') dK/dtheta), a = K^-1 r, dL/dmu = -sum a."""
    from scipy import linalg

    v = np.asarray(v, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    nv = np.broadcast_to(np.asarray(noise_var, np.float64), y.shape)
    d, n = x.shape[1], x.shape[0]
    kf, sq, t2, s2 = _host_kernel(x, v)
    k = kf + np.diag(nv + t2 + JITTER * s2)
    chol = linalg.cho_factor(k, lower=True)
    r = y - v[d + 2]
    alpha = linalg.cho_solve(chol, r)
    val = 0.5 * r @ alpha + np.sum(np.log(np.diag(chol[0]))) + 0.5 * n * np.log(2.0 * np.pi)
    w = linalg.cho_solve(chol, np.eye(n)) - np.outer(alpha, alpha)
    grad = np.empty(d + 3)
    for i in range(d):
        grad[i] = 0.5 * np.sum(w * kf * sq[i])  # dK/dlog l_i = Kf * (dx_i / l_i)^2
    grad[d] = 0.5 * (np.sum(w * 2.0 * kf) + np.trace(w) * 2.0 * JITTER * s2)
    grad[d + 1] = 0.5 * np.trace(w) * 2.0 * t2
    grad[d + 2] = -np.sum(alpha)
    return float(val), grad


def fit_gp(x, y, noise_var, init: GPParams | None = None, max_iter: int = 100) -> GPParams:
    """Hyperparameters by marginal likelihood (L-BFGS-B from `init` or `default_params`)."""
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    nv = np.broadcast_to(np.asarray(noise_var, np.float64), y64.shape)
    init = init or default_params(x, y)

    def fun(v):
        try:
            val, g = nlml_and_grad(v, x64, y64, nv)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(v)
        if not np.isfinite(val) or not np.all(np.isfinite(g)):
            return 1e10, np.zeros_like(v)
        return val, g

    d = x64.shape[1]
    bounds = [(-5.0, 8.0)] * d + [(-8.0, 3.0), (-8.0, 1.0), (None, None)]
    res = optimize.minimize(fun, init.flat(), jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": max_iter})
    return GPParams.unflat(res.x)


def _solve(v, x, y, noise_var):
    """(lower Cholesky factor of K, K^-1 (y - mu)) as float32 device arrays, computed on the host."""
    from scipy import linalg

    v = np.asarray(v, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x.shape[1]
    kf, _, t2, s2 = _host_kernel(x, v)
    k = kf + np.diag(np.broadcast_to(np.asarray(noise_var, np.float64), y.shape) + t2 + JITTER * s2)
    chol = linalg.cholesky(k, lower=True)
    alpha = linalg.cho_solve((chol, True), y - v[d + 2])
    return jnp.asarray(chol, jnp.float32), jnp.asarray(alpha, jnp.float32)


@jax.jit
def _predict_chunk(v, x, chol, alpha, xq):
    d = x.shape[1]
    log_l, log_s, mu = v[:d], v[d], v[d + 2]
    ks = _kernel(xq, x, log_l, log_s)  # [Q, N]
    mean = mu + ks @ alpha
    w = jax.scipy.linalg.solve_triangular(chol, ks.T, lower=True)
    var = jnp.exp(2.0 * log_s) - jnp.sum(w * w, 0)
    return mean, jnp.maximum(var, 0.0)


@jax.jit
def _predict_mean_chunk(v, x, alpha, xq):
    d = x.shape[1]
    return v[d + 2] + _kernel(xq, x, v[:d], v[d]) @ alpha


def gp_predict_mean(params: GPParams, x, y, noise_var, xq, chunk: int = 8192) -> np.ndarray:
    """Posterior mean of f + mu at `xq` [Q, D] only: no triangular solve per query (the variance is
    N times the mean's work)."""
    v = jnp.asarray(params.flat(), jnp.float32)
    x32 = jnp.asarray(x, jnp.float32)
    _, alpha = _solve(params.flat(), x, y, noise_var)
    xq = np.asarray(xq, np.float32)
    means = []
    for s in range(0, xq.shape[0], chunk):
        part = xq[s:s + chunk]
        pad = chunk - part.shape[0] if xq.shape[0] > chunk else 0
        means.append(np.asarray(_predict_mean_chunk(v, x32, alpha, jnp.asarray(np.pad(part, ((0, pad), (0, 0))))))
                     [:part.shape[0]])
    return np.concatenate(means)


def gp_predict(params: GPParams, x, y, noise_var, xq, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and latent variance of f + mu at `xq` [Q, D] (one Cholesky, chunked queries)."""
    v = jnp.asarray(params.flat(), jnp.float32)
    x32 = jnp.asarray(x, jnp.float32)
    chol, alpha = _solve(params.flat(), x, y, noise_var)
    xq = np.asarray(xq, np.float32)
    means, vars_ = [], []
    for s in range(0, xq.shape[0], chunk):
        part = xq[s:s + chunk]
        pad = chunk - part.shape[0] if xq.shape[0] > chunk else 0
        m, va = _predict_chunk(v, x32, chol, alpha, jnp.asarray(np.pad(part, ((0, pad), (0, 0)))))
        means.append(np.asarray(m)[:part.shape[0]])
        vars_.append(np.asarray(va)[:part.shape[0]])
    return np.concatenate(means), np.concatenate(vars_)


def gp_inputs(features: np.ndarray, rows, cols, spacing_m: float = 80.0) -> np.ndarray:
    """[N, 2 + C] inputs: (row, col) in km and the SAR features [H, W, C] at the nearest pixel."""
    h, w = features.shape[:2]
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    ri = np.clip(np.rint(rows), 0, h - 1).astype(int)
    ci = np.clip(np.rint(cols), 0, w - 1).astype(int)
    pos = np.stack([rows, cols], 1) * spacing_m / 1000.0
    return np.concatenate([pos, np.asarray(features, np.float64)[ri, ci]], 1)


def gp_map(features: np.ndarray, rows, cols, values, sigma, *, spacing_m: float = 80.0, valid=None,
           lead_mask=None, params: GPParams | None = None, fit: bool = True, max_points: int = 1500,
           seed: int = 0, step: int = 1) -> tuple[np.ndarray, np.ndarray, GPParams]:
    """GP baseline map: (mean [H, W], variance [H, W], params). Points beyond `max_points` are
    subsampled (seeded); `step` > 1 predicts every step-th pixel and repeats (nearest) to the full grid
    (a 5000 x 5000 scene at step 1 is 25 M queries x N points: use step 5 = 400 m there)."""
    h, w = features.shape[:2]
    rows, cols, values = (np.asarray(a, np.float64) for a in (rows, cols, values))
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), values.shape)
    ok = np.isfinite(values) & np.isfinite(rows) & np.isfinite(cols)
    idx = np.flatnonzero(ok)
    if idx.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    x = gp_inputs(features, rows[idx], cols[idx], spacing_m)
    y, nv = values[idx], sigma[idx] ** 2
    if params is None:
        params = fit_gp(x, y, nv) if fit else default_params(x, y)
    rr, cc = np.mgrid[0:h:step, 0:w:step]
    xq = gp_inputs(features, rr.ravel(), cc.ravel(), spacing_m)
    m, v = gp_predict(params, x, y, nv, xq)
    m, v = m.reshape(rr.shape), v.reshape(rr.shape)
    if step > 1:
        m = np.repeat(np.repeat(m, step, 0), step, 1)[:h, :w]
        v = np.repeat(np.repeat(v, step, 0), step, 1)[:h, :w]
    m, v = m.astype(np.float32), v.astype(np.float32)
    if lead_mask is not None:
        m[np.asarray(lead_mask, bool)] = 0.0
    if valid is not None:
        m[~np.asarray(valid, bool)] = np.nan
        v[~np.asarray(valid, bool)] = np.nan
    return m, v, params
