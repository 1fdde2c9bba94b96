// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, and a key in
// the URL would end up in logs and history; fetch can, and reads the same text/event-stream.
import { ApiError, getKey } from "./api.js";
import { sleep } from "./ui.js";

/** Parse one SSE block ("id: ..\nevent: ..\ndata: ..") into {id, event, data}. */
export function parseBlock(block) {
  const out = { id: null, event: "message", data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const name = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (name === "id") out.id = value;
    else if (name === "event") out.event = value;
    else if (name === "data") out.data.push(value);
  }
  return out.data.length ? { ...out, data: out.data.join("\n") } : null;
}

/**
 * Follow `url` until `signal` aborts: call onEvent(type, data, id) per event and onStatus(text);
 * reconnect after a drop with Last-Event-ID, so nothing is lost or repeated.
 */
export async function follow(url, { onEvent, onStatus, signal }) {
  let lastId = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${getKey()}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const r = await fetch(url, { headers, signal, cache: "no-store" });
      if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
      onStatus("connected");
      delay = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let m;
        while ((m = /\r?\n\r?\n/.exec(buf))) {
          const ev = parseBlock(buf.slice(0, m.index));
          buf = buf.slice(m.index + m[0].length);
          if (!ev) continue;
          if (ev.id) lastId = ev.id;
          if (ev.event === "overflow") continue; // the server ends the stream; we resume by id
          onEvent(ev.event, JSON.parse(ev.data), ev.id);
        }
      }
      onStatus("reconnecting");
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 422)) {
        onStatus(`stopped: ${err.message}`);
        return;
      }
      onStatus("reconnecting");
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}
