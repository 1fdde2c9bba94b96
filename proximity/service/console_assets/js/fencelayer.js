// The fences on the map: loaded for the visible area only (the API's bbox filter), drawn on one
// canvas, and grouped into counted clusters on a pixel grid when zoomed out over many fences.
import { allPages } from "./api.js";
import { debounce, text } from "./ui.js";

const MAX_FENCES = 10000; // per view
const CLUSTER_BELOW_ZOOM = 15;
const CLUSTER_MIN = 400; // fewer fences than this on screen are drawn as they are
const CELL_PX = 64;

/** The [[south, west], [north, east]] bounds of a fence feature. */
export function featureBounds(f) {
  const g = f.geometry;
  if (g.type === "Point") {
    return L.latLng(g.coordinates[1], g.coordinates[0]).toBounds(2 * (f.properties.radius_m || 0));
  }
  let w = 180, s = 90, e = -180, n = -90;
  const rings = g.type === "Polygon" ? g.coordinates : g.coordinates.flat();
  for (const ring of rings) {
    for (const [x, y] of ring) {
      if (x < w) w = x;
      if (x > e) e = x;
      if (y < s) s = y;
      if (y > n) n = y;
    }
  }
  return L.latLngBounds([s, w], [n, e]);
}

/** A Leaflet layer for a fence feature: a circle for a Point with radius_m, else a polygon. */
export function featureLayer(f, options = {}) {
  const g = f.geometry;
  if (g.type === "Point") return L.circle([g.coordinates[1], g.coordinates[0]], { radius: f.properties.radius_m, ...options });
  const rings = (poly) => poly.map((ring) => ring.map(([x, y]) => [y, x]));
  const latlngs = g.type === "Polygon" ? rings(g.coordinates) : g.coordinates.map(rings);
  return L.polygon(latlngs, options);
}

export class FenceLayer extends EventTarget {
  constructor(map, { onSelect }) {
    super();
    this.map = map;
    this.onSelect = onSelect;
    this.features = new Map(); // id -> {feature, bounds}
    this.hidden = new Set();
    this.renderer = L.canvas({ padding: 0.2 });
    this.group = L.layerGroup().addTo(map);
    this.loaded = null; // the bounds loaded, when complete
    this.ctrl = null;
    this.pending = null; // {box, promise} of the load under way
    map.on("moveend", debounce(() => this.refresh(), 200));
  }

  /** Load the fences of the visible area (unless already loaded) and draw them. */
  refresh(force = false) {
    const view = this.map.getBounds();
    if (!force && this.loaded && this.loaded.contains(view)) return Promise.resolve(this.render());
    if (!force && this.pending && this.pending.box.contains(view)) return this.pending.promise; // already coming
    const box = view.pad(0.25);
    const pending = { box, promise: this.load(box) };
    this.pending = pending;
    pending.promise.finally(() => this.pending === pending && (this.pending = null));
    return pending.promise;
  }

  async load(box) {
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    const bbox = [
      clamp(box.getWest(), -180, 180),
      clamp(box.getSouth(), -90, 90),
      clamp(box.getEast(), -180, 180),
      clamp(box.getNorth(), -90, 90),
    ].map((v) => v.toFixed(6));
    if (this.ctrl) this.ctrl.abort();
    const ctrl = (this.ctrl = new AbortController());
    this.status(`loading fences…`);
    try {
      const { items, complete } = await allPages(`/v1/geofences?bbox=${bbox.join(",")}&limit=1000`, "features", {
        max: MAX_FENCES,
        signal: ctrl.signal,
      });
      this.features = new Map(items.map((f) => [f.id, { feature: f, bounds: featureBounds(f) }]));
      this.loaded = complete ? box : null;
      this.status(complete ? "" : `showing the first ${items.length} fences here: zoom in for all`);
    } catch (err) {
      if (ctrl.signal.aborted) return;
      this.status(`could not load fences: ${err.message}`);
      return;
    }
    this.render();
    this.dispatchEvent(new Event("loaded"));
  }

  status(text) {
    this.dispatchEvent(new CustomEvent("status", { detail: text }));
  }

  /** The fences intersecting the visible area. */
  visible() {
    const view = this.map.getBounds();
    return [...this.features.values()].filter((x) => view.intersects(x.bounds)).map((x) => x.feature);
  }

  upsert(feature) {
    this.features.set(feature.id, { feature, bounds: featureBounds(feature) });
    this.render();
  }

  remove(id) {
    this.features.delete(id);
    this.render();
  }

  hide(id) {
    this.hidden.add(id);
    this.render();
  }

  show(id) {
    this.hidden.delete(id);
    this.render();
  }

  render() {
    this.group.clearLayers();
    const view = this.map.getBounds();
    const shown = [...this.features.values()].filter((x) => !this.hidden.has(x.feature.id) && view.intersects(x.bounds));
    if (this.map.getZoom() < CLUSTER_BELOW_ZOOM && shown.length >= CLUSTER_MIN) return this.renderClusters(shown);
    const style = { renderer: this.renderer, color: "#0b5cad", weight: 2, fillOpacity: 0.15, smoothFactor: 1.5 };
    for (const { feature } of shown) {
      const layer = featureLayer(feature, style);
      const label = feature.properties.name ? `${feature.properties.name} (${feature.id})` : feature.id;
      layer.bindTooltip(text(label), { sticky: true });
      layer.on("click", () => this.onSelect(feature.id, false));
      this.group.addLayer(layer);
    }
  }

  renderClusters(shown) {
    const cells = new Map();
    for (const x of shown) {
      const p = this.map.latLngToContainerPoint(x.bounds.getCenter());
      const key = `${Math.floor(p.x / CELL_PX)}:${Math.floor(p.y / CELL_PX)}`;
      const cell = cells.get(key) || { n: 0, lat: 0, lng: 0, one: x.feature };
      const c = x.bounds.getCenter();
      cell.n += 1;
      cell.lat += c.lat;
      cell.lng += c.lng;
      cells.set(key, cell);
    }
    for (const cell of cells.values()) {
      const at = L.latLng(cell.lat / cell.n, cell.lng / cell.n);
      if (cell.n === 1) {
        const m = L.circleMarker(at, { renderer: this.renderer, radius: 4, color: "#0b5cad" });
        m.on("click", () => this.onSelect(cell.one.id, false));
        this.group.addLayer(m);
        continue;
      }
      const size = cell.n < 100 ? 30 : cell.n < 1000 ? 36 : 44;
      const icon = L.divIcon({ className: "cluster", html: String(cell.n), iconSize: [size, size] });
      const m = L.marker(at, { icon, keyboard: false, title: `${cell.n} geofences` });
      m.on("click", () => this.map.setView(at, Math.min(this.map.getZoom() + 2, 19)));
      this.group.addLayer(m);
    }
  }
}
