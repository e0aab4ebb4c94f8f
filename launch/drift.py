"""Sea-ice drift between two scenes of the same area; writes CF NetCDF vectors (and a PNG).

  python launch/drift.py --scenes A.nc B.nc --out DRIFT.nc [--png [DRIFT.png]] [--channel nersc_sar_secondary]
      [--methods pattern_matching phase_correlation] [--grid_step_km 2] [--<any DriftConfig field> V]

Reads each scene's SAR channel, tie points and start time straight from the AI4Arctic file (RTT or
raw). HV (`nersc_sar_secondary`) is the default: Muckenhuber et al. 2016 found ~4x more vectors in HV.
Logic: seaice_jax.drift.estimation, seaice_jax.drift.io (files).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from seaice_jax.drift import estimation as drift
from seaice_jax.drift import io as drift_io


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, nargs=2, metavar=("A", "B"), help="the earlier and the later scene")
    parser.add_argument("--out", required=True, help="drift NetCDF to write")
    parser.add_argument("--png", nargs="?", const="", default=None, metavar="PNG",
                        help="also a PNG of the vectors over scene A's HH (at PNG; without it beside --out: DRIFT.png)")
    parser.add_argument("--channel", default="nersc_sar_secondary", help="SAR variable to match")
    parser.add_argument("--methods", nargs="+", default=list(drift.METHODS), choices=drift.METHODS)
    for field in dataclasses.fields(drift.DriftConfig):  # every number of the method, default: the library's
        if field.name == "rotations_deg":
            parser.add_argument("--rotations_deg", type=float, nargs="+", default=None)
        else:
            parser.add_argument(f"--{field.name}", type=int if field.type in ("int", int) else float, default=None,
                                help=f"default {field.default}" + (
                                    " (pixel_spacing_m: the file's, else 80 RTT / 40 raw)"
                                    if field.name == "pixel_spacing_m" else ""))
    args = parser.parse_args(argv)
    if args.png == "":
        args.png = (args.out[: -len(".nc")] if args.out.endswith(".nc") else args.out) + ".png"
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(drift.DriftConfig)
                 if getattr(args, f.name) is not None}
    if "rotations_deg" in overrides:
        overrides["rotations_deg"] = tuple(overrides["rotations_deg"])
    try:
        hh_a, tie_a, time_a = drift_io.read_scene_for_drift(args.scenes[0], args.channel)
        hh_b, tie_b, time_b = drift_io.read_scene_for_drift(args.scenes[1], args.channel)
        overrides.setdefault("pixel_spacing_m", drift_io.pixel_spacing_m(args.scenes[0]))
        config = drift.DriftConfig(**overrides)
        fields = drift.estimate_drift(hh_a, tie_a, time_a, hh_b, tie_b, time_b, config, methods=tuple(args.methods))
        drift_io.write_drift(args.out, fields, title=f"sea-ice drift {args.scenes[0]} -> {args.scenes[1]}")
        if args.png:
            background, _, _ = drift_io.read_scene_for_drift(args.scenes[0], "nersc_sar_primary")
            drift_io.plot_drift_png(args.png, background, fields[args.methods[0]])
    except (ValueError, OSError) as e:  # DriftFileError and GeolocationError are ValueErrors
        print(f"drift: {e}", file=sys.stderr)
        return 1
    for name, f in fields.items():
        print(f"{name}: {int(f.valid.sum())} / {f.valid.size} vectors valid")
    return 0


if __name__ == "__main__":
    from seaice_jax.runtime import setup

    setup(cpu_devices=False)  # the persistent compilation cache (the device count as it was)
    sys.exit(main())
