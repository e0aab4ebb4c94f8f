"""Grad-CAM of a trained model over a scene, beside the SAR HH image:

  python launch/explain.py --workdir runs/quickstart --scene scene.nc --task SOD --class 3 \
      --layer decoder_1 --out gradcam.png

--task ice|SIC|SOD|FLOE; --class K for classification heads (for ice: omit = all pixels, 1 = ice,
0 = water). --layer one of the model's feature maps (an unknown name lists them). Large scenes: the
training downsampling is applied, then a centre crop of at most --max-size pixels a side is explained.
Flags take hyphens (--max-size); the underscore form is accepted. Classes: SOD 0 open water, 1 new ice,
2 young ice, 3 thin first-year, 4 thick first-year, 5 old ice; FLOE 0 open water, 1 cake ice, 2 small
floe, 3 medium floe, 4 big floe, 5 vast floe, 6 bergs; SIC (classification) k = 10 k %.
"""

from __future__ import annotations

import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "training workdir (config.json + checkpoints)")
_SCENE = flags.DEFINE_string("scene", None, "AI4Arctic NetCDF scene")
_TASK = flags.DEFINE_enum("task", "ice", ["ice", "SIC", "SOD", "FLOE"], "output head to explain")
_CLASS = flags.DEFINE_integer("class", None, "class index K of the head (none for ice = mean logit)", lower_bound=0)
_LAYER = flags.DEFINE_string("layer", None, "feature map name, e.g. bridge, aspp, decoder_1")
_OUT = flags.DEFINE_string("out", None, "output PNG")
_MAX_SIZE = flags.DEFINE_integer("max_size", 1024, "largest window side explained (centre crop)", lower_bound=1)
flags.mark_flags_as_required(["workdir", "scene", "layer", "out"])


def main(argv) -> int:
    del argv
    from seaice_jax.cli import fail
    from seaice_jax.output_paths import OutputError, check_output_file, missing_folders, remove_if_empty

    try:
        check_output_file(_OUT.value, "--out")
    except OutputError as e:
        return fail(f"explain: {e}")
    from seaice_jax.data.scene_types import SceneError
    from seaice_jax.explain import explain_scene

    created = missing_folders(_OUT.value)
    try:
        explain_scene(_WORKDIR.value, _SCENE.value, _OUT.value, task=_TASK.value, class_index=_CLASS.value,
                      layer=_LAYER.value, max_size=_MAX_SIZE.value)
    except (ValueError, OSError, SceneError) as e:
        for folder in reversed(created):
            remove_if_empty(folder)
        return fail(f"explain: {e}")
    print(f"wrote {_OUT.value}")
    return 0


if __name__ == "__main__":
    from seaice_jax.cli import parse_absl_flags
    from seaice_jax.interrupts import run_main
    from seaice_jax.runtime import setup

    setup(cpu_devices=False)  # the persistent compilation cache (the device count as it was)
    app.run(lambda argv: sys.exit(run_main(main, argv)), flags_parser=parse_absl_flags)
