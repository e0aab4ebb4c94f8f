"""Score drift vectors against a known (synthetic) truth; writes JSON.

  python launch/evaluate_drift.py --drift DRIFT.nc --truth TRUTH.nc --json OUT.json [--truth-method truth]
  python launch/evaluate_drift.py --drift DRIFT.nc --truth D --json OUT.json   (D: synthesize.py --sequence folder)

Both files are drift NetCDF files (seaice_jax.drift.io); the truth is the method `--truth-method` of
TRUTH.nc (default: its first), interpolated onto the drift grid of the same scene A. With a sequence
folder, the truth is the one of the pair in DRIFT.nc (found by the scenes' times) and each method's entry
also says the pair, its gap (days) and the drift's deformation (1/day). The JSON holds
{method: {rmse_m, valid_fraction, ...}} for every method in DRIFT.nc. Logic: seaice_jax.drift.evaluation
(and seaice_jax.synthetic.sequence for a sequence folder).
"""

from __future__ import annotations

import json
import os
import sys

from seaice_jax import cli
from seaice_jax.drift import evaluation as drift_evaluation
from seaice_jax.drift import io as drift_io


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drift", required=True, help="drift NetCDF (launch/drift.py output)")
    parser.add_argument("--truth", required=True,
                        help="drift NetCDF holding the true displacement, or a synthesize.py --sequence folder")
    parser.add_argument("--json", required=True, help="where to write the results JSON")
    parser.add_argument("--truth-method", default=None, help="method name inside the truth file")
    args = parser.parse_args(argv)
    try:
        from seaice_jax.output_paths import check_output_file

        check_output_file(args.json, "--json")  # before the work, not after it
        estimates = drift_io.read_drift(args.drift)
        if os.path.isdir(args.truth):
            from seaice_jax.synthetic.sequence import pair_truth
            truth, info = pair_truth(args.truth, next(iter(estimates.values())))
        else:
            truths = drift_io.read_drift(args.truth)
            name = args.truth_method or next(iter(truths))
            if name not in truths:
                raise ValueError(f"{args.truth}: no method {name!r} (has {', '.join(truths)})")
            truth, info = truths[name], {}
        results = drift_evaluation.evaluate_drift(estimates, truth)
        for r in results.values():
            r.update(info)
    except (ValueError, OSError) as e:
        return cli.fail(f"evaluate_drift: {e}")
    try:
        from seaice_jax import fileio

        fileio.write_json(args.json, results, indent=2, sort_keys=True)
    except OSError as e:  # fileio.WriteError: "disk full writing X", ...
        return cli.fail(f"evaluate_drift: {e}")
    print(json.dumps({m: {"rmse_m": round(r["rmse_m"], 1), "valid_fraction": round(r["valid_fraction"], 3)}
                      for m, r in results.items()}))
    return 0


if __name__ == "__main__":
    from seaice_jax.interrupts import run_main
    from seaice_jax.runtime import setup

    setup(cpu_devices=False)  # the persistent compilation cache (the device count as it was)
    sys.exit(run_main(main))
