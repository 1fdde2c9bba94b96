// The beacons panel: beacons placed and edited on the map, their store and regions, CSV import.
import { allPages, api, ApiError } from "./api.js";
import { $, clearErrors, debounce, el, numberOrRaw, prune, showError, text } from "./ui.js";

export class BeaconsPanel {
  constructor({ map, status }) {
    this.map = map;
    this.status = status;
    this.form = $("#beacon-form");
    this.beacons = [];
    this.regions = [];
    this.editing = null; // {id?, marker}
    this.placing = false;
    this.group = L.layerGroup().addTo(map);
    $("#beacon-new").addEventListener("click", () => this.open(null));
    $("#beacon-cancel").addEventListener("click", () => this.close());
    $("#beacon-delete").addEventListener("click", () => this.remove());
    $("#beacon-place").addEventListener("click", (e) => {
      this.placing = !this.placing;
      e.currentTarget.setAttribute("aria-pressed", String(this.placing));
      this.status(this.placing ? "click the map where the beacon is" : "");
    });
    map.on("click", (e) => {
      if (!this.placing) return;
      this.placing = false;
      $("#beacon-place").setAttribute("aria-pressed", "false");
      this.setPosition(e.latlng);
      this.status("");
    });
    for (const id of ["#beacon-lon", "#beacon-lat"]) $(id).addEventListener("change", () => this.moveMarker());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    $("#beacon-search").addEventListener("input", debounce(() => this.renderList(), 200));
    $("#beacon-import").addEventListener("change", (e) => this.importFile(e.target));
  }

  async load() {
    try {
      this.beacons = (await allPages("/v1/beacons?limit=1000", "beacons", { max: 5000 })).items;
      this.regions = (await api("GET", "/v1/regions")).regions;
    } catch (err) {
      this.status(`could not load beacons: ${err.message}`);
      return;
    }
    this.render();
  }

  render() {
    this.group.clearLayers();
    for (const b of this.beacons) {
      if (b.lon == null || b.lat == null) continue;
      const m = L.circleMarker([b.lat, b.lon], { radius: 5, color: "#2b8a3e", weight: 2, fillColor: "#fff", fillOpacity: 1 });
      m.bindTooltip(text(`${b.id}${b.store_id ? ` (${b.store_id})` : ""}`));
      m.on("click", () => this.open(b));
      this.group.addLayer(m);
    }
    this.renderList();
    $("#region-list").replaceChildren(
      ...this.regions.map((r) =>
        el("li", {}, `${r.id}: ${[r.uuid || r.namespace, r.major, r.minor].filter((x) => x != null).join(" / ")}${r.store_id ? ` — store ${r.store_id}` : ""}`),
      ),
    );
  }

  renderList() {
    const q = $("#beacon-search").value.trim().toLowerCase();
    const shown = this.beacons.filter((b) => !q || b.id.toLowerCase().includes(q) || String(b.store_id || "").toLowerCase().includes(q));
    $("#beacon-list").replaceChildren(
      ...shown.slice(0, 300).map((b) =>
        el("li", {}, el("button", { type: "button", class: "link", onclick: () => this.open(b, true) }, b.id), " ", el("span", { class: "tags", text: b.store_id || "" })),
      ),
    );
  }

  regionsOf(b) {
    return this.regions.filter(
      (r) => r.uuid && b.uuid && r.uuid.toLowerCase() === b.uuid.toLowerCase() && (r.major == null || r.major === b.major) && (r.minor == null || r.minor === b.minor),
    );
  }

  open(b, fit = false) {
    this.close();
    clearErrors(this.form);
    this.form.hidden = false;
    this.editing = { id: b ? b.id : null, beacon: b, marker: null };
    $("#beacon-form-title").textContent = b ? `Beacon ${b.id}` : "New beacon";
    for (const [id, k] of [["#beacon-uuid", "uuid"], ["#beacon-major", "major"], ["#beacon-minor", "minor"], ["#beacon-store", "store_id"], ["#beacon-lon", "lon"], ["#beacon-lat", "lat"], ["#beacon-floor", "floor"], ["#beacon-power", "measured_power_dbm"]]) {
      $(id).value = b && b[k] != null ? b[k] : "";
    }
    if (!b) $("#beacon-power").value = "-59"; // a typical iBeacon's RSSI at 1 m
    for (const id of ["#beacon-uuid", "#beacon-major", "#beacon-minor"]) $(id).readOnly = !!b; // the ids are the beacon's identity
    $("#beacon-delete").hidden = !b;
    $("#beacon-delete").textContent = "Delete";
    const regions = b ? this.regionsOf(b) : [];
    $("#beacon-regions").textContent = b ? `Store: ${b.store_id || "none"}. Regions: ${regions.map((r) => r.id).join(", ") || "none"}.` : "";
    if (b && b.lat != null) {
      this.setPosition(L.latLng(b.lat, b.lon));
      if (fit) this.map.setView([b.lat, b.lon], Math.max(this.map.getZoom(), 18));
    }
    $(b ? "#beacon-store" : "#beacon-uuid").focus();
  }

  setPosition(latlng) {
    $("#beacon-lon").value = latlng.lng.toFixed(7);
    $("#beacon-lat").value = latlng.lat.toFixed(7);
    this.moveMarker();
  }

  moveMarker() {
    if (!this.editing) return;
    const lat = Number($("#beacon-lat").value), lng = Number($("#beacon-lon").value);
    if (!Number.isFinite(lat) || !Number.isFinite(lng)) return;
    if (!this.editing.marker) {
      this.editing.marker = L.marker([lat, lng], { draggable: true, title: "beacon (drag to move)", keyboard: true }).addTo(this.map);
      this.editing.marker.on("dragend", (e) => this.setPosition(e.target.getLatLng()));
    } else this.editing.marker.setLatLng([lat, lng]);
  }

  close() {
    if (this.editing && this.editing.marker) this.editing.marker.remove();
    this.editing = null;
    this.form.hidden = true;
  }

  body() {
    return prune({
      uuid: $("#beacon-uuid").value.trim(),
      major: numberOrRaw($("#beacon-major").value),
      minor: numberOrRaw($("#beacon-minor").value),
      store_id: $("#beacon-store").value.trim() || undefined,
      lon: numberOrRaw($("#beacon-lon").value),
      lat: numberOrRaw($("#beacon-lat").value),
      floor: numberOrRaw($("#beacon-floor").value),
      measured_power_dbm: numberOrRaw($("#beacon-power").value),
    });
  }

  async save() {
    if (!this.editing) return;
    const body = this.body();
    try {
      if (this.editing.id) {
        const { uuid, major, minor, ...rest } = body;
        await api("PUT", `/v1/beacons/${encodeURIComponent(this.editing.id)}`, rest);
      } else {
        if (!body.uuid) throw new ApiError(422, { error: { field: "uuid", message: "give the beacon's UUID" } });
        await api("POST", "/v1/beacons", body);
      }
      this.close();
      this.status("beacon saved");
      await this.load();
    } catch (err) {
      showError(this.form, err);
    }
  }

  async remove() {
    const b = $("#beacon-delete");
    if (b.textContent === "Delete") {
      b.textContent = "Really delete?";
      return;
    }
    try {
      await api("DELETE", `/v1/beacons/${encodeURIComponent(this.editing.id)}`);
      this.close();
      await this.load();
    } catch (err) {
      showError(this.form, err);
    }
  }

  async importFile(input) {
    const file = input.files[0];
    if (!file) return;
    const status = $("#beacon-import-status");
    const out = $("#beacon-import-errors");
    out.replaceChildren();
    status.textContent = `importing ${file.name}…`;
    const replace = $("#beacon-replace").checked;
    try {
      const res = await api("POST", `/v1/beacons/import?replace=${replace}`, await file.text(), { contentType: "text/csv" });
      status.textContent = `imported ${res.imported ?? ""} beacon(s) from ${file.name}`;
      await this.load();
    } catch (err) {
      status.textContent = `nothing imported: ${err.message}`;
      out.replaceChildren(
        ...err.errors.slice(0, 200).map((e) =>
          el(
            "li",
            { class: "field-error", dataset: { line: String(e.line ?? e.index ?? "") } },
            `${e.line != null ? `line ${e.line}: ` : e.index != null ? `#${e.index}: ` : ""}${e.field || ""}: ${
              e.reason || (e.expected ? `${JSON.stringify(e.value)} is invalid; expected ${e.expected}` : e.message || "invalid")
            }`,
          ),
        ),
      );
    }
    input.value = "";
  }
}
