"""benchmarks/big_raw_scene.py: an enlarged raw scene is still a raw scene, with every value repeated."""

import importlib.util
import os

import numpy as np

from seaice_jax.data.scene import open_scene
from seaice_jax.synthetic.layout import synthesize_scene, write_scene

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _enlarge():
    spec = importlib.util.spec_from_file_location("big_raw_scene", os.path.join(ROOT, "benchmarks", "big_raw_scene.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.enlarge


def test_enlarged_raw_scene_reads_to_the_repeated_values(tmp_path):
    (tmp_path / "small").mkdir()
    small = write_scene(synthesize_scene("raw", "winter", (100, 150), 4), str(tmp_path / "small"))
    (tmp_path / "big").mkdir()
    big = _enlarge()(small, str(tmp_path / "big"), 3, noise_db=0.0)
    assert os.path.basename(big) == os.path.basename(small)  # the name carries the acquisition time
    a = open_scene(small, channels=("nersc_sar_primary", "distance_map", "btemp_18_7h"))
    b = open_scene(big, channels=("nersc_sar_primary", "distance_map", "btemp_18_7h"))

    def rep(x):
        return np.repeat(np.repeat(x, 3, 0), 3, 1)

    assert b.shape == (300, 450) and b.product == "raw"
    for name in ("sic", "sod", "floe", "valid", "ice_truth"):
        np.testing.assert_array_equal(getattr(b, name), rep(getattr(a, name)), err_msg=name)
    np.testing.assert_allclose(b.channels["nersc_sar_primary"], rep(a.channels["nersc_sar_primary"]), atol=1e-5)
    np.testing.assert_array_equal(b.channels["distance_map"], rep(a.channels["distance_map"]))
    np.testing.assert_allclose(b.region_conc, a.region_conc)
    # the 2 km grid grew with the scene: 2 x 3 cells became 6 x 9, each value repeated
    assert b.channels["btemp_18_7h"].shape == (300, 450)
    # the tie points span the same ground: first and last pixels at the same latitude / longitude
    from seaice_jax.data.geolocation import pixel_latlon

    def corners(s):
        return pixel_latlon(s.tie_points, [0, s.shape[0] - 1], [0, s.shape[1] - 1])

    np.testing.assert_allclose(np.array(corners(b)), np.array(corners(a)), atol=1e-6)
