"""SteerBench: driving tasks, imitation learning and a versioned evaluation harness (see README "Architecture")."""
