// One service's traffic at /services/<name>: req/s, error rate and latency charts, and the
// endpoints table (each row opens the inspector's search for it). Data: GET
// /api/services/<name>/stats. Captured text (service name, paths) is set as textContent only.
import { bindThemeToggle, el, clear } from "./dom.js";
import { problemText } from "./api.js";
import { formatDuration } from "./format.js";
import { lineChart } from "./charts.js";
import { renderHealthHistory } from "./health.js";
import { serviceFromPath } from "./service_name.js";

const $ = (id) => document.getElementById(id);
const WINDOWS = ["15m", "1h", "6h", "24h", "7d"];
const REFRESH_MS = 10_000;
const BUCKETS = 60;


const params = new URLSearchParams(location.search);
const state = {
  service: serviceFromPath(),
  realm: params.get("realm") || "",
  endpoint: params.get("endpoint") || "", // "METHOD TEMPLATE": the charts show that endpoint alone
  since: WINDOWS.includes(params.get("since")) ? params.get("since") : "1h",
  sortKey: "requests",
  sortDescending: true,
  stats: null,
  charts: null,
  loading: false,
};

function formatRate(value) {
  if (value === null || value === undefined) return "–";
  if (Number.isInteger(value)) return String(value);
  // Significant digits, not fixed decimals: axis ticks 0.005 apart stay distinct (0.015, not 0.01).
  if (value < 1) return String(Number(value.toPrecision(2)));
  if (value < 100) return String(Number(value.toPrecision(3)));
  return value.toFixed(0);
}

function formatPercent(value) {
  if (value === null || value === undefined) return "–";
  const percent = value * 100;
  if (Number.isInteger(percent) || percent >= 10) return `${percent.toFixed(0)}%`;
  return `${percent.toFixed(percent < 0.1 ? 2 : 1)}%`;
}

function formatMs(value) {
  if (value === null || value === undefined) return "–";
  return value === 0 ? "0 ms" : formatDuration(value);
}

function searchHref(query) {
  return `/?${new URLSearchParams({ q: query })}`;
}

// ---------------------------------------------------------------- rendering

function renderChartedEndpoint(stats) {
  const box = clear($("charted-endpoint"));
  box.hidden = !stats.endpoint;
  if (!stats.endpoint) return;
  const all = el("button", "link-button", "all endpoints");
  all.type = "button";
  all.addEventListener("click", () => chartEndpoint(""));
  box.append("Charts and totals of ", el("code", null, `${stats.endpoint.method} ${stats.endpoint.template}`), " · show ", all);
}

function renderHead(stats) {
  renderChartedEndpoint(stats);
  $("service-name").textContent = stats.service;
  document.title = `${stats.service} · Passageway`;
  const realm = stats.realm ? ` · realm ${stats.realm}` : "";
  $("service-window").textContent =
    `Last ${state.since}${realm} · ${new Date(stats.since).toLocaleString()} – ${new Date(stats.until).toLocaleString()} · ${stats.bucket_seconds} s per point`;
  const sampled = $("service-sampled");
  sampled.hidden = !stats.sampled;
  sampled.textContent = stats.sampled
    ? `More traffic than one answer reads: figures cover the newest ${stats.rows.toLocaleString()} exchanges, since ${new Date(stats.sampled_since).toLocaleString()}.`
    : "";
  const totals = clear($("service-totals"));
  const t = stats.totals;
  const facts = [
    ["Requests", t.requests.toLocaleString()],
    ["Req/s", formatRate(t.rps)],
    ["Error rate", formatPercent(t.error_rate)],
    ["Errors", t.errors.toLocaleString()],
    ["4xx", t.client_errors.toLocaleString()],
    ["p50", formatMs(t.p50)],
    ["p95", formatMs(t.p95)],
    ["p99", formatMs(t.p99)],
  ];
  for (const [label, value] of facts) totals.append(el("div", "total", null, el("dt", null, label), el("dd", null, value)));
}

function renderCharts(stats) {
  const times = stats.series.map((point) => Date.parse(point.t));
  const pick = (key) => stats.series.map((point) => point[key]);
  // A bucket without a rate or a latency had no traffic (or, for latency, no answer): said so,
  // never drawn as 0 (charts.js's seriesShape draws sparse points and the gaps between them).
  const emptyText = (index) => (stats.series[index].requests ? "no answer" : "no traffic");
  const options = {
    rps: { times, area: true, label: "Requests per second", format: formatRate,
      series: [{ name: "req/s", className: "series-rps", values: pick("rps") }] },
    errors: { times, area: true, label: "Error rate", format: formatPercent, emptyText,
      series: [{ name: "error rate", className: "series-errors", values: pick("error_rate") }] },
    latency: { times, label: "Latency percentiles", format: formatMs, emptyText,
      series: [
        { name: "p50", className: "series-p50", values: pick("p50") },
        { name: "p95", className: "series-p95", values: pick("p95") },
        { name: "p99", className: "series-p99", values: pick("p99") },
      ] },
  };
  if (!state.charts) {
    state.charts = {
      rps: lineChart($("chart-rps"), options.rps),
      errors: lineChart($("chart-errors"), options.errors),
      latency: lineChart($("chart-latency"), options.latency),
    };
  } else {
    for (const [key, chart] of Object.entries(state.charts)) chart.update(options[key]);
  }
}

function compareEndpoints(a, b) {
  const key = state.sortKey;
  const left = a[key];
  const right = b[key];
  let order;
  if (left === null || left === undefined) order = right === null || right === undefined ? 0 : 1;
  else if (right === null || right === undefined) order = -1;
  else if (typeof left === "number") order = state.sortDescending ? right - left : left - right;
  else order = state.sortDescending ? String(right).localeCompare(String(left)) : String(left).localeCompare(String(right));
  return order || b.requests - a.requests || a.template.localeCompare(b.template);
}

function renderEndpoints() {
  const endpoints = state.stats ? [...state.stats.endpoints] : [];
  endpoints.sort(compareEndpoints);
  const body = clear(document.querySelector("#endpoints tbody"));
  for (const endpoint of endpoints) {
    const link = el("a", "endpoint-link", endpoint.template);
    link.href = searchHref(endpoint.search);
    link.title = `Show these exchanges in the inspector: ${endpoint.search}`;
    const key = `${endpoint.method} ${endpoint.template}`;
    const chart = el("button", "chart-endpoint", "chart");
    chart.type = "button";
    chart.title = `Chart ${key} alone`;
    chart.setAttribute("aria-pressed", String(key === state.endpoint));
    chart.addEventListener("click", () => chartEndpoint(key === state.endpoint ? "" : key));
    const template = el("td", "endpoint", null, link, chart, el("span", "example", `e.g. ${endpoint.example_path}`));
    const errors = el("td", "num", formatPercent(endpoint.error_rate));
    if (endpoint.errors) errors.classList.add("has-errors");
    errors.title = `${endpoint.errors} errors, ${endpoint.client_errors} client errors (4xx)`;
    body.append(
      el("tr", null, null,
        el("td", "method", endpoint.method),
        template,
        el("td", "num", endpoint.requests.toLocaleString()),
        el("td", "num", formatRate(endpoint.rps)),
        errors,
        el("td", "num", formatMs(endpoint.p50)),
        el("td", "num", formatMs(endpoint.p95)),
        el("td", "num", formatMs(endpoint.p99)),
      ),
    );
  }
  $("endpoints-empty").hidden = endpoints.length > 0 || !state.stats;
  const cut = $("endpoints-cut");
  cut.hidden = !state.stats || state.stats.endpoints_total <= endpoints.length;
  cut.textContent = cut.hidden ? "" : `The ${endpoints.length} most requested of ${state.stats.endpoints_total} endpoints.`;
  for (const header of document.querySelectorAll("#endpoints th[data-key]")) {
    const active = header.dataset.key === state.sortKey;
    if (active) header.setAttribute("aria-sort", state.sortDescending ? "descending" : "ascending");
    else header.removeAttribute("aria-sort");
  }
}

function showProblem(text) {
  const problem = $("service-problem");
  problem.hidden = !text;
  problem.textContent = text || "";
}

/** A name that is no service here (the API's 404): said plainly, with the way back, instead
 * of an empty dashboard. A configured service without traffic yet is not unknown (the API
 * answers 200 with empty figures). The next refresh shows the dashboard if it appears. */
function showUnknown(unknown) {
  document.body.classList.toggle("unknown-service", unknown);
  for (const id of ["service-head", "service-charts", "health", "service-endpoints"]) {
    const part = document.querySelector(`.service-main > [data-part="${id}"]`);
    if (part) part.hidden = unknown;
  }
  $("service-window-picker").hidden = unknown;
  const box = $("service-unknown");
  box.hidden = !unknown;
  if (!unknown) return;
  document.title = `Unknown service · Passageway`;
  const back = el("a", "back-link", "← All services");
  back.href = "/services";
  clear(box).append(
    el("h1", null, null, el("span", null, "Unknown service "), el("code", "unknown-name", state.service)),
    el("p", null, "No proxy serves a service of this name, and no traffic or health probe of it was captured. Check the name, or pick the service from the list."),
    el("p", null, null, back),
  );
}

// ---------------------------------------------------------------- loading

async function load() {
  if (state.loading) return;
  state.loading = true;
  $("refresh-state").textContent = "updating…";
  const query = new URLSearchParams({ since: state.since, buckets: String(BUCKETS) });
  if (state.realm) query.set("realm", state.realm);
  if (state.endpoint) query.set("endpoint", state.endpoint);
  try {
    const response = await fetch(`/api/services/${encodeURIComponent(state.service)}/stats?${query}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.status === 404) {
      showProblem("");
      showUnknown(true);
      $("refresh-state").textContent = "";
      document.body.dataset.loaded = "true";
      return;
    }
    if (!response.ok) {
      showProblem(`Cannot load the figures: ${await problemText(response)}`);
      $("refresh-state").textContent = "update failed";
      return;
    }
    state.stats = await response.json();
    showUnknown(false);
    renderHealthHistory($("health"), state.service, state.realm || null, { since: state.since });
    showProblem("");
    renderHead(state.stats);
    renderCharts(state.stats);
    renderEndpoints();
    document.body.dataset.loaded = "true";
    $("refresh-state").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    showProblem(`Cannot load the figures: the inspector did not answer (${error.message})`);
    $("refresh-state").textContent = "update failed";
  } finally {
    state.loading = false;
  }
}

function chartEndpoint(key) {
  state.endpoint = key;
  const url = new URL(location.href);
  if (key) url.searchParams.set("endpoint", key);
  else url.searchParams.delete("endpoint");
  history.replaceState(null, "", url);
  load();
}

function selectWindow(since) {
  state.since = since;
  for (const button of document.querySelectorAll(".window-picker button")) {
    button.setAttribute("aria-pressed", String(button.dataset.since === since));
  }
  const url = new URL(location.href);
  url.searchParams.set("since", since);
  history.replaceState(null, "", url);
}

// ---------------------------------------------------------------- wiring

for (const button of document.querySelectorAll(".window-picker button")) {
  button.addEventListener("click", () => {
    selectWindow(button.dataset.since);
    load();
  });
}

for (const header of document.querySelectorAll("#endpoints th[data-key]")) {
  header.querySelector("button").addEventListener("click", () => {
    const key = header.dataset.key;
    // Numbers start with the largest first; names alphabetically.
    state.sortDescending = key === state.sortKey ? !state.sortDescending : !["method", "template"].includes(key);
    state.sortKey = key;
    renderEndpoints();
  });
}

// Refresh only while someone can see the page; catch up at once when it is shown again.
setInterval(() => {
  if (document.visibilityState === "visible") load();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") load();
});

bindThemeToggle($("theme-toggle"));

$("service-name").textContent = state.service;
document.title = `${state.service} · Passageway`;
selectWindow(state.since);
load();
