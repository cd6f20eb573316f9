// The read-only share page: renders the redacted snapshot at /s/<token>/snapshot.json.
// Everything captured is hostile: text only (el() sets textContent), never HTML; images
// only from a fixed list of raster types, as blob URLs.
import { bindThemeToggle, el, clear } from "./dom.js";
import { formatDuration, formatSize, statusClass, statusText } from "./format.js";
import { renderEdges, renderWaterfall, traceFacts } from "./waterfall.js";
import { displayOrder, readableTime, sameDay } from "./share_view.js";

const $ = (id) => document.getElementById(id);
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function mediaType(contentType) {
  return (contentType || "").split(";")[0].trim().toLowerCase();
}

/** A <time> reading as people read it, the exact server value on hover. */
function timeEl(iso, options) {
  const node = el("time", null, readableTime(iso, options));
  if (iso) {
    node.dateTime = iso;
    node.title = iso;
  }
  return node;
}

function headersTable(headers) {
  if (!headers || !headers.length) return el("p", "note", "No headers.");
  const table = el("table", "headers");
  for (const [name, value] of headers) table.append(el("tr", null, null, el("th", null, name), el("td", null, value)));
  return table;
}

function bodyView(body) {
  if (!body) return el("p", "note", "No body.");
  const wrap = el("div");
  const facts = [formatSize(body.size), body.content_type || "no content type"];
  if (body.truncated) facts.push("cut: only the start is shared");
  wrap.append(el("p", "note", facts.join(" · ")));
  if (body.withheld) {
    // The note says why (binary, an unknown charset, an image holding a secret...).
    wrap.append(el("p", "note", body.note ? `Body ${body.note}.` : "Body not shared: it cannot be checked for secrets."));
    return wrap;
  }
  const type = mediaType(body.content_type);
  if (body.base64 !== null && IMAGE_TYPES.has(type)) {
    const bytes = Uint8Array.from(atob(body.base64), (c) => c.charCodeAt(0));
    const img = el("img", "shared-image");
    img.alt = "shared image body";
    img.src = URL.createObjectURL(new Blob([bytes], { type }));
    wrap.append(img);
    return wrap;
  }
  let text = body.text;
  if (text === null) text = `(${formatSize(body.size)} of binary data)`;
  else if (type.includes("json")) {
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* shown as sent */ }
  }
  wrap.append(el("pre", "shared-body", text));
  return wrap;
}

function exchangeView(x, open, withDate) {
  const details = el("details", "shared-exchange");
  details.id = `shared-${x.id}`;
  details.open = open;
  const status = el("span", `status-pill ${statusClass(x)}`, statusText(x));
  details.append(el("summary", null, null,
    el("span", "c-method", x.method), status, el("span", "shared-url", x.url),
    el("span", "shared-when", null, timeEl(x.captured_at, { withDate }), ` · ${formatDuration(x.duration_ms)}`)));
  const inner = el("div", "shared-body-wrap");
  if (x.error) inner.append(el("p", "problem", `${x.error.kind}: ${x.error.message}`));
  inner.append(
    el("h3", null, "Request headers"), headersTable(x.request_headers),
    el("h3", null, "Request body"), bodyView(x.request_body),
    el("h3", null, "Response headers"), headersTable(x.response_headers),
    el("h3", null, "Response body"), bodyView(x.response_body),
  );
  details.append(inner);
  return details;
}

/** A shared trace's waterfall (assembled when the link was made); a call opens its exchange below. */
function traceView(trace) {
  const section = el("section", "share-trace");
  section.setAttribute("aria-label", "The trace as a waterfall");
  const waterfall = el("div", "trace-waterfall");
  const edges = el("div");
  section.append(el("h2", null, "Calls"), el("p", "meta", traceFacts(trace)), waterfall, edges);
  renderWaterfall(waterfall, trace, {
    onSelect(node) {
      const details = document.getElementById(`shared-${node.exchange_id}`);
      if (!details) return;
      for (const other of document.querySelectorAll(".shared-exchange.highlighted")) other.classList.remove("highlighted");
      details.open = true;
      details.classList.add("highlighted");
      details.scrollIntoView({ block: "start" });
    },
  });
  renderEdges(edges, trace);
  return section;
}

/** What the link cannot show, in the look of the server's own revoked/expired/unknown pages. */
function showGone(title, text) {
  clear($("share-exchanges"));
  const head = clear($("share-head"));
  head.classList.add("share-gone");
  head.setAttribute("role", "alert");
  head.append(el("h1", null, title), el("p", null, text));
}

async function main() {
  const head = $("share-head");
  let snapshot;
  try {
    const response = await fetch(`${location.pathname.replace(/\/+$/, "")}/snapshot.json`, { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    snapshot = data;
  } catch (error) {
    showGone("This share cannot be shown", `${error.message}. Ask whoever sent it for a new link.`);
    return;
  }
  const what = { exchange: "An exchange", search: "A search", trace: "A trace" }[snapshot.kind] || "Traffic";
  document.title = `${what} · shared from Passageway`;
  const count = snapshot.exchanges.length;
  clear(head).append(
    el("h1", null, `${what}: ${snapshot.selector}`),
    el("p", "meta", null,
      `${count} exchange${count === 1 ? "" : "s"} · taken `, timeEl(snapshot.created_at),
      " · link expires ", timeEl(snapshot.expires_at)),
  );
  if (snapshot.kind === "search" && count > 1) head.append(el("p", "note", "Newest first, as the inspector lists them."));
  if (snapshot.cut) head.append(el("p", "note", "More exchanges matched: this link holds the newest of them only."));
  if (snapshot.note) head.append(el("p", "share-note", snapshot.note));
  head.append(el("p", "redacted-note", "Credentials and other secrets were replaced by [redacted:…] markers when this link was made; equal markers stand for equal values."));
  if (snapshot.trace) head.after(traceView(snapshot.trace));
  const list = clear($("share-exchanges"));
  const ordered = displayOrder(snapshot);
  // Times alone when they fall on the day the link was taken (the header says which); else dated.
  const withDate = !sameDay([snapshot.created_at, ...ordered.map((x) => x.captured_at)]);
  ordered.forEach((x, index) => list.append(exchangeView(x, count === 1 || index === 0, withDate)));
}

bindThemeToggle($("theme-toggle"));

// The revoked/expired/unknown pages use this module for the theme button alone.
if (!document.querySelector(".share-gone")) main();
