"""A simulated organisation of agents, for detection benchmarks, tests and the demo."""
