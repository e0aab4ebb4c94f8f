"""Whole-scene inference with the latest checkpoint of a training workdir.

  python launch/infer.py --workdir DIR --scenes FILE_OR_FOLDER [...] --out OUTDIR [--png] [--submission FILE]

Writes OUTDIR/<scene name>_pred.nc per scene (and <scene name>_quicklook.png with --png); with
--submission, the challenge upload NetCDF. A folder stands for its *.nc scene files.
Logic: seaice_jax.inference.predict_files.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints/)")
    parser.add_argument("--scenes", required=True, nargs="+", help="scene files or folders of them")
    parser.add_argument("--out", required=True, help="folder for the <scene>_pred.nc files")
    parser.add_argument("--png", action="store_true", help="also write <scene>_quicklook.png")
    parser.add_argument("--submission", default=None, help="also write the challenge upload file here")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: config.eval.tile)")
    parser.add_argument("--stride", type=int, default=None, help="tile step (default: config.eval.stride)")
    parser.add_argument("--batch_size", type=int, default=None, help="tiles per call (default: config.eval.batch_size)")
    args = parser.parse_args(argv)

    from seaice_jax.inference import predict_files  # after parsing: --help needs no JAX

    try:
        written = predict_files(args.workdir, args.scenes, args.out, png=args.png, submission=args.submission,
                                tile=args.tile, stride=args.stride, batch_size=args.batch_size)
    except (ValueError, OSError) as e:  # SceneError is a ValueError, a missing checkpoint an OSError
        print("infer: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import prepare_process

    prepare_process()
    sys.exit(main())
