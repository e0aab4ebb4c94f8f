"""convert.py says what it could not use: unknown SIGRID codes (warning, or error with --strict),
scenes without any SAR data, patch settings that cut nothing; and it refuses, in one line and before
writing anything, an output that is a file, cannot be written or holds shards cut otherwise."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tests.test_real_layout import RAW_NAME, write_raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "data_prep", "convert.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def raw_folder(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    write_raw(folder / RAW_NAME)  # holds CT 77 and SA 42, which no SIGRID table knows
    return folder


def test_unknown_codes_warn_in_one_line_and_in_the_sidecar(raw_folder, tmp_path):
    out = tmp_path / "out"
    proc = convert("--input", raw_folder, "--output", out, "--patch-size", "32", "--stride", "32")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {RAW_NAME}: unknown SIGRID codes CT=77 (1 polygon), SA=42 (1 polygon): 2 polygon(s), "
        "1200 pixel(s) affected, 1 polygon(s) without a concentration dropped from the regions"]
    with open(out / (RAW_NAME[:-3] + ".json")) as f:
        side = json.load(f)
    assert side["unusable"] == {"codes": {"CT=77": 1, "SA=42": 1}, "polygons": [19, 20], "pixels": 1200,
                                "unused_polygons": [19]}
    assert side["num_patches"] > 0


def test_strict_makes_unknown_codes_an_error_and_writes_nothing(raw_folder, tmp_path):
    out = tmp_path / "out"
    proc = convert("--input", raw_folder, "--output", out, "--patch-size", "32", "--strict")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {RAW_NAME}: unknown SIGRID codes CT=77")
    assert errors[0].endswith("(--strict)")
    assert not out.exists()  # nothing converted: no folder, no 0-patch manifest


def test_a_scene_without_sar_data_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    path = folder / RAW_NAME
    ds = write_raw(tmp_path / "full.nc")
    ds["nersc_sar_primary"][:] = np.nan
    ds.to_netcdf(path)
    out = tmp_path / "out"
    proc = convert("--input", folder, "--output", out, "--patch-size", "32")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {RAW_NAME}: no SAR data: 'nersc_sar_primary' is no-data (NaN) at every pixel"]
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--patch-size", "--stride"])
def test_zero_patch_size_or_stride_is_refused_up_front(raw_folder, tmp_path, flag):
    out = tmp_path / "out"
    proc = convert("--input", raw_folder, "--output", out, flag, "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {flag} must be a whole number >= 1, got 0"
    assert not out.exists()


def test_reader_refuses_all_no_data_rtt(tmp_path):
    from seaice_jax.data.scene import open_scene
    from seaice_jax.data.scene_types import SceneError
    from tests.test_real_layout import RTT_NAME, write_rtt

    path = tmp_path / RTT_NAME
    write_rtt(path)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds["nersc_sar_primary"][:] = 0.0
    other = tmp_path / ("2" + RTT_NAME[1:])
    ds.to_netcdf(other)
    with pytest.raises(SceneError, match=r"no SAR data: 'nersc_sar_primary' is no-data \(NaN or 0\)"):
        open_scene(str(other))


def cli_main(script="convert"):
    """data_prep/<script>.py's main, in this process (exit code and stderr without a subprocess)."""
    spec = importlib.util.spec_from_file_location(f"{script}_cli", os.path.join(ROOT, "data_prep", f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def convert_main():
    return cli_main("convert")


def snapshot(folder):
    """{name: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_other_patch_settings_into_a_converted_folder_are_refused_before_writing(raw_folder, tmp_path, capsys):
    main, out = convert_main(), tmp_path / "out"
    assert main(["--input", str(raw_folder), "--output", str(out), "--patch-size", "32", "--stride", "32"]) == 0
    before = snapshot(out)
    capsys.readouterr()
    # underscore spelling accepted; same scene, other settings: refused, the folder as it was
    code = main(["--input", str(raw_folder), "--output", str(out), "--patch_size", "48", "--stride", "32"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: --output {out}: holds shards cut with other patch settings (--patch-size 32 here, 48 asked); "
        "use a new folder or the same settings\n")
    assert snapshot(out) == before


def test_an_output_that_is_a_file_or_cannot_be_made_is_one_line(raw_folder, tmp_path, capsys):
    main = convert_main()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["--input", str(raw_folder), "--output", str(a_file), "--patch-size", "32"]) == 2
    assert capsys.readouterr().err == f"error: --output {a_file}: is a file, not a folder\n"
    below = a_file / "out"
    assert main(["--input", str(raw_folder), "--output", str(below), "--patch-size", "32"]) == 2
    assert capsys.readouterr().err == f"error: --output {below}: cannot create the folder (Not a directory)\n"
    assert a_file.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["notes.txt", "scenes"]


def test_an_unwritable_output_folder_is_one_line_and_stays_empty(raw_folder, tmp_path, capsys, monkeypatch):
    from seaice_jax.data import shards

    def refused(*args, **kwargs):  # what a read-only folder gives (as root chmod would not refuse)
        raise PermissionError(13, "Permission denied")

    out = tmp_path / "readonly"
    out.mkdir()
    monkeypatch.setattr(shards.tempfile, "mkstemp", refused)
    assert convert_main()(["--input", str(raw_folder), "--output", str(out), "--patch-size", "32"]) == 2
    assert capsys.readouterr().err == f"error: --output {out}: cannot write in this folder (Permission denied)\n"
    assert os.listdir(out) == []


def test_synthesize_into_a_file_is_one_line_and_takes_underscore_flags(tmp_path, capsys):
    main = cli_main("synthesize")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    args = ["--scenes", "1", "--product", "rtt", "--season", "winter", "--size", "40", "40", "--analyst_error", "0"]
    assert main(["--out", str(a_file)] + args) == 2
    assert capsys.readouterr().err == f"error: --out {a_file}: is a file, not a folder\n"
    assert a_file.read_text() == "keep me"
