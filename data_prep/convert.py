"""AI4Arctic NetCDF scenes (files or folders) -> ArrayRecord shards of training patches.

  python data_prep/convert.py --input scenes/ --output shards/ --patch-size 256 --workers 2
  python data_prep/convert.py --input scenes/ --altimetry granules/ --output shards/ [--max-time-gap-h 6]

Inputs: folders or files of AI4Arctic scenes in the real layouts (raw, ready-to-train, the RTT test
split's `_prep.nc` with its `_prep_reference.nc` beside it) or this project's synthetic scenes.
By default every patch stores the 24 standard channels and the derived ones (latitude, sin / cos of
longitude, month and day of year), so training can select any of them by name. An output folder
holds shards of one set of patch settings: another set is refused before anything is written.
With `--altimetry`, every altimeter granule in the folders (ICESat-2 ATL10 / ATL07, CryoSat-2, Sentinel-3;
indexed once by time span and region, cached as `altimetry_index.json` beside the shards) that can
overlap a scene in time and place is collocated with it: the freeboard points that fall in each patch go
into its record (`--max-points` per patch) and all of the scene's points into `<scene>.altimetry.npz`,
with the counts of points read, collocated, outside, on land and refused in the scene's sidecar.
Flags take hyphens or underscores (`--patch-size`, `--patch_size`).
"""

from __future__ import annotations

import sys

from seaice_jax import cli
from seaice_jax.data import channels as ch
from seaice_jax.data.scene_types import SceneError
from seaice_jax.data.shards import PatchSpec, convert_scenes
from seaice_jax.fileio import WriteError


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", nargs="+", required=True, help="scene files or folders of *.nc")
    parser.add_argument("--output", required=True, help="folder for shards, manifest.json, normalisation.json")
    parser.add_argument(*cli.flag_names("patch-size"), type=int, default=256)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--downsample", type=int, default=1, help="block-average factor before cutting")
    parser.add_argument(*cli.flag_names("max-regions"), type=int, default=64, help="region slots kept per patch")
    parser.add_argument("--channels", nargs="+", default=["stored"],
                        help="channel names or groups (sar, amsr2, all = the 24 standard, derived, stored = both)")
    parser.add_argument("--workers", type=cli.whole(1), default=1)
    parser.add_argument(*cli.flag_names("shard-index"), type=cli.whole(0), default=0)
    parser.add_argument(*cli.flag_names("num-shards"), type=cli.whole(1), default=1)
    parser.add_argument("--strict", action="store_true",
                        help="a chart code the rules cannot use is an error (default: a warning line)")
    parser.add_argument("--altimetry", nargs="+", default=None,
                        help="folders (or files) of altimeter granules to collocate with the scenes")
    parser.add_argument(*cli.flag_names("max-time-gap-h"), dest="max_time_gap_h", type=cli.real(above=0.0),
                        default=6.0,
                        help="altimeter points within this many hours of the SAR start (default 6)")
    parser.add_argument(*cli.flag_names("max-points"), dest="max_points", type=cli.whole(1), default=2048,
                        help="altimeter points kept per patch (default 2048; more: an evenly spaced subset)")
    args = parser.parse_args(argv)
    try:
        altimetry = None
        spec = PatchSpec(args.patch_size, args.stride, args.downsample, args.max_regions,
                         ch.resolve_channels(args.channels), max_points=args.max_points if args.altimetry else 0,
                         max_time_gap_h=args.max_time_gap_h if args.altimetry else 0.0)
        if args.altimetry:
            import os

            from seaice_jax.data.shards import ALTIMETRY_INDEX, check_output
            from seaice_jax.elevation.collocation import SceneAltimetry

            check_output(args.output, spec)  # before the index is built (minutes for many granules)
            os.makedirs(args.output, exist_ok=True)
            altimetry = SceneAltimetry(args.altimetry, max_time_gap_h=args.max_time_gap_h,
                                       index_cache=os.path.join(args.output, ALTIMETRY_INDEX),
                                       progress=lambda line: print(line, file=sys.stderr, flush=True))
        done, errors = convert_scenes(args.input, args.output, spec, workers=args.workers,
                                      shard_index=args.shard_index, num_shards=args.num_shards,
                                      strict=args.strict, altimetry=altimetry)
    except WriteError as e:  # a full disk: "disk full writing X"; nothing temporary is left
        return cli.fail(e)
    except (SceneError, ValueError, OSError) as e:
        return cli.fail(e, cli.EXIT_USAGE)
    print(f"converted {len(done)} scene(s), {sum(d['num_patches'] for d in done)} patches -> {args.output}")
    if args.altimetry:
        got = [d["altimetry"] for d in done if "altimetry" in d]
        refused = sum(sum(a["refused"].values()) for a in got)
        print(f"altimetry: {sum(a['points_read'] for a in got)} points read, {sum(a['collocated'] for a in got)} "
              f"collocated, {sum(a['outside'] + a['outside_time_window'] for a in got)} outside the scenes or their "
              f"time window, {sum(a['on_land'] for a in got)} on land, {refused} refused (per scene: <scene>.json)")
    for err in errors:
        cli.fail(err)
    return cli.EXIT_FAILED if errors else 0


if __name__ == "__main__":
    from seaice_jax.interrupts import run_main

    sys.exit(run_main(main))
