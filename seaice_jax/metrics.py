"""Evaluation metrics: challenge scores, the ALS polygon metric, pixel topology metrics, Otsu.

Host-side numpy, vectorised (full RTT scenes are about 5000 x 5000 pixels). Every metric that is
pooled across scenes accumulates counts (confusion matrices, per-region errors), never pixels, so
that pooling is exact: the pooled score equals the score of the concatenated pixels.

Conventions (shared docs, ai4arctic-format.md "Evaluation conventions"):
  - SIC: R^2 between reference and predicted *class indices* 0..10.
  - SOD, FLOE: F1 with sklearn's average='weighted'.
  - Pixels where the reference is 255 are dropped and every other pixel is scored: a prediction of
    255 there counts as a wrong class (as sklearn scores the same arrays); pixels of all scenes are
    pooled; scores x 100.
  - Combined = (2 R2_SIC + 2 F1_SOD + 1 F1_FLOE) / 5.
"""

from __future__ import annotations

import numpy as np

from seaice_jax.data.channels import CHART_FILL, CHART_NAMES, NUM_CLASSES

# Concentration at or above which a chart region belongs to the ice pack (the usual ice-edge
# definition, 15 %); leads are water pixels inside the pack.
ICE_EDGE_CONCENTRATION = 0.15
# ALS authors' polygon "accuracy": share of regions whose ice-fraction error is below this.
POLYGON_ACCURACY_TOLERANCE = 0.10
# Pixels per counting pass. Scenes are counted in slices of this size so that the scratch arrays
# (masks, codes, their int64 casts inside np.bincount) stay small and cache-resident instead of
# allocating and page-faulting several 25M-pixel temporaries per metric.
_CHUNK_PIXELS = 1 << 20


def _chunks(num_pixels: int):
    return (slice(i, min(i + _CHUNK_PIXELS, num_pixels)) for i in range(0, num_pixels, _CHUNK_PIXELS))


# --------------------------------------------------------------------------------------------
# Confusion matrices, R^2 and weighted F1
# --------------------------------------------------------------------------------------------


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts cm[t, p] of pixels with true class t and predicted class p.

    y_true, y_pred: integer arrays of any (equal) shape, values in [0, num_classes).
    Returns int64 [num_classes, num_classes].
    """
    t = np.ravel(y_true)
    p = np.ravel(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    cm = np.zeros(num_classes * num_classes, np.int64)
    for sl in _chunks(t.size):
        tc, pc = t[sl], p[sl]
        for label, values in (("y_true", tc), ("y_pred", pc)):
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"{label} holds class {lo if lo < 0 else hi}, outside 0..{num_classes - 1}")
        code = tc.astype(np.int32) * num_classes + pc
        cm += np.bincount(code, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes)


def _r2_from_sums(ss_res: float, ss_tot: float) -> float:
    # sklearn's force_finite convention for a constant reference: 1 if perfect, else 0.
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (sklearn's definition), any real values.

    y_true, y_pred: arrays of equal size (flattened). Constant y_true: 1.0 if the prediction is
    exact, else 0.0 (sklearn's force_finite). Empty input raises.
    """
    t = np.asarray(y_true, np.float64).ravel()
    p = np.asarray(y_pred, np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("r2_score of zero values")
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return _r2_from_sums(ss_res, ss_tot)


def r2_from_confusion(cm: np.ndarray, pred_values: np.ndarray | None = None) -> float | None:
    """R^2 between class indices, from the sufficient statistics held by a confusion matrix.

    cm: int [C, P], cm[t, p] (P >= C: extra columns for predicted values that are no class);
    pred_values: the value of each column (default 0..P-1). The statistics n, sum t, sum t^2,
    sum p^2, sum t*p are exact integers (Python ints), so pooling many 5000 x 5000 scenes loses
    nothing. None if cm is empty.
    """
    cm = np.asarray(cm, np.int64)
    n = int(cm.sum())
    if n == 0:
        return None
    kt = np.arange(cm.shape[0], dtype=np.int64)
    kp = np.arange(cm.shape[1], dtype=np.int64) if pred_values is None else np.asarray(pred_values, np.int64)
    true_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
    sum_t = int(true_count @ kt)
    sum_tt = int(true_count @ (kt * kt))
    sum_pp = int(pred_count @ (kp * kp))
    sum_tp = int(kt @ cm @ kp)
    ss_res = sum_tt - 2 * sum_tp + sum_pp
    # SS_tot = sum_tt - sum_t^2 / n, kept exact as a fraction over n.
    ss_tot_times_n = n * sum_tt - sum_t * sum_t
    return _r2_from_sums(ss_res * n, ss_tot_times_n)


def weighted_f1_from_confusion(cm: np.ndarray) -> float | None:
    """sklearn f1_score(average='weighted') from cm[t, p]; None if cm is empty.

    cm: int [C, P], P >= C; columns past C are predicted labels that are no reference class (they
    are false negatives of the true class and, having no support, weigh 0, as in sklearn).
    Per-class F1 = 2 TP / (2 TP + FP + FN) (0 where that is 0/0), weighted by the true support;
    classes without support get weight 0.
    """
    cm = np.asarray(cm, np.int64)
    num_true = cm.shape[0]
    support = cm.sum(axis=1)
    total = int(support.sum())
    if total == 0:
        return None
    tp = np.diag(cm[:, :num_true]).astype(np.float64)
    denom = cm[:, :num_true].sum(axis=0) + support  # 2 TP + FP + FN
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1 @ support / total)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """sklearn f1_score(y_true, y_pred, average='weighted'); classes are 0..num_classes-1.

    Zero division gives 0 (also for empty input).
    """
    score = weighted_f1_from_confusion(confusion_matrix(y_true, y_pred, num_classes))
    return 0.0 if score is None else score


# --------------------------------------------------------------------------------------------
# Challenge scores
# --------------------------------------------------------------------------------------------


def combined_score(sic_r2: float | None, sod_f1: float | None, floe_f1: float | None) -> float | None:
    """(2 R2_SIC + 2 F1_SOD + 1 F1_FLOE) / 5; None unless all three exist."""
    if sic_r2 is None or sod_f1 is None or floe_f1 is None:
        return None
    return (2.0 * sic_r2 + 2.0 * sod_f1 + 1.0 * floe_f1) / 5.0


class ChallengeAccumulator:
    """Pools the challenge scores over scenes through one confusion matrix per chart.

    The challenge's convention: pixels whose *reference* is 255 are dropped; every other pixel is
    scored, whatever the model thinks of it. A prediction of 255 there is a wrong class, counted in
    an extra confusion column: in weighted F1 it is a false negative of the true class (a label
    without support, weight 0), in the SIC R^2 its value is 255, exactly as sklearn scores the same
    pixel arrays. `pred_masked_pixels` counts those pixels so a caller can report them.
    """

    def __init__(self) -> None:
        self.confusion = {c: np.zeros((NUM_CLASSES[c], NUM_CLASSES[c] + 1), np.int64) for c in CHART_NAMES}
        self.pred_masked_pixels = {c: 0 for c in CHART_NAMES}

    def add(self, chart: str, true_uint8: np.ndarray, pred_uint8: np.ndarray) -> None:
        """true_uint8, pred_uint8: [H, W] chart classes of `chart` ('SIC', 'SOD' or 'FLOE')."""
        if chart not in self.confusion:
            raise ValueError(f"unknown chart {chart!r}; known: {', '.join(CHART_NAMES)}")
        true_uint8, pred_uint8 = np.asarray(true_uint8), np.asarray(pred_uint8)
        if true_uint8.shape != pred_uint8.shape:
            raise ValueError(f"{chart}: reference shape {true_uint8.shape} != prediction shape {pred_uint8.shape}")
        num_classes = NUM_CLASSES[chart]
        columns = num_classes + 1  # the last column: predicted 255
        dropped = num_classes * columns  # dummy bin for reference-masked pixels
        t, p = true_uint8.ravel(), pred_uint8.ravel()
        counts = np.zeros(dropped + 1, np.int64)
        for sl in _chunks(t.size):
            tc, pc = t[sl].astype(np.int64), p[sl].astype(np.int64)
            keep = tc != CHART_FILL
            pred_fill = keep & (pc == CHART_FILL)
            self.pred_masked_pixels[chart] += int(np.count_nonzero(pred_fill))
            bad = keep & ((tc >= num_classes) | (tc < 0) | (~pred_fill & ((pc >= num_classes) | (pc < 0))))
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"{chart}: class outside 0..{num_classes - 1} (reference {tc[i]}, prediction {pc[i]})"
                )
            column = np.where(pred_fill, num_classes, pc)
            code = np.where(keep, tc * columns + column, dropped)
            counts += np.bincount(code, minlength=dropped + 1)
        self.confusion[chart] += counts[:dropped].reshape(num_classes, columns)

    def merge(self, other: ChallengeAccumulator) -> None:
        for c in CHART_NAMES:
            self.confusion[c] += other.confusion[c]
            self.pred_masked_pixels[c] += other.pred_masked_pixels[c]

    def scores(self) -> dict[str, float | None]:
        """{'sic_r2', 'sod_f1', 'floe_f1', 'combined'}, each x 100; None for a chart without pixels."""
        sic_values = np.append(np.arange(NUM_CLASSES["SIC"]), CHART_FILL)
        sic = r2_from_confusion(self.confusion["SIC"], sic_values)
        sod = weighted_f1_from_confusion(self.confusion["SOD"])
        floe = weighted_f1_from_confusion(self.confusion["FLOE"])
        pct = lambda x: None if x is None else 100.0 * x  # noqa: E731
        sic, sod, floe = pct(sic), pct(sod), pct(floe)
        return {"sic_r2": sic, "sod_f1": sod, "floe_f1": floe, "combined": combined_score(sic, sod, floe)}


# --------------------------------------------------------------------------------------------
# Polygon metric (the ALS authors' validation metric)
# --------------------------------------------------------------------------------------------


def polygon_errors(
    binary: np.ndarray,
    region_ids: np.ndarray,
    region_conc: np.ndarray,
    valid: np.ndarray,
    min_pixels: int = 100,
) -> np.ndarray:
    """Ice fraction of the binary map minus the chart concentration, per qualifying region.

    binary: bool [H, W] (True = ice); region_ids: int [H, W], 0..R-1, -1 outside any region;
    region_conc: float [R] in [0, 1]; valid: bool [H, W]. A region qualifies with at least
    `min_pixels` valid pixels. Returns float64 [R'] in region order.
    """
    region_conc = np.asarray(region_conc, np.float64)
    num_regions = region_conc.shape[0]
    if not (binary.shape == region_ids.shape == valid.shape):
        raise ValueError(f"shapes differ: binary {binary.shape}, region_ids {region_ids.shape}, valid {valid.shape}")
    ids, ice, ok = np.ravel(region_ids), np.ravel(binary), np.ravel(valid)
    # counts[r, b]: pixels of region r with binary value b; row R collects pixels outside any region.
    counts = np.zeros(2 * (num_regions + 1), np.int64)
    for sl in _chunks(ids.size):
        idc = ids[sl]
        if idc.size and int(idc.max()) >= num_regions:
            raise ValueError(f"region id {int(idc.max())} but only {num_regions} region concentrations")
        idc = np.where(ok[sl] & (idc >= 0), idc, num_regions)
        counts += np.bincount(idc * 2 + ice[sl].astype(bool), minlength=2 * (num_regions + 1))
    counts = counts.reshape(num_regions + 1, 2)
    pixels, ice_pixels = counts[:num_regions].sum(axis=1), counts[:num_regions, 1]
    keep = pixels >= min_pixels
    return ice_pixels[keep] / pixels[keep] - region_conc[keep]


def summarize_polygon_errors(errors: np.ndarray) -> dict[str, float | int | None]:
    """errors: [R'] -> {'polygon_mae', 'polygon_acc10', 'n_regions'}; None when R' = 0."""
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        return {"polygon_mae": None, "polygon_acc10": None, "n_regions": 0}
    return {
        "polygon_mae": float(np.mean(np.abs(errors))),
        "polygon_acc10": float(np.mean(np.abs(errors) < POLYGON_ACCURACY_TOLERANCE)),
        "n_regions": int(errors.size),
    }


def polygon_metric(
    binary: np.ndarray,
    region_ids: np.ndarray,
    region_conc: np.ndarray,
    valid: np.ndarray,
    min_pixels: int = 100,
) -> dict[str, float | int | None]:
    """The ALS authors' metric on one scene: MAE of region ice fraction vs chart concentration and
    the share of regions with |error| < 0.10 (over regions with >= min_pixels valid pixels).

    Shapes as in `polygon_errors`. Returns {'polygon_mae', 'polygon_acc10', 'n_regions'}.
    """
    return summarize_polygon_errors(polygon_errors(binary, region_ids, region_conc, valid, min_pixels))


class PolygonAccumulator:
    """Pooled polygon metric: every qualifying region of every scene counts once."""

    def __init__(self, min_pixels: int = 100) -> None:
        self.min_pixels = min_pixels
        self._errors: list[np.ndarray] = []

    def add(self, binary: np.ndarray, region_ids: np.ndarray, region_conc: np.ndarray, valid: np.ndarray) -> None:
        self._errors.append(polygon_errors(binary, region_ids, region_conc, valid, self.min_pixels))

    def merge(self, other: PolygonAccumulator) -> None:
        self._errors.extend(other._errors)

    @property
    def errors(self) -> np.ndarray:
        return np.concatenate(self._errors) if self._errors else np.zeros((0,), np.float64)

    def scores(self) -> dict[str, float | int | None]:
        return summarize_polygon_errors(self.errors)


# --------------------------------------------------------------------------------------------
# Pixel topology metrics (synthetic scenes with a pixel truth)
# --------------------------------------------------------------------------------------------


def ice_pack_mask(
    region_ids: np.ndarray, region_conc: np.ndarray, threshold: float = ICE_EDGE_CONCENTRATION
) -> np.ndarray:
    """bool [H, W]: pixels of chart regions with concentration >= threshold (15 %: the ice edge).

    region_ids: int [H, W] (-1 outside any region); region_conc: float [R].
    """
    region_conc = np.asarray(region_conc, np.float64)
    in_pack = np.append(region_conc >= threshold, False)  # index R (outside any region) -> False
    ids = np.asarray(region_ids)
    out = np.empty(ids.shape, bool)
    flat_ids, flat_out = ids.reshape(-1), out.reshape(-1)
    for sl in _chunks(flat_ids.size):
        chunk = flat_ids[sl]
        flat_out[sl] = in_pack.take(np.where(chunk >= 0, chunk, len(region_conc)))
    return out


def _iou_f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None]:
    if tp + fp + fn == 0:  # class absent from truth and prediction: undefined
        return None, None
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


class TopologyAccumulator:
    """Pixel accuracy, lead IoU/F1 and ice IoU/F1 against a pixel truth, pooled exactly by counts.

    Evaluated pixels: ice_truth != 255 and valid. Ice IoU/F1 and accuracy use all of them; lead
    IoU/F1 (positive class = water) only those inside the ice pack (`pack`, e.g. `ice_pack_mask`),
    since open water outside the ice edge is not a lead.
    """

    def __init__(self) -> None:
        self.all_confusion = np.zeros((2, 2), np.int64)
        self.pack_confusion = np.zeros((2, 2), np.int64)

    def add(self, binary: np.ndarray, ice_truth: np.ndarray, valid: np.ndarray, pack: np.ndarray) -> None:
        """binary: bool [H, W] predicted ice; ice_truth: uint8 [H, W] (1 ice, 0 water, 255 none);
        valid, pack: bool [H, W]."""
        if not (binary.shape == ice_truth.shape == valid.shape == pack.shape):
            raise ValueError(
                f"shapes differ: binary {binary.shape}, ice_truth {ice_truth.shape}, valid {valid.shape}, "
                f"pack {pack.shape}"
            )
        truth, pred, ok, in_pack = (np.ravel(a) for a in (ice_truth, binary, valid, pack))
        counts = np.zeros(9, np.int64)
        for sl in _chunks(truth.size):
            tc = truth[sl]
            # code: truth_ice * 2 + pred_ice (cm[t, p] flattened), + 4 inside the pack, 8 = not evaluated.
            code = (tc == 1).astype(np.uint8) * 2 + pred[sl].astype(bool) + in_pack[sl].astype(bool) * np.uint8(4)
            code = np.where(ok[sl].astype(bool) & (tc != CHART_FILL), code, np.uint8(8))
            counts += np.bincount(code, minlength=9)
        self.pack_confusion += counts[4:8].reshape(2, 2)
        self.all_confusion += (counts[0:4] + counts[4:8]).reshape(2, 2)

    def merge(self, other: TopologyAccumulator) -> None:
        self.all_confusion += other.all_confusion
        self.pack_confusion += other.pack_confusion

    def scores(self) -> dict[str, float | None]:
        """{'pixel_accuracy', 'lead_iou', 'lead_f1', 'ice_iou', 'ice_f1'} as fractions; None where undefined."""
        cm = self.all_confusion
        n = int(cm.sum())
        accuracy = None if n == 0 else float(np.trace(cm)) / n
        ice_iou, ice_f1 = _iou_f1(int(cm[1, 1]), int(cm[0, 1]), int(cm[1, 0]))
        pk = self.pack_confusion  # positive class = water (index 0)
        lead_iou, lead_f1 = _iou_f1(int(pk[0, 0]), int(pk[1, 0]), int(pk[0, 1]))
        return {"pixel_accuracy": accuracy, "lead_iou": lead_iou, "lead_f1": lead_f1, "ice_iou": ice_iou,
                "ice_f1": ice_f1}


def pixel_topology_metrics(
    binary: np.ndarray, ice_truth: np.ndarray, valid: np.ndarray, pack: np.ndarray
) -> dict[str, float | None]:
    """One scene's topology metrics; see `TopologyAccumulator` (inputs [H, W])."""
    acc = TopologyAccumulator()
    acc.add(binary, ice_truth, valid, pack)
    return acc.scores()


# --------------------------------------------------------------------------------------------
# Classical baseline
# --------------------------------------------------------------------------------------------


def otsu_threshold(x: np.ndarray, valid: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of x over valid finite pixels: `x >= threshold` is the bright class.

    x: float [H, W]; valid: bool [H, W]. Maximises the between-class variance over the `bins`
    histogram cuts and returns the cut's bin edge. Constant input returns that constant.
    """
    values = x[valid & np.isfinite(x)]
    if values.size == 0:
        raise ValueError("otsu_threshold: no valid finite pixels")
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    hist = hist.astype(np.float64)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)[:-1]  # pixels in bins 0..i (cut after bin i)
    s0 = np.cumsum(hist * centers)[:-1]
    w1 = hist.sum() - w0
    s1 = float(hist @ centers) - s0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (s0 / w0 - s1 / w1) ** 2
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    cut = int(np.argmax(between))
    return float(edges[cut + 1])
