"""The official AutoICE challenge baseline network, for comparison (ai4arctic-format.md, peers).

U-Net [16, 32, 64, 64], (3x3 conv no bias, BatchNorm, ReLU) x 2, max-pool, bilinear x2 up (align
corners), 24 inputs (HH, HV, angle, distance, 14 AMSR2, 6 ERA5), SIC/SOD/FLOE classification heads,
256 x 256 crops, batch 8, Adam lr 1e-4. We add the binary ice head trained with the region loss.
"""

from seaice_jax.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.data.channels = ("all",)
    c.data.patch_size = 256
    c.data.stride = 256
    c.data.synthetic.size = (768, 768)
    c.model.filters = (16, 32, 64, 64)
    c.model.heads.sic = "classification"
    c.model.heads.sod = True
    c.model.heads.floe = True
    c.loss.weights.sod = 1.0  # baseline: plain summed cross-entropy
    c.loss.weights.floe = 1.0
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 0
    c.optim.weight_decay = 0.0
    c.train.batch_size = 8
    c.train.num_steps = 1000
    return c
