"""Whole-scene inference with the latest checkpoint of a training workdir.

  python launch/infer.py --workdir DIR --scenes FILE_OR_FOLDER [...] --out OUTDIR [--png] [--submission FILE]
  python launch/infer.py --workdir DIR --scenes ... --altimetry DIR [DIR ...] --out OUTDIR [--max-time-gap-h H]

Writes OUTDIR/<scene name>_pred.nc per scene (and <scene name>_quicklook.png with --png); with
--submission, the challenge upload NetCDF. A folder stands for its *.nc scene files. A freeboard model
that takes altimeter tracks as inputs gets each scene's collocated tracks from `--altimetry` (granules
within --max-time-gap-h of the SAR start, default the model's elevation.max_time_gap_h); without it, it
runs on the SAR alone. Progress goes to
stderr (one line per scene), the paths written to stdout. A scene that cannot be read is named and
skipped; the others go on and the exit code is 1 at the end (no submission is written then).
Flags take hyphens (--batch-size); the underscore form is accepted. Logic: seaice_jax.inference.predict_files.
"""

from __future__ import annotations

import os
import sys

from seaice_jax.cli import ArgumentParser, fail, flag_names, real, whole
from seaice_jax.output_paths import (
    OutputError,
    check_output_file,
    check_output_folder,
    missing_folders,
    remove_if_empty,
)


def track_inputs(args, progress):
    """The collocation of --altimetry with each scene (elevation.collocation.SceneAltimetry), or None."""
    if not args.altimetry:
        return None
    from seaice_jax.elevation.collocation import SceneAltimetry
    from seaice_jax.trained_model import load_config

    gap = args.max_time_gap_h
    if gap is None:
        elevation = load_config(args.workdir).get("elevation")
        gap = elevation.get("max_time_gap_h", 6.0) if elevation is not None else 6.0
    if not gap > 0:
        raise ValueError(f"--max-time-gap-h must be > 0 hours, got {gap}")
    return SceneAltimetry(args.altimetry, max_time_gap_h=gap, progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints/)")
    parser.add_argument("--scenes", required=True, nargs="+", help="scene files or folders of them")
    parser.add_argument("--out", required=True, help="folder for the <scene>_pred.nc files")
    parser.add_argument("--png", action="store_true", help="also write <scene>_quicklook.png")
    parser.add_argument("--submission", default=None, help="also write the challenge upload file here")
    parser.add_argument("--tile", type=whole(1), default=None, help="tile side (default: config.eval.tile)")
    parser.add_argument("--stride", type=whole(1), default=None, help="tile step (default: config.eval.stride)")
    parser.add_argument(*flag_names("batch-size"), dest="batch_size", type=whole(1), default=None,
                        help="tiles per call (default: config.eval.batch_size)")
    parser.add_argument("--altimetry", nargs="+", default=None,
                        help="altimeter granules (folders / files) whose tracks a freeboard model takes as inputs")
    parser.add_argument("--max-time-gap-h", type=real(above=0.0), default=None,
                        help="tracks within this many hours of the SAR start (default: the model's config)")
    args = parser.parse_args(argv)

    try:
        check_output_folder(args.out, "--out")
        if args.submission:
            check_output_file(args.submission, "--submission")
    except OutputError as e:
        return fail(f"infer: {e}")
    from seaice_jax.inference import predict_files  # after parsing: --help loads no model code

    created = missing_folders(os.path.join(args.out, "x")) + (
        missing_folders(args.submission) if args.submission else [])

    def tidy() -> None:  # folders this run made and left empty go again
        for folder in sorted(set(created), key=len, reverse=True):
            remove_if_empty(folder)

    errors: list[str] = []
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        altimetry = track_inputs(args, progress)
        written = predict_files(args.workdir, args.scenes, args.out, png=args.png, submission=args.submission,
                                tile=args.tile, stride=args.stride, batch_size=args.batch_size, errors=errors,
                                progress=progress, altimetry=altimetry)
    except (ValueError, OSError) as e:  # SceneError is a ValueError, a missing checkpoint an OSError
        tidy()
        return fail(f"infer: {e}")
    for path in written:
        print(path, flush=True)
    if errors:
        tidy()
        total = len(errors) + sum(p.endswith("_pred.nc") for p in written)
        skipped = " (no submission written)" if args.submission else ""
        return fail(f"infer: {len(errors)} of {total} scene(s) failed{skipped}: " + "; ".join(errors))
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process, setup

    prepare_process()
    from seaice_jax.interrupts import run_main

    setup(traced_programs=True)  # the persistent compilation cache, and traced programs beside it
    sys.exit(run_main(main))
