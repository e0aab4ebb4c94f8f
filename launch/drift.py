"""Sea-ice drift between two scenes of the same area; writes CF NetCDF vectors (and a PNG).

  python launch/drift.py --scenes A.nc B.nc --out DRIFT.nc [--png [DRIFT.png]] [--channel nersc_sar_secondary]
      [--methods pattern_matching phase_correlation] [--grid-step-km 2] [--<any DriftConfig field> V]

Reads each scene's SAR channel, tie points and start time straight from the AI4Arctic file (RTT or
raw). HV (`nersc_sar_secondary`) is the default: Muckenhuber et al. 2016 found ~4x more vectors in HV.
Checked before the matching, each in one line: the numbers (the flag named), the output paths, both
scenes (readable, SAR data present, B later than A, the two overlapping). No valid vector at all is
an error too (exit 1, nothing written). Flags take hyphens or underscores (--grid-step-km).
Logic: seaice_jax.drift.estimation, seaice_jax.drift.io (files).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from seaice_jax import cli
from seaice_jax.drift import checks as drift_checks
from seaice_jax.drift import estimation as drift
from seaice_jax.drift import io as drift_io
from seaice_jax.output_paths import check_output_file, missing_folders, remove_if_empty

MIN_OVERLAP = 0.01  # fraction of A's data pixels that B must cover


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _type(field: str):
    integer, minimum, above, maximum = drift_checks.FIELD_RANGES[field]
    return cli.whole(minimum, maximum) if integer else cli.real(minimum, above=above, maximum=maximum)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, nargs=2, metavar=("A", "B"), help="the earlier and the later scene")
    parser.add_argument("--out", required=True, help="drift NetCDF to write")
    parser.add_argument("--png", nargs="?", const="", default=None, metavar="PNG",
                        help="also a PNG of the vectors over scene A's HH (at PNG; without it beside --out: DRIFT.png)")
    parser.add_argument("--channel", default="nersc_sar_secondary", help="SAR variable to match")
    parser.add_argument("--methods", nargs="+", default=list(drift.METHODS), choices=drift.METHODS)
    for field in dataclasses.fields(drift.DriftConfig):  # every number of the method, default: the library's
        if field.name == "rotations_deg":
            parser.add_argument(_flag(field.name), type=_type(field.name), nargs="+", default=None)
        else:
            parser.add_argument(_flag(field.name), type=_type(field.name), default=None,
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
    a_path, b_path = args.scenes
    try:  # ---- everything that can be refused, before the matching --------------------------------
        check_output_file(args.out, "--out")
        if args.png:
            check_output_file(args.png, "--png")
        if os.path.abspath(a_path) == os.path.abspath(b_path):
            raise ValueError(f"--scenes: {a_path} is given twice; drift needs two acquisitions")
        hh_a, tie_a, time_a = drift_io.read_scene_for_drift(a_path, args.channel)
        hh_b, tie_b, time_b = drift_io.read_scene_for_drift(b_path, args.channel)
        for path, image in ((a_path, hh_a), (b_path, hh_b)):
            if not (image == image).any():  # NaN everywhere: no data, or land
                raise ValueError(f"{path}: no SAR data in {args.channel} (no data or land at every pixel)")
        hours = (time_b - time_a).total_seconds() / 3600.0
        if hours <= 0:
            raise ValueError(
                f"--scenes: {b_path} starts {'at the same time as' if hours == 0 else f'{-hours:.1f} h before'} "
                f"{a_path} ({time_a:%Y-%m-%d %H:%M:%S}): drift needs the earlier scene first and a time between "
                "them" + (" (the same acquisition twice?)" if hours == 0 else ""))
        overrides.setdefault("pixel_spacing_m", drift_io.pixel_spacing_m(a_path))
        try:
            config = drift.DriftConfig(**overrides)
        except drift_checks.DriftConfigError as e:
            raise ValueError(f"{_flag(e.field)} {e.message}") from None
        from seaice_jax.drift.images import overlap_fraction

        overlap = overlap_fraction(hh_a == hh_a, tie_a, hh_b == hh_b, tie_b)
        if overlap < MIN_OVERLAP:
            raise ValueError(f"--scenes: {a_path} and {b_path} do not overlap ({100 * overlap:.1f} % of A's data "
                             f"has B's data under it, at least {100 * MIN_OVERLAP:g} % needed)")
    except (ValueError, OSError) as e:  # OutputError, DriftFileError and GeolocationError are ValueErrors
        return cli.fail(f"drift: {e}")

    fields = drift.estimate_drift(hh_a, tie_a, time_a, hh_b, tie_b, time_b, config, methods=tuple(args.methods))
    valid = {name: int(f.valid.sum()) for name, f in fields.items()}
    total = next(iter(fields.values())).valid.size
    if not any(valid.values()):
        best = max(float(f.mcc[f.mcc == f.mcc].max(initial=-1.0)) for f in fields.values())
        return cli.fail(f"drift: no valid vector: 0 of {total} grid points passed the quality mask in "
                        f"{', '.join(fields)} (best correlation peak {best:.2f}, --min-mcc {config.min_mcc:g}); "
                        "nothing written")
    created = missing_folders(args.out) + (missing_folders(args.png) if args.png else [])
    written = []
    try:
        drift_io.write_drift(args.out, fields, title=f"sea-ice drift {a_path} -> {b_path}")
        written.append(args.out)
        if args.png:
            background, _, _ = drift_io.read_scene_for_drift(a_path, "nersc_sar_primary")
            drift_io.plot_drift_png(args.png, background, fields[args.methods[0]])
    except (ValueError, OSError) as e:  # fileio.WriteError: "disk full writing X" and the like
        for path in written:  # the NetCDF and its PNG are written together or not at all
            os.remove(path)
        for folder in sorted(set(created), key=len, reverse=True):
            remove_if_empty(folder)
        return cli.fail(f"drift: {e}")
    for name, f in fields.items():
        print(f"{name}: {valid[name]} / {f.valid.size} vectors valid")
    return 0


if __name__ == "__main__":
    from seaice_jax.interrupts import run_main
    from seaice_jax.runtime import setup

    setup(cpu_devices=False)  # the persistent compilation cache (the device count as it was)
    sys.exit(run_main(main))
