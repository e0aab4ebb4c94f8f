"""One sweep point, in its own process: train (resuming), predict the held-out scenes, evaluate.

Layout of a point folder: config.json, point.json, log.txt, checkpoints/, predictions/, eval.json,
eval.md, results.json (written last: its presence means the point is finished).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from seaice_jax import fileio

RESULTS_JSON = "results.json"
POINT_JSON = "point.json"
CONFIG_JSON = "config.json"
LOG_TXT = "log.txt"


def _finite_or_none(tree: Any) -> Any:
    """JSON-safe copy: NaN / inf become None, numpy scalars become Python numbers."""
    if isinstance(tree, Mapping):
        return {str(k): _finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_finite_or_none(v) for v in tree]
    if hasattr(tree, "item") and not isinstance(tree, (str, bytes)):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


TrainFn = Callable[[Any, str], dict]  # train.train_and_evaluate(config, workdir) -> final metrics


def run_point(point_dir: str, train_and_evaluate: TrainFn) -> dict:
    """Train (resuming), predict the held-out scenes, evaluate; writes results.json last.

    The training loop comes in as an argument (from the entry point, `__main__.py`): no library
    module imports seaice_jax.train.
    """
    from seaice_jax.evaluation import evaluate_predictions, format_markdown, write_json
    from seaice_jax.inference import predict_files
    from seaice_jax.trained_model import load_config

    with open(os.path.join(point_dir, POINT_JSON)) as f:
        point = json.load(f)
    config = load_config(point_dir)
    start = time.perf_counter()
    final = train_and_evaluate(config, point_dir)
    pred_dir = os.path.join(point_dir, "predictions")
    predict_files(point_dir, point["heldout"], pred_dir)
    evaluation = evaluate_predictions(pred_dir, point["heldout"], min_region_pixels=config.eval.min_region_pixels)
    write_json(_finite_or_none(evaluation), os.path.join(point_dir, "eval.json"))
    fileio.write_text(os.path.join(point_dir, "eval.md"), format_markdown(evaluation))
    result = {
        "name": point["name"],
        "labels": point["labels"],
        "status": "ok",
        "seconds": time.perf_counter() - start,
        "train": final,
        "pooled": evaluation["pooled"],
    }
    write_json(_finite_or_none(result), os.path.join(point_dir, RESULTS_JSON))
    return result


def point_main(argv: Sequence[str], train_and_evaluate: TrainFn) -> int:
    """`python -m seaice_jax.sweep POINT_DIR`: the last line printed on failure is 'error: ...'."""
    if len(argv) != 1:
        print("usage: python -m seaice_jax.sweep POINT_DIR", file=sys.stderr)
        return 2
    try:
        run_point(argv[0], train_and_evaluate)
    except Exception as e:  # the parent reports the last line; the traceback stays in the log
        traceback.print_exc()
        message = " ".join(str(e).split())
        print(f"error: {type(e).__name__}: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
