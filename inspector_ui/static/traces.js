// The recent traces (/traces): each with its root call, start, duration, size, errors and
// services; a row opens the trace's waterfall.
import { bindThemeToggle, el, clear } from "./dom.js";
import { getJson } from "./api.js";
import { formatDuration } from "./format.js";

const $ = (id) => document.getElementById(id);
const form = $("traces-filter");

function traceHref(traceId) {
  return `/traces/${encodeURIComponent(traceId)}`;
}

function row(trace) {
  const root = trace.root;
  const link = el("a", null, `${root.service || "?"} ${root.method} ${root.path}`);
  link.href = traceHref(trace.trace_id);
  link.title = `Trace ${trace.trace_id}`;
  const status = root.status ?? root.error_kind ?? "…";
  const started = new Date(trace.start);
  return el("tr", null, null,
    el("td", "root", null, link, el("span", null, ` → ${status}`)),
    el("td", null, Number.isNaN(started.getTime()) ? trace.start : started.toLocaleString()),
    el("td", null, formatDuration(trace.duration_ms)),
    el("td", null, String(trace.exchange_count) + (trace.cut ? "+" : "")),
    el("td", trace.error_count ? "errors" : null, String(trace.error_count)),
    el("td", null, trace.services.join(", ")));
}

async function load() {
  const params = new URLSearchParams(location.search);
  form.elements.since.value = params.get("since") || "1h";
  if (!form.elements.since.value) form.elements.since.value = "1h"; // a value not in the list
  form.elements.service.value = params.get("service") || "";
  const state = $("traces-state");
  const table = $("traces");
  const query = new URLSearchParams({ since: form.elements.since.value, limit: "100" });
  if (form.elements.service.value) query.set("service", form.elements.service.value);
  let listed;
  try {
    listed = (await getJson(`/api/traces?${query}`)).data;
  } catch (error) {
    state.textContent = `Traces cannot be listed: ${error.message}`;
    state.className = "problem";
    table.hidden = true;
    return;
  }
  const body = clear(table.querySelector("tbody"));
  for (const trace of listed) body.append(row(trace));
  table.hidden = listed.length === 0;
  state.className = "note";
  state.textContent = listed.length
    ? `${listed.length} most recent trace${listed.length === 1 ? "" : "s"}, newest first.`
    : "No traced exchanges in this time (a request with traceparent, B3 or X-Request-ID starts one).";
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const traceId = form.elements.trace.value.trim();
  if (traceId) {
    location.assign(traceHref(traceId));
    return;
  }
  const params = new URLSearchParams({ since: form.elements.since.value });
  const service = form.elements.service.value.trim();
  if (service) params.set("service", service);
  history.pushState(null, "", `/traces?${params}`);
  load();
});

window.addEventListener("popstate", load);

bindThemeToggle($("theme-toggle"));

load();
