"""Traced programs kept on disk beside the compilation cache: a warm start skips tracing too.

JAX's persistent compilation cache (`compile_cache`) keys an entry by the lowered program, so a process
must trace and lower a function before it can find its executable. For the U-Net train step that is
most of a warm start (measured on the 2-core CPU machine, quickstart config: tracing 4.6 s and
lowering 1.0 s of the 10.7 s the warm step took). `cached_jit(fun, name=..., fingerprint=...)` is a
`jax.jit(fun)` that, at its first call, looks for the function's exported program (`jax.export`,
StableHLO) in `<compilation cache>/seaice-jax-traces/`: found, it is read back and called, no
tracing; not found, the function is exported (traced and lowered once, as jit would), written there,
and called the same way, so the first run and every later one run one program and the compilation
cache finds its executable.

The key of an entry is a SHA-256 over everything the traced program depends on: the `name` and the
caller's `fingerprint` (train.py: the whole config, whose values the step closes over), every source
file of the `seaice_jax` package, the versions of jax, jaxlib, flax, optax and numpy, the backend, its
devices and the process count, JAX's tracing options (x64, matmul precision, dtype promotion), the
SEAICE_JAX_* formulation switches (`platforms`), and the arguments' structure, shapes, dtypes and
shardings. Anything else a caller's function depends on belongs in its fingerprint.

Users: the train step (train.py), the whole-scene tile predictor (`inference.predict`, keyed by the
model's config; the order of its stacked heads is kept in the entry as a `static_out` value), and
through `KeptJit` (one program per argument shapes and static values) ALS, its blur and the
concentration-preserving binarization (`scaling`).

Only processes that turn it on use it (`enable()`; `runtime.setup(traced_programs=True)`, which
`launch/train.py`, `launch/infer.py`, `launch/evaluate_elevation.py` and the sweep's points call): a
function a notebook or a test has changed in memory (a monkeypatch) is not in the key, and its
program must not be kept. Nothing is
cached (plain `jax.jit`) when it is not on, when the compilation cache is off, in a multi-process run
(each process would have to agree on the entry), with SEAICE_JAX_NO_TRACE_CACHE=1, or when the
function cannot be exported (a host callback, say). An entry that cannot be read is replaced. Writes
go to a temporary file and are renamed into place, so processes starting at once (sweep points) read
a whole entry or none. An entry holds pickled tree structures, read back only from the user's own
private cache folder (made 0700, like the compilation cache, whose entries are executable code).

A `cached_jit` resolves its program at its first call and keeps it: later calls must have the same
argument structure, shapes and shardings (the train step's). Calls with others are refused by the
exported program's own checks.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence

NO_TRACE_CACHE_ENV = "SEAICE_JAX_NO_TRACE_CACHE"
FOLDER_NAME = "seaice-jax-traces"
SUFFIX = ".jaxexport"
_FORMAT = 1  # bump when the entry layout changes

_lock = threading.Lock()
_counts = {"hits": 0, "writes": 0, "plain": 0}
_state = {"enabled": False}


def enable(on: bool = True) -> None:
    """Turn the cache of traced programs on (or off) for this process (see the module doc)."""
    _state["enabled"] = bool(on)


def enabled() -> bool:
    return _state["enabled"]


def stats() -> dict[str, int]:
    """{'hits': programs read back, 'writes': programs exported and written, 'plain': functions run as
    plain jax.jit (cache off or not exportable)} in this process."""
    with _lock:
        return dict(_counts)


def _count(what: str) -> None:
    with _lock:
        _counts[what] += 1


@functools.cache
def package_source_hash() -> str:
    """SHA-256 of every .py file of the seaice_jax package (relative path and bytes)."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _versions() -> str:
    import flax
    import jax
    import jaxlib
    import numpy
    import optax

    return f"jax {jax.__version__} jaxlib {jaxlib.__version__} flax {flax.__version__} optax {optax.__version__} " \
           f"numpy {numpy.__version__} python {sys.version_info[:3]}"


def _environment() -> str:
    import jax

    devices = jax.devices()
    switches = sorted((k, v) for k, v in os.environ.items() if k.startswith("SEAICE_JAX_") and k.endswith("_PLATFORMS"))
    options = {name: getattr(jax.config, name) for name in (
        "jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_rank_promotion", "jax_numpy_dtype_promotion",
        "jax_default_prng_impl", "jax_threefry_partitionable")}
    return repr((jax.default_backend(), [d.device_kind for d in devices], jax.process_count(), switches,
                 sorted(options.items())))


def _leaf_signature(leaf) -> str:
    sharding = getattr(leaf, "sharding", None)
    return f"{getattr(leaf, 'shape', ())}:{getattr(leaf, 'dtype', type(leaf).__name__)}:{sharding!r}"


def entry_key(name: str, fingerprint: str, treedef, leaves: Sequence, donate: Sequence[int]) -> str:
    h = hashlib.sha256()
    for part in (str(_FORMAT), name, fingerprint, package_source_hash(), _versions(), _environment(), str(treedef),
                 repr(tuple(donate)), *(_leaf_signature(x) for x in leaves)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def folder(settings=None) -> str | None:
    """Where entries go (None: the compilation cache is off, so this one is too)."""
    from seaice_jax import compile_cache

    if not _state["enabled"]:
        return None
    if os.environ.get(NO_TRACE_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return None
    settings = compile_cache.current() if settings is None else settings
    if settings is None or settings.folder is None or "://" in settings.folder:
        return None
    return os.path.join(settings.folder, FOLDER_NAME)


def _write_atomic(path: str, data: bytes) -> None:
    from seaice_jax.fileio import write_atomically

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomically(write, path, suffix=".tmp")


def _read_entry(path: str):
    """(Exported, out treedef, static value) of an entry, or None when it is missing or unreadable."""
    from jax import export

    try:
        with open(path, "rb") as f:
            blob = f.read()
        payload = pickle.loads(blob)
        if payload.get("format") != _FORMAT:
            return None
        return export.deserialize(bytearray(payload["exported"])), payload["out_tree"], payload.get("static")
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file: exported again and replaced
        return None


class CachedJit:
    """`jax.jit(fun, donate_argnums=...)` whose traced program is kept on disk (see the module doc)."""

    def __init__(self, fun: Callable, *, name: str, fingerprint: str | None = "", donate_argnums: Sequence[int] = (),
                 note: Callable[[str], None] | None = None, static_out: bool = False):
        self.fun, self.name, self.fingerprint = fun, name, fingerprint
        self.donate_argnums = tuple(donate_argnums)
        self.note = note
        self.static_out = static_out
        self.static = None  # with static_out: the Python value the traced function returned beside its arrays
        self.source = None  # 'read', 'written' or 'plain' once resolved
        self._call = None
        self._resolve_lock = threading.Lock()

    def __call__(self, *args):
        call = self._call
        if call is not None:
            return call(*args)
        with self._resolve_lock:
            if self._call is None:
                self._call = self._resolve(args)
                if self.source != "plain":
                    # The first call lowers and compiles the exported program: should that fail where
                    # plain jit would not (a platform or sharding jax.export handles differently), the
                    # function is traced the plain way instead. Inputs are untouched until it runs.
                    try:
                        return self._call(*args)
                    except Exception as e:
                        if not _untouched(args):
                            raise
                        self._call = self._plain(f"its exported program failed: {_first_line(e)}")
            call = self._call
        return call(*args)

    # -- resolution ----------------------------------------------------------------------------

    def _traced(self) -> Callable:
        """The function jit and export trace: with static_out, its static part goes to `self.static`."""
        if not self.static_out:
            return self.fun

        def arrays_only(*args):
            out, self.static = self.fun(*args)
            return out

        return arrays_only

    def _plain(self, why: str | None = None):
        import jax

        _count("plain")
        self.source = "plain"
        if why and self.note:
            self.note(f"{self.name}: traced in this process ({why})")
        return jax.jit(self._traced(), donate_argnums=self.donate_argnums)

    def _resolve(self, args):
        import jax

        where = folder()
        if where is None or self.fingerprint is None or jax.process_count() > 1:
            return self._plain()
        leaves, in_tree = jax.tree.flatten(args)
        donate = _flat_donations(args, self.donate_argnums)
        path = os.path.join(where, f"{self.name}-{entry_key(self.name, self.fingerprint, in_tree, leaves, donate)}"
                            + SUFFIX)
        entry = _read_entry(path)
        if entry is not None:
            exported, out_tree, self.static = entry
            self.source = "read"
            _count("hits")
        else:
            try:  # (jax.export's serialization needs the flatbuffers package: a dependency)
                exported, out_tree = _export(self._traced(), in_tree, leaves)
            except Exception as e:  # not exportable: traced the plain way, every time
                return self._plain(f"not exportable: {_first_line(e)}")
            try:
                payload = {"format": _FORMAT, "exported": bytes(exported.serialize()), "out_tree": out_tree,
                           "static": self.static}
                _write_atomic(path, pickle.dumps(payload))
                _count("writes")
            except (ImportError, OSError) as e:  # no flatbuffers, or an unwritable folder: run it, keep nothing
                if self.note:
                    self.note(f"{self.name}: traced program not kept ({e})")
            self.source = "written"
        return _caller(exported, in_tree, out_tree, donate)


def _first_line(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0][:160] if text else ''}"


def _untouched(args) -> bool:
    """Whether no array of args was donated away (a failed first call before it ran)."""
    import jax

    return not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(args))


def _flat_donations(args, donate_argnums) -> tuple[int, ...]:
    """Flat leaf indices of the donated positional arguments."""
    import jax

    out, offset = [], 0
    for i, a in enumerate(args):
        n = len(jax.tree.leaves(a))
        if i in donate_argnums:
            out.extend(range(offset, offset + n))
        offset += n
    return tuple(out)


def _export(fun, in_tree, leaves):
    """(Exported of fun over the flat leaves, the output's tree structure)."""
    import jax
    from jax import export

    out_tree_box = []

    def flat(*flat_args):
        out = fun(*jax.tree.unflatten(in_tree, flat_args))
        out_leaves, out_tree = jax.tree.flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    specs = [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)) for x in leaves]
    # A same-machine cache, not an archive: custom calls whose ABI is not promised stable across
    # versions are fine (the key holds the versions).
    exported = export.export(jax.jit(flat), disabled_checks=[export.DisabledSafetyCheck.custom_call("ALL")]
                             )(*specs)
    return exported, out_tree_box[-1]


def _caller(exported, in_tree, out_tree, donate):
    import jax

    run = jax.jit(lambda *flat_args: exported.call(*flat_args), donate_argnums=donate)

    def call(*args):
        leaves, tree = jax.tree.flatten(args)
        if tree != in_tree:
            raise ValueError(f"{exported.fun_name}: called with another argument structure than its first call")
        return jax.tree.unflatten(out_tree, run(*leaves))

    return call


def cached_jit(fun: Callable, *, name: str, fingerprint: str | None = "", donate_argnums: Sequence[int] = (),
               note: Callable[[str], None] | None = None, static_out: bool = False) -> CachedJit:
    """See the module doc. `name`: a short file-name-safe label; `fingerprint`: whatever else the
    traced program depends on (a config's JSON); None: nothing says, so the program is never kept
    (plain jit). static_out: `fun` returns (arrays, static), static a
    picklable Python value fixed by the trace (a layout, say); the call returns the arrays and
    `.static` holds the value from the first call on (kept in the entry, so a read-back program has
    it without tracing)."""
    return CachedJit(fun, name=name, fingerprint=fingerprint, donate_argnums=donate_argnums, note=note,
                     static_out=static_out)


class KeptJit:
    """`jax.jit(fun, static_argnames=...)` for library functions called on arrays of many shapes (ALS,
    the binarization): while the cache is on (`enable`), each combination of static values and
    argument shapes gets its own `CachedJit` (fingerprint: the static values); otherwise, inside
    another trace, or with arguments that are not arrays, it is the plain jitted function."""

    def __init__(self, fun: Callable, name: str, static_argnames: Sequence[str]):
        import jax

        self.fun, self.name = fun, name
        self.static_argnames = tuple(static_argnames)
        self.jitted = jax.jit(fun, static_argnames=self.static_argnames)
        self._signature = inspect.signature(fun)
        self._programs: dict = {}
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        if not _state["enabled"]:
            return self.jitted(*args, **kwargs)
        import jax

        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        statics = tuple((k, bound.arguments[k]) for k in self.static_argnames)
        names = [k for k in bound.arguments if k not in self.static_argnames]
        dynamic = tuple(bound.arguments[k] for k in names)
        leaves, tree = jax.tree.flatten(dynamic)
        if any(isinstance(x, jax.core.Tracer) or not hasattr(x, "shape") or not hasattr(x, "dtype") for x in leaves):
            return self.jitted(*args, **kwargs)
        key = (statics, tree, tuple(_leaf_signature(x) for x in leaves))
        program = self._programs.get(key)
        if program is None:
            fixed = dict(statics)

            def call(*values):
                return self.fun(**dict(zip(names, values, strict=True)), **fixed)

            program = self._programs.setdefault(key, CachedJit(call, name=self.name, fingerprint=repr(statics)))
        return program(*dynamic)


def kept_jit(*, name: str, static_argnames: Sequence[str] = ()) -> Callable[[Callable], KeptJit]:
    """Decorator: `KeptJit(fun, name, static_argnames)`."""
    return lambda fun: KeptJit(fun, name, static_argnames)
