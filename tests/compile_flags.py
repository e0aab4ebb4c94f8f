"""XLA flags for the test processes (no side effects: subprocess configs import the test modules).

Tests compile many tiny programs and run each for milliseconds: LLVM's optimisation of XLA's fused
loops is most of a compile and buys nothing here (a tiny train step: 7.8 -> 4.4 s to compile).
"""

FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0"
