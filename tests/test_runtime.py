"""runtime.prepare_process: the CPU tweaks (huge-page re-exec, one CPU device per core) only where
JAX will run on the CPU, decided without importing JAX."""

import os
import subprocess
import sys
import types

import pytest

from seaice_jax import runtime


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.delenv("JAX_PLATFORM_NAME", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(runtime, "_installed_accelerator_plugins", lambda: set())
    monkeypatch.setattr(runtime, "_has_device_node", lambda accelerator: False)


@pytest.mark.parametrize("platforms, on_cpu", [
    ("cpu", True), ("cpu,cuda", True), ("cuda", False), ("cuda,cpu", False), ("tpu", False), (" CPU ", True),
])
def test_jax_platforms_decides(no_accelerator, monkeypatch, platforms, on_cpu):
    monkeypatch.setattr(runtime, "_installed_accelerator_plugins", lambda: {"cuda"})
    monkeypatch.setattr(runtime, "_has_device_node", lambda accelerator: True)
    assert runtime.jax_will_run_on_cpu(dict(JAX_PLATFORMS=platforms)) is on_cpu


@pytest.mark.parametrize("plugins, nodes, environ, on_cpu", [
    (set(), {"cuda", "tpu"}, {}, True),  # no plugin: JAX only has its CPU backend
    ({"cuda"}, set(), {}, True),  # plugin installed, no GPU in the machine
    ({"cuda"}, {"cuda"}, {}, False),
    ({"cuda"}, {"cuda"}, {"CUDA_VISIBLE_DEVICES": ""}, True),  # every GPU hidden
    ({"cuda"}, {"cuda"}, {"CUDA_VISIBLE_DEVICES": "0"}, False),
    ({"tpu"}, {"tpu"}, {}, False),
    ({"rocm", "cuda"}, {"rocm"}, {}, False),
    ({"unknown"}, set(), {}, False),  # can't tell: leave the process alone
])
def test_without_jax_platforms_an_usable_accelerator_decides(no_accelerator, monkeypatch, plugins, nodes, environ,
                                                            on_cpu):
    monkeypatch.setattr(runtime, "_installed_accelerator_plugins", lambda: plugins)
    monkeypatch.setattr(runtime, "_has_device_node", lambda accelerator: accelerator in nodes)
    assert runtime.jax_will_run_on_cpu(environ) is on_cpu


def test_plugins_are_told_from_package_metadata(monkeypatch):
    entry_points = [types.SimpleNamespace(name=n) for n in ("xla_cuda12", "xla_rocm7", "some_vendor")]
    monkeypatch.setattr(runtime.importlib.metadata, "entry_points", lambda group: entry_points)
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: object() if name == "libtpu" else None)
    assert runtime._installed_accelerator_plugins() == {"cuda", "rocm", "tpu", "unknown"}


def test_the_check_imports_no_jax():
    """The decision must come before JAX is loaded (the re-exec restarts the interpreter)."""
    code = ("import sys; from seaice_jax import runtime; runtime.jax_will_run_on_cpu({}); "
            "runtime._installed_accelerator_plugins(); assert 'jax' not in sys.modules and 'jaxlib' not in sys.modules")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


class Reexec(Exception):
    pass


def _capture_execve(monkeypatch):
    calls = []

    def execve(path, argv, env):
        calls.append(env)
        raise Reexec

    monkeypatch.setattr(runtime.os, "execve", execve)
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("glibc", "2.39"))
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("SEAICE_JAX_NO_REEXEC", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=2")
    return calls


def test_prepare_process_on_cpu_reexecs_and_sets_the_device_count(monkeypatch):
    calls = _capture_execve(monkeypatch)
    monkeypatch.setattr(runtime, "jax_will_run_on_cpu", lambda: True)
    with pytest.raises(Reexec):
        runtime.prepare_process()
    assert calls[0]["GLIBC_TUNABLES"] == runtime.HUGEPAGE_TUNABLE
    # After the re-exec the tunable is set: no second re-exec, and the CPU device count is added.
    monkeypatch.setenv("GLIBC_TUNABLES", runtime.HUGEPAGE_TUNABLE)
    runtime.prepare_process()
    assert "--xla_force_host_platform_device_count=" in os.environ["XLA_FLAGS"]
    assert os.environ["XLA_FLAGS"].startswith("--xla_gpu_autotune_level=2")


def test_prepare_process_on_an_accelerator_changes_nothing(monkeypatch):
    calls = _capture_execve(monkeypatch)
    monkeypatch.setattr(runtime, "jax_will_run_on_cpu", lambda: False)
    runtime.prepare_process()
    assert calls == []
    assert os.environ["XLA_FLAGS"] == "--xla_gpu_autotune_level=2"
    assert "GLIBC_TUNABLES" not in os.environ
