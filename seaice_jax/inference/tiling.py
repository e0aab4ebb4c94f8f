"""Tiling geometry of whole-scene prediction: tile origins, margins, the blending window.

A tile's outputs count only in its *core*, the tile minus a `margin` on every side, weighted there by
a sine-squared window; cores of neighbouring tiles overlap and blend. Pixels in the margin get weight
0 because their receptive field is cut by the tile edge: with margin >= the model's receptive radius
(`receptive_radius`), and tile origins on the model's pooling grid (multiples of 2^depth,
`tile_alignment`), every blended pixel equals what one tile covering the whole scene would give. The
tile grid starts at -margin, so scene-border pixels sit in a core too.
"""

from __future__ import annotations

import math

import numpy as np


def tile_alignment(model_cfg) -> int:
    """Pooling period of the U-Net, 2^depth: tile origins and sizes must be multiples of it so every
    tile pools on the same grid as the whole scene would (depth = len(filters) max-pools)."""
    return 2 ** len(model_cfg.filters)


def receptive_radius(model_cfg) -> int:
    """Conservative receptive-field radius (pixels) of the U-Net built from `model_cfg`.

    A 3x3 conv (dilation d) at level l adds d * 2^l; a 2x2 max-pool from level l adds 2^l; a x2
    upsampling to level l adds 2^(l+1) (bilinear reads the coarse neighbour). The ASPP image-pool
    branch with a global mean (aspp_pool_window 0) sees the whole tile: no finite radius (-1).
    """
    depth = len(model_cfg.filters)
    convs = model_cfg.convs_per_block
    radius = sum(convs * 2**level + 2**level for level in range(depth))  # encoder blocks + pools
    radius += convs * 2**depth  # bridge
    if model_cfg.aspp_rates:
        if model_cfg.aspp_pool_window == 0:
            return -1
        radius += max(max(model_cfg.aspp_rates), model_cfg.aspp_pool_window // 2) * 2**depth
    radius += sum(2 ** (level + 1) + convs * 2**level for level in range(depth))  # upsampling + decoder blocks
    return radius


def default_margin(tile: int, stride: int, align: int = 1) -> int:
    """Margin with half the core overlap: (tile - stride) / 4, rounded down to the pooling period."""
    return (tile - stride) // 4 // align * align


def check_tiling(tile: int, stride: int, margin: int, align: int = 1) -> None:
    """ValueError unless tile, stride and margin are multiples of `align` and the cores cover the scene."""
    for name, value in (("tile", tile), ("stride", stride), ("margin", margin)):
        if value < 0 or value % align:
            raise ValueError(f"inference: {name}={value} must be a non-negative multiple of {align} (2^depth)")
    if stride < 1 or tile - 2 * margin < stride:
        raise ValueError(f"inference: tile {tile} - 2 x margin {margin} must be >= stride {stride} >= 1 "
                         "so that tile cores cover the scene")


def tile_origins(length: int, tile: int, stride: int, margin: int) -> list[int]:
    """Tile starts along one axis: -margin, -margin + stride, ... until the cores reach `length`."""
    core = tile - 2 * margin
    count = max(0, math.ceil((length - core) / stride)) + 1
    return [-margin + i * stride for i in range(count)]


BLENDS = ("core", "average")  # config.eval.blend


def core_window(core: int, blend: str = "core") -> np.ndarray:
    """[core, core] blending weights: 'core' sine-squared, > 0 everywhere (half-pixel offset);
    'average' all ones (a plain mean of the overlapping tiles, as the ALS authors' code does)."""
    if blend not in BLENDS:
        raise ValueError(f"inference: blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if blend == "average":
        return np.ones((core, core), np.float32)
    w = np.sin(np.pi * (np.arange(core) + 0.5) / core) ** 2
    return np.outer(w, w).astype(np.float32)


def blend_margin(tile: int, stride: int, align: int, blend: str) -> int:
    """The margin a blend uses: `default_margin` for 'core', 0 for 'average' (whole tiles averaged)."""
    return 0 if blend == "average" else default_margin(tile, stride, align)
