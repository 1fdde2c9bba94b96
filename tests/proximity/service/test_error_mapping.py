"""The one error mapping: every domain error's status, body and headers, pinned (the bodies
are what the handlers of each error built before they became one mapping; ``InvalidInput``, never
raised by a route, became a 422 like every other ValueError of the cores)."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import redis
from anyio.from_thread import start_blocking_portal
from fastapi import Body, FastAPI
from starlette.exceptions import HTTPException

from beacons.errors import (
    BeaconError,
    BeaconFieldError,
    BeaconIdError,
    FrameError,
    FrameProblem,
    InvalidBeacons,
    InvalidRecords,
    InvalidSightings,
    RecordError,
    UnknownBeacon,
    UnknownRegion,
)
from campaigns.errors import (
    CampaignError,
    CodeAlreadyUsed,
    CodeExpired,
    CodeNotFound,
    CodesExhausted,
    WrongStore,
)
from geofences import DuplicateGeofence, InvalidCollection, InvalidGeofence, UnknownGeofence
from proximity.core.errors import InvalidInput, InvalidPing, ProximityError, StoreError
from proximity.service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InUse,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    install_handlers,
)


class Opaque:
    def __repr__(self):
        return "<opaque>"


def rec(i, **kw):
    return RecordError("major", "x", "an int", index=i, **kw)


CASES = {
    "campaign": lambda: CampaignError("triggers[0].event", "unknown event", "c1", "entr"),
    "codeused": lambda: CodeAlreadyUsed("ABC", "tx-1"),
    "codenf": lambda: CodeNotFound("ABC", "unknown code"),
    "codeexp": lambda: CodeExpired("ABC", "the code has expired", campaign_id="c1", expires_ts=5.0),
    "wrongstore": lambda: WrongStore("ABC", "not valid at store 's'", campaign_id="c1", store_id="s"),
    "exhausted": lambda: CodesExhausted("c1"),
    "badreq": lambda: BadRequest("f", "bad", 3),
    "toolarge": lambda: PayloadTooLarge(10, 20),
    "toolarge2": lambda: PayloadTooLarge(10),
    "media": lambda: UnsupportedMediaType("text/plain"),
    "notfound": lambda: NotFound("key", "k1"),
    "conflict": lambda: Conflict("beacon", "b1"),
    "inuse": lambda: InUse("geofence", "s", [f"b{i}" for i in range(7)], "beacon"),
    "unauth": lambda: Unauthorized("missing"),
    "forbidden": lambda: Forbidden("admin"),
    "unavail": lambda: Unavailable("queue full"),
    "service": lambda: ServiceError("x"),
    "invgeo": lambda: InvalidGeofence("f1", "geometry", "bad", 2),
    "invgeo0": lambda: InvalidGeofence(None, "geometry", "bad"),
    "dupgeo": lambda: DuplicateGeofence("f1"),
    "invcoll": lambda: InvalidCollection([InvalidGeofence("a", "x", "r", 1), InvalidGeofence("b", "y", "r")]),
    "invcoll0": lambda: InvalidCollection([InvalidGeofence("a", "x", "r")]),
    "invcolle": lambda: InvalidCollection([]),
    "unkgeo": lambda: UnknownGeofence("g"),
    "invping": lambda: InvalidPing([{"index": 1, "field": "lon", "reason": "bad", "value": 500}], 3),
    "unkbeacon": lambda: UnknownBeacon("b"),
    "unkregion": lambda: UnknownRegion("r"),
    "invsight": lambda: InvalidSightings([rec(2), rec(None)]),
    "invbeacons": lambda: InvalidBeacons([rec(1, line=3, source="body")], source="body"),
    "invbeacons0": lambda: InvalidBeacons([]),
    "invrecords": lambda: InvalidRecords([rec(0)]),
    "fielderr": lambda: BeaconFieldError("rssi", Opaque(), "a number"),
    "fielderr2": lambda: BeaconFieldError("rssi", 5, "a number"),
    "iderr": lambda: BeaconIdError("id", "zz", "a key"),
    "recerr": lambda: rec(4, line=5),
    "frame": lambda: FrameError(b"\x01\x02", 1, "short", FrameProblem(list(FrameProblem)[0].value)),
    "beaconerr": lambda: BeaconError("generic"),
    "store": lambda: StoreError("down"),
    "sqlite": lambda: sqlite3.OperationalError("locked"),
    "redis": lambda: redis.ConnectionError("nope"),
    "redis2": lambda: redis.ResponseError("nope"),
    "http": lambda: HTTPException(405, "Method Not Allowed", headers={"Allow": "GET"}),
    "http2": lambda: HTTPException(404),
    "http500": lambda: HTTPException(500, "boom"),
    "valueerr": lambda: ValueError("bug"),
    "keyerr": lambda: KeyError("bug"),
    "perm": lambda: PermissionError("bug"),
    "runtime": lambda: RuntimeError("bug"),
    "invinput": lambda: InvalidInput("f", "bad"),
    "proxerr": lambda: ProximityError("x"),
}

REQUESTS = {
    "val1": dict(method="POST", url="/validate?n=x", json={}),
    "val2": dict(method="POST", url="/validate", content=b"[1]", headers={"content-type": "application/json"}),
    "405": dict(method="PUT", url="/raise/x"),
    "404route": dict(method="GET", url="/nope"),
}

EXPECTED = {
    "campaign": [
        422,
        {
            "error": {
                "code": "invalid_campaign",
                "message": "campaign 'c1': triggers[0].event: unknown event",
                "field": "triggers[0].event",
                "campaign_id": "c1",
                "value": "entr",
            }
        },
        {},
    ],
    "codeused": [
        409,
        {
            "error": {
                "code": "code_used",
                "message": "code 'ABC': already redeemed in transaction 'tx-1'",
                "first_tx_id": "tx-1",
                "field": "code",
                "coupon_code": "ABC",
                "reason": "already redeemed in transaction 'tx-1'",
            }
        },
        {},
    ],
    "codenf": [
        404,
        {
            "error": {
                "code": "unknown_code",
                "message": "code 'ABC': unknown code",
                "field": "code",
                "coupon_code": "ABC",
                "reason": "unknown code",
            }
        },
        {},
    ],
    "codeexp": [
        410,
        {
            "error": {
                "code": "code_expired",
                "message": "code 'ABC': the code has expired",
                "campaign_id": "c1",
                "expires_ts": 5.0,
                "field": "code",
                "coupon_code": "ABC",
                "reason": "the code has expired",
            }
        },
        {},
    ],
    "wrongstore": [
        422,
        {
            "error": {
                "code": "wrong_store",
                "message": "code 'ABC': not valid at store 's'",
                "campaign_id": "c1",
                "store_id": "s",
                "field": "code",
                "coupon_code": "ABC",
                "reason": "not valid at store 's'",
            }
        },
        {},
    ],
    "exhausted": [
        409,
        {
            "error": {
                "code": "codes_exhausted",
                "message": "campaign 'c1': the pool of coupon codes is empty",
                "campaign_id": "c1",
            }
        },
        {},
    ],
    "404route": [404, {"error": {"code": "http_error", "message": "Not Found"}}, {}],
    "405": [405, {"error": {"code": "http_error", "message": "Method Not Allowed"}}, {"allow": "GET"}],
    "badreq": [422, {"error": {"code": "invalid", "field": "f", "message": "f: bad"}}, {}],
    "beaconerr": [422, {"error": {"code": "invalid", "field": "body", "message": "generic"}}, {}],
    "conflict": [
        409,
        {"error": {"code": "conflict", "field": "id", "id": "b1", "message": "beacon 'b1' already exists"}},
        {},
    ],
    "dupgeo": [
        409,
        {
            "error": {
                "code": "conflict",
                "fence_id": "f1",
                "field": "id",
                "index": None,
                "message": "geofence 'f1': id: duplicate id 'f1'",
                "reason": "duplicate id 'f1'",
            }
        },
        {},
    ],
    "fielderr": [
        422,
        {
            "error": {
                "code": "invalid_beacon",
                "expected": "a number",
                "field": "rssi",
                "message": "rssi: <opaque> is invalid; expected a number",
                "value": "<opaque>",
            }
        },
        {},
    ],
    "fielderr2": [
        422,
        {
            "error": {
                "code": "invalid_beacon",
                "expected": "a number",
                "field": "rssi",
                "message": "rssi: 5 is invalid; expected a number",
                "value": 5,
            }
        },
        {},
    ],
    "forbidden": [403, {"error": {"code": "forbidden", "message": "this key lacks the 'admin' scope"}}, {}],
    "frame": [
        422,
        {
            "error": {
                "code": "invalid_frame",
                "field": "raw",
                "message": "beacon frame: truncated at byte 1: short",
                "offset": 1,
                "problem": "truncated",
            }
        },
        {},
    ],
    "http": [405, {"error": {"code": "http_error", "message": "Method Not Allowed"}}, {"allow": "GET"}],
    "http2": [404, {"error": {"code": "http_error", "message": "Not Found"}}, {}],
    "http500": [500, {"error": {"code": "http_error", "message": "boom"}}, {}],
    "iderr": [
        422,
        {
            "error": {
                "code": "invalid_beacon",
                "expected": "a key",
                "field": "id",
                "message": "id: 'zz' is invalid; expected a key",
                "value": "zz",
            }
        },
        {},
    ],
    "inuse": [
        409,
        {
            "error": {
                "code": "in_use",
                "field": "id",
                "id": "s",
                "message": "geofence 's' is the store of 7 beacon(s) (b0, b1, b2, b3, b4 and 2 more); "
                "delete or move them first",
                "used_by": ["b0", "b1", "b2", "b3", "b4", "b5", "b6"],
            }
        },
        {},
    ],
    "invbeacons": [
        422,
        {
            "error": {
                "code": "invalid_beacons",
                "errors": [
                    {"expected": "an int", "field": "major", "index": 1, "line": 3, "source": "body", "value": "x"}
                ],
                "field": "major",
                "message": "1 invalid beacon(s): body, line 3, record 1: major: 'x' is invalid; expected an int",
            }
        },
        {},
    ],
    "invbeacons0": [
        422,
        {"error": {"code": "invalid_beacons", "errors": [], "field": "body", "message": "0 invalid beacon(s): "}},
        {},
    ],
    "invcoll": [
        422,
        {
            "error": {
                "code": "invalid_collection",
                "errors": [
                    {"fence_id": "a", "field": "x", "index": 1, "reason": "r"},
                    {"fence_id": "b", "field": "y", "index": None, "reason": "r"},
                ],
                "field": "features[1].x",
                "message": "2 invalid feature(s): feature 1, geofence 'a': x: r; geofence 'b': y: r",
            }
        },
        {},
    ],
    "invcoll0": [
        422,
        {
            "error": {
                "code": "invalid_collection",
                "errors": [{"fence_id": "a", "field": "x", "index": None, "reason": "r"}],
                "field": "x",
                "message": "1 invalid feature(s): geofence 'a': x: r",
            }
        },
        {},
    ],
    "invcolle": [
        422,
        {
            "error": {
                "code": "invalid_collection",
                "errors": [],
                "field": "features",
                "message": "0 invalid feature(s): ",
            }
        },
        {},
    ],
    "invgeo": [
        422,
        {
            "error": {
                "code": "invalid_geofence",
                "fence_id": "f1",
                "field": "geometry",
                "index": 2,
                "message": "feature 2, geofence 'f1': geometry: bad",
                "reason": "bad",
            }
        },
        {},
    ],
    "invgeo0": [
        422,
        {
            "error": {
                "code": "invalid_geofence",
                "fence_id": None,
                "field": "geometry",
                "index": None,
                "message": "geometry: bad",
                "reason": "bad",
            }
        },
        {},
    ],
    "invinput": [422, {"error": {"code": "invalid", "message": "f: bad"}}, {}],
    "invping": [
        422,
        {
            "error": {
                "code": "invalid_ping",
                "errors": [{"field": "pings[1].lon", "index": 1, "reason": "bad", "value": 500}],
                "field": "pings[1].lon",
                "message": "ping 1: lon: bad (and 2 more)",
                "total": 3,
            }
        },
        {},
    ],
    "invrecords": [
        422,
        {
            "error": {
                "code": "invalid",
                "errors": [{"expected": "an int", "field": "major", "index": 0, "value": "x"}],
                "field": "major",
                "message": "1 invalid record(s): record 0: major: 'x' is invalid; expected an int",
            }
        },
        {},
    ],
    "invsight": [
        422,
        {
            "error": {
                "code": "invalid_sighting",
                "errors": [
                    {"expected": "an int", "field": "sightings[2].major", "index": 2, "value": "x"},
                    {"expected": "an int", "field": "sightings[0].major", "value": "x"},
                ],
                "field": "sightings[2].major",
                "message": "2 invalid sighting(s): record 2: major: 'x' is invalid; expected an "
                "int; major: 'x' is invalid; expected an int",
            }
        },
        {},
    ],
    "keyerr": [500, {"error": {"code": "internal", "message": "internal error"}}, {}],
    "media": [
        415,
        {
            "error": {
                "code": "unsupported_media_type",
                "field": "content-type",
                "message": "content-type: expected text/csv, application/json or application/geo+json",
            }
        },
        {},
    ],
    "notfound": [404, {"error": {"code": "not_found", "message": "unknown key 'k1'"}}, {}],
    "perm": [500, {"error": {"code": "internal", "message": "internal error"}}, {}],
    "proxerr": [500, {"error": {"code": "internal", "message": "internal error"}}, {}],
    "recerr": [
        422,
        {
            "error": {
                "code": "invalid_beacon",
                "expected": "an int",
                "field": "major",
                "message": "line 5, record 4: major: 'x' is invalid; expected an int",
                "value": "x",
            }
        },
        {},
    ],
    "redis": [
        503,
        {"error": {"code": "store_unavailable", "message": "storage backend error: ConnectionError"}},
        {"retry-after": "1"},
    ],
    "redis2": [
        503,
        {"error": {"code": "store_unavailable", "message": "storage backend error: ResponseError"}},
        {"retry-after": "1"},
    ],
    "runtime": [500, {"error": {"code": "internal", "message": "internal error"}}, {}],
    "service": [400, {"error": {"code": "bad_request", "message": "x"}}, {}],
    "sqlite": [
        503,
        {"error": {"code": "store_unavailable", "message": "storage backend error: OperationalError"}},
        {"retry-after": "1"},
    ],
    "store": [503, {"error": {"code": "store_unavailable", "message": "down"}}, {"retry-after": "1"}],
    "toolarge": [
        413,
        {
            "error": {
                "code": "too_large",
                "message": "request body larger than the limit of 10 bytes (got 20)",
                "field": "body",
            }
        },
        {},
    ],
    "toolarge2": [
        413,
        {"error": {"code": "too_large", "message": "request body larger than the limit of 10 bytes", "field": "body"}},
        {},
    ],
    "unauth": [
        401,
        {"error": {"code": "unauthorized", "message": "missing"}},
        {"www-authenticate": 'Bearer realm="proximity"'},
    ],
    "unavail": [503, {"error": {"code": "unavailable", "message": "queue full"}}, {}],
    "unkbeacon": [404, {"error": {"code": "not_found", "id": "b", "message": "unknown beacon 'b'"}}, {}],
    "unkgeo": [404, {"error": {"code": "not_found", "id": "g", "message": "unknown geofence 'g'"}}, {}],
    "unkregion": [404, {"error": {"code": "not_found", "id": "r", "message": "unknown region 'r'"}}, {}],
    "val1": [
        422,
        {
            "error": {
                "code": "invalid",
                "errors": [
                    {
                        "field": "n",
                        "reason": "Input should be a valid integer, unable to parse string as an integer",
                        "type": "int_parsing",
                    }
                ],
                "field": "n",
                "message": "n: Input should be a valid integer, unable to parse string as an integer",
            }
        },
        {},
    ],
    "val2": [
        422,
        {
            "error": {
                "code": "invalid",
                "errors": [
                    {"field": "n", "reason": "Field required", "type": "missing"},
                    {"field": "body", "reason": "Input should be a valid dictionary", "type": "dict_type"},
                ],
                "field": "n",
                "message": "n: Field required",
            }
        },
        {},
    ],
    "valueerr": [500, {"error": {"code": "internal", "message": "internal error"}}, {}],
}


@pytest.fixture(scope="module")
def app_client():
    app = FastAPI()
    install_handlers(app)

    @app.get("/raise/{name}")
    def raise_(name: str):
        raise CASES[name]()

    @app.post("/validate")
    def validate(n: int, body: dict = Body(...)):
        return {}

    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
        )

        class Sync:
            def request(self, method, url, **kw):
                return portal.call(lambda: client.request(method, url, **kw))

            def get(self, url):
                return self.request("GET", url)

        yield Sync()
        portal.call(client.aclose)


def _answer(resp):
    headers = {k: v for k, v in resp.headers.items() if k.lower() in ("retry-after", "www-authenticate", "allow")}
    return [resp.status_code, resp.json(), headers]


def test_every_case_is_pinned():
    assert set(EXPECTED) == set(CASES) | set(REQUESTS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_error_maps_to_its_status_and_body(app_client, name):
    assert _answer(app_client.get(f"/raise/{name}")) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_framework_errors_map_to_the_same_body_shape(app_client, name):
    kw = dict(REQUESTS[name])
    assert _answer(app_client.request(kw.pop("method"), kw.pop("url"), **kw)) == EXPECTED[name]
