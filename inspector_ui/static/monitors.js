// The monitors page (/monitors): each monitor's state, since when, uptime and p95 over 24 h, a
// sparkline of its recent runs, its last failure, "Run now", delete (monitors made through the
// API) and a form to create one. From /api/monitors, refreshed every 10 s while visible.
// Names, errors and asserts come from configs, the API and the network: text only (dom.js).
import { bindThemeToggle, el, clear } from "./dom.js";
import { getJson, postJson, problemText } from "./api.js";
import { formatAge, formatLatency, sparkline } from "./health.js";

const REFRESH_MS = 10000;
const RUN_NOW_POLL_MS = 2000;
const RUN_NOW_PATIENCE_MS = 60 * 1000; // runners poll every fraction of a second: past this, none is running
const CONFIRM_MS = 5000;
const STATES = new Set(["up", "down", "unknown"]);
const $ = (id) => document.getElementById(id);

let timer = null;
// name -> {lastRunId, until, expired}: "Run now" was asked; the row says queued until a newer run
// shows, or, past `until` (expired), that no runner has taken it yet.
const waiting = new Map();
const confirming = new Set(); // names whose Delete was clicked once

function monitorUrl(name, tail = "") {
  return `/api/monitors/${encodeURIComponent(name)}${tail}`;
}

function runHref(id) {
  return `/test-runs/${encodeURIComponent(id)}`;
}

/** 60 -> "1m", 30 -> "30s", 5400 -> "90m", 7200 -> "2h". */
function formatEvery(seconds) {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${Number(seconds.toFixed(3))}s`;
}

function nameCell(monitor) {
  const cell = el("td", "name", null, el("span", "monitor-name", monitor.name));
  const origin = monitor.origin === "config" ? "passageway.toml" : "API";
  const tag = el("span", "origin", monitor.file ? monitor.file : origin);
  tag.title = monitor.origin === "config" ? "defined in passageway.toml" : "made through the API or this page";
  cell.append(tag);
  return cell;
}

function stateCell(monitor) {
  const state = STATES.has(monitor.state) ? monitor.state : "unknown";
  const cell = el("td", "state", null, el("span", `state-badge state-${state}`, state));
  if (monitor.consecutive_failures > 1) {
    cell.append(el("div", "failures-count", `${monitor.consecutive_failures} failed runs in a row`));
  }
  return cell;
}

function sinceCell(monitor) {
  if (!monitor.state_since) return el("td", "since", "–");
  const cell = el("td", "since", `for ${formatAge(monitor.state_since)}`);
  cell.title = `since ${new Date(monitor.state_since).toLocaleString()}`;
  return cell;
}

function uptimeCell(stats) {
  if (!stats || stats.uptime === null || stats.uptime === undefined) return el("td", "uptime", "–");
  const percent = stats.uptime * 100;
  const cell = el("td", "uptime", `${percent.toFixed(percent === 100 ? 0 : 1)}%`);
  cell.title = `${stats.passed} of ${stats.runs} runs in the last 24 hours passed`;
  return cell;
}

function historyCell(stats) {
  const runs = stats ? stats.history : [];
  const samples = runs.map((run) => ({ t: run.started_at, ok: run.passed, latency_ms: run.duration_ms }));
  const line = sparkline(samples, { width: 120, height: 24 });
  const failed = runs.filter((run) => !run.passed).length;
  line.querySelector("title").textContent = runs.length ? `${runs.length} runs, ${failed} failed` : "no runs yet";
  return el("td", "history", null, line);
}

function lastFailureCell(monitor, stats) {
  const cell = el("td", "last-failure");
  const last = stats && stats.last_failures.length ? stats.last_failures[0] : null;
  if (monitor.state === "down" && monitor.last_error) {
    cell.append(el("div", "failure-line", monitor.last_error));
  } else if (last) {
    const checks = `${last.failures} failed check${last.failures === 1 ? "" : "s"}`;
    cell.append(el("div", "failure-line", last.error || checks));
  }
  if (last) {
    const link = el("a", "failure-run", `run #${last.id}, ${formatAge(last.started_at)} ago`);
    link.href = runHref(last.id);
    link.title = new Date(last.started_at).toLocaleString();
    cell.append(link);
  }
  if (!cell.firstChild) cell.textContent = "–";
  return cell;
}

function actionsCell(monitor) {
  const cell = el("td", "actions");
  if (monitor.last_run_id !== null) {
    const last = el("a", "last-run", "Last run");
    last.href = runHref(monitor.last_run_id);
    last.title = monitor.last_duration_ms === null ? "" : `took ${formatLatency(monitor.last_duration_ms)}`;
    cell.append(last);
  }
  const asked = waiting.get(monitor.name);
  const pending = asked && !asked.expired;
  const run = el("button", "run-now", pending ? "Queued…" : "Run now");
  run.type = "button";
  run.disabled = Boolean(pending);
  run.title = pending ? "Waiting for a monitor runner to run it" : "Run this monitor now";
  run.addEventListener("click", () => runNow(monitor, run));
  cell.append(run);
  if (monitor.origin === "api") {
    const asked = confirming.has(monitor.name);
    const remove = el("button", asked ? "delete confirming" : "delete", asked ? "Confirm delete" : "Delete");
    remove.type = "button";
    remove.title = "Delete this monitor (its runs stay in the history)";
    remove.addEventListener("click", () => deleteClicked(monitor, remove));
    cell.append(remove);
  }
  if (pending) cell.append(el("div", "queued", "queued: a monitor runner picks it up shortly"));
  else if (asked) cell.append(el("div", "queued not-run", "not run yet: is a monitor runner running? (passageway up starts one)"));
  return cell;
}

function row(monitor) {
  const stats = monitor.stats ?? null;
  const tr = el("tr", `monitor-row state-${STATES.has(monitor.state) ? monitor.state : "unknown"}`);
  tr.dataset.monitor = monitor.name;
  tr.append(
    nameCell(monitor),
    el("td", "realm", monitor.realm ?? "–"),
    stateCell(monitor),
    sinceCell(monitor),
    el("td", "every", formatEvery(monitor.every_s)),
    uptimeCell(stats),
    el("td", "p95", stats ? formatLatency(stats.p95_ms) : "–"),
    historyCell(stats),
    lastFailureCell(monitor, stats),
    actionsCell(monitor),
  );
  return tr;
}

function render(monitors) {
  const now = Date.now();
  for (const monitor of monitors) {
    const asked = waiting.get(monitor.name);
    if (asked && monitor.last_run_id !== asked.lastRunId) waiting.delete(monitor.name);
    else if (asked && now > asked.until) asked.expired = true;
  }
  for (const name of [...waiting.keys()]) if (!monitors.some((m) => m.name === name)) waiting.delete(name);
  const tbody = clear($("monitors").querySelector("tbody"));
  for (const monitor of monitors) tbody.append(row(monitor));
  $("monitors").hidden = monitors.length === 0;
  $("monitors-empty").hidden = monitors.length !== 0;
}

function showError(text) {
  $("monitors-error").textContent = text || "";
  $("monitors-error").hidden = !text;
}

async function refresh() {
  try {
    const body = await getJson("/api/monitors");
    render(body.monitors);
    showError(null);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    showError(`Cannot load monitors: ${error.message}`);
  }
}

/** The next refresh: sooner while a "Run now" waits for its run. */
function schedule() {
  clearTimeout(timer);
  timer = null;
  if (document.visibilityState !== "visible") return;
  const polling = [...waiting.values()].some((asked) => !asked.expired);
  timer = setTimeout(() => refresh().then(schedule), polling ? RUN_NOW_POLL_MS : REFRESH_MS);
}

async function runNow(monitor, button) {
  button.disabled = true;
  button.textContent = "Queued…";
  try {
    await postJson(monitorUrl(monitor.name, "/run"), {});
  } catch (error) {
    button.disabled = false;
    button.textContent = "Run now";
    showError(`Cannot run ${monitor.name}: ${error.message}`);
    return;
  }
  waiting.set(monitor.name, { lastRunId: monitor.last_run_id, until: Date.now() + RUN_NOW_PATIENCE_MS, expired: false });
  await refresh();
  schedule();
}

/** Delete asks twice (the button says "Confirm delete" for a few seconds, across refreshes): no modal. */
async function deleteClicked(monitor, button) {
  if (!confirming.has(monitor.name)) {
    confirming.add(monitor.name);
    button.classList.add("confirming");
    button.textContent = "Confirm delete";
    setTimeout(() => {
      confirming.delete(monitor.name);
      button.classList.remove("confirming");
      button.textContent = "Delete";
    }, CONFIRM_MS);
    return;
  }
  confirming.delete(monitor.name);
  button.disabled = true;
  let response;
  try {
    response = await fetch(monitorUrl(monitor.name), { method: "DELETE", credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (error) {
    showError(`Cannot delete ${monitor.name}: the inspector did not answer (${error.message})`);
    button.disabled = false;
    return;
  }
  if (!response.ok && response.status !== 404) {
    showError(`Cannot delete ${monitor.name}: ${await problemText(response)}`);
    button.disabled = false;
    return;
  }
  await refresh();
  schedule();
}

/** The form's "every": a plain number is seconds; anything else ("30s", "1m") goes as written. */
function everyValue(text) {
  const trimmed = text.trim();
  return /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
}

async function create(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const fields = form.elements;
  const payload = {
    name: fields.name.value.trim(),
    every: everyValue(fields.every.value),
    hurl: fields.hurl.value,
    notify: fields.notify.value.split("\n").map((line) => line.trim()).filter(Boolean),
  };
  if (fields.realm.value.trim()) payload.realm = fields.realm.value.trim();
  const problem = $("create-error");
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    await postJson("/api/monitors", payload);
  } catch (error) {
    problem.textContent = error.message;
    problem.hidden = false;
    return;
  } finally {
    submit.disabled = false;
  }
  problem.hidden = true;
  form.reset();
  await refresh();
  schedule();
}

function start() {
  $("create-form").addEventListener("submit", create);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh().then(schedule);
    else schedule();
  });
  bindThemeToggle($("theme-toggle"));
  refresh().then(schedule);
}

start();
