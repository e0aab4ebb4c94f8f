"""Tests of the scaling kernels against numpy/scipy on small arrays."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from seaice_jax import scaling
from seaice_jax.scaling import (
    als_reference_numpy,
    analytical_logit_scaling,
    concentration_preserving_binarization,
    float_to_key,
    gaussian_blur,
    key_to_float,
    masked_quantiles,
)

QS = (0.0, 0.02, 0.25, 0.5, 0.7, 0.98, 1.0)


def _numpy_quantiles(x, valid, qs):
    return np.stack([np.quantile(s[v], qs) for s, v in zip(x, valid, strict=True)])


def test_keys_preserve_order_and_round_trip():
    values = np.array(
        [-np.inf, -3e38, -2.5, -1e-30, -0.0, 0.0, 1e-45, 1e-30, 1.0, 2.5, 3e38, np.inf], np.float32
    )
    keys = np.asarray(float_to_key(values))
    assert np.all(np.diff(keys.astype(np.int64)) >= 0)
    assert keys[4] == keys[5]  # -0 and +0 tie
    np.testing.assert_array_equal(np.asarray(key_to_float(float_to_key(values)))[5:], values[5:])


def test_quantiles_random_batched_with_different_masks():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 17, 23)) * 5).astype(np.float32)  # negative and positive
    valid = rng.random(x.shape) < np.array([0.9, 0.5, 0.1])[:, None, None]
    got = np.asarray(masked_quantiles(x, valid, QS))
    np.testing.assert_allclose(got, _numpy_quantiles(x, valid, QS), rtol=2e-7, atol=1e-6)


def test_quantiles_heavily_tied_integers():
    rng = np.random.default_rng(1)
    x = rng.integers(-4, 5, (2, 30, 30)).astype(np.float32)
    valid = rng.random(x.shape) < 0.6
    qs = QS + (0.33, 0.999)
    got = np.asarray(masked_quantiles(x, valid, qs))
    np.testing.assert_allclose(got, _numpy_quantiles(x, valid, qs), rtol=1e-6, atol=1e-6)


def test_quantiles_constant_and_few_valid_pixels():
    x = np.full((4, 5, 6), 3.25, np.float32)
    x[1:] = np.arange(30, dtype=np.float32).reshape(5, 6) - 10.5
    valid = np.zeros(x.shape, bool)
    valid[0] = True  # constant scene
    valid[1, 2, 3] = True  # one pixel
    valid[2, 0, :2] = True  # two pixels
    valid[3, 4, 3:] = True  # three pixels
    got = np.asarray(masked_quantiles(x, valid, QS))
    np.testing.assert_allclose(got, _numpy_quantiles(x, valid, QS), rtol=1e-6)
    assert np.all(got[0] == 3.25)
    assert np.all(got[1] == x[1, 2, 3])


def test_quantiles_no_valid_pixel_is_nan_and_other_scenes_unaffected():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    valid = np.ones(x.shape, bool)
    valid[0] = False
    got = np.asarray(masked_quantiles(x, valid, (0.1, 0.9)))
    assert np.all(np.isnan(got[0]))
    np.testing.assert_allclose(got[1], np.quantile(x[1], (0.1, 0.9)), rtol=1e-6)


def test_quantiles_flat_pixels_and_single_scene():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1001).astype(np.float32)
    valid = rng.random(1001) < 0.7
    np.testing.assert_allclose(
        np.asarray(masked_quantiles(x, valid, (0.02, 0.98), pixel_axes=1)),
        np.quantile(x[valid], (0.02, 0.98)),
        rtol=1e-6,
    )
    image = x[:1000].reshape(20, 50)
    mask = valid[:1000].reshape(20, 50)
    assert masked_quantiles(image, mask, (0.5,)).shape == (1,)
    np.testing.assert_allclose(
        np.asarray(masked_quantiles(image, mask, (0.5,))), np.quantile(image[mask], [0.5]), rtol=1e-6
    )


def test_quantiles_rejects_out_of_range_q():
    with pytest.raises(ValueError, match="quantiles"):
        masked_quantiles(np.zeros((3, 3), np.float32), np.ones((3, 3), bool), (0.5, 1.5))


def _primitive_names(jaxpr) -> set[str]:
    names = set()
    for equation in jaxpr.eqns:
        names.add(equation.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(equation.params):
            names |= _primitive_names(sub)
    return names


def test_quantiles_jaxpr_has_no_sort():
    x = jnp.zeros((2, 16, 16), jnp.float32)
    valid = jnp.ones((2, 16, 16), bool)
    closed = jax.make_jaxpr(lambda a, b: masked_quantiles(a, b, (0.02, 0.98)))(x, valid)
    names = _primitive_names(closed.jaxpr)
    assert not {name for name in names if "sort" in name or "top_k" in name}, names
    assert "scatter-add" in names  # the histogram passes are there


@pytest.mark.parametrize("shape", [(5, 7), (31, 40), (2, 12, 9)])
def test_gaussian_blur_matches_scipy_reflect(shape):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    expected = np.stack(
        [scipy.ndimage.gaussian_filter(s.astype(np.float64), 1.5) for s in x.reshape(-1, *shape[-2:])]
    ).reshape(shape)
    np.testing.assert_allclose(np.asarray(gaussian_blur(x)), expected, atol=1e-5)


def _smooth_logits(shape, seed):
    rng = np.random.default_rng(seed)
    return (scipy.ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 25).astype(np.float32)


def test_als_matches_numpy_reference():
    logits = _smooth_logits((2, 48, 64), seed=4)
    logits[0, :5] = 40.0  # beyond the clip: exercises clipping
    valid = np.random.default_rng(5).random(logits.shape) > 0.15
    result = analytical_logit_scaling(logits, valid)
    for scene in range(2):
        ref = als_reference_numpy(logits[scene], valid[scene])
        for name in ("z_low", "z_high", "b", "T"):
            np.testing.assert_allclose(float(getattr(result, name)[scene]), ref[name], rtol=2e-6, atol=2e-6)
        soft = np.asarray(result.soft[scene])
        np.testing.assert_allclose(soft, ref["soft"], atol=1e-5)  # NaN positions must agree too
        binary = np.asarray(result.binary[scene])
        disagree = binary != ref["binary"]
        # only pixels sitting on the threshold (float32 blur differences) may flip
        assert np.all(np.abs(ref["z"][disagree] - ref["b"]) < 1e-4)
        assert not binary[~valid[scene]].any()
        assert 0.05 < binary[valid[scene]].mean() < 0.95


def test_als_single_scene_and_default_valid():
    logits = _smooth_logits((40, 40), seed=6)
    result = analytical_logit_scaling(logits)
    ref = als_reference_numpy(logits)
    assert result.b.shape == () and result.soft.shape == (40, 40)
    np.testing.assert_allclose(float(result.b), ref["b"], rtol=2e-6, atol=2e-6)
    z2, z98 = float(result.z_low), float(result.z_high)
    # by construction z2 maps to -k and z98 to +k
    np.testing.assert_allclose((z98 - float(result.b)) / float(result.T), 5.0, rtol=1e-5)
    np.testing.assert_allclose((z2 - float(result.b)) / float(result.T), -5.0, rtol=1e-5)


def test_als_constant_scene_uses_temperature_floor():
    result = analytical_logit_scaling(np.full((1, 20, 20), 2.0, np.float32))
    assert float(result.T[0]) == pytest.approx(1e-6)
    assert float(result.b[0]) == pytest.approx(2.0)
    np.testing.assert_allclose(np.asarray(result.soft), 0.5)
    assert np.asarray(result.binary).all()


def _check_region_fractions(ice, logits, regions, valid, concentration):
    for region, c in enumerate(concentration):
        member = (regions == region) & valid
        n = member.sum()
        if n == 0:
            continue
        count = ice[member].sum()
        assert abs(count - c * n) <= 0.5 + 1e-6, (region, count, c * n)
        if 0 < count < n:  # the ranking decides: every ice pixel outranks every water pixel
            assert logits[member][ice[member]].min() > logits[member][~ice[member]].max()


def test_concentration_binarization_hits_given_targets():
    rng = np.random.default_rng(7)
    num_regions = 6
    logits = rng.standard_normal((2, 30, 40)).astype(np.float32) * 3
    regions = rng.integers(-1, num_regions, logits.shape).astype(np.int32)
    valid = rng.random(logits.shape) > 0.1
    target = np.array([[0.0, 0.1, 0.5, 0.77, 1.0, 0.33], [0.9, 0.2, 0.45, 0.6, 0.05, 0.5]], np.float32)
    ice = np.asarray(
        concentration_preserving_binarization(logits, regions, target, valid, num_regions=num_regions)
    )
    for scene in range(2):
        _check_region_fractions(ice[scene], logits[scene], regions[scene], valid[scene], target[scene])
        outside = (regions[scene] < 0) & valid[scene]
        np.testing.assert_array_equal(ice[scene][outside], logits[scene][outside] >= 0)
        assert not ice[scene][~valid[scene]].any()
    assert ice[0][regions[0] == 4][valid[0][regions[0] == 4]].all()  # c = 1: all ice
    assert not ice[0][regions[0] == 0].any()  # c = 0: no ice


def test_concentration_binarization_nan_target_uses_mean_probability():
    rng = np.random.default_rng(8)
    num_regions = 70  # > 64 regions: the 8-bit, four-pass radix path
    logits = (rng.standard_normal((50, 60)) * 2 + 0.5).astype(np.float32)
    regions = rng.integers(0, num_regions, logits.shape).astype(np.int32)
    target = rng.random(num_regions).astype(np.float32)
    target[::2] = np.nan
    ice = np.asarray(concentration_preserving_binarization(logits, regions, target, num_regions=num_regions))
    probability = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = np.array(
        [probability[regions == r].mean() if np.isnan(t) else t for r, t in enumerate(target)]
    )
    _check_region_fractions(ice, logits, regions, np.ones_like(ice), expected)
    # target=None: every region uses its own mean probability
    ice_none = np.asarray(concentration_preserving_binarization(logits, regions, num_regions=num_regions))
    own = np.array([probability[regions == r].mean() for r in range(num_regions)])
    _check_region_fractions(ice_none, logits, regions, np.ones_like(ice_none), own)


def test_concentration_binarization_ties_are_all_ice():
    logits = np.zeros((4, 5), np.float32)
    logits[0, 0] = 1.0
    regions = np.zeros((4, 5), np.int32)
    ice = np.asarray(concentration_preserving_binarization(logits, regions, np.array([0.3]), num_regions=1))
    # 6 of 20 pixels wanted; the threshold falls among the 19 tied zeros, so all of them are ice
    assert ice.sum() == 20
    ice = np.asarray(concentration_preserving_binarization(logits, regions, np.array([0.05]), num_regions=1))
    assert ice.sum() == 1 and ice[0, 0]


def _assert_same(a, b):
    for name, x, y in zip(a._fields, a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), name


@pytest.mark.parametrize("shape, sigma", [((2, 150, 97), 1.5), ((1, 77, 40), 0.3)])
def test_row_blocked_als_equals_the_whole_array_als_bit_for_bit(shape, sigma):
    """The CPU formulation (blocks of 64 rows; the last block overlapping the one before, edge blocks
    reflected, soft written over z) against the whole-array one, on every output; the blur alone too."""
    rng = np.random.default_rng(11)
    logits = jnp.asarray(rng.standard_normal(shape).astype(np.float32) * 6)
    valid = jnp.asarray(rng.random(shape) > 0.2)
    static = (sigma, 15.0, 0.02, 0.98, 5.0, 1e-6)
    whole = jax.jit(lambda x, v: scaling._als_whole(x, v, *static))(logits, valid)
    blocked = jax.jit(lambda x, v: scaling._als_row_blocked(x, v, *static))(logits, valid)
    _assert_same(whole, blocked)
    if sigma == 1.5:
        weights = scaling.gaussian_weights(sigma)
        np.testing.assert_array_equal(jax.jit(lambda x: scaling._gaussian_blur_blocked(x, weights))(logits),
                                      jax.jit(lambda x: scaling._gaussian_blur_whole(x, weights))(logits))


def test_large_scene_als_keeps_the_reference_binary_map():
    """A scene large enough for the row-blocked path (on CPU): the binary map is the numpy/scipy
    reference's except on pixels that sit on the threshold (float32 against float64 blur)."""
    assert scaling.blocks_pay((1024, 1024), 6)
    logits = _smooth_logits((1024, 1024), seed=12) + np.random.default_rng(13).standard_normal(
        (1024, 1024)).astype(np.float32)
    valid = np.random.default_rng(14).random(logits.shape) > 0.1
    result = analytical_logit_scaling(logits, valid)
    ref = als_reference_numpy(logits, valid)
    disagree = np.asarray(result.binary) != ref["binary"]
    assert np.all(np.abs(ref["z"][disagree] - ref["b"]) < 1e-4 * max(1.0, ref["T"])), disagree.sum()
    assert disagree.sum() <= 2
    np.testing.assert_allclose(float(result.b), ref["b"], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(np.asarray(result.soft), ref["soft"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(gaussian_blur(logits)),
                               scipy.ndimage.gaussian_filter(logits.astype(np.float64), 1.5), atol=1e-4)


def test_row_blocked_quantiles_equal_the_whole_array_ones_and_numpy():
    """masked_quantiles in row blocks (CPU, large scenes): the same integer histograms, so the same
    values; ties and a last block overlapping the one before included. (test_platforms checks that
    large scenes take this path on CPU; the ALS test above runs its second pass.)"""
    from seaice_jax import quantiles

    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 150, 97)).astype(np.float32)
    x[:, ::5] = 0.5  # ties
    valid = rng.random(x.shape) > 0.3
    whole = quantiles.quantiles_of_keys(float_to_key(x).reshape(2, -1), jnp.asarray(valid).reshape(2, -1), QS)
    blocked = jax.jit(lambda a, v: quantiles._quantiles_row_blocked(a, v, QS))(x, valid)
    np.testing.assert_array_equal(np.asarray(whole), np.asarray(blocked))
    np.testing.assert_allclose(np.asarray(blocked), _numpy_quantiles(x, valid, QS), rtol=1e-6, atol=1e-6)
