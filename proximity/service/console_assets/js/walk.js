// The test walk: a path drawn on the map (or typed), walked by a test device whose pings go
// through the API with the current time, at the chosen speed and accuracy; the events and offers
// they cause are shown as they happen.
import { api, ApiError, getKey } from "./api.js";
import { eventItem } from "./live.js";
import { $, clearErrors, el, showError, sleep } from "./ui.js";

export class WalkPanel {
  constructor({ map, live, status }) {
    this.map = map;
    this.live = live;
    this.status = status;
    this.form = $("#walk-form");
    this.path = null; // the polyline on the map
    this.running = false;
    $("#walk-draw").addEventListener("click", () => {
      this.map.pm.enableDraw("Line", { snappable: false, templineStyle: { color: "#7048e8" }, pathOptions: { color: "#7048e8" } });
      this.status("drawing the path: click its points, then click the last one again");
    });
    $("#walk-clear").addEventListener("click", () => {
      $("#walk-path").value = "";
      this.showPath([]);
    });
    $("#walk-path").addEventListener("change", () => this.showPath(this.points()));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    $("#walk-stop").addEventListener("click", () => (this.running = false));
  }

  /** A line drawn with geoman becomes the path. */
  created(layer) {
    const pts = layer.getLatLngs();
    layer.remove();
    $("#walk-path").value = pts.map((p) => `${p.lng.toFixed(6)}, ${p.lat.toFixed(6)}`).join("\n");
    this.showPath(pts);
    this.status("");
    $("#walk-start").focus();
  }

  points() {
    const pts = [];
    for (const line of $("#walk-path").value.split("\n")) {
      if (!line.trim()) continue;
      const [lng, lat] = line.split(",").map(Number);
      if (!Number.isFinite(lng) || !Number.isFinite(lat) || Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
      pts.push(L.latLng(lat, lng));
    }
    return pts;
  }

  showPath(pts) {
    if (this.path) this.path.remove();
    this.path = pts && pts.length ? L.polyline(pts, { color: "#7048e8", dashArray: "6 6", weight: 3 }).addTo(this.map) : null;
  }

  invalid(field, message) {
    showError(this.form, new ApiError(422, { error: { field, message } }));
  }

  async start() {
    clearErrors(this.form);
    const pts = this.points();
    const speed = Number($("#walk-speed").value);
    const accuracy = Number($("#walk-accuracy").value);
    const interval = Number($("#walk-interval").value);
    const device = $("#walk-device").value.trim();
    if (!pts || pts.length < 2) return this.invalid("path", "draw a path, or type two or more “lon, lat” lines");
    if (!device) return this.invalid("device_id", "give the test device an id");
    if (!(speed > 0)) return this.invalid("speed", "must be a number > 0");
    if (!(accuracy >= 0)) return this.invalid("accuracy_m", "must be a number >= 0");
    if (!(interval >= 0.1)) return this.invalid("interval", "must be a number >= 0.1");
    this.showPath(pts);
    const key = $("#walk-key").value.trim() || getKey();
    const legs = [0];
    for (let i = 1; i < pts.length; i++) legs.push(legs[i - 1] + this.map.distance(pts[i - 1], pts[i]));
    const total = legs[legs.length - 1];
    const at = (d) => {
      let i = 1;
      while (i < legs.length - 1 && legs[i] < d) i++;
      const f = legs[i] === legs[i - 1] ? 1 : (d - legs[i - 1]) / (legs[i] - legs[i - 1]);
      const a = pts[i - 1], b = pts[i];
      return L.latLng(a.lat + (b.lat - a.lat) * f, a.lng + (b.lng - a.lng) * f);
    };
    $("#walk-events").replaceChildren();
    $("#walk-offers").replaceChildren();
    $("#walk-no-offers").hidden = false;
    this.running = true;
    $("#walk-start").disabled = true;
    $("#walk-stop").disabled = false;
    const statusEl = $("#walk-status");
    try {
      if ($("#walk-consent").checked) await api("PUT", `/v1/devices/${encodeURIComponent(device)}`, { marketing_consent: true });
      const t0 = performance.now();
      for (let k = 0; this.running; k++) {
        const d = Math.min(speed * interval * k, total);
        const p = at(d);
        const res = await api(
          "POST",
          "/v1/pings",
          { pings: [{ device_id: device, ts: Date.now() / 1000, lon: +p.lng.toFixed(7), lat: +p.lat.toFixed(7), accuracy_m: accuracy }] },
          { key },
        );
        this.live.place(device, p.lat, p.lng);
        for (const ev of res.events || []) $("#walk-events").prepend(eventItem(ev));
        for (const o of res.offers || []) {
          $("#walk-no-offers").hidden = true;
          $("#walk-offers").prepend(el("li", { dataset: { campaign: o.campaign_id } }, `${o.title}${o.code ? ` — code ${o.code}` : ""} (${o.campaign_id})`));
        }
        statusEl.textContent = `walked ${Math.round(d)} of ${Math.round(total)} m`;
        if (d >= total) break;
        const wait = t0 + (k + 1) * interval * 1000 - performance.now();
        if (wait > 0) await sleep(wait);
      }
      statusEl.textContent = this.running ? `done: walked ${Math.round(total)} m` : "stopped";
    } catch (err) {
      if (err.status === 403) err.message = "this key cannot send pings: give an ingest key below";
      showError(this.form, err);
      statusEl.textContent = "stopped";
    } finally {
      this.running = false;
      $("#walk-start").disabled = false;
      $("#walk-stop").disabled = true;
    }
  }
}
