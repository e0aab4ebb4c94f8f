"""Placing sweep points on accelerators: each parallel slot sees only its own devices."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def detect_devices(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(platform, local device count) as a child process sees them ('cpu' | 'gpu' | 'tpu', n)."""
    code = "import jax; d = jax.local_devices(); print(d[0].platform, len(d))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(env if env is not None else os.environ), check=False)
    if out.returncode:
        raise RuntimeError(f"could not count devices: {out.stderr.strip().splitlines()[-1:]}")
    platform, count = out.stdout.split()[-2:]
    return ("gpu" if platform in ("cuda", "rocm") else platform), int(count)


def _tpu_chip_bounds(chips: int) -> str:
    """TPU_CHIPS_PER_PROCESS_BOUNDS of a sub-slice of `chips` chips on one host."""
    bounds = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1", 8: "2,4,1"}
    if chips not in bounds:
        raise ValueError(f"--devices-per-run {chips} on TPU: use 1, 2, 4 or 8 chips")
    return bounds[chips]


def device_slots(platform: str, count: int, devices_per_run: int, max_parallel: int = 0,
                 env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Environment additions of each parallel slot; one empty slot = one point at a time, all devices.

    GPU: CUDA_VISIBLE_DEVICES (and HIP_VISIBLE_DEVICES for ROCm) per slot, as indices into the
    parent's own CUDA_VISIBLE_DEVICES when that is set. TPU: TPU_VISIBLE_CHIPS (TPU_VISIBLE_DEVICES on
    older libtpu) with a one-process sub-slice topology and a port per slot; assumes one JAX device
    per chip (v4, v5e, v6e; on v2/v3 pass chips, not cores).
    """
    env = os.environ if env is None else env
    if devices_per_run <= 0 or platform == "cpu":
        return [{}]
    if devices_per_run > count:
        raise ValueError(f"--devices-per-run {devices_per_run} but this host has {count} {platform} device(s)")
    n_slots = count // devices_per_run
    if max_parallel > 0:
        n_slots = min(n_slots, max_parallel)
    physical = [x for x in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()] if platform == "gpu" else []
    slots = []
    for k in range(n_slots):
        ids = list(range(k * devices_per_run, (k + 1) * devices_per_run))
        if platform == "gpu":
            names = ",".join(physical[i] if physical else str(i) for i in ids)
            slots.append({"CUDA_VISIBLE_DEVICES": names, "HIP_VISIBLE_DEVICES": names})
        elif platform == "tpu":
            names = ",".join(str(i) for i in ids)
            port = str(8476 + k)
            slots.append({"TPU_VISIBLE_CHIPS": names, "TPU_VISIBLE_DEVICES": names,
                          "TPU_CHIPS_PER_PROCESS_BOUNDS": _tpu_chip_bounds(devices_per_run),
                          "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_PROCESS_PORT": port,
                          "TPU_MESH_CONTROLLER_ADDRESS": f"localhost:{port}", "TPU_MESH_CONTROLLER_PORT": port})
        else:
            raise ValueError(f"--devices-per-run: no device selection known for platform {platform!r}")
    return slots
