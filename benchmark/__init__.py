"""SteerBench: driving tasks, imitation learning and a versioned evaluation harness (see README "Architecture")."""

from .common.numerics import make_portable

make_portable()  # before anything imports numpy: the env's numbers are the same on every x86-64 CPU
