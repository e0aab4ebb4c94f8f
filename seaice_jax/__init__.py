"""seaice-jax: weak ice-chart labels to pixel-level sea-ice topology, in JAX/Flax."""

__version__ = "0.1.0"
