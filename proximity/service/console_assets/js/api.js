// The API client: every request carries the signed-in key (kept in sessionStorage only).
const STORE = "proximity.console.key";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && typeof body === "object" && body.error) || {};
    super(err.message || (typeof body === "string" && body) || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.field = err.field;
    this.errors = Array.isArray(err.errors) ? err.errors : [];
    this.body = body;
  }
}

export function getKey() {
  return sessionStorage.getItem(STORE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(STORE, key);
  else sessionStorage.removeItem(STORE);
}

/** Call the API; resolve to the parsed JSON (null for 204), reject with an ApiError. */
export async function api(method, path, body, { contentType, key, signal } = {}) {
  const headers = { Authorization: `Bearer ${key || getKey()}` };
  let payload;
  if (body !== undefined) {
    payload = typeof body === "string" || body instanceof Blob ? body : JSON.stringify(body);
    headers["content-type"] = contentType || "application/json";
  }
  const r = await fetch(path, { method, headers, body: payload, signal });
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** Every page of a cursor-paged list, up to `max` items. */
export async function allPages(path, member, { max = 10000, signal } = {}) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const url = cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path;
    const page = await api("GET", url, undefined, { signal });
    items.push(...page[member]);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return { items, complete: !cursor };
}
