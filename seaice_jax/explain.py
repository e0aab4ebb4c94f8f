"""Grad-CAM (Selvaraju et al. 2017) of the model's heads over a named feature map (method.md section 7).

For a class score S (a scalar) and a feature map A = [h, w, C] of the U-Net:

    w_c  = mean over (h, w) of dS / dA_c          channel weights
    cam  = ReLU(sum_c w_c A_c)                     [h, w]
    map  = cam upsampled (bilinear) to the input size, zero outside the valid pixels, divided by
           its maximum -> [0, 1]

Class scores (mean over the scene's valid pixels unless said otherwise):
  'ice'            class None: the mean ice logit; class 1: the mean ice logit over pixels the model
                   calls ice (logit >= 0); class 0: the mean water logit (-ice logit) over pixels it
                   calls water. A class with no pixel falls back to all valid pixels.
  'SIC' regression the mean SIC output (class must be None).
  'SIC'/'SOD'/'FLOE' classification: the mean logit of class K.

dS/dA is taken with the model's `feature_offsets` hook (a zero offset added to the named map,
differentiated), so the forward pass is the model's own. Layer names: `list_layers(...)`
(encoder_i, bridge, aspp, decoder_i; decoder_0 is the coarsest).

Scene size: the CLI (`explain_scene`) applies the model's training downsampling, then takes a centre
crop of at most `max_size` x `max_size` pixels (default 1024), so memory stays bounded on 10 000 px
scenes and the model sees pixels at the scale it was trained on (downsampling further would not).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seaice_jax import fileio

TASKS = ("ice", "SIC", "SOD", "FLOE")
HH_CHANNEL = "nersc_sar_primary"
DEFAULT_MAX_SIZE = 1024


def _forward(fns, params, batch_stats, x, *, return_features=(), feature_offsets=None) -> dict:
    """The eval-mode model on x: [B, H, W, C], with its feature hooks."""
    model = nnx.merge(fns.graphdef_eval, params, batch_stats, copy=True)
    return model(x, return_features=tuple(return_features), feature_offsets=feature_offsets)


def list_layers(fns, params, batch_stats) -> tuple[str, ...]:
    """Feature-map names Grad-CAM accepts for this model."""
    return nnx.merge(fns.graphdef_eval, params, batch_stats, copy=True).feature_layers()


def _head_shapes(fns, params, batch_stats, channels: int) -> dict[str, tuple[int, ...]]:
    probe = jax.eval_shape(lambda p, b, x: _forward(fns, p, b, x), params, batch_stats,
                           jax.ShapeDtypeStruct((1, 512, 512, channels), jnp.float32))  # abstract: size is free
    return {k: v.shape for k, v in probe.items() if not k.startswith("features/")}


def check_request(fns, params, batch_stats, channels: int, task: str, class_index: int | None, layer: str) -> None:
    """One-line ValueError for an unknown layer, a head the model lacks or a class out of range."""
    layers = list_layers(fns, params, batch_stats)
    if layer not in layers:
        raise ValueError(f"unknown layer {layer!r}; valid layers: {', '.join(layers)}")
    heads = _head_shapes(fns, params, batch_stats, channels)
    if task not in heads:
        raise ValueError(f"task {task!r}: the model has no such head; heads: {', '.join(sorted(heads))}")
    n = heads[task][-1] if len(heads[task]) == 4 else 1
    if task == "ice":
        if class_index not in (None, 0, 1):
            raise ValueError(f"task ice: class must be none, 0 (water) or 1 (ice), got {class_index}")
    elif n == 1:
        if class_index is not None:
            raise ValueError(f"task {task} is a regression head: give no class")
    elif class_index is None or not 0 <= class_index < n:
        raise ValueError(f"task {task}: class must be in [0, {n}), got {class_index}")


def class_score(outputs: dict, task: str, class_index: int | None, valid: jax.Array) -> jax.Array:
    """Scalar score of `task` / `class_index` (module docstring); valid: bool [1, H, W]."""
    weights = valid.astype(jnp.float32)
    if task == "ice":
        logit = outputs["ice"]  # [1, H, W]
        if class_index is None:
            values = logit
        else:
            sign = 1.0 if class_index == 1 else -1.0
            values = sign * logit
            in_class = jax.lax.stop_gradient(values >= 0) & valid
            # No pixel of the class: fall back to every valid pixel rather than divide by zero.
            weights = jnp.where(in_class.any(), in_class.astype(jnp.float32), weights)
    else:
        out = outputs[task]
        values = out if out.ndim == 3 else out[..., class_index]
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _grad_cam_function(fns, task: str, class_index: int | None, layer: str):
    """Jitted (params, batch_stats, inputs [H, W, C], valid [H, W]) -> map [H, W], cached per model."""
    cache = fns.__dict__.setdefault("_grad_cam", {})
    key = (task, class_index, layer)
    if key in cache:
        return cache[key]
    feature = f"features/{layer}"

    def cam(params, batch_stats, inputs, valid):
        x, mask = inputs[None], valid[None]
        shape = jax.eval_shape(lambda p, b, xx: _forward(fns, p, b, xx, return_features=(layer,))[feature],
                               params, batch_stats, x).shape

        def score(offset):
            out = _forward(fns, params, batch_stats, x, return_features=(layer,), feature_offsets={layer: offset})
            return class_score(out, task, class_index, mask), out[feature]

        grads, fmap = jax.grad(score, has_aux=True)(jnp.zeros(shape, jnp.float32))
        channel_weights = grads[0].mean(axis=(0, 1))  # [C]
        coarse = jax.nn.relu(jnp.einsum("hwc,c->hw", fmap[0], channel_weights))
        full = jax.image.resize(coarse, inputs.shape[:2], method="bilinear")
        # Pixels outside `valid` are not scored: zero there, so a no-data hot spot cannot set the scale.
        full = jnp.where(valid, jnp.maximum(full, 0.0), 0.0)
        peak = full.max()
        return jnp.where(peak > 0, full / jnp.where(peak > 0, peak, 1.0), 0.0)

    cache[key] = jax.jit(cam)
    return cache[key]


def grad_cam(
    fns,
    params,
    batch_stats,
    inputs: np.ndarray,
    task: str,
    class_index: int | None,
    layer: str,
    *,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Grad-CAM map float32 [H, W] in [0, 1], 0 outside `valid` (all zeros when no channel pushes
    the score up).

    inputs: float32 [H, W, C] standard-scaled channels in the model's order; valid: bool [H, W]
    pixels the score averages over (default all). Raises ValueError (one line) for an unknown layer
    (listing the valid ones), a head the model lacks or a class out of range.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim != 3:
        raise ValueError(f"grad_cam: inputs must be [H, W, C], got shape {inputs.shape}")
    check_request(fns, params, batch_stats, inputs.shape[-1], task, class_index, layer)
    mask = np.ones(inputs.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    fn = _grad_cam_function(fns, task, class_index, layer)
    return np.asarray(fn(params, batch_stats, jnp.asarray(inputs), jnp.asarray(mask)))


def centre_crop(shape: tuple[int, int], max_size: int) -> tuple[slice, slice]:
    """Row and column slices of the central window of at most max_size x max_size."""
    out = []
    for n in shape:
        size = min(n, max_size)
        start = (n - size) // 2
        out.append(slice(start, start + size))
    return out[0], out[1]


def class_label(task: str, class_index: int | None) -> str:
    """What the score explains, in words: 'SOD class 3 (thin first-year ice)', 'ice (pixels called ice)'."""
    from seaice_jax.inference.products import CLASS_NAMES

    if task == "ice":
        return {None: "ice logit (all pixels)", 1: "ice (pixels called ice)",
                0: "water (pixels called water)"}[class_index]
    if class_index is None:
        return f"{task} (regression)"
    names = CLASS_NAMES[task]
    name = names[class_index] if 0 <= class_index < len(names) else f"class {class_index}"
    return f"{task} class {class_index} ({name})"


def _save_figure(hh: np.ndarray, valid: np.ndarray, land: np.ndarray, cam: np.ndarray, title: str,
                 path: str) -> None:
    """HH (grey) beside the Grad-CAM map (opaque inferno, perceptually uniform, labelled colour bar)
    on the sea; land and no data in the quicklook's colours. Written to a temporary name then renamed."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from seaice_jax.inference.products import LAND_COLOUR, NO_DATA_COLOUR

    shown = np.where(valid, hh, np.nan)
    lo, hi = np.nanpercentile(shown, [2, 98]) if np.isfinite(shown).any() else (0.0, 1.0)
    surface = np.where(valid, np.nan, np.where(land, 0.0, 1.0))
    h, w = hh.shape
    fig = Figure(figsize=(10, 4.2 * h / max(w, 1) + 1.6))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ax in (left, right):
        ax.imshow(surface, cmap=ListedColormap([LAND_COLOUR, NO_DATA_COLOUR]), vmin=-0.5, vmax=1.5,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    left.imshow(shown, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    left.set_title("SAR HH (standard-scaled)", fontsize=9)
    # Land / no-data pixels are not scored: the map is drawn on the sea only.
    overlay = right.imshow(np.where(valid, cam, np.nan), cmap="inferno", vmin=0.0, vmax=1.0,
                           interpolation="nearest")
    right.set_title("Grad-CAM", fontsize=9)
    bar = fig.colorbar(overlay, ax=[left, right], fraction=0.03, pad=0.02, shrink=0.8)
    bar.set_label("Grad-CAM relevance (1 = the window's maximum)", fontsize=8)
    fig.legend(handles=[Patch(facecolor=LAND_COLOUR, edgecolor="black", linewidth=0.5, label="land"),
                        Patch(facecolor=NO_DATA_COLOUR, edgecolor="black", linewidth=0.5, label="no data")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize="small")
    fileio.save_figure(fig, path)


def explain_scene(
    workdir: str,
    scene_path: str,
    out_png: str,
    *,
    task: str,
    class_index: int | None,
    layer: str,
    max_size: int = DEFAULT_MAX_SIZE,
) -> np.ndarray:
    """Grad-CAM of the trained model in `workdir` over a scene; writes the figure, returns the map [h, w]
    (the downsampled, centre-cropped window the model saw)."""
    from seaice_jax.data.scene import open_scene
    from seaice_jax.data.shards import downsample_scene
    from seaice_jax.trained_model import input_channels, restore_for_inference

    config, fns, params, batch_stats, step = restore_for_inference(workdir)
    channels = input_channels(config)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    check_request(fns, params, batch_stats, len(channels), task, class_index, layer)
    from seaice_jax.inference.products import DISTANCE, surface_masks

    scene = open_scene(scene_path, channels=tuple(dict.fromkeys(channels + (HH_CHANNEL, DISTANCE))),
                       require_charts=False)
    scene = downsample_scene(scene, config.data.downsample)
    rows, cols = centre_crop(scene.shape, max_size)
    inputs = scene.stack(channels)[rows, cols]
    valid = scene.valid[rows, cols]
    land = surface_masks(scene)[0][rows, cols]
    cam = grad_cam(fns, params, batch_stats, inputs, task, class_index, layer, valid=valid)
    title = (f"{scene.name}: Grad-CAM of {class_label(task, class_index)} at {layer} "
             f"(step {step}, window {inputs.shape[0]}x{inputs.shape[1]})")
    _save_figure(scene.channels[HH_CHANNEL][rows, cols], valid, land, cam, title, out_png)
    return cam
