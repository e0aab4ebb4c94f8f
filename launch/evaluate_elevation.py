"""Freeboard maps of a model, with and without its track inputs, against quantile mapping, GP and
nearest-track baselines.

  python launch/evaluate_elevation.py --pred P --scenes D/*_prep.nc --tracks D/altimetry --json E.json

RMSE / MAE / bias / r against the synthetic truth (80 m, 100-400 m), on a SWOT swath, at held-out
tracks (leave one track out; the model is run again without the scored track, from the workdir the
prediction files name or --workdir), against the number of tracks per scene and the distance to the
nearest track, and the calibration of the predicted uncertainty on held-out points; writes E.json,
E.md (tables), E_rmse_vs_tracks.png and E_rmse_vs_distance.png. Logic: seaice_jax.elevation.evaluate.
Inputs are checked first (seaice_jax.elevation_checks: the output paths, the prediction folder,
readable altimeter files of a known product, predictions with `freeboard`); an evaluation in which no
point collocates with any scene exits 1 with the counts. Flags take hyphens or underscores.
"""

from __future__ import annotations

import sys

from seaice_jax import cli

METHODS = ("model", "model_sar_only", "quantile_mapping", "gp", "nearest")  # seaice_jax.elevation.evaluate


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, help="folder of <scene>_pred.nc files (launch/infer.py)")
    parser.add_argument("--scenes", required=True, nargs="+", help="scene files or folders")
    parser.add_argument("--tracks", required=True, nargs="+", help="altimeter files or folders")
    parser.add_argument("--swath", nargs="*", default=None, help="SWOT files or folders (also taken from --tracks)")
    parser.add_argument("--json", required=True, help="output JSON (E.md and E_rmse_vs_tracks.png beside it)")
    parser.add_argument("--kind", choices=("laser", "radar"), default="laser",
                        help="freeboard kind: laser (ICESat-2, truth freeboard_truth) or radar (CryoSat-2 / S3)")
    parser.add_argument("--calibrate", choices=("none", "offset", "scale_offset"), default="none",
                        help="per-scene calibration of the model map on the scene's (training) tracks")
    parser.add_argument("--max-time-gap-h", type=cli.real(above=0.0), default=6.0)
    parser.add_argument("--no-loo", action="store_true", help="skip leave-one-track-out")
    parser.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                        help="methods to score (default: all; without model / model_sar_only no prediction is needed)")
    parser.add_argument("--workdir", default=None,
                        help="the model's training workdir, for model_sar_only and the model run without each "
                             "held-out track (default: the one the prediction files name)")
    parser.add_argument("--seed", type=int, default=0, help="track subsets and GP subsampling")
    parser.add_argument("--drift-compensation", dest="drift_compensation", nargs="+", default=None,
                        choices=("none", "estimated", "true"),
                        help="also score tracks from the days around each SAR time moved to it (JSON by_compensation; "
                             "seaice_jax.elevation.compensation)")
    parser.add_argument("--drift", nargs="*", default=None, help="drift files (launch/drift.py) for 'estimated'")
    parser.add_argument("--truth-drift", default=None,
                        help="synthesize.py --sequence folder for 'true' (default: the scenes' folder)")
    args = parser.parse_args(argv)

    from seaice_jax.elevation.evaluate import evaluate, markdown_table, write_outputs
    from seaice_jax.elevation_checks import check_inputs, nothing_to_analyse

    try:  # issue 20: refused before any work, one line naming the flag or file
        inputs = check_inputs(args.pred, args.scenes, args.tracks, kind=args.kind, json_path=args.json,
                              drift_paths=args.drift, compensation=args.drift_compensation,
                              truth_drift=args.truth_drift)
    except (ValueError, OSError) as e:  # OutputError and SceneError are ValueErrors
        return cli.fail(f"evaluate_elevation: {e}")
    for line in inputs.warnings():
        print(line, file=sys.stderr, flush=True)
    try:
        result = evaluate(args.pred, args.scenes, args.tracks, args.swath, kind=args.kind,
                          max_time_gap_h=args.max_time_gap_h, calibrate=args.calibrate, loo=not args.no_loo,
                          seed=args.seed, workdir=args.workdir, methods=tuple(args.methods or METHODS),
                          progress=lambda s: print(s, file=sys.stderr, flush=True))
        if args.drift_compensation:  # issue 13 hook
            from seaice_jax.elevation import compensation
            true_flow = None
            if "true" in args.drift_compensation:  # the synthetic sequence's exact motion
                from seaice_jax.synthetic.sequence import find_true_flow
                true_flow = find_true_flow(args.scenes, args.truth_drift)
            result["by_compensation"] = compensation.evaluate_compensation(
                args.pred, args.scenes, args.tracks, args.drift_compensation, drift_paths=args.drift,
                true_flow=true_flow, kind=args.kind, seed=args.seed)
    except (ValueError, OSError) as e:
        return cli.fail(f"evaluate_elevation: {e}")
    empty = nothing_to_analyse(result, inputs, args.max_time_gap_h)
    if empty:
        return cli.fail(f"evaluate_elevation: {empty}")
    try:
        paths = write_outputs(result, args.json)
    except OSError as e:  # fileio.WriteError: "disk full writing X", ...
        return cli.fail(f"evaluate_elevation: {e}")
    print(markdown_table(result))
    if "by_compensation" in result:
        from seaice_jax.elevation import compensation
        print(compensation.compensation_table(result["by_compensation"]))
        paths["compensation_plot"] = compensation.plot_compensation(
            result["by_compensation"], args.json[: -len(".json")] + "_compensation.png"
            if args.json.endswith(".json") else args.json + "_compensation.png")
    for p in paths.values():
        if p:
            print(p)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    setup(traced_programs=True)  # the persistent compilation cache, and traced programs beside it
    from seaice_jax.interrupts import run_main

    sys.exit(run_main(main))
