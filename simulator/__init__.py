"""Simulator: seeded shopper foot traffic with exact ground-truth events, for tests, benchmarks and demos.

>>> from simulator import generate, score
>>> w = generate(20, n_devices=5, n_pings=300, seed=1)
>>> len(w), len(w.fences)
(300, 20)
"""

from simulator.score import Score, read_events, score
from simulator.workload import DEFAULT_CITY, CityLayout, Truth, Workload, generate, random_layout

__all__ = ["generate", "random_layout", "CityLayout", "Workload", "Truth", "DEFAULT_CITY", "score", "Score",
           "read_events"]
