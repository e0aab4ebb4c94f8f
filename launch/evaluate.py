"""Score whole-scene predictions against their scenes; prints a markdown table and writes JSON.

  python launch/evaluate.py --pred OUTDIR --scenes FILE_OR_FOLDER [...] --json OUT.json

A folder stands for its *.nc files (prediction files *_pred.nc skipped). Flags take hyphens
(--min-region-pixels); the underscore form is accepted. Logic: seaice_jax.evaluation.
"""

from __future__ import annotations

import os
import sys

from seaice_jax import evaluation
from seaice_jax.cli import ArgumentParser, fail, flag_names, whole
from seaice_jax.data.scene import list_scene_files
from seaice_jax.output_paths import check_output_file, missing_folders, remove_if_empty


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, help="folder with <scene name>_pred.nc files")
    parser.add_argument("--scenes", required=True, nargs="+", help="scene files or folders of them")
    parser.add_argument("--json", required=True, help="where to write the results JSON")
    parser.add_argument(*flag_names("min-region-pixels"), dest="min_region_pixels", type=whole(0), default=100,
                        help="polygon metric region size cut")
    args = parser.parse_args(argv)
    try:
        check_output_file(args.json, "--json")
        if not os.path.isdir(args.pred):
            raise ValueError(f"{args.pred}: prediction folder not found")
        scenes = list_scene_files(args.scenes)
        results = evaluation.evaluate_predictions(args.pred, scenes, min_region_pixels=args.min_region_pixels)
    except (ValueError, OSError) as e:  # SceneError, PredictionError and OutputError are ValueErrors
        return fail(f"evaluate: {e}")
    created = missing_folders(args.json)
    try:
        evaluation.write_json(results, args.json)
    except OSError as e:
        for folder in reversed(created):
            remove_if_empty(folder)
        from seaice_jax.fileio import WriteError

        if isinstance(e, WriteError):  # "disk full writing X", "cannot write X (reason)"
            return fail(f"evaluate: --json {args.json}: {e}")
        return fail(f"evaluate: --json {args.json}: cannot write ({e.strerror or e})")
    print(evaluation.format_markdown(results), end="")
    return 0


if __name__ == "__main__":
    from seaice_jax.interrupts import run_main

    sys.exit(run_main(main))
