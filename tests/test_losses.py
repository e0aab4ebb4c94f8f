"""Losses on tiny hand-made cases whose values are worked out by hand below."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seaice_jax import losses

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25, sigmoid(0) = 0.5

# One patch 2x3: region 0 = pixels p (0.5, 0.75), region 1 = p (0.25, 0.5, 0.5), last pixel is
# in slot 2 whose concentration is NaN (an unused slot must be ignored).
LOGITS = jnp.array([[[0.0, LN3, -LN3], [0.0, 0.0, 5.0]]], jnp.float32)
REGION_IDS = jnp.array([[[0, 0, 1], [1, 1, 2]]], jnp.int32)
REGION_CONC = jnp.array([[0.5, 0.2, np.nan]], jnp.float32)

PBAR0, C0, N0 = (0.5 + 0.75) / 2, 0.5, 2  # 0.625
PBAR1, C1, N1 = (0.25 + 0.5 + 0.5) / 3, 0.2, 3  # 0.41666...
SQ0, SQ1 = (PBAR0 - C0) ** 2, (PBAR1 - C1) ** 2  # 0.015625, 0.0469444...


def bce(p, c):
    return -(c * math.log(p) + (1 - c) * math.log(1 - p))


def test_region_mse_uniform_hand_value():
    loss, aux = losses.region_concentration_loss(LOGITS, REGION_IDS, REGION_CONC)
    assert float(loss) == pytest.approx((SQ0 + SQ1) / 2, rel=1e-5)  # 0.0312847
    assert float(aux["regions_counted"]) == 2
    assert float(aux["region_abs_error"]) == pytest.approx((0.125 + (PBAR1 - C1)) / 2, rel=1e-5)


def test_region_pixel_share_weighting():
    loss, _ = losses.region_concentration_loss(LOGITS, REGION_IDS, REGION_CONC, weighting="pixel_share")
    assert float(loss) == pytest.approx((N0 * SQ0 + N1 * SQ1) / (N0 + N1), rel=1e-5)


def test_region_bce_form():
    loss, _ = losses.region_concentration_loss(LOGITS, REGION_IDS, REGION_CONC, form="bce")
    expected = (bce(0.625, 0.5) + bce(1.25 / 3, 0.2)) / 2  # (0.6862 + 0.5846) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_region_min_pixels_skips_small_regions():
    loss, aux = losses.region_concentration_loss(LOGITS, REGION_IDS, REGION_CONC, min_pixels=3)
    assert float(aux["regions_counted"]) == 1  # region 0 has only 2 pixels
    assert float(loss) == pytest.approx(SQ1, rel=1e-5)


def test_region_ids_are_per_batch_item():
    # Item 2 reuses ids 0/1 but its concentrations equal its pbars: zero error on 2 more regions.
    logits = jnp.concatenate([LOGITS, LOGITS])
    ids = jnp.concatenate([REGION_IDS, REGION_IDS])
    conc = jnp.array([[0.5, 0.2, np.nan], [PBAR0, PBAR1, np.nan]], jnp.float32)
    loss, aux = losses.region_concentration_loss(logits, ids, conc)
    assert float(aux["regions_counted"]) == 4
    assert float(loss) == pytest.approx((SQ0 + SQ1) / 4, rel=1e-5)


def test_region_gradient_matches_hand_derivative_and_nan_slot_has_none():
    grad = jax.grad(lambda z: losses.region_concentration_loss(z, REGION_IDS, REGION_CONC)[0])(LOGITS)
    assert np.all(np.isfinite(grad))
    # d/dz of (1/2)(pbar0 - c0)^2 at pixel (0, 0): (1/2) * 2 (pbar0 - c0) * (1/N0) * p(1-p)
    assert float(grad[0, 0, 0]) == pytest.approx(0.5 * 2 * (PBAR0 - C0) / N0 * 0.25, rel=1e-5)
    assert float(grad[0, 1, 2]) == 0.0  # pixel of the NaN slot


def test_region_nothing_counted_is_zero_not_nan():
    for ids, conc in [
        (jnp.full_like(REGION_IDS, -1), REGION_CONC),
        (REGION_IDS, jnp.full_like(REGION_CONC, np.nan)),
    ]:
        for form in losses.REGION_FORMS:
            def fn(z, ids=ids, conc=conc, form=form):
                return losses.region_concentration_loss(z, ids, conc, form=form)[0]

            loss, grad = jax.value_and_grad(fn)(LOGITS)
            assert float(loss) == 0.0
            assert np.all(np.asarray(grad) == 0.0)


def test_region_bce_gradients_finite_at_saturation():
    logits = jnp.array([[[40.0, 40.0], [-40.0, -40.0]]])
    ids = jnp.array([[[0, 0], [1, 1]]], jnp.int32)
    conc = jnp.array([[0.0, 1.0]], jnp.float32)  # fully wrong and saturated
    loss, grad = jax.value_and_grad(
        lambda z: losses.region_concentration_loss(z, ids, conc, form="bce")[0]
    )(logits)
    assert np.isfinite(float(loss)) and float(loss) == pytest.approx(-math.log(1e-6), rel=1e-3)
    assert np.all(np.isfinite(grad))


def test_region_loss_jits():
    fn = jax.jit(lambda z: losses.region_concentration_loss(z, REGION_IDS, REGION_CONC)[0])
    assert float(fn(LOGITS)) == pytest.approx((SQ0 + SQ1) / 2, rel=1e-5)


def test_binary_entropy_term():
    logits = jnp.array([[[0.0, LN3]]])
    assert float(losses.binary_entropy_term(logits, jnp.array([[[True, False]]]))) == pytest.approx(0.25)
    both = losses.binary_entropy_term(logits, jnp.array([[[True, True]]]))
    assert float(both) == pytest.approx((0.25 + 0.75 * 0.25) / 2)
    none, grad = jax.value_and_grad(losses.binary_entropy_term)(logits, jnp.zeros((1, 1, 2), bool))
    assert float(none) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_binary_entropy_form_hand_values_and_clamp():
    logits = jnp.array([[[0.0, LN3, 40.0]]])  # p = 0.5, 0.75, 1 - 4e-18 (clamped to 1 - 1e-6)
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    value = losses.binary_entropy_term(logits, jnp.array([[[True, True, True]]]), "binary_entropy")
    assert float(value) == pytest.approx((math.log(2.0) + h(0.75) + h(1 - 1e-6)) / 3, rel=1e-4)
    grad = jax.grad(lambda z: losses.binary_entropy_term(z, jnp.ones((1, 1, 3), bool), "binary_entropy"))(logits)
    assert np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match="entropy form"):
        losses.binary_entropy_term(logits, jnp.ones((1, 1, 3), bool), "shannon")


def test_masked_cross_entropy_hand_value_and_ignore():
    # pixel 0: uniform over 3 classes -> log 3; pixel 1: logits (ln 2, 0, 0), label 0 -> -log(2/4);
    # pixel 2: label 255, ignored whatever its logits.
    logits = jnp.array([[[[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0], [9.0, -9.0, 0.0]]]])
    labels = jnp.array([[[1, 0, 255]]], jnp.uint8)
    value = losses.masked_cross_entropy(logits, labels)
    assert float(value) == pytest.approx((math.log(3.0) + math.log(2.0)) / 2, rel=1e-6)
    all_ignored = jnp.full_like(labels, 255)
    value, grad = jax.value_and_grad(losses.masked_cross_entropy)(logits, all_ignored)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_sic_regression_loss_hand_value_and_ignore():
    pred = jnp.array([[[0.5, 0.2, 0.9]]])
    sic = jnp.array([[[5, 0, 255]]], jnp.uint8)
    assert float(losses.sic_regression_loss(pred, sic)) == pytest.approx((0.0 + 0.04) / 2, rel=1e-5)
    # On the class scale (MMSeaIce): errors of 0 and 2 classes.
    assert float(losses.sic_regression_loss(pred, sic, target="class_index")) == pytest.approx(4.0 / 2, rel=1e-5)
    value, grad = jax.value_and_grad(losses.sic_regression_loss)(pred, jnp.full_like(sic, 255))
    assert float(value) == 0.0 and np.all(np.isfinite(grad))


def loss_config(**weights) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        region_form="mse", region_weighting="uniform", min_region_pixels=1, entropy_weight=0.01,
        entropy_form="p_one_minus_p", sic_regression_target="fraction",
        weights=dict(ice=1.0, sic=1.0, sod=3.0, floe=3.0) | weights,
    ))


def tiny_batch():
    return dict(
        region_ids=REGION_IDS, region_conc=REGION_CONC, valid=jnp.ones((1, 2, 3), bool),
        sic=jnp.array([[[5, 0, 255], [10, 255, 255]]], jnp.uint8),
        sod=jnp.array([[[1, 0, 255], [2, 2, 255]]], jnp.uint8),
        floe=jnp.full((1, 2, 3), 255, jnp.uint8),
    )


def test_total_loss_weighting_and_terms():
    batch = tiny_batch()
    sic_pred = jnp.array([[[0.5, 0.2, 0.0], [0.7, 0.0, 0.0]]])  # errors 0, 0.04, 0.09 -> mean 0.13/3
    sod_logits = jnp.zeros((1, 2, 3, 6))  # uniform over 6 classes -> log 6
    outputs = dict(ice=LOGITS, SIC=sic_pred, SOD=sod_logits, FLOE=jnp.zeros((1, 2, 3, 7)))
    loss, metrics = losses.total_loss(outputs, batch, loss_config(ice=2.0))
    # pixels p: 0.5, 0.75, 0.25, 0.5, 0.5, sigmoid(5): p(1-p) = .25, .1875, .1875, .25, .25, s(1-s)
    entropy = (0.25 * 3 + 0.1875 * 2 + float(jax.nn.sigmoid(5.0) * jax.nn.sigmoid(-5.0))) / 6
    expected = 2.0 * ((SQ0 + SQ1) / 2 + 0.01 * entropy) + 1.0 * 0.13 / 3 + 3.0 * math.log(6.0) + 3.0 * 0.0
    assert float(metrics["entropy"]) == pytest.approx(entropy, rel=1e-5)
    assert float(metrics["sic"]) == pytest.approx(0.13 / 3, rel=1e-5)
    assert float(metrics["sod"]) == pytest.approx(math.log(6.0), rel=1e-5)
    assert float(metrics["floe"]) == 0.0  # all masked
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["loss"]) == float(loss)


def test_total_loss_only_present_heads_and_sic_classification():
    batch = tiny_batch()
    outputs = dict(SIC=jnp.zeros((1, 2, 3, 11)))
    loss, metrics = losses.total_loss(outputs, batch, loss_config(sic=0.5))
    assert set(metrics) == {"sic", "loss"}
    assert float(loss) == pytest.approx(0.5 * math.log(11.0), rel=1e-5)


def test_total_loss_gradients_finite():
    batch = tiny_batch()
    batch["sic"] = jnp.full((1, 2, 3), 255, jnp.uint8)  # a fully masked head must not poison grads
    def fn(outputs):
        return losses.total_loss(outputs, batch, loss_config())[0]
    outputs = dict(ice=LOGITS, SIC=jnp.zeros((1, 2, 3, 11)), SOD=jnp.zeros((1, 2, 3, 6)))
    grads = jax.grad(fn)(outputs)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.asarray(grads["SIC"]) == 0.0)
