"""Models: the baseline U-Net with optional ASPP bottleneck, built from a config."""

from seaice_jax.models.aspp import ASPP
from seaice_jax.models.unet import UNet, build_model

__all__ = ["ASPP", "UNet", "build_model"]
