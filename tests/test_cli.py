"""The shared command-line conventions."""

from seaice_jax import cli


def test_flag_names_both_spellings():
    assert cli.flag_names("patch-size") == ("--patch-size", "--patch_size")
    assert cli.flag_names("--batch_size") == ("--batch-size", "--batch_size")
    assert cli.flag_names("out") == ("--out",)


def test_absl_argv_renames_flags_not_values_nor_config_overrides():
    argv = ["prog", "--batch-size=4", "--max-size", "512", "--out=my-file.png",
            "--config.train.num_steps=3", "--config=configs/a-b.py", "positional-arg"]
    assert cli.absl_argv(argv) == ["prog", "--batch_size=4", "--max_size", "512", "--out=my-file.png",
                                   "--config.train.num_steps=3", "--config=configs/a-b.py", "positional-arg"]


def test_fail_prints_one_line(capsys):
    assert cli.fail("scene.nc: no variable\n 'HH'") == 1
    assert capsys.readouterr().err == "error: scene.nc: no variable 'HH'\n"


def test_own_logs_only_drops_other_libraries_info_not_their_warnings():
    import logging
    import os

    def record(path, level):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    orbax = os.path.join("site-packages", "orbax", "checkpoint", "checkpoint_manager.py")
    ours = os.path.join("repo", "seaice_jax", "train.py")
    assert not cli.own_logs_only(record(orbax, logging.INFO))
    assert cli.own_logs_only(record(orbax, logging.WARNING)) and cli.own_logs_only(record(ours, logging.INFO))
