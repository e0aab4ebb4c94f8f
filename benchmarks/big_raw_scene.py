"""A large raw AI4Arctic scene made cheaply from a small one, for measuring conversion memory.

Synthesizing a 10 000 x 10 000 raw scene directly takes many minutes; this enlarges a small
synthetic (or real) raw scene by an integer factor instead, variable by variable and in row blocks,
so the writer itself holds only a few tens of MB:

  python data_prep/synthesize.py --out small/ --scenes 1 --product raw --season winter --size 1000 1000
  python benchmarks/big_raw_scene.py --template small/S1B_EW_GRDM_...nc --factor 10 --out big/

The layout stays the raw layout of the template:
  * every variable on the SAR grid (sar_lines x sar_samples) and on the 2 km grid is enlarged by
    repeating each value factor x factor times; the two SAR channels get fresh Gaussian noise
    (--noise dB, NaN stays NaN) so they are not blocky; the polygon raster, distance map and pixel
    truth are repeated as they are, and polygon_codes is copied;
  * the tie points keep their number, latitude / longitude / incidence angle; their lines and
    samples are rescaled so the first and last tie point stay on the first and last line / sample
    (x (N' - 1) / (N - 1), rounded: real files hold whole line numbers);
  * attributes, fill values, dtypes and the zlib / shuffle settings are the template's. A variable
    whose template chunk is the whole array (netCDF's default for small arrays) gets netCDF's
    default chunking at the new size, i.e. what writing the big scene directly would give; explicit
    chunk sizes are kept.
The reader takes a raw scene's acquisition time from its file name, so --out is best a folder (the
file then keeps the template's name); the file is written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import netCDF4
import numpy as np

SAR_DIMS = ("sar_lines", "sar_samples")
GRID_2KM_DIMS = ("2km_grid_lines", "2km_grid_samples")
SAR_NOISE_VARS = ("nersc_sar_primary", "nersc_sar_secondary")
TIE_POSITION = {"sar_grid_line": "sar_lines", "sar_grid_sample": "sar_samples"}
BLOCK_BYTES = 64 << 20  # uncompressed bytes of one written row block


def _creation_args(var: netCDF4.Variable, enlarged: bool) -> dict:
    filters = var.filters() or {}
    args = {"zlib": bool(filters.get("zlib")), "shuffle": bool(filters.get("shuffle")),
            "complevel": int(filters.get("complevel") or 0), "fletcher32": bool(filters.get("fletcher32"))}
    chunking = var.chunking()
    if chunking == "contiguous":
        args["contiguous"] = not args["zlib"]
    elif not (enlarged and list(chunking) == list(var.shape)):
        args["chunksizes"] = list(chunking)
    if "_FillValue" in var.ncattrs():
        args["fill_value"] = var.getncattr("_FillValue")
    else:
        args["fill_value"] = False
    return args


def _row_block(var_out: netCDF4.Variable, factor: int, row_bytes: int) -> int:
    """Output rows per written block: a multiple of the factor and of the chunk rows, ~BLOCK_BYTES."""
    chunking = var_out.chunking()
    chunk_rows = 1 if chunking == "contiguous" else int(chunking[0])
    step = math.lcm(factor, chunk_rows)
    return max(step, (BLOCK_BYTES // max(row_bytes, 1)) // step * step)


def enlarge(template: str, out: str, factor: int, noise_db: float = 0.5, seed: int = 0) -> str:
    if factor < 1:
        raise ValueError(f"--factor must be >= 1, got {factor}")
    if os.path.isdir(out):
        out = os.path.join(out, os.path.basename(template))
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp")
    rng = np.random.default_rng(seed)
    src = netCDF4.Dataset(template)
    src.set_auto_maskandscale(False)  # copy the stored values, fill values included
    if "sar_grid_points" not in src.dimensions or any(d not in src.dimensions for d in SAR_DIMS):
        raise ValueError(f"{template}: not a raw AI4Arctic scene (no sar_grid_points / sar_lines / sar_samples)")
    big_dims = set(SAR_DIMS) | set(GRID_2KM_DIMS)
    new_size = {d: len(v) * (factor if d in big_dims else 1) for d, v in src.dimensions.items()}
    dst = netCDF4.Dataset(tmp, "w", format=src.data_model)
    try:
        dst.setncatts({a: src.getncattr(a) for a in src.ncattrs()})
        for d, v in src.dimensions.items():
            dst.createDimension(d, None if v.isunlimited() else new_size[d])
        for name, var in src.variables.items():
            enlarged = len(var.dimensions) == 2 and all(d in big_dims for d in var.dimensions)
            dtype = str if var.dtype is str else var.dtype
            args = _creation_args(var, enlarged) if dtype is not str else {}
            out_var = dst.createVariable(name, dtype, var.dimensions, **args)
            out_var.setncatts({a: var.getncattr(a) for a in var.ncattrs() if a != "_FillValue"})
            if not enlarged:
                values = var[...]
                if name in TIE_POSITION:
                    n_old = len(src.dimensions[TIE_POSITION[name]])
                    n_new = new_size[TIE_POSITION[name]]
                    values = np.round(np.asarray(values, np.float64) * (n_new - 1) / max(n_old - 1, 1))
                    values = values.astype(var.dtype)
                out_var[...] = values
                continue
            rows_out = _row_block(out_var, factor, var.shape[1] * factor * var.dtype.itemsize)
            rows_in = rows_out // factor
            for r0 in range(0, var.shape[0], rows_in):
                block = var[r0 : r0 + rows_in, :]
                block = np.repeat(np.repeat(block, factor, axis=0), factor, axis=1)
                if name in SAR_NOISE_VARS and noise_db > 0:
                    block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(noise_db)
                out_var[r0 * factor : r0 * factor + block.shape[0], :] = block
            print(f"{name}: {var.shape} -> {out_var.shape}", file=sys.stderr)
        dst.close()
        src.close()
        os.replace(tmp, out)
    finally:
        if dst.isopen():
            dst.close()
        if src.isopen():
            src.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", required=True, help="a small raw scene (.nc)")
    parser.add_argument("--factor", type=int, default=10, help="enlargement of each grid side")
    parser.add_argument("--out", required=True,
                        help="output folder (the file keeps the template's name) or .nc path")
    parser.add_argument("--noise", type=float, default=0.5, help="std (dB) of the noise added to the SAR channels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.template):
        print(f"error: big_raw_scene: --template {args.template}: file not found", file=sys.stderr)
        return 1
    try:
        path = enlarge(args.template, args.out, args.factor, args.noise, args.seed)
    except (OSError, ValueError, KeyError) as e:  # unreadable template, not the raw layout, unwritable --out
        print(f"error: big_raw_scene: {args.template}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"{path}: {os.path.getsize(path) / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
