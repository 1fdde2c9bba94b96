// The geofences panel: draw, edit, move, delete, name/tags/dwell/exit-after, find, import, export.
import { api, ApiError } from "./api.js";
import { featureLayer } from "./fencelayer.js";
import { $, clearErrors, debounce, download, el, numberOrRaw, showError, splitList } from "./ui.js";

const EDIT_STYLE = { color: "#d9480f", weight: 3, fillOpacity: 0.2 };

export class FencesPanel {
  constructor({ map, layer, status }) {
    this.map = map;
    this.layer = layer;
    this.status = status;
    this.form = $("#fence-form");
    this.editing = null; // {id, isNew, layer, feature}
    this.cursor = null;
    this.listed = [];
    for (const b of document.querySelectorAll("[data-draw]")) b.addEventListener("click", () => this.draw(b.dataset.draw));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    $("#fence-cancel").addEventListener("click", () => this.close());
    $("#fence-delete").addEventListener("click", () => this.remove());
    $("#fence-edit").addEventListener("click", (e) => this.toggleEdit(e.currentTarget));
    $("#fence-move").addEventListener("click", (e) => this.toggleMove(e.currentTarget));
    const relist = debounce(() => this.list(), 250);
    for (const id of ["#fence-search", "#fence-tag"]) $(id).addEventListener("input", relist);
    $("#fence-onscreen").addEventListener("change", () => this.list());
    $("#fence-more").addEventListener("click", () => this.list(true));
    $("#fence-import").addEventListener("change", (e) => this.importFile(e.target));
    $("#fence-export").addEventListener("click", () => this.exportAll());
    layer.addEventListener("loaded", () => $("#fence-onscreen").checked && this.list());
    map.on("moveend", debounce(() => $("#fence-onscreen").checked && this.list(), 300));
  }

  // -- drawing and editing -------------------------------------------------------------------
  draw(shape) {
    this.close();
    this.map.pm.enableDraw(shape, { snappable: false, allowSelfIntersection: false, pathOptions: EDIT_STYLE, templineStyle: EDIT_STYLE });
    this.status(`drawing a ${shape.toLowerCase()}: click on the map; Escape cancels`);
  }

  /** A shape drawn with geoman: open the form for a new fence. */
  created(layer) {
    this.open({ isNew: true, layer, feature: { type: "Feature", id: "", geometry: null, properties: {} } });
    this.status("");
  }

  async select(id, fit = true) {
    let feature;
    try {
      feature = await api("GET", `/v1/geofences/${encodeURIComponent(id)}`);
    } catch (err) {
      this.status(`could not open ${id}: ${err.message}`);
      return;
    }
    this.close();
    const layer = featureLayer(feature, EDIT_STYLE).addTo(this.map);
    this.layer.hide(id);
    this.open({ id, isNew: false, layer, feature });
    if (fit) this.map.fitBounds(layer.getBounds(), { maxZoom: 18, padding: [40, 40] });
  }

  open(editing) {
    this.editing = editing;
    const p = editing.feature.properties || {};
    clearErrors(this.form);
    this.form.hidden = false;
    $("#fence-form-title").textContent = editing.isNew ? "New geofence" : `Geofence ${editing.id}`;
    $("#fence-id").value = editing.isNew ? "" : editing.id;
    $("#fence-id").readOnly = !editing.isNew;
    $("#fence-name").value = p.name || "";
    $("#fence-tags").value = (p.tags || []).join(", ");
    $("#fence-dwell").value = p.dwell_s ?? "";
    $("#fence-exit").value = p.exit_after_s ?? "";
    $("#fence-delete").hidden = editing.isNew;
    $("#fence-delete").textContent = "Delete";
    this.describeShape();
    editing.layer.on("pm:edit pm:dragend", () => this.describeShape());
    $(editing.isNew ? "#fence-id" : "#fence-name").focus();
  }

  describeShape() {
    const l = this.editing.layer;
    $("#fence-shape").textContent =
      l instanceof L.Circle ? `circle, radius ${Math.round(l.getRadius())} m` : `polygon, ${l.getLatLngs().flat(3).length} vertices`;
  }

  close() {
    this.map.pm.disableDraw();
    if (this.editing) {
      this.editing.layer.pm.disable();
      this.editing.layer.remove();
      if (this.editing.id) this.layer.show(this.editing.id);
    }
    this.editing = null;
    this.form.hidden = true;
    for (const id of ["#fence-edit", "#fence-move"]) $(id).setAttribute("aria-pressed", "false");
  }

  toggleEdit(button) {
    const l = this.editing && this.editing.layer;
    if (!l) return;
    const on = !l.pm.enabled();
    if (on) l.pm.enable({ allowSelfIntersection: false, draggable: false });
    else l.pm.disable();
    button.setAttribute("aria-pressed", String(on));
  }

  toggleMove(button) {
    const l = this.editing && this.editing.layer;
    if (!l) return;
    const on = !l.pm.layerDragEnabled();
    if (on) l.pm.enableLayerDrag();
    else l.pm.disableLayerDrag();
    button.setAttribute("aria-pressed", String(on));
  }

  /** The feature the form and the edited shape describe (other properties kept as they are). */
  feature() {
    const { layer, feature } = this.editing;
    const props = { ...(feature.properties || {}) };
    const set = (k, v) => (v === undefined || v === "" || (Array.isArray(v) && !v.length) ? delete props[k] : (props[k] = v));
    set("name", $("#fence-name").value.trim());
    set("tags", splitList($("#fence-tags").value));
    set("dwell_s", numberOrRaw($("#fence-dwell").value));
    set("exit_after_s", numberOrRaw($("#fence-exit").value));
    let geometry;
    if (layer instanceof L.Circle) {
      const c = layer.getLatLng();
      geometry = { type: "Point", coordinates: [c.lng, c.lat] };
      props.radius_m = Math.round(layer.getRadius() * 10) / 10;
    } else {
      geometry = layer.toGeoJSON(8).geometry;
      delete props.radius_m;
    }
    return { type: "Feature", id: $("#fence-id").value.trim(), geometry, properties: props };
  }

  async save() {
    if (!this.editing) return;
    const f = this.feature();
    clearErrors(this.form);
    if (!f.id) return showError(this.form, new ApiError(422, { error: { field: "id", message: "give the geofence an id" } }));
    try {
      const saved = this.editing.isNew
        ? await api("POST", "/v1/geofences", f)
        : await api("PUT", `/v1/geofences/${encodeURIComponent(f.id)}`, f);
      this.close();
      this.layer.upsert(saved);
      this.status(`saved ${saved.id}`);
      this.list();
    } catch (err) {
      if (err.status === 409 && !err.field) err.field = "id";
      showError(this.form, err);
    }
  }

  async remove() {
    const b = $("#fence-delete");
    if (b.textContent === "Delete") {
      b.textContent = "Really delete?";
      return;
    }
    const id = this.editing.id;
    try {
      await api("DELETE", `/v1/geofences/${encodeURIComponent(id)}`);
      this.close();
      this.layer.remove(id);
      this.status(`deleted ${id}`);
      this.list();
    } catch (err) {
      b.textContent = "Delete";
      showError(this.form, err);
    }
  }

  // -- finding -------------------------------------------------------------------------------
  async list(more = false) {
    const q = $("#fence-search").value.trim().toLowerCase();
    const tag = $("#fence-tag").value.trim();
    const match = (f) =>
      (!tag || (f.properties.tags || []).includes(tag)) &&
      (!q || f.id.toLowerCase().includes(q) || String(f.properties.name || "").toLowerCase().includes(q));
    let items;
    let note;
    if ($("#fence-onscreen").checked) {
      items = this.layer.visible().filter(match);
      note = `${items.length} on screen`;
      this.cursor = null;
    } else {
      const params = new URLSearchParams({ limit: "500" });
      if (tag) params.set("tag", tag);
      if (more && this.cursor) params.set("cursor", this.cursor);
      try {
        const page = await api("GET", `/v1/geofences?${params}`);
        this.cursor = page.next_cursor;
        const got = page.features.filter(match);
        items = more ? [...this.listed, ...got] : got;
      } catch (err) {
        $("#fence-count").textContent = err.message;
        return;
      }
      note = `${items.length}${this.cursor ? "+" : ""} found`;
    }
    items.sort((a, b) => String(a.properties.name || a.id).localeCompare(String(b.properties.name || b.id)));
    this.listed = items;
    const shown = items.slice(0, 300);
    $("#fence-count").textContent = shown.length < items.length ? `${note} (first ${shown.length} listed)` : note;
    $("#fence-more").hidden = !this.cursor;
    $("#fence-list").replaceChildren(
      ...shown.map((f) =>
        el(
          "li",
          {},
          el("button", { type: "button", class: "link", onclick: () => this.select(f.id) }, f.properties.name ? `${f.properties.name} — ${f.id}` : f.id),
          " ",
          el("span", { class: "tags", text: (f.properties.tags || []).join(", ") }),
        ),
      ),
    );
  }

  // -- import and export ---------------------------------------------------------------------
  async importFile(input) {
    const file = input.files[0];
    if (!file) return;
    const status = $("#fence-import-status");
    const out = $("#fence-import-list");
    out.replaceChildren();
    const text = await file.text();
    let features;
    try {
      const doc = JSON.parse(text);
      features = doc.type === "FeatureCollection" ? doc.features : doc.type === "Feature" ? [doc] : null;
      if (!Array.isArray(features)) throw new Error("not a GeoJSON Feature or FeatureCollection");
    } catch (err) {
      status.textContent = `${file.name}: ${err.message}`;
      return;
    }
    status.textContent = `importing ${features.length} feature(s)…`;
    const item = (f, i) =>
      el("li", { id: `import-${i}`, dataset: { index: String(i) } }, el("span", { text: `#${i} ${f && f.id != null ? f.id : "(no id)"}` }), el("p", { class: "field-error" }));
    try {
      const result = await api("POST", "/v1/geofences/import", text, { contentType: "application/geo+json" });
      const n = result.imported ?? result.count ?? features.length;
      status.textContent = `imported ${n} geofence(s) from ${file.name}`;
      out.replaceChildren(...features.slice(0, 200).map((f, i) => Object.assign(item(f, i), { className: "ok" })));
      this.layer.refresh(true);
    } catch (err) {
      const bad = new Map();
      for (const e of err.errors) if (e.index !== undefined && e.index !== null) bad.set(e.index, e);
      status.textContent = bad.size
        ? `nothing imported: ${bad.size} bad feature(s) in ${file.name}, marked below`
        : `nothing imported: ${err.message}`;
      const rows = [];
      features.forEach((f, i) => {
        const e = bad.get(i);
        if (!e && rows.length >= 200) return;
        const li = item(f, i);
        if (e) {
          li.className = "bad";
          li.querySelector(".field-error").textContent = `${e.field}: ${e.reason}`;
        } else li.className = "";
        rows.push(li);
      });
      out.replaceChildren(...rows);
    }
    input.value = "";
  }

  async exportAll() {
    try {
      const doc = await api("GET", "/v1/geofences/export");
      download("geofences.geojson", JSON.stringify(doc), "application/geo+json");
      this.status(`exported ${doc.features.length} geofence(s)`);
    } catch (err) {
      this.status(`export failed: ${err.message}`);
    }
  }
}
