"""On-device batch preparation: compact patches -> training batch, inside the jitted step.

`prepare_batch_on_device(batch, key, layout=..., channels=...)` brings the 2 km cells to the patch grid
with the reader's cell-centred interpolation (cells.upsample_window, jax path), casts the float16 SAR
channels, and applies per example a random flip / 90-degree rotation drawn from `key`, the same on every
spatial field. Pure function of (batch, key): call it first thing in the train step.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax.data import cells as cl
from seaice_jax.data import compact
from seaice_jax.data import points as pts

SPATIAL_FIELDS = ("inputs", "sic", "sod", "floe", "region_ids", "valid", "ice_truth")


def _dihedral_table() -> np.ndarray:
    """[2, 2, 4, 3] (transpose, flip rows, flip cols) equal to host flip_h, flip_w, rot90(k).

    Found by matching on a 3 x 3 array, so the device transform is the host's by construction.
    """
    a = np.arange(9).reshape(3, 3)
    table = np.zeros((2, 2, 4, 3), np.int32)
    for fh, fw, k in itertools.product((0, 1), (0, 1), range(4)):
        want = np.rot90(a[::-1] if fh else a, 0)
        want = np.rot90(want[:, ::-1] if fw else want, k)
        for t, fr, fc in itertools.product((0, 1), repeat=3):
            b = a.T if t else a
            b = b[::-1] if fr else b
            b = b[:, ::-1] if fc else b
            if np.array_equal(b, want):
                table[fh, fw, k] = (t, fr, fc)
                break
    return table


DIHEDRAL = _dihedral_table()


def flip_rotate(x: jax.Array, flip_h, flip_w, quarter_turns) -> jax.Array:
    """One example [P, P, ...]: the host's flip_rotate (flip rows, flip cols, rot90) with traced args."""
    t, fr, fc = jnp.asarray(DIHEDRAL)[flip_h.astype(jnp.int32), flip_w.astype(jnp.int32),
                                       quarter_turns.astype(jnp.int32)]
    x = jnp.where(t > 0, jnp.swapaxes(x, 0, 1), x)
    x = jnp.where(fr > 0, x[::-1], x)
    return jnp.where(fc > 0, x[:, ::-1], x)


def random_flip_rotate(batch: dict, key: jax.Array, fields: Sequence[str] = SPATIAL_FIELDS) -> dict:
    """Per example a uniform flip / rotation (2 x 2 x 4 draws as the host does), on every field; the
    altimeter points' pixel coordinates (`fb_pixel`) move with the pixels."""
    n = batch[fields[0]].shape[0]
    k1, k2, k3 = jax.random.split(key, 3)
    fh = jax.random.randint(k1, (n,), 0, 2)
    fw = jax.random.randint(k2, (n,), 0, 2)
    k = jax.random.randint(k3, (n,), 0, 4)
    out = dict(batch)
    for name in fields:
        if name in batch:
            out[name] = jax.vmap(flip_rotate)(batch[name], fh, fw, k)
    if "fb_pixel" in batch:
        p = batch[fields[0]].shape[1]
        t, fr, fc = (jnp.asarray(DIHEDRAL)[fh, fw, k][:, i] for i in range(3))
        out["fb_pixel"] = pts.dihedral_pixels(batch["fb_pixel"].astype(jnp.int32), t[:, None, None],
                                              fr[:, None, None], fc[:, None, None], p)
    return out


def upsample_cells(batch: dict, layout: compact.Layout, names: Sequence[str]) -> jax.Array:
    """The named 2 km channels of a compact batch on the patch grid. float32 [B, P, P, len(names)]."""
    idx = [layout.cell_channels.index(n) for n in names]
    p = layout.patch_size

    def one(cells, pixel_origin, cell_origin, grid_cells, f):
        return cl.upsample_window(cells[..., idx], pixel_origin[0], pixel_origin[1], (p, p), f, layout.downsample,
                                  cell_origin=(cell_origin[0], cell_origin[1]),
                                  grid_cells=(grid_cells[0], grid_cells[1]), xp=jnp)

    return jax.vmap(one)(batch["cells"], batch["pixel_origin"], batch["cell_origin"], batch["grid_cells"],
                         batch["pixels_per_cell"])


def expand_batch(batch: dict, layout: compact.Layout, channels: Sequence[str]) -> dict:
    """Compact batch -> training fields (inputs float32 in `channels` order, int32 ids, bool validity).
    Point channels (points.POINT_CHANNELS) are left out of `inputs` (`points.add_point_inputs` makes
    them); the altimeter point fields pass through."""
    cell_names = [n for n in channels if n in layout.cell_channels]
    up = upsample_cells(batch, layout, cell_names) if cell_names else None
    planes = []
    for n in channels:
        if n in pts.POINT_CHANNELS:
            if not layout.max_points:
                raise ValueError(f"channel {n!r} needs shards converted with altimetry (--altimetry)")
            continue
        if n in layout.sar_channels:
            planes.append(batch["sar"][..., layout.sar_channels.index(n)].astype(jnp.float32))
        elif n in layout.cell_channels:
            planes.append(up[..., cell_names.index(n)])
        else:
            raise ValueError(f"channel {n!r} is not in the shards ({', '.join(layout.channels)})")
    return {
        "inputs": jnp.stack(planes, -1),
        "sic": batch["sic"], "sod": batch["sod"], "floe": batch["floe"],
        "region_ids": batch["region_ids"].astype(jnp.int32),
        "region_conc": batch["region_conc"].astype(jnp.float32),
        "valid": batch["valid"] > 0,
        "ice_truth": batch["ice_truth"],
    } | {k: batch[k] for k in pts.POINT_FIELDS if k in batch}


def prepare_batch_on_device(batch: dict, key: jax.Array | None, *, layout: compact.Layout,
                            channels: Sequence[str], augment: bool = True,
                            points: pts.PointOptions | None = None) -> dict:
    """Compact batch (pipeline expand='device') -> the batch losses.total_loss and the model take.

    key: a jax.random key (e.g. fold_in(base_key, step)); None or augment=False: no flips/rotations.
    With altimeter points in the batch, tracks are hidden at random (`points`) and the point channels
    rasterized from the visible ones (points.add_point_inputs).
    """
    out = expand_batch(batch, layout, channels)
    if augment and key is not None:
        out = random_flip_rotate(out, key)
    return with_point_inputs(out, key, channels, points)


def with_point_inputs(batch: dict, key: jax.Array | None, channels: Sequence[str],
                      points: pts.PointOptions | None = None) -> dict:
    """`points.add_point_inputs` on a batch whose point fields are in their final orientation (a batch
    without point fields is returned as it is). key None: every track hidden (the SAR alone)."""
    if "fb_pixel" not in batch:
        return batch
    opts = points or pts.PointOptions()
    if key is None:
        opts = dataclasses.replace(opts, all_hidden=1.0)
        key = jax.random.key(0)
    return pts.add_point_inputs(batch, jax.random.fold_in(key, 0x7001), channels, batch["inputs"].shape[1], opts)


def with_device_batches(step_fn, *, layout: compact.Layout, channels: Sequence[str], key: jax.Array,
                        augment: bool = True, points: pts.PointOptions | None = None):
    """step_fn(state, batch) -> step(state, compact_batch): prepares the batch on device first, with the
    augmentation key fold_in(key, state.step) (so a resumed run draws the same flips and hidden tracks)."""

    def step(state, compact_batch):
        batch = prepare_batch_on_device(compact_batch, jax.random.fold_in(key, state.step), layout=layout,
                                        channels=channels, augment=augment, points=points)
        return step_fn(state, batch)

    return step


def with_host_batches(step_fn, *, channels: Sequence[str], key: jax.Array, points: pts.PointOptions | None = None):
    """step_fn(state, batch) -> step(state, host_batch) for batches expanded (and flipped) on the host:
    only the altimeter point inputs are made here, with the key of the step."""

    def step(state, host_batch):
        return step_fn(state, with_point_inputs(host_batch, jax.random.fold_in(key, state.step), channels, points))

    return step
