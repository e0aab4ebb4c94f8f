"""The default experiment config; files in configs/ start from it and change what they study."""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # model init, shuffling and augmentation

    c.data = d = ml_collections.ConfigDict()
    d.shards = ""  # folder made by data_prep/convert.py; empty = synthesize scenes into the workdir
    d.val_scenes = ()  # NetCDF scenes for whole-scene evaluation (when d.shards is set)
    d.channels = ("sar", "sar_incidenceangle", "btemp_18_7h", "btemp_18_7v", "btemp_36_5h", "btemp_36_5v")
    d.patch_size = 128  # training patch side, pixels (after downsampling)
    d.stride = 128  # patch grid step when cutting shards
    d.downsample = 1  # block-average factor applied before cutting (MMSeaIce used 10 on 80 m data)
    d.max_regions = 64  # region slots per patch (largest regions kept)
    d.augment = True  # random flips and 90-degree rotations
    d.source = "shards"  # shards (grain reads compact patches) | device (scenes resident in device memory)
    d.expand = "device"  # shards only: upsample 2 km cells and augment in the jitted step (device) or in numpy (host)
    d.train_scenes = ()  # source=device: scene files / folders (empty: the synthetic training scenes)
    d.worker_count = 0  # grain multiprocess prefetch workers (0 = in-process)
    # Reading threads per process (0: one per core, at most 16) and batches read ahead. grain's own
    # defaults (16 threads, 500 batches ahead) kept 16 threads decoding for minutes after the start
    # on a 2-core machine, slowing the train step's tracing and compilation beside them.
    d.read_threads = 0
    d.prefetch_batches = 8
    # Altimeter points as inputs (channels freeboard_points / freeboard_mask, data/points.py): whole
    # tracks hidden from the input at random, and the freeboard loss taken on them (depth completion).
    d.track_dropout = 0.5  # probability that a track is hidden from an example's input
    d.all_tracks_hidden = 0.25  # probability that every track is (trains the SAR-only case)
    d.segment_dropout = 0.0  # probability that an along-track segment of a visible track is hidden
    d.segment_km = 3.0  # that segment's length
    d.synthetic = s = ml_collections.ConfigDict()
    s.train_scenes = 6
    s.val_scenes = 2
    s.product = "rtt"
    s.season = "winter"
    s.size = (384, 384)
    s.seed = 0

    c.model = m = ml_collections.ConfigDict()
    m.filters = (16, 32, 64, 64)  # encoder widths; depth = len(filters) - 1 pooling steps
    m.convs_per_block = 2
    m.norm = "batch"  # batch | group | none
    m.upsample = "bilinear"  # bilinear (align corners) | transpose
    m.aspp_rates = ()  # atrous rates of the ASPP bottleneck; empty = no ASPP
    m.aspp_channels = 0  # 0 = bottleneck width
    m.aspp_pool_window = 0  # image-level branch: 0 = global mean, >0 = local average pool window
    m.dtype = "float32"  # compute dtype; bfloat16 keeps float32 parameters
    m.point_context_px = ()  # window half-sizes (px) of the altimeter point context (models/point_context.py)
    m.heads = h = ml_collections.ConfigDict()
    h.ice = True  # binary ice logit trained with the region concentration loss
    h.sic = "none"  # none | regression | classification
    h.sod = False
    h.floe = False

    c.loss = ml_collections.ConfigDict()
    c.loss.region_form = "mse"  # mse (ALS authors) | bce (DLLP proportion loss)
    c.loss.region_weighting = "uniform"  # uniform | pixel_share
    c.loss.min_region_pixels = 16  # regions with fewer pixels in a patch are skipped
    c.loss.entropy_weight = 0.01  # lambda of the term that pushes pixels to 0 or 1 (ALS authors: 0.01)
    c.loss.sic_regression_target = "fraction"  # fraction (class / 10) | class_index (MMSeaIce: MSE on 0..10)
    c.loss.entropy_form = "p_one_minus_p"  # p_one_minus_p (ALS authors' older code) | binary_entropy (their current)
    c.loss.weights = ml_collections.ConfigDict()
    c.loss.weights.ice = 1.0
    c.loss.weights.sic = 1.0  # MMSeaIce: SIC 1, SOD 3, FLOE 3
    c.loss.weights.sod = 3.0
    c.loss.weights.floe = 3.0
    c.loss.weights.freeboard = 0.0  # the freeboard term (elevation configs; needs shards with altimetry)
    c.loss.freeboard_huber_delta = 0.3  # m: Huber of the footprint mean against each point
    c.loss.freeboard_sigma_floor = 0.02  # m: points weigh 1 / max(stated sigma, floor)^2
    c.loss.freeboard_nll_weight = 0.1  # Gaussian NLL of the predicted uncertainty (mean detached)
    # Weight of the points the product classes as lead / sea surface in the freeboard term (their
    # value is the sea surface, ~0, even where the class is wrong and ice lies under the footprint).
    c.loss.freeboard_lead_weight = 1.0
    # The same points where the ice head sees ice under the footprint (mean p_ice >= 0.5): most such
    # points are misclassed floes (their weight times freeboard_lead_weight). 1: as any lead point.
    c.loss.freeboard_lead_on_ice_weight = 1.0

    c.optim = o = ml_collections.ConfigDict()
    o.lr = 3e-3
    o.warmup_steps = 20
    o.final_lr_fraction = 0.05
    o.weight_decay = 1e-4
    o.clip_norm = 1.0
    o.b1 = 0.9
    o.b2 = 0.999

    c.train = t = ml_collections.ConfigDict()
    t.batch_size = 8  # global batch, split over every device of every host
    t.num_devices = 0  # 0 = every device; N = the first N (single-host experiments)
    t.num_steps = 300
    t.log_every = 20
    t.eval_every = 1000
    t.checkpoint_every = 100
    t.keep_checkpoints = 3

    c.eval = e = ml_collections.ConfigDict()
    e.tile = 256  # whole-scene inference tile
    e.stride = 64  # ALS authors: 256 px windows, stride 64, averaged
    e.batch_size = 8
    e.min_region_pixels = 100  # polygon metric (ALS authors)
    # Whole-scene inference options (seaice_jax.inference):
    e.blend = "core"  # "core": sine-squared window on tile cores; "average": whole tiles plainly averaged (ALS authors)
    # land mask: "distance_map": land = distance 0 (and chart land); "sar_no_data": land = HH no data (ALS authors)
    e.land_mask = "distance_map"
    # test-time augmentation: "none", "flips" (4 mirror images) or "d4" (with 90-degree rotations, 8),
    # outputs averaged (inference.predict.TTA_VIEWS); the prediction's work grows with the views
    e.tta = "none"
    return c


def freeboard_kinds(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The freeboard kinds the model predicts: `elevation.kinds`; configs written before it: the
    laser kind when `model.heads.freeboard` (their `elevation.kind`)."""
    e = config.get("elevation")
    if e is not None and e.get("kinds") is not None:
        return tuple(e.kinds)
    if config.model.heads.get("freeboard", False):
        return (e.get("kind", "laser") if e is not None else "laser",)
    return ()


def predicts_uncertainty(config: ml_collections.ConfigDict) -> bool:
    e = config.get("elevation")
    return bool(e is not None and e.get("uncertainty", False) and freeboard_kinds(config))
