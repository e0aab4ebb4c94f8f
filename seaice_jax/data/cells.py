"""The one cell-centred interpolation of 2 km fields onto a SAR-grid window, for numpy and for jax.

Geometry (shared docs, ai4arctic-format.md): 2 km cell i covers the f source pixels starting at f*i
(f = 25 RTT, 50 raw), so its centre is source pixel f*i + (f-1)/2. A training grid downsampled by d has
pixel k centred on source pixel d*k + (d-1)/2. Pixel k therefore sits at cell coordinate

    u = (d*k + (d-1)/2 - (f-1)/2) / f = (2*d*k + d - f) / (2*f)   (a ratio of integers),

and its value is the linear interpolation between cells floor(u) and floor(u) + 1, separable over rows
and columns, clamped to the outer cells beyond the outer centres (also for the edge pixels past
floor(H / f) cells). The integer form gives weights that are bit-equal to the reader's float64
coordinates cast to float32 (`scene.upsample_2km`), and the same on host and device.

`upsample_window(grid, start, size, ...)` takes a window of the cell grid (`cell_origin` = index of its
first cell in the scene's grid, `grid_cells` = the scene's whole grid size, for the clamp) so a compact
patch that stores only the cells covering it gives the same values as upsampling the whole scene.
"""

from __future__ import annotations

import math

import numpy as np

CELL_LCM = 50  # every supported pixels-per-cell (25 RTT, 50 raw, and their divisors) divides this


def axis_weights(start, size: int, num_cells, pixels_per_cell, downsample: int = 1, xp=np):
    """Lower cell, upper cell and upper weight for pixels start .. start+size-1 of one axis.

    start, num_cells (cells of the scene's grid along this axis) and pixels_per_cell may be traced jax
    integers; pixels_per_cell must divide CELL_LCM. Returns (lower int32 [size], upper int32 [size],
    weight float32 [size]), cell indices in the scene's grid.
    """
    d = int(downsample)
    f = xp.asarray(pixels_per_cell, dtype=np.int32)
    if isinstance(pixels_per_cell, (int, np.integer)) and CELL_LCM % int(pixels_per_cell):
        raise ValueError(f"pixels_per_cell {pixels_per_cell} must divide {CELL_LCM}")
    k = xp.arange(size, dtype=np.int32) + xp.asarray(start, dtype=np.int32)
    num = 2 * d * k + (d - f)
    den = 2 * f
    lower = num // den  # floor division, also for the negative numerators of the first half cell
    # weight = (num mod den) / den from a table of r / (2 CELL_LCM) made once in numpy: the same float32
    # as the division (same rational, correctly rounded), and XLA would rewrite x / constant as
    # x * (1 / constant), which is not bit-equal.
    table = np.arange(2 * CELL_LCM, dtype=np.float32) / np.float32(2 * CELL_LCM)
    weight = xp.take(xp.asarray(table), (num - lower * den) * (CELL_LCM // f), axis=0)
    last = xp.asarray(num_cells, dtype=np.int32) - 1
    clamped = (lower < 0) | (lower >= last)
    weight = xp.where(clamped, np.float32(0.0), weight).astype(np.float32)
    lower = xp.clip(lower, 0, last).astype(np.int32)
    upper = xp.minimum(lower + 1, last).astype(np.int32)
    return lower, upper, weight


def cell_span(start: int, size: int, num_cells: int, pixels_per_cell: int, downsample: int = 1) -> tuple[int, int]:
    """(first, last + 1) scene cells that pixels start .. start+size-1 of one axis read."""
    lo, hi, _ = axis_weights(start, size, num_cells, pixels_per_cell, downsample)
    return int(lo.min()), int(hi.max()) + 1


def window_cells(size: int, pixels_per_cell: int, downsample: int = 1, margin: int = 1) -> int:
    """Cells along one axis a compact patch stores: enough for any window of `size` pixels, plus margin."""
    span = math.ceil(size * downsample / pixels_per_cell) + 2  # cells touched by an unaligned window
    return span + 2 * margin


def window_origin(start: int, size: int, num_cells: int, cells: int, pixels_per_cell: int,
                  downsample: int = 1) -> int:
    """First scene cell of a `cells`-long stored window that holds every cell pixels start.. read."""
    first, end = cell_span(start, size, num_cells, pixels_per_cell, downsample)
    if end - first > cells:
        raise ValueError(f"window of {size} px needs {end - first} cells, more than {cells}")
    centred = first - (cells - (end - first)) // 2
    return int(max(0, min(centred, num_cells - cells)))


def upsample_window(grid, row0, col0, shape: tuple[int, int], pixels_per_cell: int, downsample: int = 1, *,
                    cell_origin=(0, 0), grid_cells=None, xp=np):
    """2 km cells -> the SAR-grid window of `shape` pixels starting at pixel (row0, col0).

    grid: [h, w] or [h, w, C] float32 cells, grid[a, b] = scene cell (cell_origin[0] + a, cell_origin[1] + b);
    grid_cells: (rows, cols) of the scene's whole cell grid (default: the grid is the whole scene);
    row0, col0, cell_origin may be traced jax integers. Returns float32 [H, W] or [H, W, C].
    Rows first on the small grid, then columns: the reader's order of operations, so equal values.
    """
    grid = xp.asarray(grid, dtype=np.float32)
    n_rows, n_cols = (grid.shape[0], grid.shape[1]) if grid_cells is None else grid_cells
    height, width = shape
    r0, r1, wr = axis_weights(row0, height, n_rows, pixels_per_cell, downsample, xp)
    c0, c1, wc = axis_weights(col0, width, n_cols, pixels_per_cell, downsample, xp)
    r0, r1 = r0 - cell_origin[0], r1 - cell_origin[0]
    c0, c1 = c0 - cell_origin[1], c1 - cell_origin[1]
    extra = (None,) * (grid.ndim - 2)
    wr_ = wr[(slice(None), None) + extra]
    wc_ = wc[(None, slice(None)) + extra]
    by_rows = (np.float32(1.0) - wr_) * xp.take(grid, r0, axis=0) + wr_ * xp.take(grid, r1, axis=0)
    out = xp.take(by_rows, c0, axis=1) * (np.float32(1.0) - wc_)
    return out + wc_ * xp.take(by_rows, c1, axis=1)


def upsample_2km(grid: np.ndarray, shape: tuple[int, int], pixels_per_cell: int, downsample: int = 1,
                 xp=np):
    """Whole 2 km grid onto the whole (downsampled) SAR grid of `shape`: bilinear, cell-centred.

    With downsample 1 this equals `scene.upsample_2km(grid, shape, f, 'bilinear')` bit for bit.
    """
    return upsample_window(grid, 0, 0, shape, pixels_per_cell, downsample, xp=xp)
