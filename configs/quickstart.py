"""Quickstart: a few small synthetic winter scenes, trained on the CPU in a few minutes.

  python launch/train.py --config configs/quickstart.py --workdir runs/quickstart
  python launch/train.py --config configs/quickstart.py:summer --workdir runs/qs_summer

Besides the binary ice map it trains the chart heads (SIC classes, SOD, FLOE; loss weights 1 / 3 / 3
from the base config), so `launch/infer.py --submission` works on its workdir.
"""

from seaice_jax.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    if arg:  # season of the synthetic scenes
        c.data.synthetic.season = arg
    c.model.filters = (16, 32, 32)
    c.model.heads.sic = "classification"
    c.model.heads.sod = True
    c.model.heads.floe = True
    c.train.num_steps = 200
    c.train.eval_every = 200
    c.eval.stride = 128
    return c
