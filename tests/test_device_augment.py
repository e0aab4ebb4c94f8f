"""Flips and rotations on device: the host's transform, per example, identical on every field."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax.data import device_augment, pipeline


def fields(base):
    return {
        "inputs": np.stack([base, 2 * base], -1).astype(np.float32),
        "sic": (base > 0).astype(np.uint8), "sod": (base > 0.5).astype(np.uint8),
        "floe": (base > -0.5).astype(np.uint8), "region_ids": (base > 0).astype(np.int32),
        "valid": base > -1, "ice_truth": (base > 0).astype(np.uint8),
        "region_conc": np.array([0.1, 0.9], np.float32),
    }


def test_each_device_transform_equals_the_hosts():
    patch = fields(np.random.default_rng(0).standard_normal((6, 6)))
    fn = jax.jit(device_augment.flip_rotate)
    for fh, fw, k in itertools.product((0, 1), (0, 1), range(4)):
        want = pipeline.flip_rotate(patch, bool(fh), bool(fw), k)
        for key in device_augment.SPATIAL_FIELDS:
            got = fn(jnp.asarray(patch[key]), jnp.int32(fh), jnp.int32(fw), jnp.int32(k))
            np.testing.assert_array_equal(np.asarray(got), want[key])


def test_random_flip_rotate_moves_every_field_together_per_example():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((16, 8, 8))
    batch = {k: np.stack([fields(b)[k] for b in base]) for k in fields(base[0])}
    out = jax.device_get(jax.jit(device_augment.random_flip_rotate)(batch, jax.random.key(3)))
    seen = set()
    for i in range(len(base)):
        x = out["inputs"][i, ..., 0]
        np.testing.assert_array_equal(out["inputs"][i, ..., 1], 2 * x)
        for key, f in (("sic", x > 0), ("sod", x > 0.5), ("floe", x > -0.5), ("region_ids", x > 0),
                       ("valid", x > -1), ("ice_truth", x > 0)):
            np.testing.assert_array_equal(out[key][i], f.astype(out[key].dtype))
        np.testing.assert_array_equal(out["region_conc"][i], batch["region_conc"][i])
        np.testing.assert_allclose(np.sort(x.ravel()), np.sort(base[i].ravel()), rtol=1e-6)
        # which of the 8 dihedral images this example got
        images = [np.rot90(m, k) for m in (base[i], base[i].T) for k in range(4)]
        seen.add(next(j for j, im in enumerate(images) if np.allclose(im, x, rtol=1e-6)))
    assert len(seen) > 3  # examples are transformed independently
    again = jax.device_get(jax.jit(device_augment.random_flip_rotate)(batch, jax.random.key(3)))
    np.testing.assert_array_equal(again["inputs"], out["inputs"])  # a key gives one batch
