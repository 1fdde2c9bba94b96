// The campaigns panel: create and edit (the API's 422s inline), targets picked on the map or by
// tag, and a campaign's report with charts (per day; lift with its interval).
import { api } from "./api.js";
import { $, $$, clearErrors, el, numberOrRaw, prune, showError, splitList } from "./ui.js";

const EVENTS = ["enter", "exit", "dwell", "beacon_enter", "beacon_exit", "zone_change"];
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export class CampaignsPanel {
  constructor({ status }) {
    this.status = status;
    this.form = $("#campaign-form");
    this.editing = null; // {id, isNew, doc}
    this.picking = false;
    this.charts = [];
    $("#c-days").append(...DAYS.map((d) => el("label", {}, el("input", { type: "checkbox", value: d, id: `c-day-${d}` }), d)));
    $("#campaign-new").addEventListener("click", () => this.open(null));
    $("#campaign-cancel").addEventListener("click", () => this.close());
    $("#campaign-delete").addEventListener("click", () => this.remove());
    $("#c-add-trigger").addEventListener("click", () => this.addTrigger({ event: "enter" }, true));
    $("#c-pick").addEventListener("click", (e) => {
      this.picking = !this.picking;
      e.currentTarget.setAttribute("aria-pressed", String(this.picking));
      this.status(this.picking ? "click fences on the map to add them to the last trigger" : "");
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
  }

  async load() {
    try {
      const page = await api("GET", "/v1/campaigns?limit=1000");
      this.render(page.campaigns);
    } catch (err) {
      this.status(`could not load campaigns: ${err.message}`);
    }
  }

  render(campaigns) {
    $("#campaign-list").replaceChildren(
      ...campaigns.map((c) =>
        el(
          "li",
          { dataset: { id: c.id } },
          el("button", { type: "button", class: "link", onclick: () => this.edit(c.id) }, `${c.name} — ${c.id}`),
          ` ${c.status} `,
          el("button", { type: "button", onclick: () => this.report(c.id), "aria-label": `Report of ${c.name}` }, "Report"),
        ),
      ),
    );
  }

  addTrigger(t, focus = false) {
    const box = $("#c-triggers");
    const i = box.querySelectorAll(".trigger").length;
    const f = (name) => `triggers[${i}].${name}`;
    const row = el(
      "div",
      { class: "trigger", dataset: { field: `triggers[${i}]` } },
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: `c-t${i}-event` }, `Trigger ${i + 1}: event`),
          el("select", { id: `c-t${i}-event`, dataset: { field: f("event") } }, ...EVENTS.map((e) => el("option", { selected: e === t.event }, e))),
          el("p", { class: "field-error" })),
        el("div", { class: "field" }, el("label", { for: `c-t${i}-zone` }, "Zone (zone_change)"),
          el("select", { id: `c-t${i}-zone`, dataset: { field: f("zone") } }, ...["", "immediate", "near", "far"].map((z) => el("option", { value: z, selected: z === (t.zone || "") }, z || "any"))),
          el("p", { class: "field-error" }))),
      el("div", { class: "field" }, el("label", { for: `c-t${i}-ids` }, "Geofence ids (comma-separated)"),
        el("input", { id: `c-t${i}-ids`, class: "t-ids", dataset: { field: f("geofence_ids") }, value: (t.geofence_ids || []).join(", ") }), el("p", { class: "field-error" })),
      el("div", { class: "field" }, el("label", { for: `c-t${i}-tags` }, "Geofence tags"),
        el("input", { id: `c-t${i}-tags`, dataset: { field: f("geofence_tags") }, value: (t.geofence_tags || []).join(", ") }), el("p", { class: "field-error" })),
      el("div", { class: "field" }, el("label", { for: `c-t${i}-regions` }, "Beacon region ids"),
        el("input", { id: `c-t${i}-regions`, dataset: { field: f("region_ids") }, value: (t.region_ids || []).join(", ") }), el("p", { class: "field-error" })),
      el("button", { type: "button", onclick: () => { row.remove(); this.renumber(); } }, `Remove trigger ${i + 1}`),
      el("p", { class: "field-error" }),
    );
    box.append(row);
    if (focus) row.querySelector("select").focus();
  }

  renumber() {
    const rows = $$("#c-triggers .trigger").map((r) => this.triggerOf(r));
    $("#c-triggers").replaceChildren();
    rows.forEach((t) => this.addTrigger(t));
  }

  triggerOf(row) {
    const v = (sel) => row.querySelector(sel).value;
    return prune({
      event: v("select[id$=-event]"),
      zone: v("select[id$=-zone]") || undefined,
      geofence_ids: splitList(v("input[id$=-ids]")),
      geofence_tags: splitList(v("input[id$=-tags]")),
      region_ids: splitList(v("input[id$=-regions]")),
    });
  }

  /** A fence clicked on the map while picking: add it to the last trigger. */
  pick(id) {
    const inputs = $$("#c-triggers .t-ids");
    if (!inputs.length) this.addTrigger({ event: "enter" });
    const input = $$("#c-triggers .t-ids").pop();
    const ids = splitList(input.value);
    if (!ids.includes(id)) ids.push(id);
    input.value = ids.join(", ");
    this.status(`added ${id} to the trigger`);
  }

  async edit(id) {
    try {
      this.open(await api("GET", `/v1/campaigns/${encodeURIComponent(id)}`));
    } catch (err) {
      this.status(`could not open ${id}: ${err.message}`);
    }
  }

  open(doc) {
    const c = doc || { status: "draft", priority: 0, offer: { coupon: { mode: "none" } }, triggers: [{ event: "enter" }], schedule: { timezone: "store" }, holdout_pct: 0 };
    this.editing = { id: doc ? doc.id : null, isNew: !doc };
    clearErrors(this.form);
    this.form.hidden = false;
    $("#campaign-form-title").textContent = doc ? `Campaign ${doc.id}` : "New campaign";
    const set = (id, v) => ($(id).value = v == null ? "" : v);
    set("#c-id", c.id);
    $("#c-id").readOnly = !!doc;
    set("#c-name", c.name);
    set("#c-status", c.status || "draft");
    set("#c-priority", c.priority);
    const o = c.offer || {};
    set("#c-title", o.title);
    set("#c-body", o.body);
    set("#c-link", o.deep_link);
    set("#c-coupon", (o.coupon && o.coupon.mode) || "none");
    set("#c-code", o.coupon && o.coupon.code);
    $("#c-triggers").replaceChildren();
    (c.triggers || []).forEach((t) => this.addTrigger(t));
    const s = c.schedule || {};
    set("#c-tz", s.timezone);
    set("#c-start", s.start);
    set("#c-end", s.end);
    for (const d of DAYS) $(`#c-day-${d}`).checked = (s.days || []).includes(d);
    set("#c-hours", (s.hours || []).join(", "));
    $("#c-open").checked = !!c.open_only;
    set("#c-segments", (((c.audience || {}).segment || {}).in || []).join(", "));
    const caps = c.caps || {}, budget = c.budget || {};
    set("#c-cap-day", caps.per_device_per_day);
    set("#c-cap-week", caps.per_device_per_week);
    set("#c-cooldown", caps.cooldown_s);
    set("#c-holdout", c.holdout_pct);
    set("#c-max-del", budget.max_deliveries);
    set("#c-max-red", budget.max_redemptions);
    $("#campaign-delete").hidden = !doc;
    $("#campaign-delete").textContent = "Delete";
    $(doc ? "#c-name" : "#c-id").focus();
  }

  close() {
    this.editing = null;
    this.form.hidden = true;
    this.picking = false;
    $("#c-pick").setAttribute("aria-pressed", "false");
  }

  /** The campaign document the form describes. */
  doc() {
    const v = (id) => $(id).value.trim();
    const mode = v("#c-coupon");
    const segments = splitList(v("#c-segments"));
    const days = DAYS.filter((d) => $(`#c-day-${d}`).checked);
    const hours = splitList(v("#c-hours"));
    const doc = prune({
      id: v("#c-id"),
      name: v("#c-name"),
      status: v("#c-status"),
      priority: numberOrRaw(v("#c-priority")),
      offer: { title: v("#c-title"), body: v("#c-body"), deep_link: v("#c-link"), coupon: { mode, code: mode === "shared" ? v("#c-code") : undefined } },
      schedule: { timezone: v("#c-tz"), start: v("#c-start"), end: v("#c-end"), days: days.length ? days : undefined, hours: hours.length ? hours : undefined },
      open_only: $("#c-open").checked || undefined,
      audience: segments.length ? { segment: { in: segments } } : undefined,
      caps: { per_device_per_day: numberOrRaw(v("#c-cap-day")), per_device_per_week: numberOrRaw(v("#c-cap-week")), cooldown_s: numberOrRaw(v("#c-cooldown")) },
      budget: { max_deliveries: numberOrRaw(v("#c-max-del")), max_redemptions: numberOrRaw(v("#c-max-red")) },
      holdout_pct: numberOrRaw(v("#c-holdout")),
    });
    doc.triggers = $$("#c-triggers .trigger").map((r) => this.triggerOf(r));
    return doc;
  }

  async save() {
    if (!this.editing) return;
    const doc = this.doc();
    try {
      const saved = this.editing.isNew
        ? await api("POST", "/v1/campaigns", doc)
        : await api("PUT", `/v1/campaigns/${encodeURIComponent(this.editing.id)}`, doc);
      this.close();
      this.status(`saved campaign ${saved.id}`);
      await this.load();
      await this.report(saved.id);
    } catch (err) {
      if (err.status === 409 && !err.field) err.field = "id";
      showError(this.form, err);
    }
  }

  async remove() {
    const b = $("#campaign-delete");
    if (b.textContent === "Delete") {
      b.textContent = "Really delete?";
      return;
    }
    try {
      await api("DELETE", `/v1/campaigns/${encodeURIComponent(this.editing.id)}`);
      this.close();
      $("#report").hidden = true;
      await this.load();
    } catch (err) {
      showError(this.form, err);
    }
  }

  // -- the report ----------------------------------------------------------------------------
  async report(id) {
    let totals, days;
    try {
      const q = encodeURIComponent(id);
      [totals, days] = await Promise.all([api("GET", `/v1/campaigns/${q}/report`), api("GET", `/v1/campaigns/${q}/report?by_day=true`)]);
    } catch (err) {
      this.status(`no report for ${id}: ${err.message}`);
      return;
    }
    const t = totals.totals;
    $("#report").hidden = false;
    $("#report-title").textContent = `Report: ${id}`;
    const pct = (x) => (x == null ? "—" : `${(100 * x).toFixed(1)}%`);
    const rows = [
      ["Deliveries", t.deliveries], ["Devices reached", t.devices], ["Visits", t.visits], ["Visit rate", pct(t.visit_rate)],
      ["Redemptions", t.redemptions], ["Redemption rate", pct(t.redemption_rate)], ["Amount", t.amount],
      ["Holdout devices", t.holdout_devices], ["Holdout visit rate", pct(t.holdout_visit_rate)],
    ];
    $("#report-totals").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? "—") })]));
    $("#report-lift").textContent =
      t.lift == null
        ? "Lift: not measured yet (needs visits by treated and holdout devices)"
        : `Lift: ${(100 * t.lift).toFixed(1)} points (95% interval ${(100 * t.lift_lo).toFixed(1)} to ${(100 * t.lift_hi).toFixed(1)})`;
    for (const c of this.charts) c.destroy();
    const labels = days.days.map((d) => d.day);
    const common = { responsive: true, maintainAspectRatio: false, animation: false };
    this.charts = [
      new Chart($("#report-chart"), {
        type: "bar",
        data: {
          labels,
          datasets: [
            { label: "Deliveries", data: days.days.map((d) => d.deliveries), backgroundColor: "#0b5cad" },
            { label: "Visits", data: days.days.map((d) => d.visits), backgroundColor: "#2b8a3e" },
            { label: "Redemptions", data: days.days.map((d) => d.redemptions), backgroundColor: "#d9480f" },
          ],
        },
        options: { ...common, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      }),
      new Chart($("#lift-chart"), {
        type: "bar",
        data: {
          labels: ["lift (points)"],
          datasets: [
            { label: "95% interval", data: t.lift == null ? [] : [[100 * t.lift_lo, 100 * t.lift_hi]], backgroundColor: "rgba(11,92,173,.3)" },
            { type: "scatter", label: "lift", data: t.lift == null ? [] : [{ x: 100 * t.lift, y: "lift (points)" }], backgroundColor: "#0b5cad" },
          ],
        },
        options: { ...common, indexAxis: "y", scales: { x: { suggestedMin: -10, suggestedMax: 10 } } },
      }),
    ];
  }
}
