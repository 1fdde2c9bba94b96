"""Service configuration: pydantic-settings with the ``PROXIMITY_`` env prefix, failing fast.

Every setting can come from the environment (``PROXIMITY_PORT=8080``) or from ``proximity serve``
flags, which win. A bad value stops the process at start with a message naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Settings of one ``proximity serve`` process."""

    model_config = SettingsConfigDict(env_prefix="PROXIMITY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    redis_url: str | None = None
    redis_prefix: str = "prox:"
    demo: bool = False
    public_docs: bool = Field(
        True,
        description="serve /docs and /openapi.json without a key; "
        "false turns both off (every other route but /health needs a key)",
    )
    demo_speed: float = Field(20.0, gt=0, description="demo ping replay speed-up over real time")
    admin_key: SecretStr | None = None
    keep_alive_s: float = Field(
        75.0,
        gt=0,
        description="close an idle HTTP keep-alive connection after this long (uvicorn's own default, "
        "5 s, equals common clients' pool expiry, so a request racing the close got a reset)",
    )

    # limits
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_import_bytes: int = Field(
        1024**3,
        ge=1024,
        description="body limit of POST "
        "/v1/geofences/import (spooled to disk past import_spool_bytes); "
        "every other route has max_body_bytes",
    )
    import_spool_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="an import body larger than this is spooled to a temporary file, not kept in memory",
    )
    import_workers: int | None = Field(
        None,
        ge=0,
        description="worker processes that read a GeoJSON FeatureCollection import of 500,000 features "
        "or more beside the server process (geofences.formats.read_collection); unset: one per CPU "
        "but one; 0: read in the server process alone",
    )
    max_batch: int = Field(10_000, ge=1)
    max_vertices: int = Field(10_000, ge=4)
    max_radius_m: float = Field(50_000.0, gt=0)
    max_page: int = Field(1000, ge=1)
    fraud_flush_s: float = Field(
        30.0,
        gt=0,
        description="embedded mode: how often the campaign fraud gate's last pings are written to "
        "SQLite (in the background; a suppression is written at once). A kill -9 forgets at most this much",
    )
    max_clock_skew_s: float = Field(
        300.0,
        gt=0,
        description="refuse pings this far ahead of the "
        "server's clock (one ping from the future would make every later one stale)",
    )
    min_ts: float = Field(
        946_684_800.0, description="refuse pings older than this epoch second (default 2000-01-01T00:00:00Z)"
    )

    # engine
    hysteresis_factor: float = Field(1.0, ge=0)
    detection: Literal["exact", "probabilistic"] = Field(
        "probabilistic",
        description="probabilistic (the default): presence filters over the GPS error; exact: a ping is a point",
    )
    max_accuracy_m: float = Field(1000.0, gt=0)
    sweep_interval_s: float = Field(1.0, gt=0)
    device_ttl_s: float | None = Field(
        30 * 86_400.0,
        ge=60,
        description="forget a device not heard for this long (an exit, reason expired, if it is inside "
        "a fence); empty: keep every device for ever",
    )
    expire_interval_s: float = Field(60.0, gt=0, description="how often idle devices are looked for")
    inline_ingest_max_pings: int = Field(
        256,
        ge=0,
        description="embedded mode: ingest merged batches this small on the event loop, not in a worker thread "
        "(phones' single pings: the thread hop costs more than the call; 0 = always a thread)",
    )

    gc_freeze: bool = Field(
        False,
        description="after start, move every object to the garbage "
        "collector's permanent generation (shorter GC pauses); serve turns it on",
    )

    # campaigns: the fraud gate (campaigns.fraud.FraudConfig; see fraud_config())
    fraud_max_speed_kmh: float = Field(
        300.0,
        gt=0,
        allow_inf_nan=False,
        description="consecutive pings of a device faster than this (and farther apart than "
        "fraud_min_jump_m) flag a spoofed location: the device gets no offers for fraud_suppress_s",
    )
    fraud_min_jump_m: float = Field(
        2000.0, ge=0, allow_inf_nan=False, description="a jump shorter than this is never flagged (GPS noise)"
    )
    fraud_suppress_s: float = Field(
        6 * 3600.0, gt=0, allow_inf_nan=False, description="how long a flagged device gets no offers, seconds"
    )

    # BLE beacons (the monitor: beacons.monitor.MonitorConfig; see monitor_config())
    beacon_exit_after_s: float = Field(
        30.0, gt=0, le=86_400, description="silence that ends a beacon stay (beacon_exit, reason silence), seconds"
    )
    beacon_filter: Literal["kalman", "ema", "none"] = Field("kalman", description="RSSI smoothing")
    beacon_distance_model: Literal["log_distance", "curve"] = "log_distance"
    beacon_path_loss_exponent: float = Field(2.0, ge=1, le=6, description="for beacons registered without one")
    beacon_zone_immediate_m: float = Field(0.5, gt=0, description="immediate below this distance")
    beacon_zone_near_m: float = Field(3.0, gt=0, description="near below this distance, else far")
    beacon_zone_margin_immediate_m: float = Field(
        0.15, ge=0, description="hysteresis at the immediate / near boundary, meters"
    )
    beacon_zone_margin_near_m: float = Field(1.0, ge=0, description="hysteresis at the near / far boundary, meters")
    beacon_enter_max_zone: Literal["immediate", "near", "far"] = Field(
        "far", description="a beacon stay begins at a sighting in this zone or closer"
    )
    beacon_use_sighting_tx_power: bool = False
    beacon_positions: bool = Field(
        True, description="trilaterate devices from >= 3 beacons and feed the fixes to the geofence engine as pings"
    )
    beacon_position_window_s: float = Field(5.0, ge=0, le=3600)
    beacon_place_pings: bool = Field(
        False,
        description="feed readings of a store's beacon ranged within beacon_place_max_m to the engine as "
        "place pings: evidence for that store in probabilistic detection (PROXIMITY_DETECTION=probabilistic)",
    )
    beacon_place_max_m: float = 8.0

    event_retention_s: float = Field(24 * 3600.0, gt=0)
    event_log_cap: int = Field(1_000_000, ge=10)
    malloc_arena_max: int = Field(
        2, ge=0, description="glibc malloc arenas of a `proximity serve` process (0: glibc's default, 8 per core)"
    )
    event_log_max_mb: int = Field(
        512, ge=1, description="memory the embedded event log may hold (about 350 bytes per event); oldest dropped"
    )
    event_log_durable: bool = Field(
        True,
        description="embedded mode: keep the event log in SQLite "
        "too, so it survives a restart; false keeps it in memory only",
    )
    sse_heartbeat_s: float = Field(15.0, gt=0)
    sse_write_timeout_s: float = Field(
        10.0, gt=0, description="an event stream client that takes no data for this long is cut off (it resumes by id)"
    )

    # webhooks (delivery itself is proximity.webhooks)
    webhook_retry_base_s: float = Field(1.0, gt=0, description="first retry delay; doubles per attempt")
    webhook_max_backoff_s: float = Field(300.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host names or IPs webhooks may use even though "
        "internal (loopback, private, link-local are refused otherwise); env: a JSON list or "
        "comma-separated",
    )

    # the console (/console)
    console_tile_url: str = Field(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="the console's base-map tile URL template ({z}, {x}, {y}; optional {s}); "
        "empty: no base map (the fences are drawn on a plain background)",
    )
    console_tile_attribution: str = Field(
        "&copy; OpenStreetMap contributors", max_length=500, description="shown under the map (HTML)"
    )

    # MQTT (proximity.service.mqtt): OwnTracks phones through a broker
    mqtt_url: str | None = Field(
        None, description="subscribe to OwnTracks messages on this broker: mqtt://[user:password@]host[:port]"
    )
    mqtt_topic: str = Field(
        "owntracks/#", description="topic filter of the OwnTracks messages (owntracks/<user>/<device>)"
    )
    mqtt_events_topic: str = Field(
        "proximity/events",
        description="events are published to <this>/<device_id> (QoS mqtt_events_qos); empty: not published",
    )
    mqtt_events_qos: int = Field(
        1,
        ge=0,
        le=1,
        description="QoS of the published events: 1 (the broker acknowledges each; resent after a reconnect) "
        "or 0 (written in one send per batch: about half the server's CPU per message at high rates)",
    )
    mqtt_client_id: str = Field(
        "proximity-engine",
        min_length=1,
        description="the MQTT client id; fixed, so the broker keeps the session (and its queued messages) across reconnects",
    )
    mqtt_max_batch: int = Field(5000, ge=1, description="most MQTT messages ingested together")

    # cluster (Redis mode)
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="worker processes serving one port (Redis mode only: the embedded mode keeps device state in its process)",
    )
    sync_interval_s: float = Field(0.25, gt=0, le=1.0, description="how often a process polls for definition changes")
    redis_epoch_check_s: float = Field(
        1.0, gt=0, le=60, description="how often a process checks that Redis still holds its data (the epoch marker)"
    )
    outbox_lease_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Redis mode: a call's events saved with its device states but not logged after this long "
        "(the process died or failed in between) are logged by another process (the outbox)",
    )

    @field_validator("device_ttl_s", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if v == "" else v

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("console_tile_url")
    @classmethod
    def _check_tile_url(cls, v: str) -> str:
        v = v.strip()
        if v and (not v.startswith(("https://", "http://")) or not all(p in v for p in ("{z}", "{x}", "{y}"))):
            raise ValueError("must be empty or an http(s) URL template with {z}, {x} and {y}")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError("must read mqtt://[user:password@]host[:port]")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("bad port") from None
        return v

    @field_validator("webhook_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v):
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [h.strip() for h in text.split(",") if h.strip()]
        return v

    @field_validator("admin_key")
    @classmethod
    def _check_admin_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @model_validator(mode="after")
    def _check_data_dir(self) -> Settings:
        if self.redis_url is None and self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"data_dir {self.data_dir} exists and is not a directory")
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> Settings:
        if self.workers > 1 and self.redis_url is None:
            raise ValueError(
                f"workers={self.workers} needs redis_url: the embedded mode keeps device state in one process "
                "(run one worker, or use Redis mode for several)"
            )
        if self.workers > 1 and self.mqtt_url is not None:
            raise ValueError(
                "workers > 1 with mqtt_url is not supported yet: run MQTT ingestion in a one-worker process"
            )
        return self

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        if self.webhook_max_backoff_s < self.webhook_retry_base_s:
            raise ValueError("webhook_max_backoff_s must be >= webhook_retry_base_s")
        return self

    @model_validator(mode="after")
    def _check_beacon_monitor(self) -> Settings:
        self.monitor_config()  # raises ValueError naming the bad option
        return self

    def fraud_config(self):
        """The campaigns' :class:`~campaigns.fraud.FraudConfig` from the ``fraud_*`` settings."""
        from campaigns.fraud import FraudConfig

        return FraudConfig(self.fraud_max_speed_kmh, self.fraud_min_jump_m, self.fraud_suppress_s)

    def monitor_config(self):
        """Return the beacon monitor's :class:`~beacons.monitor.MonitorConfig` from these settings.

        Raises
        ------
        ValueError
            Naming the setting when the combination is invalid (zone thresholds out of order).
        """
        from beacons.errors import BeaconFieldError
        from beacons.monitor import MonitorConfig
        from beacons.ranging import Zone, ZoneThresholds

        try:
            thresholds = ZoneThresholds(self.beacon_zone_immediate_m, self.beacon_zone_near_m)
            return MonitorConfig(
                filter=self.beacon_filter,
                distance_model=self.beacon_distance_model,
                path_loss_exponent=self.beacon_path_loss_exponent,
                thresholds=thresholds,
                zone_margin_m=(self.beacon_zone_margin_immediate_m, self.beacon_zone_margin_near_m),
                use_sighting_tx_power=self.beacon_use_sighting_tx_power,
                exit_after_s=self.beacon_exit_after_s,
                enter_max_zone=Zone[self.beacon_enter_max_zone.upper()],
                positions=self.beacon_positions,
                position_window_s=self.beacon_position_window_s,
                place_pings=self.beacon_place_pings,
                place_max_m=self.beacon_place_max_m,
            )
        except BeaconFieldError as exc:
            name = {
                "thresholds": "beacon_zone_immediate_m, beacon_zone_near_m",
                "margin": "beacon_zone_margin_immediate_m, beacon_zone_margin_near_m",
            }.get(exc.field, f"beacon_{exc.field}")
            raise ValueError(f"{name}: {exc.value!r} is invalid; expected {exc.expected}") from None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "definitions.sqlite3"
