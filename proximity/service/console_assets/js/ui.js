// Small DOM helpers. Text goes in with textContent only (never innerHTML): names come from users.
export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** Tooltip content as text: Leaflet puts a string in as HTML, and names come from users. */
export const text = (s) => el("span", { text: String(s) });

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A list from "a, b ,c". */
export const splitList = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

/** A number from an input; blank is undefined; text that is no number goes as it is (the API names it). */
export function numberOrRaw(s) {
  const t = String(s).trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** Drop undefined, blank and empty-list members, and objects left empty. */
export function prune(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === "" || (Array.isArray(v) && !v.length)) continue;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const p = prune(v);
      if (Object.keys(p).length) out[k] = p;
    } else out[k] = v;
  }
  return out;
}

function errorSlot(target) {
  if (target.matches("input, select, textarea")) return target.parentElement.querySelector(":scope > .field-error");
  return target.querySelector(":scope > .field-error");
}

export function clearErrors(form) {
  for (const n of form.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  for (const n of form.querySelectorAll(".field-error, .form-error")) n.textContent = "";
}

/** The element of `form` whose data-field is the longest prefix of `field` ("triggers[0].event"). */
export function fieldTarget(form, field) {
  let best = null;
  let bestLen = -1;
  for (const n of form.querySelectorAll("[data-field]")) {
    const f = n.dataset.field;
    if ((field === f || field.startsWith(f + ".") || field.startsWith(f + "[")) && f.length > bestLen) {
      best = n;
      bestLen = f.length;
    }
  }
  return best;
}

/** The reason of an error, without the "thing 'x': field: " prefix of its message. */
export function reasonOf(e, fallback) {
  if (e.reason) return e.reason;
  const msg = e.message || fallback || "invalid";
  if (e.field) {
    const i = msg.indexOf(e.field + ": ");
    if (i >= 0) return msg.slice(i + e.field.length + 2);
  }
  return msg;
}

/** Show an API error next to the fields it names (or under the form); focus the first. */
export function showError(form, err) {
  clearErrors(form);
  const items = err.errors && err.errors.length && err.errors[0].field ? err.errors : [{ field: err.field, message: err.message }];
  let first = null;
  const general = [];
  for (const e of items) {
    const target = e.field ? fieldTarget(form, e.field) : null;
    const reason = reasonOf(e, err.message);
    const slot = target && errorSlot(target);
    if (!slot) {
      general.push(e.field ? `${e.field}: ${reason}` : reason);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${reason}` : reason;
    const input = target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      if (slot.id) input.setAttribute("aria-describedby", slot.id);
    }
    first = first || input || target;
  }
  const formError = form.querySelector(".form-error");
  if (general.length && formError) formError.textContent = general.join("; ");
  else if (!first && formError) formError.textContent = err.message;
  if (first && first.focus) first.focus();
}

/** Offer `text` as a file download. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function fmtTime(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

/** Keyboard tabs (WAI-ARIA tabs pattern: arrows move, Home/End). */
export function setupTabs(tablist, onChange) {
  const tabs = $$('[role="tab"]', tablist);
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    onChange(tab.id.replace("tab-", ""));
  };
  tablist.addEventListener("click", (e) => {
    const tab = e.target.closest('[role="tab"]');
    if (tab) select(tab, false);
  });
  tablist.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (j === undefined) return;
    e.preventDefault();
    select(tabs[(j + tabs.length) % tabs.length], true);
  });
  return (name) => select(document.getElementById(`tab-${name}`), false);
}
