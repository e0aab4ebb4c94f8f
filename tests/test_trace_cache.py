"""Traced programs kept beside the compilation cache (`trace_cache.cached_jit`): a second start reads
the program instead of tracing (the function body does not run), gets bit-for-bit the results of
jax.jit, and anything in the key (fingerprint, shapes, code) gives a new entry."""

import collections
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seaice_jax import compile_cache, trace_cache

State = collections.namedtuple("State", "step params")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The compilation cache and the traced programs in a fresh folder for this test only."""
    for name in (compile_cache.JAX_DIR_ENV, compile_cache.NO_CACHE_ENV, compile_cache.JAX_ENABLE_ENV,
                 trace_cache.NO_TRACE_CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(compile_cache.CACHE_DIR_ENV, str(tmp_path / "xla"))
    before = compile_cache.current()
    compile_cache.enable(announce=False)
    trace_cache.enable()
    yield tmp_path / "xla" / trace_cache.FOLDER_NAME
    trace_cache.enable(False)
    if before is not None:  # the session's own cache back
        monkeypatch.undo()
        compile_cache.enable(before.folder is not None, announce=False)


def make_step(traces: list):
    def step(state: State, batch: dict):
        traces.append(1)  # runs only while tracing
        w = state.params["w"]
        loss = jnp.mean((batch["x"] @ w - batch["y"]) ** 2)
        grad = jax.grad(lambda w: jnp.mean((batch["x"] @ w - batch["y"]) ** 2))(w)
        return State(state.step + 1, {"w": w - 0.1 * grad}), {"loss": loss, "n": jnp.sum(batch["x"] > 0)}
    return step


def inputs(seed=0, n=16):
    rng = np.random.default_rng(seed)
    state = State(jnp.zeros((), jnp.int32), {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)})
    batch = {"x": jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
             "y": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)}
    return state, batch


def run(fn, steps=3, **kw):
    state, batch = inputs(**kw)
    out = []
    for _ in range(steps):
        state, metrics = fn(state, batch)
        out.append(jax.device_get((state, metrics)))
    return out


def assert_same(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def entries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(trace_cache.SUFFIX)) if folder.exists() else []


def test_the_second_start_reads_the_program_without_tracing_and_matches_jit(cache):
    reference = run(jax.jit(make_step([])))
    traces = []
    first = trace_cache.cached_jit(make_step(traces), name="step", fingerprint="a", donate_argnums=(0,))
    got = run(first)
    assert first.source == "written" and len(traces) == 1
    assert_same(got, reference)
    assert isinstance(got[-1][0], State) and sorted(got[-1][1]) == ["loss", "n"]
    assert len(entries(cache)) == 1 and not [n for n in os.listdir(cache) if n.endswith(".tmp")]

    traces = []
    second = trace_cache.cached_jit(make_step(traces), name="step", fingerprint="a", donate_argnums=(0,))
    assert_same(run(second), reference)
    assert second.source == "read" and traces == []  # the function was not traced at all
    assert trace_cache.stats()["hits"] >= 1


def test_the_donated_state_is_donated(cache):
    state, batch = inputs()
    fn = trace_cache.cached_jit(make_step([]), name="step", fingerprint="donate", donate_argnums=(0,))
    fn(state, batch)
    fn2 = trace_cache.cached_jit(make_step([]), name="step", fingerprint="donate", donate_argnums=(0,))
    state, batch = inputs()
    fn2(state, batch)
    assert fn2.source == "read"
    assert state.params["w"].is_deleted() and not batch["x"].is_deleted()


@pytest.mark.parametrize("change", ["fingerprint", "shape", "code"])
def test_what_the_program_depends_on_is_in_the_key(cache, change, monkeypatch):
    run(trace_cache.cached_jit(make_step([]), name="step", fingerprint="a"), steps=1)
    traces = []
    kw = {}
    fingerprint = "a"
    if change == "fingerprint":
        fingerprint = "b"
    elif change == "shape":
        kw = {"n": 8}
    else:  # an edited source file of the package
        monkeypatch.setattr(trace_cache, "package_source_hash", lambda: "edited")
    fn = trace_cache.cached_jit(make_step(traces), name="step", fingerprint=fingerprint)
    assert_same(run(fn, steps=1, **kw), run(jax.jit(make_step([])), steps=1, **kw))
    assert fn.source == "written" and len(traces) == 1
    assert len(entries(cache)) == 2


def test_a_damaged_entry_is_traced_again_and_replaced(cache):
    run(trace_cache.cached_jit(make_step([]), name="step"), steps=1)
    (path,) = [cache / n for n in entries(cache)]
    path.write_bytes(path.read_bytes()[:100])  # a truncated file
    traces = []
    fn = trace_cache.cached_jit(make_step(traces), name="step")
    assert_same(run(fn), run(jax.jit(make_step([]))))
    assert fn.source == "written" and len(traces) == 1
    again = trace_cache.cached_jit(make_step([]), name="step")
    run(again, steps=1)
    assert again.source == "read"


def test_off_unless_enabled_and_with_the_switch(cache, monkeypatch):
    trace_cache.enable(False)
    fn = trace_cache.cached_jit(make_step([]), name="step")
    run(fn, steps=1)
    assert fn.source == "plain" and entries(cache) == []
    trace_cache.enable()
    monkeypatch.setenv(trace_cache.NO_TRACE_CACHE_ENV, "1")
    fn = trace_cache.cached_jit(make_step([]), name="step")
    run(fn, steps=1)
    assert fn.source == "plain" and entries(cache) == []


def test_a_function_that_cannot_be_exported_runs_as_jit(cache):
    notes = []

    def with_callback(state, batch):
        jax.debug.callback(lambda x: None, batch["x"])
        return make_step([])(state, batch)

    fn = trace_cache.cached_jit(with_callback, name="step", note=notes.append)
    assert_same(run(fn), run(jax.jit(make_step([]))))
    assert fn.source == "plain" and entries(cache) == []
    assert len(notes) == 1 and "not exportable" in notes[0]


def test_a_step_sharded_over_devices_reads_back_with_its_shardings(cache):
    """The train step's layout: state replicated, batch split along 'data' over the 4 test devices."""
    mesh = jax.make_mesh((4,), ("data",))
    replicated, split = jax.NamedSharding(mesh, jax.P()), jax.NamedSharding(mesh, jax.P("data"))

    def placed(seed=0):
        state, batch = inputs(seed)
        return jax.device_put(state, replicated), jax.device_put(batch, split)

    with jax.set_mesh(mesh):
        state, batch = placed()
        ref_state, ref_metrics = jax.jit(make_step([]))(state, batch)
        for expected in ("written", "read"):
            traces = []
            fn = trace_cache.cached_jit(make_step(traces), name="sharded", donate_argnums=(0,))
            state, batch = placed()
            new_state, metrics = fn(state, batch)
            assert fn.source == expected and len(traces) == (expected == "written")
            assert_same((new_state, metrics), (ref_state, ref_metrics))
            assert new_state.params["w"].sharding.is_equivalent_to(replicated, 2)


def test_an_exported_program_that_fails_to_run_falls_back_to_jit(cache, monkeypatch):
    """What a platform could do that jax.export handles differently from jit: the first call of the
    exported program raises; the step is traced the plain way, said once, with jit's results."""
    notes = []

    def broken(exported, in_tree, out_tree, donate):
        def call(*args):
            raise RuntimeError("lowering refused\nmore detail")
        return call

    monkeypatch.setattr(trace_cache, "_caller", broken)
    fn = trace_cache.cached_jit(make_step([]), name="step", donate_argnums=(0,), note=notes.append)
    assert_same(run(fn), run(jax.jit(make_step([]))))
    assert fn.source == "plain"
    assert notes == ["step: traced in this process (its exported program failed: RuntimeError: lowering refused)"]


def test_the_tile_predictor_is_read_back_with_its_layout_and_predicts_the_same(cache, monkeypatch):
    """Whole-scene prediction with a model built from a config keeps the tile program: a fresh model
    object (a new process, as far as the predictor knows) reads it and its head layout back without
    tracing the network, and its maps equal the first ones; a model not built from a config keeps none."""
    from seaice_jax import inference
    from seaice_jax.trained_model import ModelFns, create_model
    from tests.conftest import trained_config

    config = trained_config("")
    x = np.random.default_rng(2).normal(size=(70, 90, len(config.data.channels))).astype(np.float32)
    kw = dict(tile=48, stride=16, margin=8, align=4, batch_size=4)
    fns, params, batch_stats = create_model(config)
    first = inference.predict_scene(fns, params, batch_stats, x, **kw)
    assert len(entries(cache)) == 1

    calls = []
    fresh, _, _ = create_model(config)
    apply_eval = ModelFns.apply_eval
    monkeypatch.setattr(ModelFns, "apply_eval", lambda self, *a: calls.append(1) or apply_eval(self, *a))
    second = inference.predict_scene(fresh, params, batch_stats, x, **kw)
    assert calls == [] and fresh._tile_predictors[(48, 8, x.shape[-1], "core", "none")].source == "read"
    assert_same(second, first)

    anonymous = ModelFns(fresh.graphdef_train, fresh.graphdef_eval)  # no fingerprint: nothing kept
    third = inference.predict_scene(anonymous, params, batch_stats, x, **kw)
    assert calls and anonymous._tile_predictors[(48, 8, x.shape[-1], "core", "none")].source == "plain"
    assert_same(third, first) and len(entries(cache)) == 1


def test_library_kernels_keep_one_program_per_shape_and_static_values(cache):
    """A `KeptJit` (the blur of ALS here; ALS and the binarization are the same kind): one entry per
    argument shape and static values, results bit for bit those of plain jit, read back by a fresh
    object without tracing; inside another trace it is plain jit. (infer.py runs ALS this way, and
    test_inference compares its stored ALS with an in-process one.)"""
    import functools

    from seaice_jax import scaling

    rng = np.random.default_rng(3)
    scenes = [rng.normal(size=s).astype(np.float32) * 4 for s in ((40, 56), (33, 47))]
    trace_cache.enable(False)
    plain = [scaling.gaussian_blur(x) for x in scenes]
    trace_cache.enable()
    kept = [scaling.gaussian_blur(x) for x in scenes]
    assert_same(kept, plain)
    assert len([n for n in entries(cache) if n.startswith("gaussian-blur-")]) == 2
    scaling.gaussian_blur(scenes[0], sigma=2.0)  # another static value: another entry
    assert len([n for n in entries(cache) if n.startswith("gaussian-blur-")]) == 3

    traces = []

    @functools.wraps(scaling.gaussian_blur.fun)
    def counted(*args, **kwargs):
        traces.append(1)
        return scaling.gaussian_blur.fun(*args, **kwargs)

    fresh = trace_cache.KeptJit(counted, "gaussian-blur", scaling.gaussian_blur.static_argnames)
    again = [fresh(x) for x in scenes]  # numpy, as above (a device array has a sharding: another key)
    assert traces == [] and {p.source for p in fresh._programs.values()} == {"read"}
    assert_same(again, plain)

    inside = jax.jit(lambda x: scaling.gaussian_blur(x) * 2)(jnp.asarray(scenes[0]))
    np.testing.assert_allclose(np.asarray(inside), 2 * np.asarray(plain[0]), rtol=1e-6)
