"""The detection mode of tests whose expected events are exact detection's.

The engine's default is probabilistic detection (a ping is evidence about a place). Tests of
the state machine, the stores, the service's plumbing and the oracle properties expect exact
detection's events (a ping is a point), so they ask for it, as the issue's "exact mode stays
as an option, e.g. for tests" says.
"""

from proximity import EngineConfig

#: ``EngineConfig(detection="exact")``: deterministic point-in-fence semantics
EXACT = EngineConfig(detection="exact")
