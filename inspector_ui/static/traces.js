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

/** "replay of #N" for a trace a replay started: to the original's trace, else to the exchange. */
function replayOf(root) {
  if (root.replay_of === null || root.replay_of === undefined) return null;
  const link = el("a", null, `replay of #${root.replay_of}`);
  if (root.replay_of_trace_id) {
    link.href = traceHref(root.replay_of_trace_id);
    link.title = `The original's trace, ${root.replay_of_trace_id}`;
  } else {
    link.href = `/?id=${encodeURIComponent(root.replay_of)}`;
    link.title = "The original exchange";
  }
  return el("span", "tw-badge tw-replay replay-of", null, link);
}

/** The page's address from the form: since, service, and the filters (the API's own names). */
function formParams() {
  const params = new URLSearchParams({ since: form.elements.since.value });
  const service = form.elements.service.value.trim();
  if (service) params.set("service", service);
  if (form.elements.several.checked) params.set("min_calls", "2");
  if (form.elements.failed.checked) params.set("failed", "true");
  return params;
}

function row(trace) {
  const root = trace.root;
  const link = el("a", null, `${root.service || "?"} ${root.method} ${root.path}`);
  link.href = traceHref(trace.trace_id);
  link.title = `Trace ${trace.trace_id}`;
  const status = root.status ?? root.error_kind ?? "…";
  const started = new Date(trace.start);
  const kept = trace.replay_count ? ` (${trace.replay_count} kept replay${trace.replay_count === 1 ? "" : "s"})` : "";
  return el("tr", null, null,
    el("td", "root", null, link, el("span", null, ` → ${status}`), replayOf(root)),
    el("td", null, Number.isNaN(started.getTime()) ? trace.start : started.toLocaleString()),
    el("td", null, formatDuration(trace.duration_ms)),
    el("td", null, String(trace.exchange_count) + (trace.cut ? "+" : "") + kept),
    el("td", trace.error_count ? "errors" : null, String(trace.error_count)),
    el("td", null, trace.services.join(", ")));
}

async function load() {
  const params = new URLSearchParams(location.search);
  form.elements.since.value = params.get("since") || "1h";
  if (!form.elements.since.value) form.elements.since.value = "1h"; // a value not in the list
  form.elements.service.value = params.get("service") || "";
  form.elements.several.checked = Number(params.get("min_calls")) >= 2;
  form.elements.failed.checked = params.get("failed") === "true";
  const state = $("traces-state");
  const table = $("traces");
  const query = formParams();
  query.set("limit", "100");
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
  const only = [form.elements.several.checked ? "of several calls" : "", form.elements.failed.checked ? "with failures" : ""]
    .filter(Boolean).join(" and ");
  if (listed.length) state.textContent = `${listed.length} most recent trace${listed.length === 1 ? "" : "s"}${only ? ` ${only}` : ""}, newest first.`;
  else if (only) state.textContent = `No traces ${only} in this time.`;
  else state.textContent = "No traced exchanges in this time (a request with traceparent, B3 or X-Request-ID starts one).";
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const traceId = form.elements.trace.value.trim();
  if (traceId) {
    location.assign(traceHref(traceId));
    return;
  }
  history.pushState(null, "", `/traces?${formParams()}`);
  load();
});

// The filters apply at once, as a toggle should.
for (const name of ["several", "failed"]) {
  form.elements[name].addEventListener("change", () => {
    history.pushState(null, "", `/traces?${formParams()}`);
    load();
  });
}

window.addEventListener("popstate", load);

bindThemeToggle($("theme-toggle"));

load();
