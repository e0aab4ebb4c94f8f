"""The one cell-centred interpolation: equal to the reader's upsampling, on host and device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seaice_jax.data import cells
from seaice_jax.data import scene as scene_reader

SHAPES = [(25, 517, 433), (50, 1003, 777), (25, 50, 75), (50, 149, 51)]


def reference_upsampling(grid: np.ndarray, shape: tuple[int, int], f: int) -> np.ndarray:
    """Independent of the code under test: float64 np.interp between cell centres (pixel f i + (f-1)/2),
    constant beyond the outermost centres, rows then columns."""
    (h, w), (gh, gw) = shape, grid.shape
    rows = np.stack([np.interp(np.arange(h), f * np.arange(gh) + (f - 1) / 2, grid[:, j]) for j in range(gw)], 1)
    return np.stack([np.interp(np.arange(w), f * np.arange(gw) + (f - 1) / 2, rows[i]) for i in range(h)], 0)


@pytest.mark.parametrize("f,h,w", SHAPES)
def test_upsampling_equals_linear_interpolation_between_cell_centres(f, h, w):
    grid = np.random.default_rng(f * h).standard_normal((h // f, w // f)).astype(np.float32) * 3
    want = reference_upsampling(grid.astype(np.float64), (h, w), f)
    np.testing.assert_allclose(cells.upsample_2km(grid, (h, w), f), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("f,h,w", SHAPES)
def test_the_reader_upsamples_with_this_implementation(f, h, w):
    grid = np.random.default_rng(f + h).standard_normal((h // f, w // f)).astype(np.float32) * 3
    np.testing.assert_array_equal(cells.upsample_2km(grid, (h, w), f), scene_reader.upsample_2km(grid, (h, w), f))


@pytest.mark.parametrize("f,h,w", SHAPES)
def test_device_upsampling_equals_the_reader(f, h, w):
    grid = np.random.default_rng(f + w).standard_normal((h // f, w // f)).astype(np.float32) * 3
    want = scene_reader.upsample_2km(grid, (h, w), f)
    # eager: the same float32 operations, bit-equal
    np.testing.assert_array_equal(np.asarray(cells.upsample_2km(jnp.asarray(grid), (h, w), f, xp=jnp)), want)
    # jitted: XLA fuses each multiply-add (FMA, one rounding instead of two): within float32 ulps
    got = jax.jit(lambda g: cells.upsample_2km(g, (h, w), f, xp=jnp))(grid)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(grid).max())


@pytest.mark.parametrize("f", [25, 50])
def test_a_stored_window_of_cells_gives_the_whole_scenes_values(f):
    h, w, p = 7 * f + 3, 5 * f + 11, 64
    grid = np.random.default_rng(f).standard_normal((h // f, w // f, 2)).astype(np.float32)
    whole = cells.upsample_2km(grid, (h, w), f)
    m = cells.window_cells(p, 25)
    padded = np.pad(grid, ((0, max(0, m - grid.shape[0])), (0, max(0, m - grid.shape[1])), (0, 0)))
    fn = jax.jit(lambda win, r, c, o_r, o_c, ff: cells.upsample_window(
        win, r, c, (p, p), ff, cell_origin=(o_r, o_c), grid_cells=grid.shape[:2], xp=jnp))
    for r in (0, 1, f - 1, h - p):
        for c in (0, f // 2, w - p):
            o_r = cells.window_origin(r, p, grid.shape[0], m, f)
            o_c = cells.window_origin(c, p, grid.shape[1], m, f)
            win = padded[o_r : o_r + m, o_c : o_c + m]
            host = cells.upsample_window(win, r, c, (p, p), f, cell_origin=(o_r, o_c), grid_cells=grid.shape[:2])
            np.testing.assert_array_equal(host, whole[r : r + p, c : c + p])
            dev = fn(win, r, c, o_r, o_c, f)  # offsets and pixels per cell traced
            np.testing.assert_allclose(np.asarray(dev), host, rtol=0, atol=1e-6)


def test_downsampled_pixels_equal_the_block_mean_of_the_source_upsampling():
    """At downsample 2 (RTT, f = 25) pixel k is the midpoint of source pixels 2k, 2k+1. No such pair
    straddles a kink (cell centres are whole source pixels 25 i + 12; the clamped edges are flat), so
    the interpolation at the midpoint is the block mean of the reader's upsampling, up to rounding."""
    f, d = 25, 2
    grid = np.random.default_rng(0).standard_normal((150 // f, 125 // f)).astype(np.float32)
    fine = scene_reader.upsample_2km(grid, (150, 125), f)
    coarse = cells.upsample_2km(grid, (75, 62), f, downsample=d)
    block = fine[:150, :124].reshape(75, 2, 62, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse, block, rtol=0, atol=1e-6 * np.abs(grid).max())
