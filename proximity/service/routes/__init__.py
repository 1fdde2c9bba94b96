"""HTTP routes, one module per concept; each route body is one call into a service."""

from proximity.service.routes import (
    audience,
    beacons,
    campaigns,
    clients,
    console,
    devices,
    events,
    geofences,
    health,
    jobs,
    keys,
    pings,
    regions,
    sightings,
    webhooks,
)

__all__ = ["ROUTERS"]

ROUTERS = [
    health.router,
    geofences.router,
    pings.router,
    clients.router,
    audience.router,
    devices.router,
    events.router,
    webhooks.router,
    keys.router,
    beacons.router,
    regions.router,
    sightings.router,
    jobs.router,
    campaigns.router,
    console.router,
]
