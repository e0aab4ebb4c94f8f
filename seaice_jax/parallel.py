"""Data parallelism: the device mesh, global batches built from per-process ones, local copies.

One mesh axis 'data' over every device of every host; batches are sharded along it and parameters
replicated, so XLA computes BatchNorm statistics and gradients over the global batch.
"""

from __future__ import annotations

import jax


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, from_environment: bool = False) -> None:
    """Join a multi-host run: explicitly (`coordinator` HOST:PORT of process 0, the process count and
    this process's index) or from the cluster's environment (SLURM, TPU pods, ...). Neither: one host."""
    if coordinator:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif from_environment:
        jax.distributed.initialize()


def mesh_device_count(num_devices: int, batch_size: int) -> int:
    """Devices for a run: `num_devices`, or 0 = all of them. On CPU, where the devices are only a way
    to use every core (see runtime.one_cpu_device_per_core), the largest count dividing the batch."""
    if num_devices:
        return num_devices
    count = jax.device_count()
    if jax.default_backend() == "cpu":
        while batch_size % count:
            count -= 1
    return count


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """One 'data' axis over all devices (or the first `num_devices`); Auto axes let XLA propagate
    shardings through the model, so only the batch needs annotating."""
    devices = jax.devices()[: num_devices or None]
    return jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def global_batch(local_batch: dict, mesh) -> dict:
    """Per-process numpy batch -> global jax.Arrays sharded along 'data' (no copy between hosts)."""
    sharding = jax.NamedSharding(mesh, jax.P("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def local_copy(tree):
    """Each replicated array's first addressable shard: a whole copy on one local device, on every
    process of a multi-host run too."""
    return jax.tree.map(lambda a: a.addressable_shards[0].data, tree)
