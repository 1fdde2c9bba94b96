"""The marketer console, end to end: a real server, headless Chromium, and the API to check what
the page did. Each test leaves a screenshot in tmp/artifacts/console/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.proximity.service.support import square

pytestmark = pytest.mark.timeout(120)

LON, LAT = 10.7500, 59.9100  # the tests' corner of Oslo; each test uses its own fences


def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sign_in_says_when_the_key_is_wrong_or_lacks_the_manage_scope(console, api):
    console.allow_status(401, 403)
    page = console.page
    page.fill("#signin-key", "not-a-key-0123456789")
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('That key is not valid.')")
    assert page.get_attribute("#signin-key", "aria-invalid") == "true"
    assert page.is_hidden("#app")

    ingest = api.post("/v1/keys", json={"name": "phones", "scopes": ["ingest"]}).json()["key"]
    page.fill("#signin-key", ingest)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('lacks the manage scope')")

    manage = api.post("/v1/keys", json={"name": "marketing", "scopes": ["manage"]}).json()["key"]
    console.sign_in(manage)
    assert page.is_visible("#app") and page.is_hidden("#signin")
    # the key is kept in this tab's session only
    assert page.evaluate("Object.values(sessionStorage)") == [manage]
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    page.reload()
    page.wait_for_selector("body[data-ready=true]")  # still signed in in this tab
    console.screenshot("sign-in")
    page.click("#signout")
    page.wait_for_selector("#signin-key")
    assert page.evaluate("sessionStorage.length") == 0 and page.is_hidden("#app")


def test_draw_a_polygon_name_it_and_save_it(console, api):
    console.allow_status(422)
    console.sign_in()
    page = console.page
    console.view(LON + 0.01, LAT, 17)
    page.click("button[data-draw=Polygon]")
    corners = [
        (LON + 0.0095, LAT - 0.0003),
        (LON + 0.0105, LAT - 0.0003),
        (LON + 0.0105, LAT + 0.0003),
        (LON + 0.0095, LAT + 0.0003),
    ]
    for lon, lat in corners:
        console.click_map(lon, lat)
    console.click_map(*corners[0])  # the first vertex again closes the ring
    page.wait_for_selector("#fence-form:not([hidden])")
    page.fill("#fence-id", "drawn-shop")
    page.fill("#fence-name", "Drawn shop")
    page.fill("#fence-tags", "drawn, shoes")
    page.fill("#fence-dwell", "-5")
    page.click("#fence-form button[type=submit]")
    # the API's 422 is shown next to its field, and nothing is saved
    error = page.locator("#fence-dwell + .field-error")
    error.wait_for()
    assert "dwell_s" not in error.inner_text() and error.inner_text()
    assert page.get_attribute("#fence-dwell", "aria-invalid") == "true"
    assert api.get("/v1/geofences/drawn-shop").status_code == 404
    console.screenshot("draw-polygon-error")

    page.fill("#fence-dwell", "90")
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    fence = api.get("/v1/geofences/drawn-shop").json()
    assert fence["properties"]["name"] == "Drawn shop"
    assert fence["properties"]["tags"] == ["drawn", "shoes"] and fence["properties"]["dwell_s"] == 90
    ring = fence["geometry"]["coordinates"][0]
    assert fence["geometry"]["type"] == "Polygon" and len(ring) == 5
    for (lon, lat), (x, y) in zip(corners, ring):
        assert abs(lon - x) < 2e-5 and abs(lat - y) < 2e-5
    # listed, and found by tag
    page.fill("#fence-tag", "shoes")
    page.wait_for_selector("#fence-list li:has-text('Drawn shop')")
    assert page.locator("#fence-list li").count() == 1
    console.screenshot("draw-polygon-saved")

    # open it from the list, rename it, delete it
    page.click("#fence-list button:has-text('Drawn shop')")
    page.wait_for_selector("#fence-form:not([hidden])")
    assert page.input_value("#fence-id") == "drawn-shop"
    page.fill("#fence-name", "Drawn shoes")
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    assert api.get("/v1/geofences/drawn-shop").json()["properties"]["name"] == "Drawn shoes"
    page.click("#fence-list button:has-text('Drawn shoes')")
    page.click("#fence-delete")
    page.click("#fence-delete:has-text('Really delete?')")
    page.wait_for_selector("#fence-form", state="hidden")
    assert api.get("/v1/geofences/drawn-shop").status_code == 404


def test_draw_a_circle_and_a_rectangle(console, api):
    console.sign_in()
    page = console.page
    console.view(LON + 0.02, LAT, 17)
    page.click("button[data-draw=Circle]")
    x, y = console.map_point(LON + 0.02, LAT)
    page.mouse.click(x, y)
    page.mouse.click(x + 60, y)
    page.wait_for_selector("#fence-form:not([hidden])")
    page.fill("#fence-id", "drawn-circle")
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    circle = api.get("/v1/geofences/drawn-circle").json()
    assert circle["geometry"]["type"] == "Point" and circle["properties"]["radius_m"] > 10
    assert abs(circle["geometry"]["coordinates"][0] - (LON + 0.02)) < 2e-5

    page.click("button[data-draw=Rectangle]")
    x, y = console.map_point(LON + 0.021, LAT + 0.0005)
    page.mouse.click(x, y)
    page.mouse.click(x + 80, y + 50)
    page.wait_for_selector("#fence-form:not([hidden])")
    page.fill("#fence-id", "drawn-rectangle")
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    rect = api.get("/v1/geofences/drawn-rectangle").json()
    assert rect["geometry"]["type"] == "Polygon" and len(rect["geometry"]["coordinates"][0]) == 5
    console.screenshot("draw-circle-rectangle")


def test_import_with_one_bad_feature_marks_that_feature_and_imports_nothing(console, api, tmp_path):
    console.allow_status(422)
    console.sign_in()
    page = console.page
    good = [square(f"import-{i}", LON + 0.03 + i * 0.002, LAT, name=f"Imported {i}") for i in range(3)]
    bad = square("import-bad", LON + 0.04, LAT)
    bad["geometry"]["coordinates"][0] = bad["geometry"]["coordinates"][0][:2]  # a ring of 2 positions
    path = tmp_path / "stores.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [good[0], bad, good[1], good[2]]}))
    page.set_input_files("#fence-import", str(path))
    page.wait_for_selector("#fence-import-status:has-text('nothing imported')")
    row = page.locator("#import-1")
    assert "bad" in row.get_attribute("class")
    assert "import-bad" in row.inner_text() and "4 positions" in row.inner_text()
    assert page.locator("#fence-import-list li.bad").count() == 1
    assert api.get("/v1/geofences/import-0").status_code == 404  # all or nothing
    console.screenshot("import-bad-feature")

    path.write_text(json.dumps({"type": "FeatureCollection", "features": good}))
    page.set_input_files("#fence-import", str(path))
    page.wait_for_selector("#fence-import-status:has-text('imported 3 geofence(s)')")
    assert api.get("/v1/geofences/import-2").json()["properties"]["name"] == "Imported 2"


def test_export_downloads_every_fence(console, api):
    api.put("/v1/geofences/export-me", json=square("export-me", LON + 0.05, LAT))
    console.sign_in()
    page = console.page
    with page.expect_download() as dl:
        page.click("#fence-export")
    doc = json.loads(Path(dl.value.path()).read_text())
    assert "export-me" in {f["id"] for f in doc["features"]}
    # off screen: the list asks the API (here by name, within the first page)
    console.view(LON - 1, LAT, 17)
    page.fill("#fence-search", "export-me")
    page.wait_for_selector("#fence-count:text-is('0 on screen')")
    page.uncheck("#fence-onscreen")
    page.fill("#fence-search", "export-me")
    page.wait_for_selector("#fence-list li:has-text('export-me')")


def test_pings_through_the_api_appear_in_the_live_feed(console, api):
    api.put("/v1/geofences/live-shop", json=square("live-shop", LON + 0.06, LAT, name="Live shop"))
    console.sign_in()
    page = console.page
    console.tab("live")
    page.wait_for_selector("#live-status:has-text('connected')")
    now = time.time()
    pings = [
        {"device_id": "live-phone", "ts": now - 2, "lon": LON + 0.058, "lat": LAT + 0.0005, "accuracy_m": 5},
        {"device_id": "live-phone", "ts": now - 1, "lon": LON + 0.0605, "lat": LAT + 0.0005, "accuracy_m": 5},
    ]
    assert api.post("/v1/pings", json={"pings": pings}).status_code == 200
    page.wait_for_selector("#live-feed li[data-type=enter][data-device=live-phone][data-store=live-shop]")
    page.wait_for_selector("#live-counts tr[data-store=live-shop] td:first-of-type:text-is('1')")
    # the device appears on the map (its last position, polled from the API)
    page.wait_for_selector(".device-label:has-text('live-phone')")
    # a filter reconnects the stream with it
    page.select_option("#live-type", "exit")
    page.click("#live-form button[type=submit]")
    page.wait_for_selector("#live-status:has-text('type=exit')")
    console.screenshot("live-feed")


def test_walk_a_test_device_across_a_fence(console, api):
    api.put("/v1/geofences/walk-shop", json=square("walk-shop", LON + 0.07, LAT, name="Walk shop", tags=["walk-promo"]))
    offer = {"title": "Walk-in treat", "coupon": {"mode": "shared", "code": "WALK5"}}
    campaign = {"id": "walk-treat", "name": "Walk treat", "status": "active", "offer": offer,
                "triggers": [{"event": "enter", "geofence_tags": ["walk-promo"]}]}  # fmt: skip
    assert api.post("/v1/campaigns", json=campaign).status_code == 201
    console.sign_in()
    page = console.page
    console.tab("walk")
    console.view(LON + 0.0705, LAT + 0.0005, 17)
    page.click("#walk-draw")
    start, end = (LON + 0.0690, LAT + 0.0005), (LON + 0.0720, LAT + 0.0005)
    console.click_map(*start)
    console.click_map(*end)
    console.click_map(*end)  # the last point again ends the line
    path = page.input_value("#walk-path").splitlines()
    assert len(path) == 2
    page.fill("#walk-device", "walker-1")
    page.fill("#walk-speed", "60")
    page.fill("#walk-accuracy", "5")
    page.fill("#walk-interval", "0.2")
    page.click("#walk-start")
    page.wait_for_selector("#walk-status:has-text('done')", timeout=30_000)
    enter = page.locator("#walk-events li[data-type=enter][data-store=walk-shop]")
    exit_ = page.locator("#walk-events li[data-type=exit][data-store=walk-shop]")
    assert enter.count() == 1 and exit_.count() == 1
    # the offer it triggered, as it happened (the console gave the device marketing consent)
    assert page.locator("#walk-offers li[data-campaign=walk-treat]:has-text('WALK5')").count() == 1
    events = api.get("/v1/events", params={"device_id": "walker-1"}).json()["events"]
    assert [e["type"] for e in events if e["geofence_id"] == "walk-shop"] == ["enter", "offer", "exit"]
    assert all(abs(e["ts"] - time.time()) < 60 for e in events)  # pings carry the current time
    console.screenshot("walk")


def test_create_a_campaign_fix_its_error_and_see_its_report(console, api):
    console.allow_status(422)
    api.put("/v1/geofences/promo-shop", json=square("promo-shop", LON + 0.08, LAT, name="Promo shop", tags=["promo"]))
    console.sign_in()
    page = console.page
    console.tab("campaigns")
    page.click("#campaign-new")
    page.fill("#c-id", "promo-week")
    page.fill("#c-name", "Promo week")
    page.select_option("#c-status", "active")
    page.fill("#c-title", "15% off")
    page.select_option("#c-coupon", "shared")
    page.fill("#c-code", "PROMO15")
    page.fill("#c-t0-tags", "promo")
    page.fill("#c-holdout", "150")
    page.click("#campaign-form button[type=submit]")
    err = page.locator("#c-holdout + .field-error")
    err.wait_for()
    assert err.inner_text() and page.get_attribute("#c-holdout", "aria-invalid") == "true"
    assert api.get("/v1/campaigns/promo-week").status_code == 404
    console.screenshot("campaign-error")

    page.fill("#c-holdout", "0")
    page.fill("#c-t0-tags", "no-such-tag")
    page.click("#campaign-form button[type=submit]")
    page.locator("#c-t0-tags + .field-error").wait_for()
    assert page.get_attribute("#c-holdout", "aria-invalid") is None

    page.fill("#c-t0-tags", "promo")
    # a target picked on the map: the fence's id joins the trigger
    console.view(LON + 0.0805, LAT + 0.0005, 17)
    page.click("#c-pick")
    console.click_map(LON + 0.0805, LAT + 0.0005)
    assert page.input_value("#c-t0-ids") == "promo-shop"
    page.click("#c-pick")
    page.click("#campaign-form button[type=submit]")
    page.wait_for_selector("#campaign-form", state="hidden")
    saved = api.get("/v1/campaigns/promo-week").json()
    assert saved["offer"]["coupon"] == {"mode": "shared", "code": "PROMO15"}
    assert saved["triggers"][0]["geofence_tags"] == ["promo"] and saved["triggers"][0]["geofence_ids"] == ["promo-shop"]

    # a consenting device walks in: one delivery, in the report
    api.put("/v1/devices/promo-phone", json={"marketing_consent": True})
    now = time.time()
    ping = {"device_id": "promo-phone", "ts": now, "lon": LON + 0.0805, "lat": LAT + 0.0005, "accuracy_m": 5}
    offers = api.post("/v1/pings", json={"pings": [ping]}).json()["offers"]
    assert [o["campaign_id"] for o in offers] == ["promo-week"]
    page.click("#campaign-list li[data-id=promo-week] button:has-text('Report')")
    page.wait_for_selector("#report-totals dt:text-is('Deliveries') + dd:text-is('1')")
    assert page.locator("#report-chart").is_visible()
    assert page.evaluate("window.proximityConsole.campaigns.charts[0].data.datasets[0].data") == [1]
    console.screenshot("campaign-report")


def test_the_page_is_usable_from_the_keyboard(console):
    page = console.page
    # the key field has focus; Enter signs in
    assert page.evaluate("document.activeElement.id") == "signin-key"
    page.keyboard.type("test-admin-key-0123456789abcdef")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready=true]")
    # tabs follow the arrow keys
    page.focus("#tab-fences")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-beacons"
    assert page.is_visible("#panel-beacons") and page.is_hidden("#panel-fences")
    # every form control has a label
    unlabeled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')].filter(e => e.type !== 'hidden'
             && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)"""
    )
    assert unlabeled == []


def test_a_tablet_sized_window_shows_map_and_panel(console):
    console.page.set_viewport_size({"width": 820, "height": 1180})
    console.sign_in()
    page = console.page
    mbox, sbox = page.locator("#map").bounding_box(), page.locator(".side").bounding_box()
    assert mbox["height"] > 300 and sbox["height"] > 300 and mbox["width"] > 700
    console.screenshot("tablet")


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / 5, start[1] + (end[1] - start[1]) * i / 5)
    page.mouse.up()
    page.wait_for_timeout(150)


def test_move_a_fence_and_drag_one_of_its_vertices(console, api):
    lon, lat = LON + 0.09, LAT
    api.put("/v1/geofences/move-me", json=square("move-me", lon, lat, name="Move me"))
    console.sign_in()
    page = console.page
    console.view(lon + 0.0005, lat + 0.0005, 17)
    page.fill("#fence-search", "Move me")
    page.click("#fence-list button:has-text('Move me')")
    page.wait_for_selector("#fence-form:not([hidden])")
    console.view(lon + 0.0005, lat + 0.0005, 17)
    # move: drag the shape 100 px east
    page.click("#fence-move")
    x, y = console.map_point(lon + 0.0005, lat + 0.0005)
    drag(page, (x, y), (x + 100, y))
    page.click("#fence-move")
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    moved = api.get("/v1/geofences/move-me").json()["geometry"]["coordinates"][0]
    shift = moved[0][0] - lon
    assert shift > 0.0003 and all(
        abs(p[1] - q[1]) < 1e-6 for p, q in zip(moved, square("m", lon, lat)["geometry"]["coordinates"][0])
    )

    # edit: drag the south-west vertex 40 px further south-west
    page.click("#fence-list button:has-text('Move me')")
    page.wait_for_selector("#fence-form:not([hidden])")
    console.view(lon + shift + 0.0005, lat + 0.0005, 17)
    page.click("#fence-edit")
    vx, vy = console.map_point(lon + shift, lat)
    drag(page, (vx, vy), (vx - 40, vy + 40))
    page.click("#fence-form button[type=submit]")
    page.wait_for_selector("#fence-form", state="hidden")
    ring = api.get("/v1/geofences/move-me").json()["geometry"]["coordinates"][0]
    assert min(p[0] for p in ring) < lon + shift - 0.0002 and min(p[1] for p in ring) < lat - 0.0001
    console.screenshot("move-edit")


def test_place_a_beacon_on_the_map_and_import_a_csv(console, api, tmp_path):
    console.allow_status(422)
    uuid = "a1b2c3d4-0000-4000-8000-00000000be0c"
    lon, lat = LON + 0.10, LAT
    api.put("/v1/geofences/beacon-shop", json=square("beacon-shop", lon, lat, name="Beacon shop"))
    api.put("/v1/regions/console-brand", json={"uuid": uuid})
    console.sign_in()
    page = console.page
    console.tab("beacons")
    console.view(lon + 0.0005, lat + 0.0005, 18)
    page.click("#beacon-new")
    page.fill("#beacon-uuid", uuid)
    page.fill("#beacon-major", "1")
    page.fill("#beacon-minor", "70000")
    page.fill("#beacon-store", "beacon-shop")
    page.click("#beacon-place")
    console.click_map(lon + 0.0004, lat + 0.0006)
    assert abs(float(page.input_value("#beacon-lon")) - (lon + 0.0004)) < 1e-5
    page.click("#beacon-form button[type=submit]")
    page.locator("#beacon-minor + .field-error").wait_for()  # 70000 is no 16-bit minor
    page.fill("#beacon-minor", "7")
    page.click("#beacon-form button[type=submit]")
    page.wait_for_selector("#beacon-form", state="hidden")
    beacon = api.get(f"/v1/beacons/ibeacon:{uuid}:1:7").json()
    assert beacon["store_id"] == "beacon-shop" and abs(beacon["lat"] - (lat + 0.0006)) < 1e-5
    # its store and regions
    page.click(f"#beacon-list button:has-text('ibeacon:{uuid}:1:7')")
    page.wait_for_selector("#beacon-regions:has-text('Store: beacon-shop. Regions: console-brand.')")
    page.click("#beacon-cancel")

    csv = tmp_path / "beacons.csv"
    header = "type,uuid,major,minor,store_id,lon,lat,measured_power_dbm\n"
    csv.write_text(
        header + f"ibeacon,{uuid},2,1,beacon-shop,{lon},{lat},-59\nibeacon,{uuid},2,x,beacon-shop,{lon},{lat},-59\n"
    )
    page.set_input_files("#beacon-import", str(csv))
    page.wait_for_selector("#beacon-import-errors li[data-line='3']:has-text('minor')")
    assert api.get(f"/v1/beacons/ibeacon:{uuid}:2:1").status_code == 404
    csv.write_text(header + f"ibeacon,{uuid},2,1,beacon-shop,{lon},{lat},-59\n")
    page.set_input_files("#beacon-import", str(csv))
    page.wait_for_selector("#beacon-import-status:text-matches('^imported 1 beacon')")
    assert api.get(f"/v1/beacons/ibeacon:{uuid}:2:1").status_code == 200
    console.screenshot("beacons")


def test_base_map_tiles_come_from_the_configured_server_only(browser, tmp_path):
    """With a tile URL set, the map asks that server for tiles (allowed by the page's CSP), and
    nothing else leaves the app; here the "tile server" is the test's route handler."""
    from tests.proximity.service.console.conftest import Console
    from tests.proximity.service.support import start_server

    tile = (
        Path(__file__).resolve().parents[4] / "proximity/service/console_assets/vendor/leaflet/images/layers.png"
    ).read_bytes()
    server = start_server(
        tmp_path, env={"PROXIMITY_CONSOLE_TILE_URL": "https://{s}.tiles.example.test/{z}/{x}/{y}.png"}
    )
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    try:
        page = context.new_page()
        c = Console(page, server)
        tiles: list[str] = []

        def route(r):
            url = r.request.url
            if url.startswith(server.url):
                r.continue_()
            elif ".tiles.example.test/" in url:
                tiles.append(url)
                r.fulfill(status=200, content_type="image/png", body=tile)
            else:
                c.foreign.append(url)
                r.abort()

        context.route("**/*", route)
        page.on("console", c.on_console)
        page.on("pageerror", lambda exc: c.errors.append(str(exc)))
        c.open()
        c.sign_in()
        page.wait_for_selector(".leaflet-tile-loaded")
        assert tiles and all(t.startswith(("https://a.", "https://b.", "https://c.")) for t in tiles)
        assert "OpenStreetMap" in page.inner_text(".leaflet-control-attribution")
        assert c.errors == [] and c.foreign == []
    finally:
        context.close()
        server.stop()


def test_names_are_shown_as_text_never_as_html(console, api):
    name = '<img id="injected" src="/nowhere.png">Shop'
    lon, lat = LON + 0.11, LAT
    api.put("/v1/geofences/html-name", json=square("html-name", lon, lat, name=name))
    console.sign_in()
    page = console.page
    console.view(lon + 0.0005, lat + 0.0005, 17)
    page.mouse.move(*console.map_point(lon + 0.0005, lat + 0.0005))
    page.wait_for_selector(".leaflet-tooltip")
    assert name in page.inner_text(".leaflet-tooltip")
    page.wait_for_selector(f"#fence-list li:has-text('{name}')")
    assert page.locator("#injected").count() == 0


def test_a_report_with_a_holdout_shows_the_lift_and_its_interval(console, api):
    lon, lat = LON + 0.12, LAT
    api.put("/v1/geofences/lift-shop", json=square("lift-shop", lon, lat, tags=["lift"]))
    campaign = {"id": "lift-test", "name": "Lift test", "status": "active", "offer": {"title": "Hello"},
                "triggers": [{"event": "enter", "geofence_tags": ["lift"]}], "holdout_pct": 50}  # fmt: skip
    assert api.post("/v1/campaigns", json=campaign).status_code == 201
    devices = [f"lift-{i}" for i in range(40)]
    for d in devices:
        api.put(f"/v1/devices/{d}", json={"marketing_consent": True})
    now = time.time()
    inside, outside = (lon + 0.0005, lat + 0.0005), (lon - 0.002, lat + 0.0005)
    pings = []
    for i, d in enumerate(devices):  # every device comes in; every third comes back after leaving
        path = [inside, outside, inside] if i % 3 == 0 else [inside]
        for k, (x, y) in enumerate(path):
            pings.append({"device_id": d, "ts": now - 30 + 10 * k, "lon": x, "lat": y, "accuracy_m": 5})
    assert api.post("/v1/pings", json={"pings": pings}).status_code == 200
    totals = api.get("/v1/campaigns/lift-test/report").json()["totals"]
    assert totals["holdout_devices"] > 0 and totals["devices"] > 0 and totals["lift_lo"] is not None

    console.sign_in()
    page = console.page
    console.tab("campaigns")
    page.click("#campaign-list li[data-id=lift-test] button:has-text('Report')")
    page.wait_for_selector("#report-lift:has-text('95% interval')")
    lo, hi = 100 * totals["lift_lo"], 100 * totals["lift_hi"]
    assert f"{lo:.1f} to {hi:.1f}" in page.inner_text("#report-lift")
    bars = page.evaluate("window.proximityConsole.campaigns.charts[1].data.datasets[0].data")
    assert bars == [[pytest.approx(lo), pytest.approx(hi)]]
    console.screenshot("campaign-lift")
