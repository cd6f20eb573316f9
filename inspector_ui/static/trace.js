// One trace (/traces/<id>): its header, the waterfall of its calls, who called whom, and a
// side panel for the selected call with the way into the inspector (bodies, headers, replay).
import { bindThemeToggle, el, clear } from "./dom.js";
import { getJson } from "./api.js";
import { formatDuration } from "./format.js";
import { openHarDialog } from "./har.js";
import { openShareDialog } from "./shares.js";
import { renderEdges, renderWaterfall, traceFacts } from "./waterfall.js";

const $ = (id) => document.getElementById(id);

/** The trace id from /traces/<id>; null when the address holds none. */
function traceIdFromLocation() {
  const match = /^\/traces\/([^/]+)\/?$/.exec(location.pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch (_) {
    return null;
  }
}

/** "Share trace…": the same dialog as the inspector's Share… (expiry, note), for this trace. */
function shareControl(trace) {
  const button = el("button", "share-trace", "Share trace…");
  button.type = "button";
  button.setAttribute("aria-haspopup", "dialog");
  button.title = "Make a read-only, redacted link to this trace";
  button.addEventListener("click", () => openShareDialog({ trace: trace.trace_id }, button));
  return button;
}

/** Where this trace's replays come from: the trace a replay started, and replays kept in it. */
function replayNotes(trace) {
  const notes = [];
  if (trace.replay_of !== null && trace.replay_of !== undefined) {
    const original = el("a", null, `#${trace.replay_of}`);
    original.href = `/?id=${encodeURIComponent(trace.replay_of)}`;
    const line = el("p", "trace-replay-of", null, el("span", "tw-badge tw-replay", "replay"),
      el("span", null, "This trace was started by a replay of exchange "), original);
    if (trace.replay_of_trace_id) {
      const originalTrace = el("a", null, "the original's trace");
      originalTrace.href = `/traces/${encodeURIComponent(trace.replay_of_trace_id)}`;
      originalTrace.title = `Trace ${trace.replay_of_trace_id}`;
      line.append(el("span", null, " (in "), originalTrace, el("span", null, ")"));
    }
    line.append(el("span", null, "."));
    notes.push(line);
  }
  if (trace.replay_count) {
    const n = trace.replay_count;
    notes.push(el("p", "note trace-kept-replays",
      `${n} exchange${n === 1 ? " is a replay" : "s are replays"} kept in this trace (or calls made by one): `
      + "drawn dashed from the start of what they replay, and left out of the trace's duration."));
  }
  return notes;
}

/** "Download HAR…": every exchange of the trace, redacted unless the dialog's raw box is ticked. */
function harControl(trace) {
  const button = el("button", "har-trace", "Download HAR…");
  button.type = "button";
  button.setAttribute("aria-haspopup", "dialog");
  button.title = "Download this trace's exchanges as a HAR file (redacted)";
  button.addEventListener("click", () => {
    openHarDialog({ trace: trace.trace_id, count: trace.exchange_count, more: Boolean(trace.cut) }, button);
  });
  return button;
}

function showHead(trace) {
  const head = clear($("trace-head"));
  document.title = `Trace ${trace.trace_id} · Passageway`;
  head.append(el("h1", null, "Trace ", el("code", "trace-id", trace.trace_id)));
  head.append(el("p", "meta", traceFacts(trace)));
  const services = el("p", "services");
  services.setAttribute("aria-label", "Services involved");
  for (const name of trace.services) services.append(el("span", null, name));
  head.append(services);
  if (trace.cut) head.append(el("p", "warning", `This trace has more exchanges than shown: the first ${trace.exchange_count} are drawn.`));
  head.append(...replayNotes(trace));
  head.append(el("div", "trace-actions", null, shareControl(trace), harControl(trace)));
}

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", null, name), el("dd", null, String(value)));
}

function showCall(node) {
  const panel = $("call-panel");
  clear(panel);
  panel.hidden = false;
  $("trace-body").classList.add("with-panel");
  panel.append(el("h2", null, `${node.method} ${node.path}`));
  const facts = el("dl");
  fact(facts, "Exchange", `#${node.exchange_id}`);
  fact(facts, "Service", node.service);
  fact(facts, "Caller", node.caller);
  fact(facts, "Host", node.host);
  fact(facts, "Status", node.status ?? node.error_kind);
  fact(facts, "Duration", formatDuration(node.duration_ms));
  fact(facts, "Self time", formatDuration(node.self_ms));
  fact(facts, "Starts at", `+${formatDuration(node.offset_ms)}`);
  if (node.replay_shift_ms !== null && node.replay_shift_ms !== undefined) {
    fact(facts, "Ran", `${formatDuration(node.replay_shift_ms)} after what it replays (drawn from its start)`);
  }
  if (node.retry) fact(facts, "Attempt", node.attempt);
  if (node.replay_of !== null && node.replay_of !== undefined) {
    const original = el("a", null, `#${node.replay_of}`);
    original.href = `/?id=${encodeURIComponent(node.replay_of)}`;
    facts.append(el("dt", null, "Replay of"), el("dd", null, null, original));
  }
  fact(facts, "Span", node.span_id);
  fact(facts, "Parent span", node.parent_span_id);
  fact(facts, "Parent found by", { span: "span id", nested: "time nesting", replay: "its original" }[node.link] || "— (a root)");
  panel.append(facts);
  const open = el("a", "open-in-inspector", "Open in the inspector (headers, bodies, replay) →");
  open.href = `/?id=${encodeURIComponent(node.exchange_id)}`;
  panel.append(open);
}

async function main() {
  const traceId = traceIdFromLocation();
  const head = $("trace-head");
  if (traceId === null) {
    clear(head).append(el("p", "problem", "No trace id in this address: it should be /traces/<trace id>."));
    return;
  }
  let trace;
  try {
    trace = await getJson(`/api/traces/${encodeURIComponent(traceId)}`);
  } catch (error) {
    clear(head).append(el("h1", null, "Trace ", el("code", "trace-id", traceId)), el("p", "problem", error.message));
    return;
  }
  showHead(trace);
  renderWaterfall($("waterfall"), trace, { onSelect: showCall });
  renderEdges($("edges"), trace);
}

bindThemeToggle($("theme-toggle"));

main();
