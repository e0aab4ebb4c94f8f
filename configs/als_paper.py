"""The ALS authors' set-up (method.md 1, 3, 4) at the scale this machine allows.

Full scale (comments): RTT scenes at 80 m, 256 x 256 crops, HH, HV (dB clipped to [-30, 20] and scaled to
[0, 1]), incidence angle / 60 and AMSR2 36.5 GHz V; MSE region loss averaged over every (patch, polygon)
pair with a valid pixel (no minimum region size) + 0.01 * binary entropy H(p) (their older code used
p (1 - p): `--config.loss.entropy_form=p_one_minus_p`); whole-scene logits from 256 px windows,
stride 64, blur sigma 1.5, 2nd / 98th percentiles, k = 5.

  python launch/train.py --config configs/als_paper.py --workdir runs/als_paper
Here inputs are the standard-scaled channels of the same variables (a monotone rescaling).
"""

from seaice_jax.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.data.channels = ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle", "btemp_36_5v")
    c.data.patch_size = 256  # full scale: 256
    c.data.stride = 256
    c.data.synthetic.season = arg or "summer"  # fragmented summer scenes, as in the paper
    c.data.synthetic.size = (768, 768)  # full scale: ~5000 x 5000 RTT scenes
    c.data.synthetic.train_scenes = 8  # full scale: the 512 training scenes
    c.model.filters = (32, 64, 128, 128)
    c.loss.region_form = "mse"
    c.loss.entropy_weight = 0.01
    c.loss.entropy_form = "binary_entropy"  # the authors' current code
    c.loss.min_region_pixels = 1  # no minimum region size
    c.optim.lr = 1e-3
    c.train.batch_size = 8
    c.train.num_steps = 2000  # full scale: tens of thousands of steps on a GPU
    c.eval.tile = 256
    c.eval.stride = 64
    c.eval.blend = "average"  # their code: 256 px windows at stride 64, plainly averaged
    c.eval.land_mask = "sar_no_data"  # their code: land = isnan(HH)
    return c
