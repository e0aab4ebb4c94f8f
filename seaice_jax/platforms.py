"""Which platforms use the CPU-measured formulations; all others get XLA's plain one.

Three formulations were written for, and measured only on, XLA:CPU:

  - ``tap_gemm_kernel_grad`` (models/conv.py): a conv's kernel gradient as one GEMM per kernel tap;
  - ``fused_upsampling`` (models/upsample.py, models/aspp.py): align-corners x2 upsampling as
    static gathers, and the upsampling fused into the 3x3 conv that follows it;
  - ``row_blocked_scaling`` (scaling.py): ALS of a large scene in blocks of rows, so that no
    scene-sized temporary is allocated afresh per call (page faults dominated the CPU time); on an
    accelerator the whole-array passes, whose temporaries come from XLA's preallocated pool.

Each is chosen inside the traced function with `lax.platform_dependent`: one trace serves every
platform, and lowering keeps only the branch of the platform it compiles for (the other branch
never reaches the compiler). On the platforms not listed, the plain formulation is used: XLA's own
conv and conv gradients, and a dense align-corners interpolation followed by a plain conv.

Defaults: CPU only, because nothing has been measured on a GPU or TPU. Once a formulation is
measured faster on an accelerator, add the platform to DEFAULT_PLATFORMS, or per run set e.g.

    SEAICE_JAX_TAP_GEMM_KERNEL_GRAD_PLATFORMS=cpu,cuda
    SEAICE_JAX_FUSED_UPSAMPLING_PLATFORMS=          (empty: the plain formulation everywhere)

Platform names are those of `lax.platform_dependent`: cpu, cuda, rocm, tpu. The switches are read
at trace time: set them before the first call of a jitted function.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from jax import lax

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
DEFAULT_PLATFORMS = {
    "tap_gemm_kernel_grad": ("cpu",),
    "fused_upsampling": ("cpu",),
    "row_blocked_scaling": ("cpu",),
}


def env_name(formulation: str) -> str:
    return f"SEAICE_JAX_{formulation.upper()}_PLATFORMS"


def platforms_for(formulation: str) -> tuple[str, ...]:
    """The platforms on which `formulation` is used: its environment switch, else the default."""
    if formulation not in DEFAULT_PLATFORMS:
        raise KeyError(f"unknown formulation {formulation!r}; known: {tuple(DEFAULT_PLATFORMS)}")
    value = os.environ.get(env_name(formulation))
    if value is None:
        return DEFAULT_PLATFORMS[formulation]
    names = tuple(name.strip().lower() for name in value.split(",") if name.strip())
    unknown = sorted(set(names) - set(PLATFORMS))
    if unknown:
        raise ValueError(f"{env_name(formulation)}: unknown platforms {unknown}; expected some of {PLATFORMS}")
    return names


def choose(formulation: str, *args, special: Callable, plain: Callable):
    """`special(*args)` when lowered for a platform of `platforms_for(formulation)`, else
    `plain(*args)`; both must return the same shapes and dtypes."""
    platforms = platforms_for(formulation)
    if not platforms:
        return plain(*args)
    if set(platforms) == set(PLATFORMS):
        return special(*args)
    return lax.platform_dependent(*args, **{p: special for p in platforms}, default=plain)
