// One trace (/traces/<id>): its header, the waterfall of its calls, who called whom, and a
// side panel for the selected call with the way into the inspector (bodies, headers, replay).
import { bindThemeToggle, el, clear } from "./dom.js";
import { getJson, postJson } from "./api.js";
import { formatDuration } from "./format.js";
import { openHarDialog } from "./har.js";
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

function shareControls(traceId) {
  const wrap = el("div", "trace-share");
  const button = el("button", "share-trace", "Share trace");
  button.type = "button";
  button.title = "Make a read-only, redacted link to this trace";
  const problem = el("p", "form-error");
  problem.setAttribute("role", "alert");
  problem.hidden = true;
  button.addEventListener("click", async () => {
    button.disabled = true;
    problem.hidden = true;
    try {
      const created = await postJson("/api/shares", { trace_id: traceId });
      const link = el("input", "share-link");
      link.type = "text";
      link.readOnly = true;
      link.value = new URL(created.url, location.origin).href;
      link.setAttribute("aria-label", "Share link (shown once)");
      link.addEventListener("focus", () => link.select());
      const copy = el("button", "share-copy", "Copy");
      copy.type = "button";
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(link.value);
          copy.textContent = "Copied ✓";
        } catch (_) {
          link.focus(); // no clipboard permission: selected, for Ctrl+C / ⌘C
        }
      });
      wrap.replaceChildren(link, copy, el("span", "note", "Anyone with the link can read a redacted copy of this trace."));
      link.focus();
    } catch (error) {
      problem.textContent = `Could not make the link: ${error.message}`;
      problem.hidden = false;
      button.disabled = false;
    }
  });
  wrap.append(button, problem);
  return wrap;
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
  head.append(el("div", "trace-actions", null, shareControls(trace.trace_id), harControl(trace)));
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
  if (node.retry) fact(facts, "Attempt", node.attempt);
  if (node.replay_of !== null) fact(facts, "Replay of", `#${node.replay_of}`);
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
