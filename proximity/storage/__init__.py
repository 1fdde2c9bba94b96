"""Storage adapters of the shell: Redis device and beacon state, definitions in SQLite or Redis,
campaign counters in Redis (:mod:`proximity.storage.campaign_counters`).

They implement the core's store Protocols (:class:`proximity.core.StateStore`,
:class:`campaigns.caps.CounterStore`,
:class:`beacons.state.MonitorStore`) and the service's definition store; only this layer (and
the rest of the shell) imports ``redis`` and ``sqlite3``.
"""
