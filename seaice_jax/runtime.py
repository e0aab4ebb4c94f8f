"""Process set-up: `prepare_process()` before JAX is imported (the launchers' `__main__`), `setup()`
after (the launchers' `main`, and notebooks and scripts that use the library).

prepare_process: two CPU tweaks, measured on XLA:CPU only and applied only when the process will run
JAX on the CPU (`jax_will_run_on_cpu`, decided without importing JAX or initialising a backend,
since the huge-page tunable needs a re-exec before anything is loaded).

setup: JAX's persistent compilation cache in one folder per user (`compile_cache`), and one CPU
device per core when JAX runs on the CPU and has not started yet. Importing seaice_jax changes
nothing in JAX; this call does.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform
import sys

HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def reexec_with_hugepage_malloc() -> None:
    """Restart this process once with glibc's malloc backing large blocks with transparent huge pages.

    XLA:CPU allocates its large temporaries afresh every step; glibc maps each one anew and the
    kernel faults it in 4 KiB at a time, which cost ~40 % of a CPU training step here (CPU time per
    step 6.2 s -> 3.8 s with huge pages). The tunable must be set before the process starts, hence
    the re-exec. No effect on other libcs; set SEAICE_JAX_NO_REEXEC=1 to opt out.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or "glibc.malloc.hugetlb" in tunables
            or os.environ.get("SEAICE_JAX_NO_REEXEC")):
        return
    env = dict(os.environ, GLIBC_TUNABLES=f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


MAX_CPU_DEVICES = 4


def one_cpu_device_per_core() -> None:
    """Give XLA:CPU one device per core (at most MAX_CPU_DEVICES) before JAX starts.

    The train step is data-parallel over the devices, so on a CPU each core then runs its share of
    the batch concurrently; with a single CPU device many small ops run on one thread while the other
    cores wait. Measured on 2 cores: 2.98 -> 3.67 images/s for the baseline train step, same losses
    (BatchNorm statistics stay global). Only the CPU platform is affected; GPU/TPU runs are unchanged.
    An explicit --xla_force_host_platform_device_count in XLA_FLAGS wins.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = max(1, min(os.cpu_count() or 1, MAX_CPU_DEVICES))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


# Device nodes an accelerator plugin needs to find a device (cheap to test, no driver call).
DEVICE_NODES = {
    "cuda": ("/dev/nvidia[0-9]*",),
    "rocm": ("/dev/kfd",),
    "tpu": ("/dev/accel[0-9]*", "/dev/vfio/[0-9]*"),
}


def _installed_accelerator_plugins() -> set[str]:
    """Accelerator platforms whose JAX plugin is installed, by package metadata only (nothing is
    imported): PJRT plugins registered under the `jax_plugins` entry points or namespace
    (jax-cuda12/13-plugin, jax-rocm*-plugin, ...), and libtpu for TPUs. A plugin whose platform
    cannot be told from its name counts as "unknown"."""
    names = [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
    try:
        spec = importlib.util.find_spec("jax_plugins")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        names += [module.name for module in pkgutil.iter_modules(spec.submodule_search_locations)]
    for tpu_package in ("libtpu", "libtpu_nightly"):
        try:
            if importlib.util.find_spec(tpu_package) is not None:
                names.append(tpu_package)
        except (ImportError, ValueError):
            pass
    found = set()
    for name in names:
        name = name.lower()
        found.add(next((p for p in ("cuda", "rocm", "tpu") if p in name), "unknown"))
    return found


def _has_device_node(accelerator: str) -> bool:
    return any(glob.glob(pattern) for pattern in DEVICE_NODES.get(accelerator, ()))


def jax_will_run_on_cpu(environ=None) -> bool:
    """Whether JAX in this process will compute on the CPU, decided before JAX is imported.

    JAX_PLATFORMS (or the older JAX_PLATFORM_NAME) decides when set: JAX's default backend is its
    first entry. Otherwise JAX picks an accelerator when one is usable, so: the CPU unless an
    accelerator plugin is installed *and* its device nodes exist (and, for CUDA, CUDA_VISIBLE_DEVICES
    does not hide every GPU). A plugin of unknown platform counts as an accelerator: the CPU tweaks
    are only applied where the CPU is certain.
    """
    environ = os.environ if environ is None else environ
    requested = environ.get("JAX_PLATFORMS") or environ.get("JAX_PLATFORM_NAME") or ""
    requested = [name.strip().lower() for name in requested.split(",") if name.strip()]
    if requested:
        return requested[0] == "cpu"
    for accelerator in _installed_accelerator_plugins():
        if accelerator == "unknown":
            return False
        if accelerator == "cuda" and environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
            continue
        if _has_device_node(accelerator):
            return False
    return True


GC_THRESHOLDS = (50_000, 20, 20)


def fewer_garbage_collections() -> None:
    """Python's cyclic garbage collector with thresholds for a process that imports JAX, Flax, Orbax,
    xarray and pandas (~200 000 objects) and then runs few, large calls.

    With the defaults (700, 10, 10) a warm `infer.py` spent 0.75 s collecting (652 young, 59 middle
    and 5 full collections, measured with gc.callbacks on the 2-core machine), with these 0.26 s
    (26, 1 and 0). Only cyclic garbage waits longer; reference-counted objects are freed as before.
    """
    import gc

    gc.set_threshold(*GC_THRESHOLDS)


def prepare_process() -> None:
    """What every command-line entry point does first, before importing JAX: fewer garbage
    collections (`fewer_garbage_collections`, every platform: it is the host's Python), then the CPU
    tweaks, only when JAX will run on the CPU (on GPU / TPU neither was measured, and the host side
    of an accelerator run is left as it is)."""
    fewer_garbage_collections()
    if not jax_will_run_on_cpu():
        return
    reexec_with_hugepage_malloc()
    one_cpu_device_per_core()


def setup(*, compilation_cache: bool = True, announce: bool = True, cpu_devices: bool = True,
          traced_programs: bool | None = None):
    """Process set-up for library use (a notebook or script calls it first) and for the launchers once
    their flags are parsed.

    compilation_cache: JAX's persistent compilation cache in `~/.cache/seaice-jax/xla` (or
      $SEAICE_JAX_CACHE_DIR, or JAX's own $JAX_COMPILATION_CACHE_DIR; off with SEAICE_JAX_NO_CACHE=1
      or False here): a function compiled once on the machine is read back by every later process.
      An unwritable folder turns it off for the run. See `seaice_jax.compile_cache`.
    announce: print the cache's one line (where it is, or why it is off) at the first compilation.
    cpu_devices: one XLA CPU device per core (`one_cpu_device_per_core`) when JAX will run on the CPU
      and its backend has not started (the device count is fixed when it starts).
    traced_programs: keep the traced programs of the functions that use `trace_cache.cached_jit` (the
      train step) beside the compilation cache, so a warm start skips tracing too; the launchers
      turn it on (see `seaice_jax.trace_cache` for why library use does not by default); None leaves
      it as an earlier call set it (a config file that calls setup again does not turn it off).
    Returns the cache settings (`compile_cache.CacheSettings`: `.folder`, None when off, `.line`).
    Safe to call more than once. The huge-page re-exec of `prepare_process` is not done here (it
    restarts the process); the large-array kernels are written not to need it.
    """
    from seaice_jax import compile_cache

    if cpu_devices and jax_will_run_on_cpu() and not _backend_started():
        one_cpu_device_per_core()
    from seaice_jax import trace_cache

    settings = compile_cache.enable(compilation_cache, announce=announce)
    if settings.folder is None:
        trace_cache.enable(False)
    elif traced_programs is not None:
        trace_cache.enable(traced_programs)
    return settings


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True  # cannot tell: leave the device count alone
