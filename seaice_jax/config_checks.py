"""The numbers of a training config, checked before anything is read or written.

`check_training_config(config)` raises ValueError naming the field as it is overridden on the command
line (`--config.train.num_steps must be a whole number >= 1, got 0`); launch/train.py prints it as one
line with exit code 2. Only fields whose range is certain are checked; what needs the data (the batch
against the device count, a model the config cannot build) is refused later, still before any file.
"""

from __future__ import annotations

from seaice_jax import cli


class ConfigRangeError(ValueError):
    """A config number out of its range; the message names the field."""


def check_number(value, flag, minimum=None, **kwargs) -> None:
    try:
        cli.check_number(value, flag, minimum, **kwargs)
    except ValueError as e:
        raise ConfigRangeError(str(e)) from None

# dotted field: (minimum, integer); None minimum with `above`: see _ABOVE
WHOLE_AT_LEAST = {
    "train.num_steps": 1, "train.batch_size": 1, "train.log_every": 1, "train.eval_every": 1,
    "train.checkpoint_every": 1, "train.keep_checkpoints": 1, "train.num_devices": 0,
    "data.patch_size": 1, "data.stride": 1, "data.downsample": 1, "data.max_regions": 1, "data.worker_count": 0,
    "data.read_threads": 0, "data.prefetch_batches": 1,
    "data.synthetic.train_scenes": 1, "data.synthetic.val_scenes": 0,
    "model.convs_per_block": 1, "optim.warmup_steps": 0,
    "eval.tile": 1, "eval.stride": 1, "eval.batch_size": 1, "eval.min_region_pixels": 0,
    "loss.min_region_pixels": 0,
}
NUMBER_AT_LEAST = {"optim.final_lr_fraction": 0.0, "optim.weight_decay": 0.0, "loss.entropy_weight": 0.0,
                   "optim.b1": 0.0, "optim.b2": 0.0, "loss.freeboard_lead_weight": 0.0,
                   "loss.freeboard_lead_on_ice_weight": 0.0}
NUMBER_ABOVE = {"optim.clip_norm": 0.0}
NUMBER_BELOW_ONE = ("optim.b1", "optim.b2")


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        if node is None or part not in node:
            return None
        node = node[part]
    return node


def check_training_config(config) -> None:
    """ConfigRangeError naming the first field out of range (see the module docstring)."""
    for field, minimum in WHOLE_AT_LEAST.items():
        value = _get(config, field)
        if value is not None:
            check_number(value, f"--config.{field}", minimum, integer=True)
    for field, minimum in NUMBER_AT_LEAST.items():
        value = _get(config, field)
        if value is not None:
            check_number(value, f"--config.{field}", minimum, maximum=None)
    for field in NUMBER_BELOW_ONE:
        value = _get(config, field)
        if value is not None and not value < 1:
            raise ConfigRangeError(f"--config.{field} must be a number >= 0 and < 1, got {value!r}")
    for field, above in NUMBER_ABOVE.items():
        value = _get(config, field)
        if value is not None:
            check_number(value, f"--config.{field}", above=above)
    lr = _get(config, "optim.lr")
    if lr is not None and lr < 0:  # NaN passes: the loop's non-finite check names it (tests use it)
        raise ConfigRangeError(f"--config.optim.lr must be a number >= 0, got {lr!r}")
    filters = _get(config, "model.filters")
    if filters is not None:
        if len(filters) == 0:
            raise ValueError("--config.model.filters must hold at least one width, got ()")
        for width in filters:
            check_number(width, "--config.model.filters", 1, integer=True)
    size = _get(config, "data.synthetic.size")
    if size is not None and not (_get(config, "data.shards") or ""):
        if len(size) != 2:
            raise ConfigRangeError(f"--config.data.synthetic.size must be (height, width), got {tuple(size)}")
        for side in size:
            check_number(side, "--config.data.synthetic.size", 1, integer=True)
