// Calls in progress in the inspector's list (issue 16): pending rows above the stored exchanges,
// their elapsed time ticking, replaced by the finished exchange with the same uuid.
// GET /api/exchanges lists them first with "pending": true; /api/stream sends
// {"type": "pending", "data": summary} while they run (new, or bytes so far changed).
import { el } from "./dom.js";
import { formatSize, formatTime } from "./format.js";

const STALE_MS = 45_000; // not refreshed for this long (a proxy refreshes every few seconds): gone
const TICK_MS = 1000;

// Its own stylesheet, so the shared app.css and the page shell stay as they are ('self' under the CSP).
const sheet = document.createElement("link");
sheet.rel = "stylesheet";
sheet.href = "/static/pending.css";
document.head.append(sheet);

const calls = new Map(); // uuid -> {summary, elapsedAt: ms elapsed when received, receivedAt: performance.now()}
let ordered = null; // cached newest-first array of summaries

export const PENDING_PREFIX = "pending:";

/** The selection key of a pending row (stored exchanges are selected by their numeric id). */
export function pendingKey(uuid) {
  return PENDING_PREFIX + uuid;
}

export function isPendingKey(key) {
  return typeof key === "string" && key.startsWith(PENDING_PREFIX);
}

/** Pending summaries, newest first. */
export function pendingRows() {
  if (ordered === null) {
    ordered = [...calls.values()].map((c) => c.summary);
    ordered.sort((a, b) => (a.captured_at < b.captured_at ? 1 : a.captured_at > b.captured_at ? -1 : 0));
  }
  return ordered;
}

export function pendingCount() {
  return calls.size;
}

export function pendingByUuid(uuid) {
  return calls.get(uuid)?.summary ?? null;
}

/** Add or update one; true when it is new. `finished` (uuids already stored) are refused. */
export function updatePending(summary, finished = null) {
  if (!summary || !summary.pending || typeof summary.uuid !== "string") return false;
  if (finished && finished(summary.uuid)) return false;
  const fresh = !calls.has(summary.uuid);
  calls.set(summary.uuid, { summary, elapsedAt: Number(summary.elapsed_ms) || 0, receivedAt: performance.now() });
  ordered = null;
  return fresh;
}

/** The exchange `uuid` finished (or went): true when it was pending. */
export function finishPending(uuid) {
  const had = calls.delete(uuid);
  if (had) ordered = null;
  return had;
}

export function clearPending() {
  calls.clear();
  ordered = null;
}

/** Forget calls whose proxy stopped refreshing them; the uuids dropped. */
export function dropStale(now = performance.now()) {
  const dropped = [];
  for (const [uuid, call] of calls) if (now - call.receivedAt > STALE_MS) dropped.push(uuid);
  for (const uuid of dropped) calls.delete(uuid);
  if (dropped.length) ordered = null;
  return dropped;
}

/** How long it has run, in ms, now (the server's elapsed time at receipt plus the time since:
 * no reliance on this machine's clock agreeing with the proxy's). */
export function elapsedMs(uuid, now = performance.now()) {
  const call = calls.get(uuid);
  return call ? call.elapsedAt + (now - call.receivedAt) : null;
}

/** "1.2 s", "14 s", "3 min 05 s": coarse on purpose, it ticks once a second. */
export function elapsedText(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
}

function bytesSoFar(summary) {
  const bytes = summary.state === "streaming" ? summary.response_size : summary.request_size;
  return bytes ? formatSize(bytes) : "";
}

function stateText(summary) {
  return summary.state === "streaming" ? "streaming the body" : "waiting for the response";
}

/** Turn `row`, which the list built for this summary as for any exchange (so it has the list's
 * columns, whatever they are), into a pending row: a pulsing dot, "pending" and the elapsed time in
 * the status cell (spanning the Duration column: the word does not fit the status column alone),
 * bytes so far in the size cell. The elapsed time stays a .c-duration, which the ticker updates. */
export function decorateRow(row, summary, { selected = false, open = false } = {}) {
  row.classList.add("pending");
  row.classList.toggle("selected", selected);
  row.classList.toggle("open", open);
  delete row.dataset.id;
  row.dataset.uuid = summary.uuid;
  row.setAttribute("aria-label", `${summary.method} ${summary.path}: in progress, ${stateText(summary)}`);
  const status = row.querySelector(".c-status");
  if (status) {
    status.className = "c-status s-pending";
    status.removeAttribute("aria-label");
    status.title = `in progress: ${stateText(summary)}`;
    status.replaceChildren(el("span", "pending-dot"), el("span", "pending-word", "pending"),
      el("span", "c-duration", elapsedText(elapsedMs(summary.uuid))));
  }
  for (const cell of row.querySelectorAll(":scope > .c-duration")) cell.remove();
  const size = row.querySelector(".c-size");
  if (size) size.textContent = bytesSoFar(summary);
  return row;
}

/** The detail pane's body for a pending row: what is known so far, and that it is in progress. */
export function renderPendingDetail(body, summary) {
  const elapsed = el("span", "pending-elapsed", elapsedText(elapsedMs(summary.uuid)));
  elapsed.dataset.uuid = summary.uuid;
  const rows = [
    ["URL", el("span", "mono", summary.url)],
    ["Service", summary.service ?? "—"],
    ["Started", formatTime(summary.captured_at)],
    ["Running for", elapsed],
    ["State", stateText(summary)],
  ];
  if (summary.status !== null && summary.status !== undefined) rows.push(["Status so far", String(summary.status)]);
  rows.push(["Request body so far", summary.request_size ? formatSize(summary.request_size) : "—"]);
  rows.push(["Response body so far", summary.response_size ? formatSize(summary.response_size) : "—"]);
  if (summary.trace_id) rows.push(["Trace", el("span", "mono", summary.trace_id)]);
  rows.push(["Proxy", summary.proxy ?? "—"]);
  const table = el("table", "pending-facts");
  for (const [name, value] of rows) {
    const tr = el("tr");
    tr.append(el("th", null, name), value instanceof Node ? el("td", null, null, value) : el("td", null, value));
    table.append(tr);
  }
  const note = el("p", "pending-note", null, el("span", "pending-dot"),
    "In progress: this call has not finished yet. Its headers, bodies and timings appear here once it does.");
  note.setAttribute("role", "status");
  body.append(note, table);
}

let ticker = null;

/** While calls are pending, refresh their elapsed times (list cells and the detail pane) every
 * second, in place: no re-render, so nothing under the pointer moves. */
export function tickWhilePending(root, onStale) {
  if (ticker !== null) return;
  ticker = setInterval(() => {
    if (dropStale().length) onStale();
    if (!calls.size) {
      clearInterval(ticker);
      ticker = null;
      return;
    }
    const now = performance.now();
    for (const row of root.querySelectorAll(".row.pending")) {
      const cell = row.querySelector(".c-duration");
      const ms = elapsedMs(row.dataset.uuid, now);
      if (cell && ms !== null) cell.textContent = elapsedText(ms);
    }
    for (const span of document.querySelectorAll(".pending-elapsed")) {
      const ms = elapsedMs(span.dataset.uuid, now);
      if (ms !== null) span.textContent = elapsedText(ms);
    }
  }, TICK_MS);
}
