"""ASPP study (method.md section 7, arXiv 2507.20507): atrous rates x input channels, on synthetic scenes.

    python launch/sweep.py --config configs/aspp_sweep.py --workdir runs/aspp_sweep
    python launch/sweep.py --config configs/aspp_sweep.py:full --workdir runs/aspp_full --devices-per-run 1

Grid: ASPP rates none, (1, 2, 3), (6, 12, 18), (12, 24, 36) crossed with SAR only (HH, HV, incidence
angle) vs SAR + the AMSR2 18.7 and 36.5 GHz channels (the ones the study found matter most): 8 points,
each a training run, then whole-scene prediction and evaluation on held-out scenes synthesized from a
seed the training set does not use. All points share one synthetic training set.

The default ('cpu') is sized for a laptop CPU: a few minutes per point, the whole sweep in well under
an hour. The bottleneck is 8 x 8 pixels there, so the large rates (12, 24, 36) reach mostly padding;
that is the study's point about large rates on small fields of view, exaggerated. `:full` gives the
study-scale values (each marked 'full:' below); run it on accelerators.
"""

import ml_collections

from seaice_jax.config import base_config

SAR = ["sar", "sar_incidenceangle"]  # HH, HV, incidence angle
SAR_AMSR2 = SAR + ["btemp_18_7h", "btemp_18_7v", "btemp_36_5h", "btemp_36_5v"]


def get_config(arg: str | None = None):
    full = arg == "full"
    if arg not in (None, "", "cpu", "full"):
        raise ValueError(f"configs/aspp_sweep.py: unknown argument {arg!r}; use cpu or full")

    b = base_config()
    s = b.data.synthetic
    s.train_scenes = 24 if full else 4  # full: 24 scenes of 1536 px
    s.size = (1536, 1536) if full else (256, 256)
    b.data.patch_size = 256 if full else 64  # full: 256 (the study's crops)
    b.data.stride = 128 if full else 64
    b.model.filters = (16, 32, 64, 64) if full else (8, 16, 32)  # full: the challenge baseline widths
    b.model.aspp_channels = 0  # ASPP branches as wide as the bottleneck
    b.model.aspp_pool_window = 0  # image-level branch: global mean (patches of one size)
    b.model.heads.sic = "classification"  # the study's three tasks, plus the binary ice head
    b.model.heads.sod = True
    b.model.heads.floe = True
    b.train.batch_size = 8
    b.train.num_steps = 3000 if full else 120  # full: 3000
    b.train.log_every = 20
    b.train.checkpoint_every = 500 if full else 120
    b.optim.warmup_steps = 100 if full else 10
    b.eval.tile = 256 if full else 64
    b.eval.stride = 192 if full else 48

    c = ml_collections.ConfigDict()
    c.base = b
    c.grid = {
        "model": {"aspp_rates": [[], [1, 2, 3], [6, 12, 18], [12, 24, 36]]},
        "data": {"channels": [SAR, SAR_AMSR2]},
    }
    c.order = ["model.aspp_rates", "data.channels"]  # point names and plot groups: rates first
    c.short_names = {"model": {"aspp_rates": "aspp"}, "data": {"channels": "inputs"}}
    c.value_labels = {"data": {"channels": ["sar", "sar+amsr2"]}}

    c.eval = e = ml_collections.ConfigDict()
    e.scenes = []  # held-out scene files or folders; empty = synthesize
    e.num_scenes = 6 if full else 2  # full: 6
    e.size = (1536, 1536) if full else (256, 256)
    e.seed = 20_000  # training uses synthetic.seed and seed + 10 000
    e.table_metrics = ["methods.als.pixel_accuracy", "methods.als.polygon_mae", "methods.als.ice_f1",
                       "challenge.sic_r2", "challenge.sod_f1", "challenge.floe_f1", "challenge.combined"]
    e.plot_metrics = ["methods.als.pixel_accuracy", "challenge.combined"]
    return c
