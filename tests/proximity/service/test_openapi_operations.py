"""Every OpenAPI operation has a stable, unique, snake_case operationId and a description; the
full list is pinned here, so renaming or adding an operation is a visible decision."""

from __future__ import annotations

import re

import pytest

from proximity.service import Settings, create_app
from tests.proximity.service.support import ADMIN_KEY

OPERATIONS = {
    ("get", "/health"): "get_health",
    ("get", "/metrics"): "get_metrics",
    ("post", "/v1/geofences"): "create_geofence",
    ("get", "/v1/geofences"): "list_geofences",
    ("post", "/v1/geofences/import"): "import_geofences",
    ("get", "/v1/geofences/export"): "export_geofences",
    ("get", "/v1/geofences/{fence_id}"): "get_geofence",
    ("put", "/v1/geofences/{fence_id}"): "replace_geofence",
    ("delete", "/v1/geofences/{fence_id}"): "delete_geofence",
    ("get", "/v1/geofences/{fence_id}/devices"): "list_geofence_devices",
    ("post", "/v1/pings"): "ingest_pings",
    ("post", "/v1/owntracks"): "ingest_owntracks",
    ("get", "/v1/osmand"): "ingest_osmand_query",
    ("post", "/v1/osmand"): "ingest_osmand_body",
    ("get", "/v1/devices/{device_id}"): "get_device",
    ("get", "/v1/locate"): "locate_geofences",
    ("get", "/v1/events"): "list_events",
    ("get", "/v1/events/stream"): "stream_events",
    ("post", "/v1/webhooks"): "create_webhook",
    ("get", "/v1/webhooks"): "list_webhooks",
    ("get", "/v1/webhooks/{webhook_id}"): "get_webhook",
    ("delete", "/v1/webhooks/{webhook_id}"): "delete_webhook",
    ("get", "/v1/webhooks/{webhook_id}/deliveries"): "list_webhook_deliveries",
    ("post", "/v1/keys"): "create_key",
    ("get", "/v1/keys"): "list_keys",
    ("get", "/v1/keys/{key_id}"): "get_key",
    ("delete", "/v1/keys/{key_id}"): "delete_key",
    ("post", "/v1/beacons"): "create_beacon",
    ("get", "/v1/beacons"): "list_beacons",
    ("post", "/v1/beacons/import"): "import_beacons",
    ("get", "/v1/beacons/export"): "export_beacons",
    ("get", "/v1/beacons/{beacon_id}"): "get_beacon",
    ("put", "/v1/beacons/{beacon_id}"): "replace_beacon",
    ("delete", "/v1/beacons/{beacon_id}"): "delete_beacon",
    ("post", "/v1/regions"): "create_region",
    ("get", "/v1/regions"): "list_regions",
    ("get", "/v1/regions/{region_id}"): "get_region",
    ("put", "/v1/regions/{region_id}"): "replace_region",
    ("delete", "/v1/regions/{region_id}"): "delete_region",
    ("post", "/v1/sightings"): "ingest_sightings",
    ("get", "/v1/jobs/{job_id}"): "get_job",
    ("post", "/v1/campaigns"): "create_campaign",
    ("get", "/v1/campaigns"): "list_campaigns",
    ("get", "/v1/campaigns/{campaign_id}"): "get_campaign",
    ("put", "/v1/campaigns/{campaign_id}"): "replace_campaign",
    ("delete", "/v1/campaigns/{campaign_id}"): "delete_campaign",
    ("post", "/v1/campaigns/{campaign_id}/codes"): "upload_campaign_codes",
    ("get", "/v1/campaigns/{campaign_id}/report"): "get_campaign_report",
    ("put", "/v1/devices/{device_id}"): "replace_device_profile",
    ("patch", "/v1/devices/{device_id}"): "patch_device_profile",
    ("get", "/v1/devices/{device_id}/decisions"): "list_device_decisions",
    ("get", "/v1/devices/{device_id}/offers"): "list_device_offers",
    ("post", "/v1/redemptions"): "create_redemption",
}

SNAKE_VERB_NOUN = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"), admin_key=ADMIN_KEY))
    return app.openapi()  # no lifespan needed: the schema is built from the routes


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    }


def test_the_operation_ids_are_pinned(spec):
    got = {k: op.get("operationId") for k, op in _operations(spec).items()}
    assert got == OPERATIONS


def test_every_operation_id_is_unique_and_snake_case(spec):
    ids = [op.get("operationId") for op in _operations(spec).values()]
    assert all(isinstance(i, str) and SNAKE_VERB_NOUN.match(i) for i in ids), ids
    assert len(ids) == len(set(ids))


def test_every_operation_has_a_description(spec):
    missing = [op.get("operationId") for op in _operations(spec).values() if not (op.get("description") or "").strip()]
    assert missing == []
