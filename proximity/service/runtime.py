"""The long-lived objects of one service process, built in the app's lifespan, and its
background tasks: the periodic sweep, following other processes' definition changes, and
feeding the live event stream from the shared log (Redis mode)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from beacons.monitor import BeaconMonitor
from beacons.registry import BeaconRegistry
from geofences import Limits
from proximity import Engine, EngineConfig
from proximity.core.pipeline import Pipeline
from proximity.service.auth import KeyRing
from proximity.service.batcher import Batcher
from proximity.service.beacons import BeaconService
from proximity.service.campaigns import CampaignService
from proximity.service.eventlog import LoggedElsewhere, MemoryEventLog, RedisEventLog, SqliteEventLog
from proximity.service.fences import GeofenceService
from proximity.service.hooks import Webhooks, open_webhooks
from proximity.service.ingest import IngestService, event_pipeline
from proximity.service.jobs import Jobs
from proximity.service.kinds import Dependents, Followers
from proximity.service.metrics import Metrics
from proximity.service.offers import CampaignStage
from proximity.service.settings import Settings
from proximity.service.sightings import SightingBatcher, SightingIngest
from proximity.storage.definitions import Definitions, cursor_order, open_definitions

__all__ = ["Runtime", "start_runtime", "stop_runtime"]

logger = logging.getLogger("proximity.service")


@dataclass
class Runtime:
    settings: Settings
    defs: Definitions
    engine: Engine
    keys: KeyRing
    event_log: MemoryEventLog | RedisEventLog
    metrics: Metrics
    pipeline: Pipeline  # every event goes through it: to the log, webhooks and metrics
    ingest: IngestService  # pings and sweeps -> engine -> pipeline
    geofences: GeofenceService
    webhooks: Webhooks
    batcher: Batcher
    beacons: BeaconService
    sightings: SightingIngest
    #: concurrent sighting requests merged into one monitor call (set by _build)
    sighting_batcher: SightingBatcher = None  # type: ignore[assignment]
    tasks: list[asyncio.Task] = field(default_factory=list)
    redis: Any = None  # Redis mode: the process's one client (one connection pool), closed last
    generated_admin_key: str | None = None
    ready: bool = False
    #: one follower per definition kind (changes written by other processes)
    followers: Followers = field(default_factory=Followers)
    #: declared "what depends on this definition" queries
    dependents: Dependents = field(default_factory=Dependents)
    #: long requests of this process (in memory): GET /v1/jobs/{id}
    jobs: Jobs = field(default_factory=Jobs)
    #: campaigns, device profiles, offers and redemptions (set by _build)
    campaigns: CampaignService | None = None
    #: OwnTracks over MQTT (when mqtt_url is set)
    mqtt: Any = None
    #: Redis mode: the events saved with device states, until logged (RedisOutbox)
    outbox: Any = None

    @property
    def mode(self) -> str:
        return "redis" if self.settings.redis_url else "embedded"


def _build(settings: Settings) -> Runtime:
    s = settings
    hook_policy = {
        "retry_base_s": s.webhook_retry_base_s,
        "max_backoff_s": s.webhook_max_backoff_s,
        "timeout_s": s.webhook_timeout_s,
        "allow_hosts": s.webhook_allow_hosts,
    }
    redis_client, journal, outbox = None, None, None
    if s.redis_url:
        from proximity.storage.redis_beacons import RedisMonitorStore
        from proximity.storage.redis_client import connect
        from proximity.storage.redis_devices import RedisDeviceStore
        from proximity.storage.redis_outbox import RedisOutbox

        # one connection pool for the process, shared by every Redis adapter
        redis_client = connect(s.redis_url)
        # a call's states and its events are saved together (the save script writes the events
        # to the call's outbox entry; the log's append takes them out with the stream's XADDs)
        outbox = RedisOutbox(redis_client, prefix=s.redis_prefix, lease_s=s.outbox_lease_s)
        store = RedisDeviceStore(s.redis_url, prefix=s.redis_prefix, client=redis_client, outbox=outbox)
        monitor_store = RedisMonitorStore(
            s.redis_url, prefix=f"{s.redis_prefix}beacons:", client=redis_client, outbox=outbox
        )
        defs = open_definitions(redis_url=s.redis_url, prefix=s.redis_prefix, redis_client=redis_client)
        event_log = RedisEventLog(
            s.redis_url,
            prefix=s.redis_prefix,
            retention_s=s.event_retention_s,
            cap=s.event_log_cap,
            client=redis_client,
            outbox=outbox,
        )
        webhooks = open_webhooks(
            sqlite_path=None, redis_url=s.redis_url, prefix=s.redis_prefix, redis_client=redis_client, **hook_policy
        )
    else:
        # device and beacon state in memory, every save journaled before the 2xx (kill -9 safe)
        from proximity.storage.journal import Journal, JournaledMonitorStore, JournaledStateStore

        journal = Journal(s.data_dir / "state.sqlite3")
        store = JournaledStateStore(journal)
        monitor_store = JournaledMonitorStore(journal)
        defs = open_definitions(sqlite_path=s.sqlite_path)
        event_log = (
            SqliteEventLog(
                str(s.data_dir / "events.sqlite3"),  # the older layout's own file, moved in once
                s.event_retention_s,
                s.event_log_cap,
                max_bytes=s.event_log_max_mb * 2**20,
                journal=journal,
            )
            if s.event_log_durable
            else MemoryEventLog(s.event_retention_s, s.event_log_cap, s.event_log_max_mb * 2**20)
        )
        webhooks = open_webhooks(
            sqlite_path=str(s.data_dir / "webhooks.sqlite3"), redis_url=None, prefix=s.redis_prefix, **hook_policy
        )
    engine = Engine(
        store=store,
        config=EngineConfig(
            hysteresis_factor=s.hysteresis_factor, max_accuracy_m=s.max_accuracy_m, detection=s.detection
        ),
    )
    metrics = Metrics()
    pipeline = event_pipeline(event_log, metrics, webhooks)
    atomic = journal.atomic if journal is not None else outbox.call if outbox is not None else nullcontext
    ingest = IngestService(engine, pipeline, metrics, atomic=atomic)
    limits = Limits(max_vertices=s.max_vertices, max_radius_m=s.max_radius_m)
    fences = GeofenceService(
        defs,
        engine,
        ingest,
        limits,
        cache_path=None if s.redis_url else s.data_dir / "geofences.cache",
        import_workers=s.import_workers,
    )
    keys = KeyRing(defs)
    monitor = BeaconMonitor(BeaconRegistry(), s.monitor_config(), monitor_store)
    beacons = BeaconService(defs, monitor, engine, ingest)
    batcher = Batcher(
        ingest,
        inline_max_pings=0 if s.redis_url else s.inline_ingest_max_pings,
        max_clock_skew_s=s.max_clock_skew_s,
        min_ts=s.min_ts,
    )
    rt = Runtime(
        s,
        defs,
        engine,
        keys,
        event_log,
        metrics,
        pipeline,
        ingest,
        fences,
        webhooks,
        batcher,
        beacons,
        SightingIngest(beacons, ingest, s.max_batch, s.max_clock_skew_s, s.min_ts),
        redis=redis_client,
        outbox=outbox,
    )
    rt.sighting_batcher = SightingBatcher(rt.sightings)
    rt.campaigns = campaigns = _campaigns(s, defs, engine, beacons, redis_client)
    stage = CampaignStage(campaigns, metrics)  # enters, dwells, beacon events -> offers
    pipeline.add_stage(stage)
    ingest.observers.append(stage.observe_pings)  # the fraud gate sees every ping batch
    for service in (fences, beacons, keys, campaigns):  # one follower per definition kind, and dependents
        service.register(rt.followers, rt.dependents)
    if missing := rt.followers.missing():
        raise RuntimeError(f"definition kinds without a follower: {', '.join(k.value for k in missing)}")
    metrics.on_collect(lambda: metrics.webhook_backlog.set(webhooks.backlog()))
    metrics.on_collect(lambda: metrics.fences.set(len(engine.index)))
    metrics.on_collect(lambda: metrics.beacons.set(len(monitor.registry)))
    metrics.on_collect(lambda: metrics.sse_clients.set(event_log.count))
    return rt


def _campaigns(
    s: Settings, defs: Definitions, engine: Engine, beacons: BeaconService, redis_client=None
) -> CampaignService:
    """The campaign service: counters and records shared through Redis (the process's one client),
    or journaled to SQLite."""
    from proximity.storage.campaign_fraud import RedisFraudGate, SqliteFraudGate
    from proximity.storage.campaign_records import JournaledCounterStore, open_records

    if s.redis_url:
        from proximity.storage.campaign_counters import RedisCounterStore

        counters = RedisCounterStore(s.redis_url, prefix=f"{s.redis_prefix}camp:", client=redis_client)
        records = open_records(redis_url=s.redis_url, prefix=s.redis_prefix, redis_client=redis_client)
        fraud = RedisFraudGate(
            counters.client, prefix=f"{s.redis_prefix}camp:", cfg=s.fraud_config(), device_ttl_s=s.device_ttl_s
        )
    else:
        counters = JournaledCounterStore(s.data_dir / "campaign_counters.sqlite3")
        records = open_records(sqlite_path=s.data_dir / "campaigns.sqlite3")
        fraud = SqliteFraudGate(s.data_dir / "campaign_fraud.sqlite3", s.fraud_config(), flush_every_s=s.fraud_flush_s)
    return CampaignService(defs, engine, beacons, counters, records, fraud=fraud)


async def start_runtime(settings: Settings) -> Runtime:
    """Build everything, load definitions and keys, start the background tasks."""
    rt = await to_thread.run_sync(_build, settings)
    epoch = None
    if settings.redis_url:
        from proximity.storage.redis_epoch import RedisEpoch

        epoch = RedisEpoch(rt.redis, settings.redis_prefix)
        await to_thread.run_sync(epoch.join)  # before loading: a loss from now on is seen
    cursor = await to_thread.run_sync(rt.defs.cursor)  # before loading: replays are idempotent
    await to_thread.run_sync(rt.geofences.load)
    if rt.geofences.resume_from is not None:  # fences from the shared cache: follow what changed since
        cursor = min(cursor, rt.geofences.resume_from, key=cursor_order)
    await to_thread.run_sync(rt.beacons.load)
    await to_thread.run_sync(rt.campaigns.load)
    await to_thread.run_sync(_load_keys, rt)
    if settings.demo:
        from proximity.service.demo import load_demo, replay_demo, replay_demo_beacons

        await to_thread.run_sync(load_demo, rt)
        rt.tasks.append(asyncio.create_task(replay_demo(rt), name="demo"))
        rt.tasks.append(asyncio.create_task(replay_demo_beacons(rt), name="demo-beacons"))
    await rt.webhooks.start()
    rt.tasks.append(asyncio.create_task(to_thread.run_sync(_save_fence_cache, rt), name="fence-cache"))
    rt.tasks.append(asyncio.create_task(_sweeper(rt), name="sweep"))
    rt.tasks.append(asyncio.create_task(_expirer(rt), name="expire"))
    fraud = rt.campaigns.fraud if rt.campaigns is not None else None
    if hasattr(fraud, "flush_every_s"):  # the embedded fraud gate's last pings, written behind
        rt.tasks.append(asyncio.create_task(_fraud_flusher(rt, fraud), name="fraud-flush"))
    if settings.redis_url:
        rt.tasks.append(asyncio.create_task(_watch_redis_epoch(rt, epoch), name="redis-epoch"))
        rt.tasks.append(asyncio.create_task(_follow_definitions(rt, cursor), name="follow-defs"))
        rt.tasks.append(asyncio.create_task(_follow_events(rt), name="follow-events"))
        rt.tasks.append(asyncio.create_task(_recover_outbox(rt), name="recover-outbox"))
    if settings.mqtt_url:
        from proximity.service.mqtt import MqttIngest

        rt.mqtt = MqttIngest(settings, rt.batcher, rt.sightings, rt.metrics)
        rt.tasks.append(asyncio.create_task(rt.mqtt.run(), name="mqtt"))
    if settings.gc_freeze:
        # the fence index, modules and caches live as long as the process: keep full
        # collections from walking them again and again (tail latency)
        gc.collect()
        gc.freeze()
    rt.ready = True
    return rt


def _save_fence_cache(rt: Runtime) -> None:
    """Write the geofences' start-up cache if it is not current (embedded mode); a failure
    costs the next start its shortcut, nothing else."""
    try:
        if rt.geofences.save_cache():
            logger.info("geofence start-up cache written (%d fences)", len(rt.engine.index))
    except Exception:
        logger.exception("geofence start-up cache not written")


def _load_keys(rt: Runtime) -> None:
    """Load the API keys and install the admin key: the configured one, else a generated one,
    printed once."""
    admin = rt.settings.admin_key.get_secret_value() if rt.settings.admin_key else None
    rt.generated_admin_key = rt.keys.load(admin)
    if rt.generated_admin_key:
        print(
            f"proximity: generated admin API key (shown once, store it now): {rt.generated_admin_key}",
            file=sys.stderr,
            flush=True,
        )


async def stop_runtime(rt: Runtime) -> None:
    rt.ready = False
    for t in rt.tasks:
        t.cancel()
    for t in rt.tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass
    await rt.webhooks.stop()
    await to_thread.run_sync(_save_fence_cache, rt)  # the fences now held, if they changed
    journal = getattr(rt.engine.store, "journal", None)
    closers = [
        rt.defs.close,
        rt.event_log.close,
        rt.engine.store.close,
        rt.beacons.monitor.store.close,
        rt.campaigns.counters.close,
        rt.campaigns.records.close,
        rt.campaigns.fraud.close,
    ]
    if journal is not None:
        closers.append(journal.close)
    if rt.redis is not None:
        closers.append(rt.redis.close)
    for closer in closers:
        try:
            await to_thread.run_sync(closer)
        except Exception:
            logger.exception("error while closing")


async def _forever(name: str, rt: Runtime, step, pause_on_error: float = 1.0) -> None:
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            rt.metrics.store_errors.inc()
            logger.exception("background task %s failed; retrying", name)
            await asyncio.sleep(pause_on_error)


async def _sweeper(rt: Runtime) -> None:
    async def step():
        await asyncio.sleep(rt.settings.sweep_interval_s)
        await to_thread.run_sync(rt.ingest.sweep)
        await to_thread.run_sync(rt.sightings.sweep)

    await _forever("sweep", rt, step)


async def _expirer(rt: Runtime) -> None:
    """Drop idle devices (``device_ttl_s``) every ``expire_interval_s``, a page at a time; and
    their state in the campaigns' fraud gate (last pings, ended suppressions) likewise."""

    async def step():
        await asyncio.sleep(rt.settings.expire_interval_s)
        ttl = rt.settings.device_ttl_s
        if ttl is not None:
            await to_thread.run_sync(rt.ingest.expire, ttl)
            await to_thread.run_sync(rt.campaigns.fraud.expire, ttl)

    await _forever("expire", rt, step)


async def _fraud_flusher(rt: Runtime, fraud) -> None:
    """Write the embedded fraud gate's pending last pings every ``flush_every_s``, off the event
    loop (tens of thousands of rows at a high ping rate: no place on the ingest path)."""

    async def step():
        await asyncio.sleep(fraud.flush_every_s)
        await to_thread.run_sync(fraud.flush)

    await _forever("fraud-flush", rt, step)


async def _watch_redis_epoch(rt: Runtime, epoch) -> None:
    """Notice a Redis that came back without its data (restarted with no AOF or RDB): say so
    loudly, and bring this process's definitions and keys in line with what Redis holds now."""

    def once() -> None:
        lost = epoch.lost()
        if lost is None:
            return
        rt.metrics.redis_data_lost.inc()
        logger.critical(
            "Redis lost its data (epoch %s is gone, now %s): it restarted without persistence or was "
            "flushed. Device states, campaign counters, definitions and keys written before are gone; "
            "reloading this process's caches from Redis. Run Redis with appendonly yes (README, Redis mode).",
            lost.decode(),
            epoch.current.decode(),
        )
        _load_keys(rt)  # the configured admin key keeps working (or a new one is printed)
        n = rt.followers.resync(rt.defs)
        logger.critical("Redis data loss: caches reloaded (%d definitions re-read)", n)

    async def step():
        await asyncio.sleep(rt.settings.redis_epoch_check_s)
        await to_thread.run_sync(once)

    await _forever("redis-epoch", rt, step)


def recover_outbox(rt: Runtime, now: float | None = None) -> int:
    """Emit the events of calls that saved device states and died (or failed) before logging
    them, as their own calls would have (stages, log, webhooks); return how many events."""
    n = 0
    for call_id, events in rt.outbox.claim(now):
        try:
            with rt.outbox.recovering(call_id):
                rt.ingest.emit(events)
        except LoggedElsewhere:  # another recovery (or the late call) logged them first
            continue
        n += len(events)
        logger.warning("outbox: %d event(s) of an unfinished call logged", len(events))
    return n


async def _recover_outbox(rt: Runtime) -> None:
    """Every half lease, look for outbox entries past their lease (Redis mode)."""

    async def step():
        await asyncio.sleep(rt.settings.outbox_lease_s / 2)
        await to_thread.run_sync(recover_outbox, rt)

    await _forever("recover-outbox", rt, step)


async def _follow_definitions(rt: Runtime, cursor: str) -> None:
    state = {"cursor": cursor}

    def once():
        nxt, changes = rt.defs.changes(state["cursor"], rt.settings.sync_interval_s)
        rt.followers.apply_all(dict.fromkeys(changes))  # each id once per round: we read its current value
        state["cursor"] = nxt

    async def step():
        await to_thread.run_sync(once)

    await _forever("follow-definitions", rt, step)


async def _follow_events(rt: Runtime) -> None:
    assert isinstance(rt.event_log, RedisEventLog)
    state = {"after": await to_thread.run_sync(rt.event_log.last_id)}

    def once():
        state["after"] = rt.event_log.follow_once(state["after"], 1.0)

    async def step():
        await to_thread.run_sync(once)

    await _forever("follow-events", rt, step)
