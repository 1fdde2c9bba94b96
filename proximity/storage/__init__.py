"""Storage adapters of the shell: Redis device and beacon state, definitions in SQLite or Redis.

They implement the core's store Protocols (:class:`proximity.core.StateStore`,
:class:`beacons.state.MonitorStore`) and the service's definition store; only this layer (and
the rest of the shell) imports ``redis`` and ``sqlite3``.
"""
