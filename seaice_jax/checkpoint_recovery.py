"""Checkpoints that cannot be read: named in one line, skipped, and (in training) set aside.

A step folder can be unreadable: truncated by a full disk or a copy cut short, emptied by hand,
its metadata damaged. Orbax then fails deep inside TensorStore with a long traceback, and TensorStore's
threads print "RuntimeError: Event loop is closed" many times after it. Here:

* `newest_readable_step(mngr, template, ...)` tries the steps newest first (restoring the state
  into `template`'s shapes, and parsing the data-iterator item), names every step it skips in one
  line each, and returns the newest step that reads (None: none). In training (`set_aside=True`)
  the skipped folders are moved to `<workdir>/checkpoints_unreadable/<step>` so that the run can save
  that step again; the user's bytes are kept, not deleted.
* `quiet()` silences Orbax's log lines while a step is tried, and `install_noise_filters()` drops
  the TensorStore "Event loop is closed" reports, Orbax's "Given directory is read only" warning
  (printed by every read-only manager, i.e. every inference run) and its "Reached preemption sync
  point" lines (said once by the interrupt's own line).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import shutil
import sys

UNREADABLE_DIR = "checkpoints_unreadable"
# Orbax's lines that every inference run, or every host at an interrupt, would print; what they say is
# said once in our own line ("interrupted by SIGTERM: stopped after step N ...").
_NOISE = ("Given directory is read only", "Reached preemption sync point")


def _drop_noise(record: logging.LogRecord) -> bool:
    return not any(n in str(record.msg) for n in _NOISE)


def install_noise_filters() -> None:
    """Idempotent: Orbax's read-only warning off the 'absl' logger; TensorStore's late
    'Event loop is closed' reports off `sys.unraisablehook` (every other report still goes through)."""
    absl_logger = logging.getLogger("absl")
    if _drop_noise not in absl_logger.filters:
        absl_logger.addFilter(_drop_noise)
    with contextlib.suppress(ImportError):  # absl's own handler, where absl's app.run installed it
        from absl import logging as absl_logging

        handler = absl_logging.get_absl_handler()
        if _drop_noise not in handler.filters:
            handler.addFilter(_drop_noise)
    hook = sys.unraisablehook
    if getattr(hook, "_seaice_jax_filter", False):
        return

    def unraisable(report, previous=hook):
        if isinstance(report.exc_value, RuntimeError) and str(report.exc_value) == "Event loop is closed":
            return
        previous(report)

    unraisable._seaice_jax_filter = True
    sys.unraisablehook = unraisable


@contextlib.contextmanager
def quiet():
    """Orbax's log lines (warnings and errors about the step being tried) off for the block."""
    install_noise_filters()
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        absl_logger.setLevel(level)


def short_reason(error: BaseException, limit: int = 200) -> str:
    """One line of what went wrong: the innermost cause's type and message, TensorStore specs cut."""
    root = error
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = " ".join(str(root).split())
    text = re.sub(r"\s*\[tensorstore_spec.*", "", text)
    text = re.sub(r"\s*See full TensorStore details.*", "", text)
    text = f"{type(root).__name__}: {text}" if text else type(root).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_data_item(step_dir: str) -> None:
    """The data-iterator item (grain's JSON per process), when the step has one, must parse."""
    for path in sorted(glob.glob(os.path.join(step_dir, "data", "*.json"))):
        with open(path) as f:
            json.load(f)


def _set_aside(step_dir: str, workdir: str) -> str:
    folder = os.path.join(workdir, UNREADABLE_DIR)
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, os.path.basename(step_dir))
    k = 1
    while os.path.exists(dest):
        dest = os.path.join(folder, f"{os.path.basename(step_dir)}.{k}")
        k += 1
    shutil.move(step_dir, dest)
    return dest


def newest_readable_step(mngr, template, workdir: str, **kwargs) -> int | None:
    """The newest step of `mngr` whose state restores into `template` (see `newest_readable`)."""
    return newest_readable(mngr, template, workdir, **kwargs)[0]


def newest_readable(mngr, template, workdir: str, *, set_aside: bool, note, restore,
                    using: str = "resuming from step", check_data: bool = True):
    """(step, restored state) of the newest step of `mngr` whose state restores into `template`
    ((None, None): none does); see the module docstring.

    restore(mngr, step, template) restores the state item (trained_model.restore_checkpoint);
    note(line) says each skipped step; `check_data`: the data-iterator item must parse too (training).
    With `set_aside`, process 0 moves each skipped step folder out
    of the checkpoint folder (all hosts wait for it) and the manager re-reads its steps.
    """
    import jax

    skipped = []
    found = restored = None
    for step in sorted(mngr.all_steps(), reverse=True):
        step_dir = os.path.join(str(mngr.directory), str(step))
        try:
            with quiet():
                restored = restore(mngr, step, template)
                if check_data:
                    _check_data_item(step_dir)
        except Exception as e:  # noqa: BLE001 - any failure to read the step is reported and the step skipped
            skipped.append((step, step_dir, short_reason(e)))
            continue
        found = step
        break
    for _step, step_dir, reason in skipped:
        line = f"warning: checkpoint {step_dir} is unreadable ({reason})"
        if set_aside:
            dest = step_dir
            if jax.process_index() == 0:
                dest = _set_aside(step_dir, workdir)
            line += f"; moved to {dest}"
        line += f"; {using} {found}" if found is not None else "; no readable checkpoint left"
        note(line)
    if skipped and set_aside:
        if jax.process_count() > 1:  # every host waits until process 0 has moved the folders
            from jax._src import distributed

            client = distributed.global_state.client
            if client is not None:
                client.wait_at_barrier(f"seaice_jax_set_aside_{'_'.join(str(s) for s, _, _ in skipped)}",
                                       10 * 60 * 1000)
        mngr.reload()
    return found, (restored if found is not None else None)
