"""Service configuration: pydantic-settings with the ``PROXIMITY_`` env prefix, failing fast.

Every setting can come from the environment (``PROXIMITY_PORT=8080``) or from ``proximity serve``
flags, which win. A bad value stops the process at start with a message naming the setting.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    demo_speed: float = Field(20.0, gt=0, description="demo ping replay speed-up over real time")
    admin_key: SecretStr | None = None

    # limits
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_batch: int = Field(10_000, ge=1)
    max_vertices: int = Field(10_000, ge=4)
    max_radius_m: float = Field(50_000.0, gt=0)
    max_page: int = Field(1000, ge=1)

    # engine
    hysteresis_factor: float = Field(1.0, ge=0)
    max_accuracy_m: float = Field(1000.0, gt=0)
    sweep_interval_s: float = Field(1.0, gt=0)
    inline_ingest_max_pings: int = Field(0, ge=0, description="embedded mode: ingest merged batches "
                                         "this small on the event loop, not in a worker thread")

    gc_freeze: bool = Field(False, description="after start, move every object to the garbage "
                            "collector's permanent generation (shorter GC pauses); serve turns it on")

    # event log
    event_retention_s: float = Field(24 * 3600.0, gt=0)
    event_log_cap: int = Field(1_000_000, ge=10)
    sse_heartbeat_s: float = Field(15.0, gt=0)

    # webhooks (delivery itself is proximity.webhooks)
    webhook_retry_base_s: float = Field(1.0, gt=0, description="first retry delay; doubles per attempt")
    webhook_max_backoff_s: float = Field(300.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)

    # cluster (Redis mode)
    sync_interval_s: float = Field(0.25, gt=0, le=1.0,
                                   description="how often a process polls for definition changes")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("admin_key")
    @classmethod
    def _check_admin_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @model_validator(mode="after")
    def _check_data_dir(self) -> "Settings":
        if self.redis_url is None and self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"data_dir {self.data_dir} exists and is not a directory")
        return self

    @model_validator(mode="after")
    def _check_backoff(self) -> "Settings":
        if self.webhook_max_backoff_s < self.webhook_retry_base_s:
            raise ValueError("webhook_max_backoff_s must be >= webhook_retry_base_s")
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "definitions.sqlite3"
