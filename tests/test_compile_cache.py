"""The persistent compilation cache (`compile_cache`, `runtime.setup`): where it lives, that a process
reads what others wrote (JAX's cache-hit counter, not a wall time), the off switches, an unwritable
folder, several writers at once, whole-file writes."""

import json
import os
import subprocess
import sys

import pytest

from seaice_jax import compile_cache
from seaice_jax.compile_cache import CacheSettings, cache_folder, check_writable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process that sets up as a launcher does and compiles two small functions.
CHILD = r"""
import json
from seaice_jax import compile_cache, runtime

settings = runtime.setup(cpu_devices=False)
import jax
import jax.numpy as jnp


@jax.jit
def f(x):
    for i in range(20):
        x = jnp.sin(x) * x + i
    return x


y = float(f(jnp.arange(8.0)).sum())
from jax._src import compilation_cache as cc  # which class JAX's cache is: ours writes whole files

print(json.dumps(dict(compile_cache.stats(), folder=settings.folder, y=y, cache=type(cc._cache).__name__)))
"""

SESSION_VARIABLES = (compile_cache.JAX_DIR_ENV, compile_cache.CACHE_DIR_ENV, compile_cache.NO_CACHE_ENV,
                     compile_cache.JAX_ENABLE_ENV, compile_cache.MIN_COMPILE_TIME_ENV,
                     compile_cache.MIN_ENTRY_SIZE_ENV)


def start_child(**env_changes) -> subprocess.Popen:
    """The child with the test session's cache variables replaced by env_changes; every function is
    cached (threshold 0), so the counters see the small ones too."""
    env = {k: v for k, v in os.environ.items() if k not in SESSION_VARIABLES}
    env.update({compile_cache.MIN_COMPILE_TIME_ENV: "0"}, **env_changes)
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[dict, list[str]]:
    """(the child's JSON line, its stderr lines); the child must succeed."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err.splitlines()


def entries(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith("-cache")) if os.path.isdir(folder) else []


def test_the_folder_is_jax_s_variable_then_ours_then_the_user_cache(tmp_path):
    assert cache_folder({}).folder == os.path.join(os.path.expanduser("~"), ".cache", "seaice-jax", "xla")
    assert cache_folder({"XDG_CACHE_HOME": "/c"}).folder == "/c/seaice-jax/xla"
    assert cache_folder({"SEAICE_JAX_CACHE_DIR": "/ours"}).folder == "/ours"
    both = {"SEAICE_JAX_CACHE_DIR": "/ours", "JAX_COMPILATION_CACHE_DIR": "/theirs"}
    assert cache_folder(both).folder == "/theirs"  # the user's explicit JAX setting wins
    assert cache_folder({"SEAICE_JAX_CACHE_DIR": "rel"}).folder == os.path.abspath("rel")
    assert cache_folder({"SEAICE_JAX_CACHE_DIR": "~/x"}).folder == os.path.expanduser("~/x")
    assert cache_folder({"SEAICE_JAX_CACHE_DIR": "gs://bucket/x"}).folder == "gs://bucket/x"


@pytest.mark.parametrize("environ, off", [
    ({"SEAICE_JAX_NO_CACHE": "1"}, True), ({"SEAICE_JAX_NO_CACHE": "yes"}, True),
    ({"SEAICE_JAX_NO_CACHE": "0"}, False), ({"SEAICE_JAX_NO_CACHE": ""}, False),
    ({"JAX_ENABLE_COMPILATION_CACHE": "false"}, True), ({"JAX_ENABLE_COMPILATION_CACHE": "true"}, False),
])
def test_off_switches(environ, off):
    settings = cache_folder(dict(environ, SEAICE_JAX_CACHE_DIR="/x"))
    assert (settings.folder is None) is off
    assert settings.line.startswith("compilation cache off: " if off else "compilation cache: /x")


def test_an_unwritable_folder_turns_the_cache_off_with_the_reason(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    settings = check_writable(CacheSettings(str(a_file / "xla")))
    assert settings.folder is None
    assert settings.line == f"compilation cache off: cannot write {a_file / 'xla'} (Not a directory)"
    made = check_writable(CacheSettings(str(tmp_path / "new" / "xla")))
    assert made.folder == str(tmp_path / "new" / "xla") and os.listdir(made.folder) == []  # probe removed
    assert os.stat(made.folder).st_mode & 0o777 == 0o700


def test_entries_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    cache = compile_cache._atomic_cache_class()(str(tmp_path), max_size=-1)
    cache.put("k1", b"first")
    cache.put("k1", b"second")  # a key another process wrote is kept
    assert cache.get("k1") == b"first" and cache.get("k2") is None

    def killed(src, dst):
        raise KeyboardInterrupt  # the writer dies between writing and renaming

    monkeypatch.setattr(compile_cache.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.put("k2", b"x" * 1000)
    assert sorted(os.listdir(tmp_path)) == ["k1-cache"]  # no half entry, no temporary file left


def test_processes_share_the_cache_and_two_writers_at_once_both_succeed(tmp_path):
    """Two processes compile the same functions into an empty folder at the same time; a third one
    reads every function from the cache and compiles nothing."""
    folder = tmp_path / "xla"
    writers = [start_child(SEAICE_JAX_CACHE_DIR=str(folder)) for _ in range(2)]
    results = [finish(p) for p in writers]
    for stats, err in results:
        assert stats["folder"] == str(folder) and stats["hits"] + stats["writes"] > 0
        assert stats["cache"] == "AtomicFileCache"
        assert err.count(f"compilation cache: {folder} (SEAICE_JAX_NO_CACHE=1 turns it off)") == 1
        assert not [line for line in err if "persistent compilation cache" in line], err  # JAX's read/write warnings
    written = entries(folder)
    assert written and not [n for n in os.listdir(folder) if n.endswith(".tmp")]
    reader, _ = finish(start_child(SEAICE_JAX_CACHE_DIR=str(folder)))
    assert reader["writes"] == 0 and reader["hits"] == len(written) > 0
    assert reader["y"] == results[0][0]["y"]
    assert entries(folder) == written


def test_turned_off_or_unwritable_the_run_goes_on_and_writes_nothing(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    off = start_child(SEAICE_JAX_CACHE_DIR=str(tmp_path / "off"), SEAICE_JAX_NO_CACHE="1")
    unwritable = start_child(SEAICE_JAX_CACHE_DIR=str(a_file / "xla"))
    stats, err = finish(off)
    assert stats["folder"] is None and stats["hits"] == stats["writes"] == 0
    assert err.count("compilation cache off: SEAICE_JAX_NO_CACHE is set") == 1
    assert not os.path.exists(tmp_path / "off")
    stats, err = finish(unwritable)
    assert stats["folder"] is None and stats["writes"] == 0
    assert [line for line in err if "compilation cache" in line] == [
        f"compilation cache off: cannot write {a_file / 'xla'} (Not a directory)"]
