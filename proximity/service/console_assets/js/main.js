// The console's entry point: sign in, then the map and the panels.
import { api, ApiError, getKey, setKey } from "./api.js";
import { BeaconsPanel } from "./beacons.js";
import { CampaignsPanel } from "./campaigns.js";
import { FenceLayer, featureBounds } from "./fencelayer.js";
import { FencesPanel } from "./fences.js";
import { LivePanel } from "./live.js";
import { $, setupTabs } from "./ui.js";
import { WalkPanel } from "./walk.js";

const DEFAULT_VIEW = [[59.9139, 10.7522], 15];

async function checkKey(key) {
  try {
    await api("GET", "/v1/geofences?limit=1", undefined, { key });
    return null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return "That key is not valid.";
    if (err instanceof ApiError && err.status === 403) return "That key lacks the manage scope.";
    return `Cannot reach the service: ${err.message}`;
  }
}

async function signIn(key) {
  const problem = await checkKey(key);
  if (problem) {
    setKey("");
    const input = $("#signin-key");
    input.setAttribute("aria-invalid", "true");
    $("#signin-error").textContent = problem;
    input.focus();
    return;
  }
  setKey(key);
  $("#signin").hidden = true;
  $("#session").hidden = false;
  $("#session-info").textContent = "signed in";
  $("#app").hidden = false;
  await start();
}

async function start() {
  const config = await fetch("/console/config.json").then((r) => r.json());
  const map = L.map("map", { zoomControl: true, keyboard: true, minZoom: 2 });
  map.attributionControl.setPrefix("");
  if (config.tile_url) L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution }).addTo(map);
  const mapStatus = $("#map-status");
  const status = (text) => (mapStatus.textContent = text || "");

  let campaigns;
  let fences;
  let beacons;
  const layer = new FenceLayer(map, {
    onSelect: (id) => {
      if (map.pm.globalDrawModeEnabled() || beacons.placing) return; // a click that draws or places
      if (campaigns.picking) campaigns.pick(id);
      else {
        show("fences");
        fences.select(id, false);
      }
    },
  });
  layer.addEventListener("status", (e) => status(e.detail));
  fences = new FencesPanel({ map, layer, status });
  const live = new LivePanel({ map });
  const walk = new WalkPanel({ map, live, status });
  beacons = new BeaconsPanel({ map, status });
  campaigns = new CampaignsPanel({ status });

  let drawingFor = "fences";
  const show = setupTabs($('[role="tablist"]'), (name) => {
    drawingFor = name === "walk" ? "walk" : "fences";
    map.pm.disableDraw();
  });
  map.on("pm:create", (e) => (e.shape === "Line" || drawingFor === "walk" ? walk.created(e.layer) : fences.created(e.layer)));
  map.on("pm:drawend", () => status(""));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && map.pm.globalDrawModeEnabled()) map.pm.disableDraw();
  });

  // the first view: the first fences, else the default
  try {
    const page = await api("GET", "/v1/geofences?limit=200");
    if (page.features.length) {
      const b = page.features.map(featureBounds).reduce((a, x) => a.extend(x));
      map.fitBounds(b, { maxZoom: 17 });
    } else map.setView(...DEFAULT_VIEW);
  } catch {
    map.setView(...DEFAULT_VIEW);
  }
  await layer.refresh(true);
  fences.list();
  live.start();
  beacons.load();
  campaigns.load();
  window.proximityConsole = { map, layer, fences, live, walk, beacons, campaigns }; // for tests and the curious
  document.body.dataset.ready = "true";
}

$("#signin").addEventListener("submit", (e) => {
  e.preventDefault();
  $("#signin-error").textContent = "";
  signIn($("#signin-key").value.trim());
});
$("#signout").addEventListener("click", () => {
  setKey("");
  location.reload();
});
if (getKey()) signIn(getKey());
else $("#signin-key").focus();
