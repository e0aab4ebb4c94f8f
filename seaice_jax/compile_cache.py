"""JAX's persistent compilation cache, one folder per user: compile a function once per machine.

`runtime.setup()` calls `enable()`; nothing here runs on import. What it does:

* Folder (`cache_folder`): $JAX_COMPILATION_CACHE_DIR when the user set it (JAX's own variable), else
  $SEAICE_JAX_CACHE_DIR, else `$XDG_CACHE_HOME/seaice-jax/xla` (`~/.cache/seaice-jax/xla`). Off with
  SEAICE_JAX_NO_CACHE=1 (or JAX_ENABLE_COMPILATION_CACHE=false). A folder that cannot be made or
  written turns the cache off for the run (said once, the run goes on).
* Thresholds: every function is written, whatever its compile time (MIN_COMPILE_TIME_SECS) and
  size. A user's own JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS / _MIN_ENTRY_SIZE_BYTES wins.
* Several writers at once (sweep points, the test suite's subprocesses, a second terminal): JAX's
  file cache (jax 0.10.2, `jax._src.lru_cache.LRUCache.put`, eviction off) writes an entry in place
  with `Path.write_bytes`, so a process reading the same key meanwhile gets a truncated entry (JAX
  warns and recompiles) and a writer killed halfway leaves a truncated file that every later run
  fails to read and never replaces. `AtomicFileCache` writes each entry to a temporary file in the
  folder and renames it into place: a reader sees no entry or a whole one. It subclasses JAX's
  private `LRUCache` and replaces `jax._src.compilation_cache.get_file_cache`, through which JAX
  builds its cache (no public hook exists); with other internals JAX's own writes are used, and
  tests/test_compile_cache.py fails. Multi-host: JAX writes from process 0 only, the others read;
  point the folder at a filesystem every host sees.
* The environment: the folder and thresholds are also put in os.environ, so child processes (sweep
  points, benchmark children) use the same cache.
* Counters (`stats()`): cache hits and entries written in this process, from JAX's monitoring
  events; the tests read them to check that a second process hits what a first one wrote.
* One line on stderr at the first compilation of the process (`announce`): where the cache is and
  how to turn it off, or why it is off. A command that fails on its input before compiling says nothing.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading

NO_CACHE_ENV = "SEAICE_JAX_NO_CACHE"
CACHE_DIR_ENV = "SEAICE_JAX_CACHE_DIR"
JAX_DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
JAX_ENABLE_ENV = "JAX_ENABLE_COMPILATION_CACHE"
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
MIN_ENTRY_SIZE_ENV = "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"

# Every function, however quick to compile. JAX's default (1 s) leaves out the evaluation and
# inference functions of small models and most functions on an accelerator; and the dozens of small
# programs a process runs on its way (parameter initialisation, eager array operations) add up:
# measured on the 2-core CPU machine, a warm start of the quickstart's training spent 4.1 s in the
# backend for its 94 programs with a 0.1 s threshold (86 of them compiled again) and 1.7 s with none
# (every one read back).
MIN_COMPILE_TIME_SECS = 0.0

_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """Where the cache is (folder None: off) and, when off, why."""

    folder: str | None
    reason: str = ""

    @property
    def line(self) -> str:
        if self.folder is None:
            return f"compilation cache off: {self.reason}"
        return f"compilation cache: {self.folder} ({NO_CACHE_ENV}=1 turns it off)"


def default_folder(environ=None) -> str:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "seaice-jax", "xla")


def _is_local(path: str) -> bool:
    return path.startswith("file://") or "://" not in path


def cache_folder(environ=None) -> CacheSettings:
    """The folder the cache should use, or why it is off (see the module docstring); nothing is
    created or checked here (`check_writable`)."""
    environ = os.environ if environ is None else environ
    if environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", *_FALSE):
        return CacheSettings(None, f"{NO_CACHE_ENV} is set")
    if environ.get(JAX_ENABLE_ENV, "").strip().lower() in _FALSE:
        return CacheSettings(None, f"{JAX_ENABLE_ENV}={environ[JAX_ENABLE_ENV]}")
    folder = environ.get(JAX_DIR_ENV) or environ.get(CACHE_DIR_ENV) or default_folder(environ)
    if _is_local(folder):
        folder = os.path.abspath(os.path.expanduser(folder.removeprefix("file://")))
    return CacheSettings(folder)


def check_writable(settings: CacheSettings) -> CacheSettings:
    """The same settings if the folder can be made and written (a probe file is written and removed),
    else the cache off with the reason. A new folder is private to the user (mode 0700): whoever can
    write to a compilation cache can make the processes that read it run their code."""
    if settings.folder is None or not _is_local(settings.folder):
        return settings
    try:
        os.makedirs(settings.folder, mode=0o700, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=settings.folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return CacheSettings(None, f"cannot write {settings.folder} ({e.strerror or e})")
    return settings


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def _atomic_cache_class():
    """AtomicFileCache, built on first use (it subclasses a JAX class: importing it loads JAX)."""
    from jax._src.lru_cache import _CACHE_SUFFIX, LRUCache

    class AtomicFileCache(LRUCache):
        """JAX's file cache with whole-file writes: temporary file in the folder, then rename.

        Reads are JAX's. With eviction on (jax_compilation_cache_max_size set, which takes JAX's file
        lock around every read and write) or a remote folder, writes are JAX's too.
        """

        def put(self, key: str, value: bytes) -> None:
            folder = str(self.path)
            if self.eviction_enabled or not _is_local(folder):
                return super().put(key, value)
            if not key:
                raise ValueError("key cannot be empty")
            final = os.path.join(folder.removeprefix("file://"), f"{key}{_CACHE_SUFFIX}")
            if os.path.exists(final):  # another process wrote it: any whole entry will do
                return
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=f".{key}-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.replace(tmp, final)  # atomic on POSIX and Windows; a racing writer's copy is equal
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise

    return AtomicFileCache


def _install_atomic_writes() -> bool:
    """Make JAX build its file cache as AtomicFileCache (JAX builds it lazily, at the first compile
    after the folder is set). False if this JAX's internals differ from 0.10.2's: JAX's own writes
    are used then."""
    try:
        from jax._src import compilation_cache as cc

        original = cc.get_file_cache
        atomic = _atomic_cache_class()
    except (ImportError, AttributeError):
        return False
    if getattr(original, "_seaice_jax_atomic", False):
        return True

    def get_file_cache(path: str):
        from jax._src import config

        cache = atomic(path, max_size=config.compilation_cache_max_size.value)
        if config.compilation_cache_check_contents.value:
            return cc.VerificationCache(cache), path
        return cache, path

    get_file_cache._seaice_jax_atomic = True
    cc.get_file_cache = get_file_cache
    return True


def _reset_if_used() -> None:
    """JAX builds its cache once, at the first compilation, and remembers whether it uses one: after a
    compilation (setup called late, in a notebook), rebuild it under the new settings."""
    from jax._src import compilation_cache as cc

    if getattr(cc, "_cache", None) is not None or getattr(cc, "_cache_checked", False):
        cc.reset_cache()


# --------------------------------------------------------------------------------------------
# Counters and the announcement
# --------------------------------------------------------------------------------------------

_HITS = "/jax/compilation_cache/cache_hits"
_WRITES = "/jax/compilation_cache/cache_misses"  # JAX records it when it writes an entry
_COMPILE_PREFIX = "/jax/core/compile/"

_lock = threading.Lock()
_counts = {"hits": 0, "writes": 0, "compiles": 0}
_state: dict = {"listening": False, "announce": None, "settings": None, "switched_off": False}


def current() -> CacheSettings | None:
    """The settings of the last `enable` in this process (None: not called)."""
    return _state["settings"]


def stats() -> dict[str, int]:
    """{'hits': entries read from the cache, 'writes': entries written, 'compiles': backend
    compilations asked for (hits included)} in this process since `enable`."""
    with _lock:
        return dict(_counts)


def _on_event(event: str, **kwargs) -> None:
    if event == _HITS:
        with _lock:
            _counts["hits"] += 1
    elif event == _WRITES:
        with _lock:
            _counts["writes"] += 1


def _on_duration(event: str, duration_secs: float, **kwargs) -> None:
    if not event.startswith(_COMPILE_PREFIX):
        return
    with _lock:
        if event.endswith("backend_compile_duration"):
            _counts["compiles"] += 1
        line, _state["announce"] = _state["announce"], None
    if line and _process_index() == 0:
        print(line, file=sys.stderr, flush=True)


def _process_index() -> int:
    """This process's index in a multi-host run, read without touching the backend (a compilation
    event may come before it starts)."""
    try:
        from jax._src import distributed

        return int(distributed.global_state.process_id or 0)
    except (ImportError, AttributeError):
        return 0


def _listen() -> None:
    if _state["listening"]:
        return
    import jax.monitoring

    jax.monitoring.register_event_listener(_on_event)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    _state["listening"] = True


# --------------------------------------------------------------------------------------------
# enable
# --------------------------------------------------------------------------------------------


def enable(on: bool = True, *, announce: bool = True, environ=None) -> CacheSettings:
    """Turn the persistent cache on (or off) for this process and its children; see the module
    docstring. Imports JAX; call it before the first compilation (later works too: what was compiled
    before is not cached). Returns the settings; with `announce`, their one line goes to stderr at
    the process's first compilation."""
    import jax

    environ = os.environ if environ is None else environ
    if on and _state["switched_off"]:  # an earlier enable(False) of this process: undo its variables
        environ.pop(NO_CACHE_ENV, None)
        environ.pop(JAX_ENABLE_ENV, None)
        _state["switched_off"] = False
    settings = check_writable(cache_folder(environ)) if on else CacheSettings(None, "turned off by the caller")
    if settings.folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        if not on:  # children too, plain JAX ones included
            environ[NO_CACHE_ENV] = "1"
            environ[JAX_ENABLE_ENV] = "false"
            _state["switched_off"] = True
    else:
        environ[JAX_DIR_ENV] = settings.folder
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", settings.folder)
        if MIN_COMPILE_TIME_ENV not in environ:
            environ[MIN_COMPILE_TIME_ENV] = str(MIN_COMPILE_TIME_SECS)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
        if MIN_ENTRY_SIZE_ENV not in environ:
            environ[MIN_ENTRY_SIZE_ENV] = "-1"  # every size, and no filesystem-specific override
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _install_atomic_writes()
    _reset_if_used()
    _listen()
    with _lock:
        _state["announce"] = settings.line if announce else None
        _state["settings"] = settings
    return settings
