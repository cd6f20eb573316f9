// The services overview at /services: each registered service with its health, recent
// probes and upstreams, from /api/services, refreshed every 10 s while the page is visible.
// Service names, upstreams and probe errors come from configs and the network: text only.
import { bindThemeToggle, el, clear } from "./dom.js";
import { formatAge, formatLatency, sparkline } from "./health.js";
import "./fault_form.js"; // the "Inject fault…" button on each row

const REFRESH_MS = 10000;
const STATE_TEXT = { up: "up", down: "down", unknown: "unknown", stale: "stale" };
const $ = (id) => document.getElementById(id);

let timer = null;

function chosenRealm() {
  const realm = new URLSearchParams(location.search).get("realm");
  return realm === null ? null : realm;
}

function detailLink(service) {
  const params = new URLSearchParams();
  if (service.realm !== null) params.set("realm", service.realm);
  const query = params.toString();
  const link = el("a", "service-name", service.name);
  link.href = `/services/${encodeURIComponent(service.name)}${query ? `?${query}` : ""}`;
  return link;
}

function stateCell(health) {
  const state = STATE_TEXT[health.state] ? health.state : "unknown";
  const badge = el("span", `state-badge state-${state}`, STATE_TEXT[state]);
  const cell = el("td", "state", null, badge);
  if (state === "down" && health.error) cell.append(el("div", "state-error", health.error));
  if (health.checked_at) cell.title = `last probe ${new Date(health.checked_at).toLocaleString()}`;
  return cell;
}

function sinceCell(health) {
  const cell = el("td", "since", health.since ? `for ${formatAge(health.since)}` : "–");
  if (health.since) cell.title = `since ${new Date(health.since).toLocaleString()}`;
  return cell;
}

function proxiesCell(proxies) {
  const list = el("ul", "proxies");
  for (const proxy of proxies) {
    const item = el("li", proxy.stale ? "proxy stale" : "proxy", proxy.proxy);
    if (proxy.stale) item.append(el("span", "stale-mark", " (stale)"));
    item.title = `registration refreshed ${new Date(proxy.updated_at).toLocaleString()}`;
    list.append(item);
  }
  return el("td", null, null, list);
}

function upstreamsCell(upstreams) {
  const list = el("ul", "upstreams");
  for (const upstream of upstreams) list.append(el("li", null, upstream));
  return el("td", null, null, list);
}

function trafficCells(traffic) {
  if (!traffic) return [el("td", "traffic rps", "–"), el("td", "traffic errors", "–"), el("td", "traffic p95", "–")];
  const rate = traffic.error_rate ?? 0;
  const errors = el("td", `traffic errors${rate > 0 ? " has-errors" : ""}`, `${(rate * 100).toFixed(rate && rate < 0.01 ? 2 : 1)}%`);
  errors.title = `${traffic.errors} of ${traffic.requests} requests in the last 15 minutes failed (5xx or no answer)`;
  const rps = el("td", "traffic rps", traffic.rps >= 10 ? traffic.rps.toFixed(0) : traffic.rps.toFixed(2));
  rps.title = `${traffic.requests} requests in the last 15 minutes`;
  return [rps, errors, el("td", "traffic p95", formatLatency(traffic.p95))];
}

function row(service, showRealm) {
  // A service seen in traffic that no proxy registers has no health: it is shown, unprobed.
  const health = service.health ?? { state: "unknown", error: null, checked_at: null, since: null, latency_ms: null };
  const tr = el("tr", `service-row state-${health.state}${service.registered === false ? " unregistered" : ""}`);
  tr.dataset.service = service.name;
  const realmCell = el("td", "realm-column", service.realm ?? "–");
  realmCell.hidden = !showRealm;
  tr.append(
    el("td", null, null, detailLink(service)),
    realmCell,
    stateCell(health),
    el("td", "latency", formatLatency(health.latency_ms)),
    sinceCell(health),
    el("td", "uptime", service.uptime === null ? "–" : `${service.uptime.toFixed(service.uptime === 100 ? 0 : 1)}%`),
    el("td", "history", null, sparkline(service.history)),
    ...trafficCells(service.traffic),
    upstreamsCell(service.upstreams),
    proxiesCell(service.proxies),
  );
  return tr;
}

function renderRealms(realms, chosen) {
  const select = $("realm");
  const wanted = ["", ...realms];
  if (chosen !== null && !wanted.includes(chosen)) wanted.push(chosen); // a realm with no services yet
  const current = [...select.options].map((option) => option.value);
  if (current.join("\n") !== wanted.join("\n")) {
    clear(select);
    for (const realm of wanted) select.append(el("option", null, realm === "" ? "All realms" : realm));
    [...select.options].forEach((option, i) => { option.value = wanted[i]; });
  }
  select.value = chosen ?? "";
  $("realm-picker").hidden = realms.length < 2 && chosen === null;
}

function render(body, realm) {
  renderRealms(body.realms, realm);
  const showRealm = realm === null && body.realms.length > 0;
  for (const header of document.querySelectorAll("th.realm-column")) header.hidden = !showRealm;
  const tbody = $("services").querySelector("tbody");
  clear(tbody);
  for (const service of body.services) tbody.append(row(service, showRealm));
  $("services").hidden = body.services.length === 0;
  $("services-empty").hidden = body.services.length !== 0;
}

async function refresh() {
  const realm = chosenRealm();
  const params = new URLSearchParams();
  if (realm !== null) params.set("realm", realm);
  try {
    const response = await fetch(`/api/services?${params}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error(typeof problem?.detail === "string" ? problem.detail : `HTTP ${response.status}`);
    }
    render(await response.json(), realm);
    $("services-error").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("services-error").textContent = `Cannot load services: ${error.message}`;
    $("services-error").hidden = false;
  }
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (document.visibilityState === "visible") timer = setTimeout(() => refresh().then(schedule), REFRESH_MS);
}

function start() {
  $("realm").addEventListener("change", (event) => {
    const url = new URL(location.href);
    if (event.target.value === "") url.searchParams.delete("realm");
    else url.searchParams.set("realm", event.target.value);
    history.replaceState(null, "", url);
    refresh().then(schedule);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh().then(schedule);
    else schedule();
  });
  bindThemeToggle($("theme-toggle"));
  refresh().then(schedule);
}

start();
