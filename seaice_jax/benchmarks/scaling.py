"""Data-parallel scaling of the train step: 1, 2, 4, ... devices at a fixed global batch.

Each device count runs in its own process (the device count of a JAX process is fixed when it
starts): on CPU with N simulated devices (`--xla_force_host_platform_device_count`, which shows the
mechanism: the same cores are shared), on accelerators with the first N real devices.

  python -m seaice_jax.benchmarks.scaling --child CONFIG_JSON --devices N --batch-size B
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def device_counts(max_devices: int) -> list[int]:
    counts, n = [], 1
    while n <= max_devices:
        counts.append(n)
        n *= 2
    if counts[-1] != max_devices:
        counts.append(max_devices)
    return counts


def run(config, max_devices: int, batch_size: int = 8, platform: str = "cpu") -> dict:
    """{'scaling': {'<devices>': {'images_per_s', 'step_ms', 'speedup'}, ...}}."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            f.write(config.to_json_best_effort())
        for n in device_counts(max_devices):
            if batch_size % n:
                continue
            env = dict(os.environ)
            if platform == "cpu":
                env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
            proc = subprocess.run(
                [sys.executable, "-m", "seaice_jax.benchmarks.scaling", "--child", cfg_path,
                 "--devices", str(n), "--batch-size", str(batch_size)],
                env=env, capture_output=True, text=True)
            if proc.returncode:
                out[str(n)] = {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
                continue
            out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = out.get("1", {}).get("images_per_s")
    for row in out.values():
        if base and "images_per_s" in row:
            row["speedup"] = row["images_per_s"] / base
    return {"scaling": {"platform": platform, "global_batch": batch_size, "runs": out}}


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    import ml_collections

    from seaice_jax.benchmarks import train

    with open(args.child) as f:
        config = ml_collections.ConfigDict(json.load(f))
    config.train.num_devices = args.devices
    r = train.run(config, batch_size=args.batch_size, steps=5)["train"]
    print(json.dumps({k: r[k] for k in ("images_per_s", "step_ms", "devices", "cpu_s_per_step")}))


if __name__ == "__main__":
    _child(sys.argv[1:])
