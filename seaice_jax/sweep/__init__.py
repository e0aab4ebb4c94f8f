"""Hyper-parameter sweeps: a grid of config overrides, each point trained, predicted and evaluated.

    python launch/sweep.py --config configs/aspp_sweep.py --workdir runs/aspp [--devices-per-run N]

A sweep config (`get_config(arg)`) holds
  base          a full training config (seaice_jax.config.base_config() and changes)
  grid          nested like the config, leaves = lists of values, crossed: {'model': {'aspp_rates':
                [[], [6, 12, 18]]}} gives the override path 'model.aspp_rates' (plain dicts may also
                use dotted keys)
  order         (optional) dotted paths in the order they name points and group the plot
  short_names   (optional) nested like grid, leaves = the key used in point names ('aspp')
  value_labels  (optional) nested like grid, leaves = one label per value ('sar', 'sar+amsr2')
  eval          held-out scenes: `scenes` (files or folders) or, when empty, `num_scenes` synthetic
                scenes of `size` from `seed` (a seed the training set does not use); `table_metrics`
                and `plot_metrics`: dotted paths into the pooled evaluation ('methods.als.ice_f1')

Layout of the sweep folder:
  data/                 the shared synthetic training set (synthesized + converted once)
  heldout/              the held-out scenes (when synthesized)
  points/<name>/        one training workdir per point: config.json, point.json, log.txt,
                        checkpoints/, predictions/, eval.json, eval.md, results.json (= finished)
  results.csv, results.md, results.png

Each point runs in its own process (`python -m seaice_jax.sweep POINT_DIR`, `__main__.py`), so points
can be placed on accelerators: with `devices_per_run` N on a host of D GPUs / TPU chips, D // N points run
at once, each seeing only its own devices (CUDA_VISIBLE_DEVICES / TPU_VISIBLE_CHIPS). On CPU the
points run one after another (CPU "devices" share the same cores). The parent never initialises a
JAX backend (it would hold accelerator memory the children need); devices are counted in a
short-lived child process. Every point uses the user's persistent compilation cache
(`seaice_jax.compile_cache`), so points of one architecture, a rerun and the next sweep compile the
train step once.

Modules: `grid` (points and config overrides), `devices` (placing points on accelerators), `point`
(one point: train, predict, evaluate), `run` (the parent: shared data, the queue of child processes)
and `reports` (results.csv / .md / .png). The names below are the package's public API.
"""

from seaice_jax.sweep.devices import detect_devices, device_slots
from seaice_jax.sweep.grid import (
    SHARD_FIELDS,
    SweepPoint,
    apply_overrides,
    check_grid_keeps_shards,
    flatten_nested,
    grid_points,
    point_config,
    value_label,
)
from seaice_jax.sweep.point import CONFIG_JSON, LOG_TXT, POINT_JSON, RESULTS_JSON, point_main, run_point
from seaice_jax.sweep.reports import (
    DEFAULT_TABLE_METRICS,
    format_results_markdown,
    metric_value,
    plot_results,
    results_table,
    write_reports,
)
from seaice_jax.sweep.run import (
    heldout_scenes,
    last_error_line,
    load_sweep_config,
    prepare_training_data,
    run_sweep,
    shared_data_paths,
)

__all__ = [
    "CONFIG_JSON", "DEFAULT_TABLE_METRICS", "LOG_TXT", "POINT_JSON", "RESULTS_JSON", "SHARD_FIELDS",
    "SweepPoint", "apply_overrides", "check_grid_keeps_shards", "detect_devices", "device_slots",
    "flatten_nested", "format_results_markdown", "grid_points", "heldout_scenes", "last_error_line",
    "load_sweep_config", "metric_value", "plot_results", "point_config", "point_main",
    "prepare_training_data", "results_table", "run_point", "run_sweep", "shared_data_paths",
    "value_label", "write_reports",
]
