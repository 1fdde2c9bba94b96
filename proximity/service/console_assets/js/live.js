// The live view: the event stream as a feed (filtered by type, store, device), counts per store,
// and the devices that appear in it moving on the map.
import { api } from "./api.js";
import { follow } from "./sse.js";
import { $, el, fmtTime, text } from "./ui.js";

const FEED_MAX = 300;
const DEVICES_MAX = 30;
const POLL_MS = 2000;

/** One line of text for an event. */
export function describe(ev) {
  const where = ev.geofence_id ? ` @ ${ev.geofence_id}` : "";
  const extra =
    ev.type === "offer" && ev.offer ? ` “${ev.offer.title}”${ev.offer.code ? ` code ${ev.offer.code}` : ""}` : ev.zone ? ` ${ev.zone}` : "";
  return [fmtTime(ev.ts), ev.type, ev.device_id + where + extra];
}

export function eventItem(ev) {
  const [t, type, rest] = describe(ev);
  return el("li", { dataset: { type: ev.type, device: ev.device_id, store: ev.geofence_id || "" } }, `${t} `, el("span", { class: "type", text: type }), ` ${rest}`);
}

export class LivePanel {
  constructor({ map }) {
    this.map = map;
    this.ctrl = null;
    this.paused = false;
    this.stores = new Map(); // store -> {inside: Set, enter, exit, dwell, offer}
    this.devices = new Map(); // device -> {marker, seen, gone}
    this.listeners = [];
    this.group = L.layerGroup().addTo(map);
    $("#live-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.connect();
    });
    $("#live-pause").addEventListener("click", (e) => {
      this.paused = !this.paused;
      e.currentTarget.setAttribute("aria-pressed", String(this.paused));
      e.currentTarget.textContent = this.paused ? "Resume" : "Pause";
    });
    $("#live-clear").addEventListener("click", () => {
      $("#live-feed").replaceChildren();
      this.stores.clear();
      this.renderCounts();
    });
  }

  start() {
    this.connect();
    this.poller = setInterval(() => this.poll(), POLL_MS);
  }

  stop() {
    if (this.ctrl) this.ctrl.abort();
    clearInterval(this.poller);
  }

  connect() {
    if (this.ctrl) this.ctrl.abort();
    const q = new URLSearchParams();
    for (const [k, id] of [["type", "#live-type"], ["geofence_id", "#live-store"], ["device_id", "#live-device"]]) {
      const v = $(id).value.trim();
      if (v) q.set(k, v);
    }
    this.ctrl = new AbortController();
    const status = $("#live-status");
    status.textContent = "connecting…";
    follow(`/v1/events/stream${q.size ? `?${q}` : ""}`, {
      signal: this.ctrl.signal,
      onStatus: (s) => (status.textContent = `stream ${s}${q.size ? ` (${q})` : ""}`),
      onEvent: (_type, ev) => this.add(ev),
    });
  }

  onEvent(fn) {
    this.listeners.push(fn);
  }

  add(ev) {
    for (const fn of this.listeners) fn(ev);
    if (ev.geofence_id) {
      const s = this.stores.get(ev.geofence_id) || { inside: new Set(), enter: 0, exit: 0, dwell: 0, offer: 0 };
      if (ev.type === "enter") s.inside.add(ev.device_id);
      if (ev.type === "exit") s.inside.delete(ev.device_id);
      if (ev.type in s) s[ev.type] += 1;
      this.stores.set(ev.geofence_id, s);
      this.renderCounts();
    }
    if (ev.device_id && !this.devices.has(ev.device_id)) this.devices.set(ev.device_id, { marker: null, seen: 0, gone: false });
    if (ev.device_id) this.devices.get(ev.device_id).seen = Date.now();
    if (this.paused) return;
    const feed = $("#live-feed");
    feed.prepend(eventItem(ev));
    while (feed.childElementCount > FEED_MAX) feed.lastElementChild.remove();
  }

  renderCounts() {
    const rows = [...this.stores.entries()].sort((a, b) => b[1].inside.size - a[1].inside.size || a[0].localeCompare(b[0]));
    $("#live-counts tbody").replaceChildren(
      ...rows.slice(0, 100).map(([id, s]) =>
        el("tr", { dataset: { store: id } }, ...[id, s.inside.size, s.enter, s.exit, s.dwell, s.offer].map((v, i) => el(i ? "td" : "th", i ? {} : { scope: "row" }, String(v)))),
      ),
    );
  }

  /** Move a device's marker (also used by the test walk, which knows where it is). */
  place(deviceId, lat, lng) {
    let d = this.devices.get(deviceId);
    if (!d) this.devices.set(deviceId, (d = { marker: null, seen: Date.now(), gone: false }));
    if (!d.marker) {
      d.marker = L.circleMarker([lat, lng], { radius: 6, color: "#fff", weight: 2, fillColor: "#d9480f", fillOpacity: 1 });
      d.marker.bindTooltip(text(deviceId), { permanent: true, direction: "right", className: "device-label", offset: [6, 0] });
      this.group.addLayer(d.marker);
    } else d.marker.setLatLng([lat, lng]);
  }

  /** Fetch the last position of the devices seen most recently. */
  async poll() {
    if (document.hidden) return;
    const recent = [...this.devices.entries()].filter(([, d]) => !d.gone).sort((a, b) => b[1].seen - a[1].seen).slice(0, DEVICES_MAX);
    await Promise.all(
      recent.map(async ([id, d]) => {
        try {
          const dev = await api("GET", `/v1/devices/${encodeURIComponent(id)}`);
          if (dev.last_ping) this.place(id, dev.last_ping.lat, dev.last_ping.lon);
        } catch (err) {
          if (err.status === 404) d.gone = true; // beacon-only devices have no position
        }
      }),
    );
  }
}
