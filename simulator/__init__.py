"""Simulator: seeded shopper foot traffic with exact ground-truth events, for tests, benchmarks and demos.

Two halves. :mod:`simulator.workload` (re-exported here) is the *exactness oracle*: clean traffic
whose pings stay away from every boundary, so the expected events are known exactly. The noisy
half models real shoppers and phones from a TOML scenario and scores detection against the
true visits: :mod:`~simulator.scenario`, :mod:`~simulator.places`, :mod:`~simulator.shoppers`,
:mod:`~simulator.phones` (GPS and BLE noise), :mod:`~simulator.truth`,
:mod:`~simulator.traffic` (``generate(scenario, seed)``), :mod:`~simulator.replay` and
:mod:`~simulator.http_replay`, :mod:`~simulator.reference` (majority vote),
:mod:`~simulator.scoring`, :mod:`~simulator.offers` (campaigns' offers in replays, scored),
:mod:`~simulator.report`, :mod:`~simulator.traces`, :mod:`~simulator.csvout` (fast CSV) and the
``simulator`` command line (:mod:`~simulator.cli`).

>>> from simulator import generate, score
>>> w = generate(20, n_devices=5, n_pings=300, seed=1)
>>> len(w), len(w.fences)
(300, 20)
"""

from simulator.score import Score, read_events, score
from simulator.workload import DEFAULT_CITY, CityLayout, Truth, Workload, generate, random_layout

__all__ = [
    "generate",
    "random_layout",
    "CityLayout",
    "Workload",
    "Truth",
    "DEFAULT_CITY",
    "score",
    "Score",
    "read_events",
]
