"""The sweep grid: crossed points with readable names, and each point's config (ml_collections overrides)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

# Fields that shape the shared shards: a point may not change them.
SHARD_FIELDS = ("data.shards", "data.patch_size", "data.stride", "data.downsample", "data.max_regions",
                "data.synthetic")


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One grid point: `overrides` {dotted path: value}, `labels` {dotted path: label in the name},
    `keys` {dotted path: short key in the name}."""

    name: str
    overrides: dict[str, Any]
    labels: dict[str, str]
    keys: dict[str, str] = dataclasses.field(default_factory=dict)


def flatten_nested(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """{'model': {'aspp_rates': v}} -> {'model.aspp_rates': v}; leaves are the non-mapping values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, (Mapping, ml_collections.ConfigDict)):
            flat.update(flatten_nested(value, path + "."))
        else:
            flat[path] = value
    return flat


def value_label(value: Any) -> str:
    """A short label for a grid value: [6, 12, 18] -> '6-12-18', [] -> 'none', 'a' -> 'a'."""
    if isinstance(value, (list, tuple)):
        return "-".join(value_label(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _safe_name(text: str) -> str:
    """Keeps names usable as folder names on every file system."""
    return re.sub(r"[^A-Za-z0-9._+=,-]", "_", text)


def grid_points(
    grid: Mapping,
    *,
    order: Sequence[str] = (),
    short_names: Mapping | None = None,
    value_labels: Mapping | None = None,
) -> list[SweepPoint]:
    """The crossed grid, first axis slowest. Point names read like 'aspp=6-12-18,inputs=sar+amsr2'."""
    axes = flatten_nested(grid)
    if not axes:
        raise ValueError("sweep grid is empty")
    paths = list(order) + sorted(p for p in axes if p not in order)
    unknown = [p for p in order if p not in axes]
    if unknown:
        raise ValueError(f"sweep order names {unknown}, which are not grid paths {sorted(axes)}")
    keys = {p: p.split(".")[-1] for p in paths} | flatten_nested(short_names or {})
    labels = flatten_nested(value_labels or {})
    for path in paths:
        values = axes[path]
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"sweep grid {path}: expected a non-empty list of values, got {values!r}")
        if path in labels and len(labels[path]) != len(values):
            raise ValueError(f"sweep value_labels {path}: {len(labels[path])} labels for {len(values)} values")
    points = []
    for combo in itertools.product(*(range(len(axes[p])) for p in paths)):
        overrides = {p: axes[p][i] for p, i in zip(paths, combo, strict=True)}
        point_labels = {p: str(labels[p][i]) if p in labels else value_label(axes[p][i])
                        for p, i in zip(paths, combo, strict=True)}
        name = _safe_name(",".join(f"{keys[p]}={point_labels[p]}" for p in paths))
        points.append(SweepPoint(name, overrides, point_labels, {p: keys[p] for p in paths}))
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep point names collide ({names}); give value_labels")
    return points


def apply_overrides(base: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A copy of `base` with each dotted path set; an unknown path or a wrong type raises one line.

    ml_collections does the checking: a locked ConfigDict refuses unknown keys and
    `update_from_flattened_dict` casts or refuses each value by its field's type. Each override is
    applied alone so that the error names it.
    """
    config = copy.deepcopy(base)
    was_locked = config.is_locked
    config.lock()
    for path, value in overrides.items():
        try:
            config.update_from_flattened_dict({path: value})
        except KeyError:
            missing = _first_missing_field(base, path)
            raise KeyError(f"override {path}: config has no field {missing!r}") from None
        except TypeError as e:
            raise TypeError(f"override {path}={value!r}: {e}") from None
    if not was_locked:
        config.unlock()
    return config


def _first_missing_field(config: ml_collections.ConfigDict, path: str) -> str:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return part
        node = node[part]
    return path


def check_grid_keeps_shards(points: Sequence[SweepPoint]) -> None:
    """Every point shares one shard folder, so the grid may not vary what shapes the shards."""
    for path in points[0].overrides:
        if any(path == f or path.startswith(f + ".") for f in SHARD_FIELDS):
            raise ValueError(f"sweep grid may not override {path}: all points share one set of training shards")


def point_config(base: ml_collections.ConfigDict, point: SweepPoint, shards: str,
                 val_scenes: Sequence[str]) -> ml_collections.ConfigDict:
    config = apply_overrides(base, point.overrides)
    config.data.shards = shards
    config.data.val_scenes = list(val_scenes)
    return config
