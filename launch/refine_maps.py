"""Refine each scene's floe / lead map with the neighbouring acquisitions warped onto it along the drift.

  python launch/refine_maps.py --pred P --scenes D --drift DR_AB.nc DR_BC.nc --out R --json R.json [--png]
      [--warp none|estimated|true] [--fusion vote|mean_als|mean_logit] [--decay-days 2] [--max-gap-days 3]

P: the `<scene>_pred.nc` files of launch/infer.py for the scenes (a time series of one area, e.g.
synthesize.py --sequence); drift files from launch/drift.py for the pairs (any pairs: the motion is
interpolated in time over them). Writes R/<scene>_pred.nc (the same prediction layout, so
launch/evaluate.py scores it; plus `acquisitions` and `temporal_agreement` maps), R.json (agreement
between the acquisitions under each warp available, and with a pixel truth the own map against all
fusions and the `gain`) and R.md (tables); --png adds R/<scene>_temporal.png.
Flags take hyphens or underscores. Logic: seaice_jax.drift.temporal, seaice_jax.drift.refine.
"""

from __future__ import annotations

import os
import sys

from seaice_jax.cli import ArgumentParser, fail, flag_names, real, whole
from seaice_jax.output_paths import OutputError, check_output_file, check_output_folder


def main(argv: list[str] | None = None) -> int:
    from seaice_jax.drift import temporal

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, help="folder of <scene>_pred.nc files (launch/infer.py)")
    parser.add_argument("--scenes", required=True, nargs="+", help="scene files or folders (two or more)")
    parser.add_argument("--out", required=True, help="folder for the refined <scene>_pred.nc files")
    parser.add_argument("--json", required=True, help="results JSON (a markdown table beside it)")
    parser.add_argument("--drift", nargs="*", default=None, help="drift files (launch/drift.py) for --warp estimated")
    parser.add_argument(*flag_names("drift-method"), dest="drift_method", default="pattern_matching",
                        help="method inside the drift files (pattern_matching, phase_correlation; "
                             "truth in synthetic truth files)")
    parser.add_argument("--warp", default="estimated", choices=temporal.WARPS,
                        help="how the neighbours are moved onto each scene (default: estimated drift)")
    parser.add_argument(*flag_names("truth-drift"), dest="truth_drift", default=None,
                        help="synthesize.py --sequence folder (default: the scenes' folder, when it is one)")
    parser.add_argument("--fusion", default="vote", choices=temporal.FUSIONS,
                        help="vote (default: measured best), mean_als or mean_logit; the JSON scores all three")
    parser.add_argument(*flag_names("decay-days"), dest="decay_days", type=real(0.0), default=2.0,
                        help="a neighbour weighs exp(-|gap| / decay); 0: all weigh 1")
    parser.add_argument(*flag_names("max-gap-days"), dest="max_gap_days", type=real(above=0.0), default=3.0)
    parser.add_argument("--step", type=whole(1), default=16, help="pixels between exactly warped positions")
    parser.add_argument("--png", action="store_true", help="also write <scene>_temporal.png")
    args = parser.parse_args(argv)
    if args.warp == "estimated" and not args.drift:
        return fail("refine_maps: --warp estimated needs --drift files (launch/drift.py), or use --warp none / true")
    try:
        check_output_folder(args.out, "--out")
        check_output_file(args.json, "--json")
        if not os.path.isdir(args.pred):
            raise ValueError(f"{args.pred}: prediction folder not found")
    except (OutputError, ValueError) as e:
        return fail(f"refine_maps: {e}")

    from seaice_jax import fileio
    from seaice_jax.drift.refine import refine_scenes, summary_table

    try:
        # The synthetic sequence's true flow: required for --warp true, else scored when the scenes have one.
        from seaice_jax.synthetic.sequence import find_true_flow

        true_flow = find_true_flow(args.scenes, args.truth_drift, required=args.warp == "true")
        doc = refine_scenes(args.scenes, args.pred, args.out, warp=args.warp, drift_paths=args.drift,
                            drift_method=args.drift_method, true_flow=true_flow, fusion=args.fusion,
                            decay_days=args.decay_days, max_gap_days=args.max_gap_days, step=args.step,
                            png=args.png, progress=lambda line: print(line, file=sys.stderr, flush=True))
        table = summary_table(doc)
        fileio.write_json(args.json, doc, indent=1)
        md = (args.json[: -len(".json")] if args.json.endswith(".json") else args.json) + ".md"
        fileio.write_text(md, table + "\n")
    except (ValueError, OSError) as e:  # SceneError, PredictionError, drift file errors are ValueErrors
        return fail(f"refine_maps: {e}")
    print(table)
    for path in doc["written"] + [args.json, md]:
        print(path)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    from seaice_jax.interrupts import run_main

    setup()  # the persistent compilation cache
    sys.exit(run_main(main))
