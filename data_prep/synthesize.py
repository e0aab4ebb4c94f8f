"""Write synthetic AI4Arctic scenes (RTT or raw, in the real layouts) with pixel-level ice truth.

  python data_prep/synthesize.py --out DIR --scenes 8 --product rtt --season winter --size 1000 1000 --seed 0
  --altimetry all also writes freeboard truth and ICESat-2 / CryoSat-2 / Sentinel-3 tracks + a SWOT swath
  --sequence makes the scenes one ice field on consecutive days moved by a known drift (truth in OUT/drift_truth/)
  --split test writes RTT scenes as the real test split: <id>_prep.nc without charts + <id>_prep_reference.nc
Flags take hyphens or underscores (`--analyst-error`, `--analyst_error`).
"""

from __future__ import annotations

import os
import sys

from seaice_jax import cli
from seaice_jax.synthetic import write_synthetic_scenes


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the NetCDF files")
    parser.add_argument("--scenes", type=cli.whole(1), required=True, help="number of scenes")
    parser.add_argument("--product", choices=("rtt", "raw"), required=True)
    parser.add_argument("--season", choices=("summer", "winter"), required=True)
    parser.add_argument("--size", type=cli.whole(1), nargs=2, metavar=("H", "W"), required=True,
                        help="SAR pixels per scene")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(*cli.flag_names("analyst-error"), type=cli.real(0.0), default=0.0,
                        help="std of the error added to each polygon's ice fraction before coding CT")
    parser.add_argument("--service", choices=("cis", "dmi", "mixed"), default="mixed")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="test: RTT charts in a companion _prep_reference.nc, as the real test split")
    parser.add_argument("--altimetry", choices=("icesat2", "cryosat2", "sentinel3", "all"), default=None,
                        help="also write freeboard truth into the scenes and altimeter tracks + a SWOT swath "
                             "in the real layouts under OUT/altimetry/")
    parser.add_argument("--sequence", action="store_true",
                        help="the scenes are one ice field on consecutive days moved by a known drift; the true "
                             "drift goes to OUT/drift_truth/ (with --altimetry: tracks on other days too)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        return cli.fail(f"--out {args.out}: is a file, not a folder", cli.EXIT_USAGE)
    try:
        paths = write_synthetic_scenes(args.out, args.scenes, args.product, args.season,
                                       tuple(args.size), args.seed, service=args.service,
                                       analyst_error=args.analyst_error, split=args.split,
                                       altimetry=args.altimetry, sequence=args.sequence)
    except ValueError as e:
        return cli.fail(e, cli.EXIT_USAGE)
    except OSError as e:
        return cli.fail(f"--out {args.out}: {e.strerror or e}")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    from seaice_jax.interrupts import run_main

    sys.exit(run_main(main))
