"""The start-up benchmark's process timing (seaice_jax/benchmarks/startup.py) on a stand-in child
process: marks found in stdout or stderr, failures and missing marks named."""

import sys

import pytest

from seaice_jax.benchmarks.startup import timed_process

CHILD = "import sys; print('x'); print('step 1/1 loss 0.5', file=sys.stderr); print('[1/1] a.nc'); sys.exit({code})"


def test_marks_are_timed_from_the_start(tmp_path):
    run = timed_process([sys.executable, "-c", CHILD.format(code=0)], str(tmp_path / "cache"),
                        {"step": "step 1/1 ", "file": "[1/1] "})
    assert 0 < run["step"] <= run["file"] <= run["wall_s"]
    assert run["lines"][0] == "x"


def test_a_failed_process_or_a_missing_mark_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="failed"):
        timed_process([sys.executable, "-c", CHILD.format(code=3)], str(tmp_path), {"step": "step 1/1 "})
    with pytest.raises(RuntimeError, match="printed no"):
        timed_process([sys.executable, "-c", CHILD.format(code=0)], str(tmp_path), {"other": "nothing "})
