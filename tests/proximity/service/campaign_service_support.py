"""Campaign documents and helpers shared by the campaign service tests."""

from __future__ import annotations

import copy

from tests.campaigns.campaign_support import COFFEE, JEANS
from tests.proximity.service.support import square

__all__ = ["COFFEE", "JEANS", "DENIM", "INSIDE", "OUTSIDE", "T0", "consent", "doc", "ping"]

#: a ts inside the jeans-week schedule (2026-06-01T10:00:00Z)
T0 = 1780308000.0
DENIM = square("denim-store", tags=["denim"])
INSIDE = {"lon": 10.7505, "lat": 59.9105}
OUTSIDE = {"lon": 10.7600, "lat": 59.9200}


def doc(base: dict, **changes) -> dict:
    d = copy.deepcopy(base)
    d.update(changes)
    return d


def ping(dev: str, ts: float, where: dict = INSIDE) -> dict:
    return {"device_id": dev, "ts": ts, **where}


def consent(client, dev: str, ok: bool = True, **attrs):
    r = client.put(f"/v1/devices/{dev}", json={"marketing_consent": ok, **attrs})
    assert r.status_code in (200, 201), r.text
    return r
