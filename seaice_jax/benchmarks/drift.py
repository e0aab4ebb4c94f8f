"""Speed and accuracy of the drift estimation on synthetic pairs with known motion.

`run(size, repeats, study_size)`:
  timing: one size x size pair at 80 m (1-day drift of ~10 km with rotation, divergence, shear and
    an opening lead; B on tie points offset from A's, so the geometric resampling is timed too):
    `estimate_drift` seconds for pattern matching alone and for both methods, the first call
    (compiles) and the median of `repeats` warm calls (wall and process CPU seconds), the grid
    size and the scores against the truth.
  accuracy: `synthetic.drift.synthetic_study` on study_size pairs: RMSE (m) of both methods as a
    function of the time gap (0.5, 1, 2 days) and of the deformation rate (0, 0.02, 0.05 / day),
    and at 1 day / 0.02 per day with weaker ice texture (contrast 0.5, 0.3, 0.2 of the default).
Synthetic texture is cleaner than real SAR (no melt ponds, no wind on leads, one sensor): the
errors here are a floor, not a forecast of real-pair errors.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import numpy as np

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import estimation as drift
from seaice_jax.drift import evaluation as drift_evaluation
from seaice_jax.synthetic import drift as known


def _timed(fn, repeats: int) -> dict:
    """Wall seconds of the first call (compiles) and the median warm call, and the warm call's
    process CPU seconds (on a shared machine wall time alone overstates the cost)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)

    def median(x):
        return float(statistics.median(x)) if x else float("nan")

    return {"first_call_s": first, "warm_s": median(wall), "warm_cpu_s": median(cpu)}


def timing(size: int = 5000, repeats: int = 1, config: drift.DriftConfig | None = None, seed: int = 0) -> dict:
    config = config or drift.DriftConfig()
    shape = (size, size)
    model = known.KnownDrift(translation_m_per_day=(6000.0, -8000.0), rotation_deg_per_day=0.5,
                                    divergence_per_day=0.01, shear_per_day=0.01, centre_px=(size / 2, size / 2),
                                    lead_opening_m_per_day=300.0, lead_offset_px=size / 5)
    start = time.perf_counter()
    hh_a, hh_b_on_a = known.synthetic_pair(shape, model, 1.0, seed=seed)
    synth_s = time.perf_counter() - start
    # B's scene frame starts 37 lines / 23 samples later than A's: tie points say so.
    big = known.synthetic_tie_points((size + 100, size + 100), config.pixel_spacing_m)
    lines = np.linspace(0, size - 1, 21)

    def tie_of(o):
        lat, lon = geo.pixel_latlon(big, lines[:, None] + o[0], lines[None, :] + o[1])
        return geo.TiePoints(lines, lines, lat, lon)

    tie_a, tie_b = tie_of((0, 0)), tie_of((37, 23))
    hh_b = np.full(shape, np.nan, np.float32)
    hh_b[: size - 37, : size - 23] = hh_b_on_a[37:, 23:]
    t0 = dt.datetime(2021, 3, 1, 6)
    t1 = t0 + dt.timedelta(days=1)
    out: dict = {"size": size, "synthesis_s": synth_s}
    for label, methods in (("pattern_matching", ("pattern_matching",)), ("both_methods", drift.METHODS)):
        result = {}

        def estimate(result=result, methods=methods):
            result.update(drift.estimate_drift(hh_a, tie_a, t0, hh_b, tie_b, t1, config, methods=methods))

        out[label] = _timed(estimate, repeats)
        truth = known.known_drift_field(model, 1.0, result["pattern_matching"].rows,
                                               result["pattern_matching"].cols, tie_a, t0)
        scores = drift_evaluation.evaluate_drift(result, truth)
        out[label]["scores"] = scores
    f = result["pattern_matching"]
    out["grid"] = list(f.valid.shape)
    return out


def accuracy(study_size: int = 640, config: drift.DriftConfig | None = None) -> list[dict]:
    config = config or drift.DriftConfig(coarse_factor=4, coarse_template_km=6.4, coarse_grid_step_km=3.2,
                                         max_drift_km=15.0)
    cases = [known.StudyCase(g, d) for g in (0.5, 1.0, 2.0) for d in (0.0, 0.02, 0.05)]
    cases += [known.StudyCase(1.0, 0.02, contrast=c) for c in (0.5, 0.3, 0.2)]  # weaker texture
    return known.synthetic_study(cases, shape=(study_size, study_size), config=config,
                                            speed_m_per_day=5000.0)


def run(size: int = 5000, repeats: int = 1, study_size: int = 640) -> dict:
    return {"timing": timing(size, repeats), "accuracy": accuracy(study_size)}


if __name__ == "__main__":
    import json
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(json.dumps(run(size), indent=1, default=float))
