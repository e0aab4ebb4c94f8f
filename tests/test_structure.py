"""The package's import graph, read from its own source: no cycle, the training loop imported by
launchers and tests only, and the synthetic world above the libraries it uses (none of them imports it)."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "seaice_jax"


def package_modules() -> dict[str, str]:
    """{dotted module name: file path} of every module under seaice_jax/ (a package is its __init__)."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


def imported_modules(path: str, module: str, known: set[str]) -> set[str]:
    """seaice_jax modules that `module` imports anywhere in its file (top level, functions, branches).

    `from a.b import c` counts as an import of a.b.c when that is a module, else of a.b; relative
    imports are resolved against the module's package.
    """
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            # `import a.b.c` binds a, but what it runs is a.b.c; keep the longest known prefix.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {m: imported_modules(p, m, known) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the directed graph, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_what_the_package_imports():
    graph = import_graph()
    assert {"seaice_jax.train", "seaice_jax.trained_model", "seaice_jax.inference.predict"} <= set(graph)
    assert "seaice_jax.trained_model" in graph["seaice_jax.train"]
    assert "seaice_jax.trained_model" in graph["seaice_jax.inference.run"]  # a module-level import
    assert "seaice_jax.metrics" in graph["seaice_jax.inference.validate"]  # an import inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_package_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_only_entry_points_import_the_training_loop():
    """train.py is the loop; the model, step, mesh and data it uses live elsewhere. The one entry point
    inside the package, `python -m seaice_jax.sweep` (a launcher: argv in, one call, exit code out),
    may start it."""
    importers = sorted(m for m, deps in import_graph().items() if "seaice_jax.train" in deps)
    assert [m for m in importers if not m.endswith(".__main__")] == []


def test_no_library_module_is_much_over_500_lines():
    # scaling.py (529) and scene.py (531) are near the line.
    exempt: set[str] = set()
    long = {}
    for module, path in package_modules().items():
        with open(path) as f:
            lines = sum(1 for _ in f)
        if lines > 550 and module not in exempt:
            long[module] = lines
    assert long == {}


# The layers that real data goes through: none of them may depend on the simulated world.
LIBRARY_PACKAGES = ("seaice_jax.data", "seaice_jax.altimetry", "seaice_jax.drift", "seaice_jax.models",
                    "seaice_jax.inference")
# Root modules allowed to import seaice_jax.synthetic: the training run's own data preparation.
SYNTHETIC_USERS_AT_ROOT = {"seaice_jax.prepare"}


def _is_library_module(module: str) -> bool:
    if any(module == p or module.startswith(p + ".") for p in LIBRARY_PACKAGES):
        return True
    parts = module.split(".")
    is_root_module = len(parts) == 2 and not os.path.isdir(os.path.join(ROOT, *parts))
    return is_root_module and module not in SYNTHETIC_USERS_AT_ROOT


def test_no_library_module_imports_the_synthetic_world():
    graph = import_graph()
    assert {"seaice_jax.synthetic", "seaice_jax.drift.motion", "seaice_jax.train"} <= set(graph)
    assert _is_library_module("seaice_jax.train") and _is_library_module("seaice_jax.drift.refine")
    assert not _is_library_module("seaice_jax.prepare") and not _is_library_module("seaice_jax.sweep.run")
    offenders = {m: sorted(d for d in deps if d == "seaice_jax.synthetic" or d.startswith("seaice_jax.synthetic."))
                 for m, deps in graph.items() if _is_library_module(m)}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_synthetic_world_uses_the_libraries_below_it():
    """The simulator writes through the real layouts' writers and geolocation, so it must import them
    (the arrow points down); a copy of a writer inside synthetic/ would pass the test above unnoticed."""
    graph = import_graph()
    used = set().union(*(deps for m, deps in graph.items() if m.startswith("seaice_jax.synthetic")))
    assert {"seaice_jax.data.geolocation", "seaice_jax.altimetry.icesat2", "seaice_jax.drift.io",
            "seaice_jax.drift.motion"} <= used


def test_old_flat_modules_are_gone():
    package = os.path.join(ROOT, PACKAGE)
    flat = sorted(n for n in os.listdir(package) if n.startswith(("drift_", "temporal")) and n.endswith(".py"))
    assert flat == [] and not os.path.exists(os.path.join(package, "data", "synthetic"))
    assert not os.path.exists(os.path.join(package, "altimetry", "synthetic.py"))
