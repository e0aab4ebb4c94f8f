"""Region concentration loss (method.md section 3) and the per-pixel losses of the multi-task heads.

Batch layout (from the input pipeline): `inputs` float32 [B, H, W, C]; `sic`, `sod`, `floe` uint8
[B, H, W] with 255 masked; `region_ids` int32 [B, H, W], per-patch ids 0..K-1, -1 = no region;
`region_conc` float32 [B, K], NaN for unused slots; `valid` bool [B, H, W].
Every function is jit-friendly (static shapes), computes in float32 and returns 0, never NaN,
when nothing counts.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from seaice_jax.data.channels import CHART_FILL

REGION_FORMS = ("mse", "bce")
REGION_WEIGHTINGS = ("uniform", "pixel_share")


def _safe_mean(total: jax.Array, count: jax.Array) -> jax.Array:
    """total / count, 0 when count is 0 (and a finite gradient either way)."""
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)


def region_mean_probabilities(
    logits: jax.Array, region_ids: jax.Array, num_regions: int
) -> tuple[jax.Array, jax.Array]:
    """Mean sigmoid probability and pixel count of each region.

    logits: [B, H, W]; region_ids: [B, H, W] in 0..K-1 or -1 (none); num_regions: K.
    Returns (pbar [B, K], pixel_count [B, K]). One segment sum over B*K segments: ids are offset
    per batch item; pixels of no region go to an extra segment that is dropped.
    """
    batch = logits.shape[0]
    probs = jax.nn.sigmoid(logits.astype(jnp.float32)).reshape(batch, -1)
    ids = region_ids.reshape(batch, -1).astype(jnp.int32)
    in_region = (ids >= 0) & (ids < num_regions)
    no_region_segment = batch * num_regions
    offset = jnp.arange(batch, dtype=jnp.int32)[:, None] * num_regions
    segment = jnp.where(in_region, ids + offset, no_region_segment).reshape(-1)
    num_segments = no_region_segment + 1
    prob_sums = jax.ops.segment_sum(probs.reshape(-1), segment, num_segments)[:-1]
    counts = jax.ops.segment_sum(jnp.ones_like(segment, jnp.float32), segment, num_segments)[:-1]
    pbar = _safe_mean(prob_sums, counts)
    return pbar.reshape(batch, num_regions), counts.reshape(batch, num_regions)


def region_concentration_loss(
    logits: jax.Array,
    region_ids: jax.Array,
    region_conc: jax.Array,
    *,
    form: str = "mse",
    weighting: str = "uniform",
    min_pixels: int = 1,
    eps: float = 1e-6,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Learning-from-label-proportions loss of the chart concentration of each region.

    logits: [B, H, W] ice logits; region_ids: [B, H, W] (-1 = none); region_conc: [B, K] in [0, 1],
    NaN for unused slots. A region counts if it has >= min_pixels pixels in its patch and a finite
    concentration. form 'mse': (pbar_r - c_r)^2; 'bce': BCE(pbar_r, c_r) with pbar clipped to
    [eps, 1 - eps]. weighting 'uniform': mean over the counted regions of the whole batch;
    'pixel_share': mean weighted by each region's pixel count.
    Returns (loss scalar, {'regions_counted', 'region_abs_error'}).
    """
    if form not in REGION_FORMS:
        raise ValueError(f"region loss form must be one of {REGION_FORMS}, got {form!r}")
    if weighting not in REGION_WEIGHTINGS:
        raise ValueError(f"region weighting must be one of {REGION_WEIGHTINGS}, got {weighting!r}")
    conc = region_conc.astype(jnp.float32)
    pbar, counts = region_mean_probabilities(logits, region_ids, conc.shape[1])
    counted = (counts >= max(min_pixels, 1)) & jnp.isfinite(conc)
    target = jnp.where(counted, conc, 0.0)  # NaN slots must not reach the arithmetic (NaN grads)

    if form == "mse":
        per_region = jnp.square(pbar - target)
    else:
        clipped = jnp.clip(pbar, eps, 1.0 - eps)
        per_region = -(target * jnp.log(clipped) + (1.0 - target) * jnp.log1p(-clipped))

    weights = counted.astype(jnp.float32)
    if weighting == "pixel_share":
        weights = weights * counts
    total_weight = weights.sum()
    loss = _safe_mean(jnp.sum(weights * per_region), total_weight)
    aux = {
        "regions_counted": counted.sum().astype(jnp.float32),
        "region_abs_error": _safe_mean(jnp.sum(weights * jnp.abs(pbar - target)), total_weight),
    }
    return loss, aux


ENTROPY_FORMS = ("binary_entropy", "p_one_minus_p")


def binary_entropy_term(logits: jax.Array, valid: jax.Array, form: str = "p_one_minus_p",
                        eps: float = 1e-6) -> jax.Array:
    """Mean over valid pixels of a term that pushes p = sigmoid(logits) towards 0 or 1 (ALS).

    form 'binary_entropy': H(p) = -p log p - (1 - p) log(1 - p) with p clamped to [eps, 1 - eps]
    (the ALS authors' current code); 'p_one_minus_p': p (1 - p) (their older code). Both peak at
    p = 0.5 (ln 2 and 0.25). logits: [B, H, W]; valid: bool [B, H, W]. 0 when no pixel is valid.
    """
    if form not in ENTROPY_FORMS:
        raise ValueError(f"entropy form must be one of {ENTROPY_FORMS}, got {form!r}")
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    if form == "binary_entropy":
        p = jnp.clip(probs, eps, 1.0 - eps)
        per_pixel = -(p * jnp.log(p) + (1.0 - p) * jnp.log1p(-p))
    else:
        per_pixel = probs * (1.0 - probs)
    mask = valid.astype(jnp.float32)
    return _safe_mean(jnp.sum(mask * per_pixel), mask.sum())


def masked_cross_entropy(logits: jax.Array, labels: jax.Array, ignore_index: int = CHART_FILL) -> jax.Array:
    """Softmax cross-entropy averaged over pixels whose label is not `ignore_index`.

    logits: [B, H, W, C]; labels: uint8 [B, H, W]. 0 when every pixel is ignored.
    """
    labels = labels.astype(jnp.int32)
    keep = labels != ignore_index
    safe_labels = jnp.where(keep, labels, 0)  # any in-range class; masked out below
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe_labels)
    mask = keep.astype(jnp.float32)
    return _safe_mean(jnp.sum(mask * per_pixel), mask.sum())


SIC_REGRESSION_TARGETS = {"fraction": 1.0, "class_index": 10.0}


def sic_regression_loss(pred: jax.Array, sic: jax.Array, ignore: int = CHART_FILL,
                        target: str = "fraction") -> jax.Array:
    """MSE between the predicted concentration and the SIC class over non-masked pixels.

    pred: [B, H, W] (0..1 scale, the head's output everywhere); sic: uint8 [B, H, W] classes 0..10,
    `ignore` masked. target 'fraction': against class / 10; 'class_index': on the class scale
    0..10 (MMSeaIce), i.e. 100 x the fraction form, which sets the term's weight against the others.
    """
    if target not in SIC_REGRESSION_TARGETS:
        raise ValueError(f"SIC regression target must be one of {tuple(SIC_REGRESSION_TARGETS)}, got {target!r}")
    scale = SIC_REGRESSION_TARGETS[target]
    sic = sic.astype(jnp.int32)
    keep = sic != ignore
    sic_fraction = jnp.where(keep, sic, 0).astype(jnp.float32) / 10.0
    mask = keep.astype(jnp.float32)
    error = scale * (pred.astype(jnp.float32) - sic_fraction)
    return _safe_mean(jnp.sum(mask * jnp.square(error)), mask.sum())


def total_loss(
    outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], cfg
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the terms of the heads present in `outputs`.

    outputs: the model's dict ('ice' [B, H, W], 'SIC' [B, H, W] regression or [B, H, W, 11],
    'SOD' [B, H, W, 6], 'FLOE' [B, H, W, 7]); batch: the pipeline's dict; cfg: ConfigDict with
    region_form, region_weighting, min_region_pixels, entropy_weight, entropy_form,
    sic_regression_target, weights.{ice, sic, sod, floe}.

        loss = weights.ice * (region + entropy_weight * entropy)
             + weights.sic * sic + weights.sod * sod + weights.floe * floe

    Returns (loss, metrics) with metrics 'loss' and each unweighted term present
    ('region', 'entropy', 'regions_counted', 'region_abs_error', 'sic', 'sod', 'floe').
    """
    loss = jnp.zeros((), jnp.float32)
    metrics: dict[str, jax.Array] = {}
    if "ice" in outputs:
        region, aux = region_concentration_loss(
            outputs["ice"], batch["region_ids"], batch["region_conc"],
            form=cfg.region_form, weighting=cfg.region_weighting, min_pixels=cfg.min_region_pixels,
        )
        entropy = binary_entropy_term(outputs["ice"], batch["valid"], cfg.entropy_form)
        loss += cfg.weights.ice * (region + cfg.entropy_weight * entropy)
        metrics.update(region=region, entropy=entropy, **aux)
    if "SIC" in outputs:
        sic_out = outputs["SIC"]
        if sic_out.ndim == 3:
            sic = sic_regression_loss(sic_out, batch["sic"], target=cfg.sic_regression_target)
        else:
            sic = masked_cross_entropy(sic_out, batch["sic"])
        loss += cfg.weights.sic * sic
        metrics["sic"] = sic
    for head, key in (("SOD", "sod"), ("FLOE", "floe")):
        if head in outputs:
            term = masked_cross_entropy(outputs[head], batch[key])
            loss += getattr(cfg.weights, key) * term
            metrics[key] = term
    if "fb_loss" in batch and cfg.weights.get("freeboard", 0.0):
        term, fb_metrics = freeboard_loss(outputs, batch, cfg)
        loss += cfg.weights.freeboard * term
        metrics.update(fb_metrics)
    metrics["loss"] = loss
    return loss, metrics


def freeboard_loss(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], cfg
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The freeboard term of every freeboard head present, each on the points of its own kind only.

    Per head: the uncertainty-weighted Huber loss of the footprint mean against the measured points
    (altimetry.loss.masked_huber_loss; delta `freeboard_huber_delta`, sigma floor
    `freeboard_sigma_floor`), plus `freeboard_nll_weight` x the Gaussian negative log-likelihood of
    the `<head>_uncertainty` map's footprint mean with the mean's gradient stopped (the spread is
    learned from the residuals; the mean keeps its robust loss). Points: `batch['fb_loss']` (the
    tracks hidden from the input). Metrics: `<head>`, `<head>_nll`, `<head>_points`.
    """
    from seaice_jax.altimetry.loss import footprint_mean, gaussian_nll, masked_huber_loss
    from seaice_jax.data.points import FREEBOARD_KINDS, HEAD_OF_KIND, UNCERTAINTY_SUFFIX, is_sea_surface

    total = jnp.zeros((), jnp.float32)
    metrics: dict[str, jax.Array] = {}
    for k, kind in enumerate(FREEBOARD_KINDS):
        head = HEAD_OF_KIND[kind]
        if head not in outputs:
            continue
        use = batch["fb_loss"] & (batch["fb_kind"] == k)
        # Points the product classed as lead / sea surface read ~0 whatever lies under them: an ice
        # footprint misclassed as lead would pull the ice's freeboard down (see freeboard_lead_weight).
        sea = is_sea_surface(batch["fb_surface"]) if "fb_surface" in batch else None
        point_weight = None if sea is None else jnp.where(sea, cfg.get("freeboard_lead_weight", 1.0), 1.0)
        on_ice_weight = cfg.get("freeboard_lead_on_ice_weight", 1.0)
        if sea is not None and on_ice_weight != 1.0 and "ice" in outputs:
            # Under a footprint the ice head sees as ice, a sea-surface reading is most likely a misclassed
            # floe: it would pull the ice's freeboard down by the misclassification rate x freeboard.
            p_ice = jax.lax.stop_gradient(footprint_mean(jax.nn.sigmoid(outputs["ice"].astype(jnp.float32)),
                                                         batch["fb_index"], batch["fb_weight"]))
            point_weight = point_weight * jnp.where(sea & (p_ice >= 0.5), on_ice_weight, 1.0)
            if on_ice_weight == 0.0:
                use = use & ~(sea & (p_ice >= 0.5))
        term = masked_huber_loss(outputs[head], batch["fb_index"], batch["fb_weight"], batch["fb_value"],
                                 batch["fb_sigma"], use, delta=cfg.freeboard_huber_delta,
                                 sigma_floor=cfg.freeboard_sigma_floor, point_weight=point_weight)
        metrics[head] = term
        metrics[head + "_points"] = jnp.sum(use).astype(jnp.float32)
        if head + UNCERTAINTY_SUFFIX in outputs:
            mean = jax.lax.stop_gradient(footprint_mean(outputs[head], batch["fb_index"], batch["fb_weight"]))
            sigma = footprint_mean(outputs[head + UNCERTAINTY_SUFFIX], batch["fb_index"], batch["fb_weight"])
            nll = gaussian_nll(mean - batch["fb_value"], sigma, batch["fb_sigma"], use)
            metrics[head + "_nll"] = nll
            term = term + cfg.freeboard_nll_weight * nll
        total = total + term
    return total, metrics
