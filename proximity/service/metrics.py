"""Prometheus metrics (one registry per app) and the ASGI middleware timing every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]


class Metrics:
    """The service's counters, in a registry of its own (so several apps may live in one process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.pings = Counter("proximity_pings", "Pings received, by outcome", ["outcome"], registry=r)
        self.sightings = Counter(
            "proximity_sightings", "Beacon sightings received, by outcome", ["outcome"], registry=r
        )
        self.beacons = Gauge("proximity_beacons", "Beacons registered", registry=r)
        self.events = Counter("proximity_events", "Events emitted, by type", ["type"], registry=r)
        self.latency = Histogram(
            "proximity_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.store_errors = Counter("proximity_store_errors", "State/definition store failures", registry=r)
        self.redis_data_lost = Counter(
            "proximity_redis_data_lost", "Times this process found Redis restarted without its data", registry=r
        )
        self.webhook_backlog = Gauge("proximity_webhook_backlog", "Webhook deliveries waiting", registry=r)
        self.sse_clients = Gauge("proximity_sse_clients", "Open event streams", registry=r)
        self.fences = Gauge("proximity_geofences", "Geofences loaded", registry=r)
        self.decisions = Counter(
            "proximity_campaign_decisions", "Campaign decisions, by reason", ["reason"], registry=r
        )
        self.merged = Histogram(
            "proximity_ingest_merged_requests",
            "Requests (HTTP or MQTT batches) merged into one engine call",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
        )
        self.sightings_merged = Histogram(
            "proximity_sightings_merged_requests",
            "Sighting requests merged into one beacon monitor call",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
        )
        self.mqtt = Counter(
            "proximity_mqtt_messages",
            "MQTT messages received, by outcome (ingested, rejected, ignored)",
            ["outcome"],
            registry=r,
        )
        self._collect_hooks: list[Callable[[], None]] = []
        self._latency_children: dict[tuple[str, str, int], Any] = {}

    def on_collect(self, hook: Callable[[], None]) -> None:
        self._collect_hooks.append(hook)

    def count_decisions(self, counts: dict[str, int]) -> None:
        for reason, n in counts.items():
            self.decisions.labels(reason).inc(n)

    def count_ingest(self, accepted: int, stale: int, duplicates: int, inaccurate: int) -> None:
        for name, n in (
            ("accepted", accepted),
            ("stale", stale),
            ("duplicate", duplicates),
            ("inaccurate", inaccurate),
        ):
            if n:
                self.pings.labels(name).inc(n)

    def count_sightings(self, accepted: int, unknown: int, unidentified: int, stale: int) -> None:
        for name, n in (("accepted", accepted), ("unknown", unknown), ("unidentified", unidentified), ("stale", stale)):
            if n:
                self.sightings.labels(name).inc(n)

    def count_mqtt(self, ingested: int, rejected: int, ignored: int) -> None:
        for name, n in (("ingested", ingested), ("rejected", rejected), ("ignored", ignored)):
            if n:
                self.mqtt.labels(name).inc(n)

    def observe_latency(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request's latency, under (method, route template, status); the histogram's child
        of each label set is looked up once (``labels`` validates and locks on every call)."""
        key = (method, route, status)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.latency.labels(method, route, str(status))
        child.observe(seconds)

    def count_events(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            self.events.labels(kind).inc(n)

    def consume(self, batch) -> None:
        """Event sink: count a batch's events per type."""
        self.count_events(batch.counts())

    def render(self) -> bytes:
        for hook in self._collect_hooks:
            try:
                hook()
            except Exception:  # a gauge we cannot read now must not break the scrape
                self.store_errors.inc()
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: observe latency per (method, route template, status)."""

    def __init__(self, app, metrics: Callable[[], Metrics | None]):
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def _send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            m = self._metrics()
            if m is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                m.observe_latency(scope["method"], path, status, time.perf_counter() - t0)
