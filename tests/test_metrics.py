"""Metrics against hand-computed values and direct formulas."""

from __future__ import annotations

import numpy as np
import pytest

from seaice_jax import metrics

# ---------------------------------------------------------------- R^2 and weighted F1


def test_r2_six_pixel_hand_case():
    # mean 2.5, SS_tot = 6.25+2.25+0.25+0.25+2.25+6.25 = 17.5, SS_res = 0+1+0+0+1+0 = 2.
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 2, 2, 3, 5, 5])
    assert metrics.r2_score(y_true, y_pred) == pytest.approx(1 - 2 / 17.5)  # 31/35 = 0.885714
    cm = metrics.confusion_matrix(y_true, y_pred, 11)
    assert metrics.r2_from_confusion(cm) == pytest.approx(31 / 35)


def test_r2_constant_reference_follows_sklearn_force_finite():
    assert metrics.r2_score([3, 3, 3], [3, 3, 3]) == 1.0
    assert metrics.r2_score([3, 3, 3], [3, 4, 3]) == 0.0


def test_r2_from_confusion_matches_direct_formula_on_random_classes():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 11, 500)
    p = np.clip(t + rng.integers(-3, 4, 500), 0, 10)
    direct = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
    assert metrics.r2_score(t, p) == pytest.approx(direct, rel=1e-12)
    assert metrics.r2_from_confusion(metrics.confusion_matrix(t, p, 11)) == pytest.approx(direct, rel=1e-12)


def test_weighted_f1_six_pixel_hand_case():
    # class 0: TP 2 FP 0 FN 1 -> F1 4/5, support 3
    # class 1: TP 1 FP 1 FN 1 -> F1 1/2, support 2
    # class 2: TP 1 FP 1 FN 0 -> F1 2/3, support 1
    # weighted = (3*4/5 + 2*1/2 + 1*2/3) / 6 = 61/90
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    assert metrics.weighted_f1(y_true, y_pred, 3) == pytest.approx(61 / 90)
    # An extra class with no support and no predictions changes nothing.
    assert metrics.weighted_f1(y_true, y_pred, 6) == pytest.approx(61 / 90)


def test_weighted_f1_prediction_only_class_and_zero_division():
    # Class 1 is never true (weight 0) but predicting it costs class 0 its recall:
    # class 0: TP 1 FP 0 FN 1 -> 2/3, support 2; class 2: TP 1, never predicted wrongly -> 1, support 1.
    y_true = np.array([0, 0, 2])
    y_pred = np.array([0, 1, 2])
    assert metrics.weighted_f1(y_true, y_pred, 3) == pytest.approx((2 * 2 / 3 + 1 * 1) / 3)
    # A true class never predicted: F1 0 (zero division -> 0), not NaN.
    assert metrics.weighted_f1(np.array([1, 1]), np.array([0, 0]), 2) == 0.0


def _weighted_f1_by_definition(t, p, num_classes):
    total, score = len(t), 0.0
    for c in range(num_classes):
        tp = np.sum((t == c) & (p == c))
        precision = tp / np.sum(p == c) if np.sum(p == c) else 0.0
        recall = tp / np.sum(t == c) if np.sum(t == c) else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        score += f1 * np.sum(t == c) / total
    return score


def test_weighted_f1_matches_precision_recall_definition():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 6, 400)
    p = np.where(rng.random(400) < 0.6, t, rng.integers(0, 6, 400))
    assert metrics.weighted_f1(t, p, 6) == pytest.approx(_weighted_f1_by_definition(t, p, 6), rel=1e-12)


def test_confusion_matrix_rejects_out_of_range_class():
    with pytest.raises(ValueError, match="outside 0..5"):
        metrics.confusion_matrix(np.array([0, 1]), np.array([0, 6]), 6)


# ---------------------------------------------------------------- challenge accumulator


def test_combined_score_formula_and_none():
    assert metrics.combined_score(90.0, 80.0, 70.0) == pytest.approx((180 + 160 + 70) / 5)  # 82.0
    assert metrics.combined_score(90.0, None, 70.0) is None


def test_challenge_scores_hand_case():
    acc = metrics.ChallengeAccumulator()
    acc.add("SIC", np.array([[0, 1, 2], [3, 4, 5]], np.uint8), np.array([[0, 2, 2], [3, 5, 5]], np.uint8))
    acc.add("SOD", np.array([[0, 0, 0], [1, 1, 2]], np.uint8), np.array([[0, 0, 1], [1, 2, 2]], np.uint8))
    acc.add("FLOE", np.array([1, 2], np.uint8), np.array([1, 2], np.uint8))
    s = acc.scores()
    assert s["sic_r2"] == pytest.approx(100 * 31 / 35)
    assert s["sod_f1"] == pytest.approx(100 * 61 / 90)
    assert s["floe_f1"] == pytest.approx(100.0)
    assert s["combined"] == pytest.approx((2 * 100 * 31 / 35 + 2 * 100 * 61 / 90 + 100) / 5)


def test_challenge_missing_chart_gives_none():
    acc = metrics.ChallengeAccumulator()
    acc.add("SIC", np.array([1, 2]), np.array([1, 2]))
    acc.add("SOD", np.array([255, 255], np.uint8), np.array([1, 2], np.uint8))  # all reference masked
    s = acc.scores()
    assert s["sic_r2"] == pytest.approx(100.0)
    assert s["sod_f1"] is None and s["floe_f1"] is None and s["combined"] is None


def test_challenge_drops_255_reference_and_scores_255_prediction_as_sklearn():
    t = np.array([0, 1, 255, 2, 3, 4, 5], np.uint8)
    p = np.array([0, 2, 7, 2, 3, 255, 5], np.uint8)  # 7 is out of range but its reference is 255
    acc = metrics.ChallengeAccumulator()
    acc.add("SIC", t, p)
    keep = t != 255
    # The 255 prediction stays, with its literal value, as sklearn's r2_score takes it.
    assert acc.scores()["sic_r2"] == pytest.approx(100 * metrics.r2_score(t[keep], p[keep]))
    assert acc.pred_masked_pixels["SIC"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_challenge_scores_equal_sklearn_with_masked_pixels_and_255_predictions(seed):
    from sklearn import metrics as sklearn_metrics  # a test dependency (pyproject [test])
    rng = np.random.default_rng(seed)
    acc = metrics.ChallengeAccumulator()
    refs, preds = {}, {}
    for chart, n in (("SIC", 11), ("SOD", 6), ("FLOE", 7)):
        t = rng.integers(0, n, 5000).astype(np.uint8)
        p = np.where(rng.random(5000) < 0.6, t, rng.integers(0, n, 5000)).astype(np.uint8)
        t[rng.random(5000) < 0.15] = 255  # reference masked: dropped
        p[rng.random(5000) < 0.05] = 255  # prediction 255 on scored pixels: a wrong class
        acc.add(chart, t[:2000], p[:2000])  # pooled over two "scenes"
        acc.add(chart, t[2000:], p[2000:])
        keep = t != 255
        refs[chart], preds[chart] = t[keep].astype(int), p[keep].astype(int)
    s = acc.scores()
    assert s["sic_r2"] == pytest.approx(100 * sklearn_metrics.r2_score(refs["SIC"], preds["SIC"]), rel=1e-9)
    for chart, key in (("SOD", "sod_f1"), ("FLOE", "floe_f1")):
        expected = sklearn_metrics.f1_score(refs[chart], preds[chart], average="weighted", zero_division=0)
        assert s[key] == pytest.approx(100 * expected, rel=1e-9)


def test_challenge_rejects_class_outside_chart_range():
    acc = metrics.ChallengeAccumulator()
    with pytest.raises(ValueError, match=r"SOD: class outside 0..5 \(reference 1, prediction 6\)"):
        acc.add("SOD", np.array([0, 1], np.uint8), np.array([0, 6], np.uint8))


def test_challenge_pooling_equals_concatenation():
    rng = np.random.default_rng(2)

    def scene(shape):
        t = {c: rng.integers(0, n, shape).astype(np.uint8) for c, n in (("SIC", 11), ("SOD", 6), ("FLOE", 7))}
        for c in t:
            t[c][rng.random(shape) < 0.2] = 255
        p = {c: np.where(rng.random(shape) < 0.7, t[c] % n, rng.integers(0, n, shape)).astype(np.uint8)
             for c, n in (("SIC", 11), ("SOD", 6), ("FLOE", 7))}
        return t, p

    (t1, p1), (t2, p2) = scene((6, 7)), scene((5, 9))
    pooled = metrics.ChallengeAccumulator()
    for t, p in ((t1, p1), (t2, p2)):
        for c in t:
            pooled.add(c, t[c], p[c])
    concat = metrics.ChallengeAccumulator()
    for c in t1:
        concat.add(c, np.concatenate([t1[c].ravel(), t2[c].ravel()]), np.concatenate([p1[c].ravel(), p2[c].ravel()]))
    merged = metrics.ChallengeAccumulator()
    for t, p in ((t1, p1), (t2, p2)):
        one = metrics.ChallengeAccumulator()
        for c in t:
            one.add(c, t[c], p[c])
        merged.merge(one)
    assert pooled.scores() == pytest.approx(concat.scores())
    assert merged.scores() == pytest.approx(concat.scores())
    # And the pooled score is not simply the mean of per-scene scores (this data has unequal sizes).
    keep = lambda t, p: (t != 255) & (p != 255)  # noqa: E731
    t_all = np.concatenate([t1["SIC"].ravel(), t2["SIC"].ravel()])
    p_all = np.concatenate([p1["SIC"].ravel(), p2["SIC"].ravel()])
    k = keep(t_all, p_all)
    assert pooled.scores()["sic_r2"] == pytest.approx(100 * metrics.r2_score(t_all[k], p_all[k]))


# ---------------------------------------------------------------- polygon metric


def _polygon_case():
    # One row of pixels. Region 0: 110 pixels, 10 of them invalid and ice; of the 100 valid, 30 ice;
    # conc 0.35 -> error -0.05. Region 1: 100 pixels, 80 ice, conc 0.5 -> error +0.30.
    # Region 2: 50 pixels, no ice, conc 0.0 -> error 0 (only counted when min_pixels <= 50).
    # 5 pixels outside any region (-1), all ice.
    ids = np.concatenate([np.full(110, 0), np.full(100, 1), np.full(50, 2), np.full(5, -1)]).astype(np.int32)
    binary = np.concatenate([np.ones(10), np.ones(30), np.zeros(70), np.ones(80), np.zeros(20),
                             np.zeros(50), np.ones(5)]).astype(bool)
    valid = np.ones(ids.size, bool)
    valid[:10] = False
    conc = np.array([0.35, 0.5, 0.0], np.float32)
    return binary[None], ids[None], conc, valid[None]


def test_polygon_metric_hand_case_and_min_pixels_cut():
    binary, ids, conc, valid = _polygon_case()
    m = metrics.polygon_metric(binary, ids, conc, valid, min_pixels=100)
    assert m["n_regions"] == 2
    assert m["polygon_mae"] == pytest.approx((0.05 + 0.30) / 2, abs=1e-6)
    assert m["polygon_acc10"] == pytest.approx(0.5)
    m50 = metrics.polygon_metric(binary, ids, conc, valid, min_pixels=50)
    assert m50["n_regions"] == 3
    assert m50["polygon_mae"] == pytest.approx(0.35 / 3, abs=1e-6)
    assert m50["polygon_acc10"] == pytest.approx(2 / 3)


def test_polygon_metric_none_when_no_region_qualifies():
    binary, ids, conc, valid = _polygon_case()
    m = metrics.polygon_metric(binary, ids, conc, valid, min_pixels=1000)
    assert m == {"polygon_mae": None, "polygon_acc10": None, "n_regions": 0}


def test_polygon_accumulator_pools_regions():
    binary, ids, conc, valid = _polygon_case()
    acc = metrics.PolygonAccumulator(min_pixels=50)
    acc.add(binary, ids, conc, valid)  # errors -0.05, 0.30, 0
    acc.add(binary, ids, np.array([0.3, 0.8, 0.0], np.float32), valid)  # errors 0, 0, 0
    s = acc.scores()
    assert s["n_regions"] == 6
    assert s["polygon_mae"] == pytest.approx(0.35 / 6, abs=1e-6)
    assert s["polygon_acc10"] == pytest.approx(5 / 6)


# ---------------------------------------------------------------- topology metrics


def test_ice_pack_mask():
    ids = np.array([[-1, 0, 1, 2]], np.int32)
    pack = metrics.ice_pack_mask(ids, np.array([0.1, 0.15, 0.9]))
    np.testing.assert_array_equal(pack, [[False, False, True, True]])


def test_pixel_topology_metrics_hand_case():
    #              0  1  2  3  4  5  6  7    8  9  10
    truth = np.array([1, 1, 0, 0, 1, 0, 0, 255, 1, 0, 1], np.uint8)
    binary = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0], bool)
    valid = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    pack = np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1], bool)
    # Evaluated: 0..6, 8, 9 (7 has no truth, 10 invalid): correct 0,2,4,5,8,9 -> 6/9.
    # Ice: TP {0,4,8}=3, FP {3,6}=2, FN {1}=1 -> IoU 3/6, F1 6/9.
    # Leads (water) inside the pack {0..5, 9}: TP {2,5,9}=3, FP {1}=1, FN {3}=1 -> IoU 3/5, F1 6/8.
    # (Without the pack restriction pixel 6 would add an FN: IoU 3/6.)
    m = metrics.pixel_topology_metrics(binary[None], truth[None], valid[None], pack[None])
    assert m["pixel_accuracy"] == pytest.approx(6 / 9)
    assert m["ice_iou"] == pytest.approx(0.5)
    assert m["ice_f1"] == pytest.approx(2 / 3)
    assert m["lead_iou"] == pytest.approx(0.6)
    assert m["lead_f1"] == pytest.approx(0.75)


def test_topology_pooling_is_exact_and_undefined_is_none():
    rng = np.random.default_rng(3)
    parts = []
    for n in (30, 47):
        truth = rng.integers(0, 2, n).astype(np.uint8)
        truth[rng.random(n) < 0.1] = 255
        parts.append((rng.random(n) < 0.5, truth, rng.random(n) < 0.9, rng.random(n) < 0.7))
    acc = metrics.TopologyAccumulator()
    for b, t, v, p in parts:
        acc.add(b[None], t[None], v[None], p[None])
    concat = [np.concatenate([x[i] for x in parts])[None] for i in range(4)]
    assert acc.scores() == pytest.approx(metrics.pixel_topology_metrics(*concat))
    # All ice, predicted all ice: no leads anywhere -> lead IoU/F1 undefined.
    ones = np.ones((1, 4))
    m = metrics.pixel_topology_metrics(ones.astype(bool), ones.astype(np.uint8), ones.astype(bool), ones.astype(bool))
    assert m["lead_iou"] is None and m["lead_f1"] is None and m["ice_iou"] == 1.0
    assert metrics.TopologyAccumulator().scores()["pixel_accuracy"] is None


# ---------------------------------------------------------------- Otsu


def test_otsu_separates_bimodal_sample_and_ignores_invalid():
    rng = np.random.default_rng(4)
    water = rng.normal(-2.0, 0.3, 1000)
    ice = rng.normal(3.0, 0.5, 500)
    x = np.concatenate([water, ice, np.full(50, 100.0)])  # outliers marked invalid
    valid = np.concatenate([np.ones(1500, bool), np.zeros(50, bool)])
    thr = metrics.otsu_threshold(x[None], valid[None])
    assert water.max() < thr <= ice.min()
    # With the outliers counted, the bright class would be them alone.
    assert metrics.otsu_threshold(x[None], np.ones((1, x.size), bool)) > ice.max()


def test_otsu_constant_and_empty():
    assert metrics.otsu_threshold(np.full((2, 2), 1.5), np.ones((2, 2), bool)) == 1.5
    with pytest.raises(ValueError):
        metrics.otsu_threshold(np.zeros((2, 2)), np.zeros((2, 2), bool))
