// The recent traces (/traces): each with its root call, start, duration, size, errors and
// services; a row opens the trace's waterfall. "Older traces" follows the API's cursor
// (next_before, in the address as before=), "Newest traces" goes back to the first page.
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

/** The cursor in the address (before=): a page further back, or null for the newest. */
function cursor(params) {
  const before = params.get("before") || "";
  return /^[1-9][0-9]{0,18}$/.test(before) ? before : null;
}

/** A link of the pager: to `params`' page, or hidden when there is none. */
function pageLink(link, params) {
  link.hidden = params === null;
  if (params !== null) link.href = `/traces?${params}`;
}

async function load() {
  const params = new URLSearchParams(location.search);
  const before = cursor(params);
  form.elements.since.value = params.get("since") || "1h";
  if (!form.elements.since.value) form.elements.since.value = "1h"; // a value not in the list
  form.elements.service.value = params.get("service") || "";
  form.elements.several.checked = Number(params.get("min_calls")) >= 2;
  form.elements.failed.checked = params.get("failed") === "true";
  const state = $("traces-state");
  const table = $("traces");
  const pages = $("traces-pages");
  const query = formParams();
  query.set("limit", "100");
  if (before) query.set("before", before);
  let page;
  try {
    page = await getJson(`/api/traces?${query}`);
  } catch (error) {
    state.textContent = `Traces cannot be listed: ${error.message}`;
    state.className = "problem";
    table.hidden = true;
    pages.hidden = true;
    return;
  }
  const listed = page.data;
  const body = clear(table.querySelector("tbody"));
  for (const trace of listed) body.append(row(trace));
  table.hidden = listed.length === 0;
  const older = page.next_before === null ? null : formParams();
  if (older) older.set("before", String(page.next_before));
  pageLink($("traces-older"), older);
  pageLink($("traces-newest"), before ? formParams() : null);
  pages.hidden = !older && !before;
  state.className = "note";
  const only = [form.elements.several.checked ? "of several calls" : "", form.elements.failed.checked ? "with failures" : ""]
    .filter(Boolean).join(" and ");
  const plural = listed.length === 1 ? "" : "s";
  if (listed.length) {
    state.textContent = before
      ? `${listed.length} older trace${plural}${only ? ` ${only}` : ""}, newest first.`
      : `${listed.length} most recent trace${plural}${only ? ` ${only}` : ""}, newest first.`;
  } else if (older) {
    // Each request looks through a bounded number of exchanges: none of those held one.
    state.textContent = `No traces${only ? ` ${only}` : ""} among the exchanges looked at so far: "Older traces" looks further back.`;
  } else if (before) state.textContent = `No older traces${only ? ` ${only}` : ""} in this time.`;
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

// The pager's links are real links (a new tab works); a plain click stays on the page.
for (const id of ["traces-older", "traces-newest"]) {
  $(id).addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    history.pushState(null, "", event.currentTarget.href);
    load();
    window.scrollTo(0, 0);
  });
}

window.addEventListener("popstate", load);

bindThemeToggle($("theme-toggle"));

load();
