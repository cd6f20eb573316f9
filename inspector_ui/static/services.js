// The services overview at /services: each configured or self-registered service with its
// health, recent probes, upstreams and instances, from /api/services, and the dependency graph
// from /api/services/graph, refreshed every 10 s while the page is visible. A service's or an
// instance's Forget asks first, then posts to /api/registry/forget. Service names, URLs,
// versions and probe errors come from configs, heartbeats and the network: text only.
import { postJson } from "./api.js";
import { renderGraph, flaggedEdges } from "./dependency_graph.js";
import { dialogHead, showModal, wireDialog } from "./dialogs.js";
import { bindThemeToggle, el, clear } from "./dom.js";
import { formatAge, formatLatency, sparkline } from "./health.js";
import "./fault_form.js"; // the "Inject fault…" button on each row

const REFRESH_MS = 10000;
const STATE_TEXT = { up: "up", down: "down", unknown: "unknown", stale: "stale", gone: "gone" };
const SOURCE_TEXT = { config: "configured", registry: "self-registered", both: "configured + self-registered" };
const READY_TEXT = { true: "ready", false: "not ready", null: "–" };
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

function instancesTable(service) {
  const table = el("table", "instances");
  const head = el("tr");
  for (const title of ["Instance", "State", "Ready", "Version", "URL", "Last heartbeat", ""]) head.append(el("th", null, title));
  table.append(el("thead", null, null, head));
  const body = el("tbody");
  for (const instance of service.instances) {
    const tr = el("tr", `instance state-${instance.state}`);
    tr.dataset.instance = instance.instance;
    const state = el("span", `state-badge small state-${STATE_TEXT[instance.state] ? instance.state : "unknown"}`, instance.state);
    const beat = el("td", "heartbeat", `${formatAge(instance.heartbeat_at)} ago`);
    beat.title = new Date(instance.heartbeat_at).toLocaleString();
    const forget = el("button", "forget-instance", "Forget…");
    forget.type = "button";
    forget.title = `Remove instance ${instance.instance} from the registry`;
    forget.addEventListener("click", () => confirmForget(service, instance.instance, forget));
    tr.append(
      el("td", "instance-id", instance.instance), el("td", null, null, state),
      el("td", "ready", READY_TEXT[String(instance.ready)] ?? "–"), el("td", "version", instance.version ?? "–"),
      el("td", "url", instance.url), beat, el("td", null, null, forget),
    );
    body.append(tr);
  }
  table.append(body);
  return table;
}

/** The row under a service with what the registry says of it: source, dependencies, conflict,
 * instances and the Forget actions. None for a service only configured on live proxies. */
function detailRow(service) {
  const instances = service.instances ?? [];
  const stale = service.proxies.some((proxy) => proxy.stale);
  if (!instances.length && !stale && !service.conflict) return null;
  const card = el("div", "service-card");
  const facts = el("p", "service-facts");
  facts.append(el("span", `source source-${service.source}`, SOURCE_TEXT[service.source] ?? "seen in traffic"));
  if (service.depends_on?.length) facts.append(el("span", "depends-on", `depends on ${service.depends_on.join(", ")}`));
  card.append(facts);
  if (service.conflict) card.append(el("p", "conflict", service.conflict));
  if (instances.length) card.append(instancesTable(service));
  const forget = el("button", "forget-service", "Forget service…");
  forget.type = "button";
  forget.title = "Remove its registered instances and its stale proxy registrations";
  forget.addEventListener("click", () => confirmForget(service, null, forget));
  card.append(el("div", "service-actions", null, forget));
  // Where the service's fault rules go (issue 17 §3): filled by the faults UI, empty here.
  const faults = el("div", "service-faults");
  faults.dataset.service = service.name;
  faults.hidden = true;
  card.append(faults);
  const cell = el("td", null, null, card);
  cell.colSpan = document.querySelectorAll("#services thead th").length;
  const tr = el("tr", "service-detail", null, cell);
  tr.dataset.service = service.name;
  return tr;
}

function confirmForget(service, instance, opener) {
  const dialog = $("forget-dialog");
  wireDialog(dialog);
  clear(dialog);
  const realm = service.realm ? ` (realm ${service.realm})` : "";
  const title = instance === null ? `Forget ${service.name}${realm}?` : `Forget instance ${instance}?`;
  const explained = instance === null
    ? `Every registered instance of ${service.name}${realm} is removed from the registry, and so are the registrations of proxies that stopped refreshing theirs (stale for 3 minutes). A live proxy's configuration stays, and an instance still running registers again with its next heartbeat.`
    : `Instance ${instance} of ${service.name}${realm} is removed from the registry. If it is still running, its next heartbeat registers it again.`;
  const error = el("p", "form-error error", null);
  error.setAttribute("role", "alert");
  error.hidden = true;
  const cancel = el("button", null, "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => dialog.close());
  const confirm = el("button", "danger confirm-forget", "Forget");
  confirm.type = "button";
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    const what = { name: service.name, realm: service.realm ?? "" };
    if (instance !== null) what.instance = instance;
    try {
      await postJson("/api/registry/forget", what);
      dialog.close();
      await refresh();
    } catch (failure) {
      error.textContent = `Not forgotten: ${failure.message}`;
      error.hidden = false;
      confirm.disabled = false;
    }
  });
  dialog.append(
    dialogHead(dialog, "forget-dialog-title", title),
    el("div", "forget-body", null, el("p", "note", explained), error, el("div", "dialog-actions", null, confirm, cancel)),
  );
  showModal(dialog, opener);
  cancel.focus();
}

function row(service, showRealm) {
  // A service seen in traffic that no proxy registers has no health: it is shown, unprobed.
  const health = service.health ?? { state: "unknown", error: null, checked_at: null, since: null, latency_ms: null };
  const tr = el("tr", `service-row state-${health.state}${service.registered === false ? " unregistered" : ""}`);
  tr.dataset.service = service.name;
  const realmCell = el("td", "realm-column", service.realm ?? "–");
  realmCell.hidden = !showRealm;
  const nameCell = el("td", null, null, detailLink(service));
  if (service.conflict) {
    const mark = el("span", "conflict-mark", "conflict");
    mark.title = service.conflict;
    nameCell.append(mark);
  }
  tr.append(
    nameCell,
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
  for (const service of body.services) {
    tbody.append(row(service, showRealm));
    const detail = detailRow(service);
    if (detail) tbody.append(detail);
  }
  $("services").hidden = body.services.length === 0;
  $("services-empty").hidden = body.services.length !== 0;
}

function renderDependencies(body, since) {
  const empty = body.edges.length === 0;
  $("dependencies").hidden = false;
  $("graph-empty").hidden = !empty;
  $("graph").hidden = empty;
  document.querySelector(".graph-legend").hidden = empty;
  const sampled = $("graph-sampled");
  sampled.hidden = !body.sampled;
  sampled.textContent = body.sampled ? `Calls counted from ${new Date(body.sampled_since).toLocaleString()} on (the newest exchanges only).` : "";
  if (empty) clear($("graph"));
  else renderGraph($("graph"), body, since);
  const list = clear($("graph-flags"));
  for (const flagged of flaggedEdges(body, since)) list.append(el("li", `flag-${flagged.flag}`, flagged.text));
}

async function refreshGraph(realm) {
  const since = $("graph-since").value;
  const params = new URLSearchParams({ since });
  if (realm !== null) params.set("realm", realm);
  try {
    const response = await fetch(`/api/services/graph?${params}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    renderDependencies(await response.json(), $("graph-since").selectedOptions[0].textContent);
    $("graph-error").hidden = true;
  } catch (error) {
    $("dependencies").hidden = false;
    $("graph-error").textContent = `Cannot load the dependency graph: ${error.message}`;
    $("graph-error").hidden = false;
  }
}

async function refresh() {
  const realm = chosenRealm();
  const params = new URLSearchParams();
  if (realm !== null) params.set("realm", realm);
  const graph = refreshGraph(realm);
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
  await graph;
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
  $("graph-since").addEventListener("change", () => refreshGraph(chosenRealm()));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh().then(schedule);
    else schedule();
  });
  bindThemeToggle($("theme-toggle"));
  refresh().then(schedule);
}

start();
