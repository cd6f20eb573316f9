// The service page's "Simulate" toggle (issue 18 §3): whether the gateway answers this service from
// its recordings instead of forwarding, switched on (from a search, with latency and passthrough
// options) and off, and the recordings as a HAR download (redacted). Data:
// GET/PUT/DELETE /api/services/<name>/mock. Captured text (the query) is set as textContent only.
import { el, clear } from "./dom.js";
import { problemText } from "./api.js";
import { serviceFromPath } from "./service_name.js";

const box = document.getElementById("service-mock");
const params = new URLSearchParams(location.search);
const service = serviceFromPath();
const realm = params.get("realm");
const base = `/api/services/${encodeURIComponent(service)}/mock`;
const withRealm = (url) => (realm === null ? url : `${url}?${new URLSearchParams({ realm })}`);

async function send(method, payload) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (payload !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(payload);
  }
  const response = await fetch(method === "PUT" ? base : withRealm(base), options);
  if (!response.ok) throw new Error(await problemText(response));
  return response.json();
}

function checkbox(name, label, title) {
  const input = el("input");
  input.type = "checkbox";
  input.name = name;
  const wrap = el("label", "mock-option", "");
  wrap.title = title;
  wrap.append(input, ` ${label}`);
  return wrap;
}

function showError(text) {
  box.querySelector(".mock-error")?.remove();
  box.append(el("p", "mock-error", text));
}

function renderOff() {
  clear(box);
  const head = el("h2", null, "Simulate");
  const note = el("p", "note", "Forwarded to the service. Simulating answers its requests from recorded exchanges instead " +
    "(exact matches first, then the closest of the same endpoint; a miss gets a 404 naming the closest).");
  const form = el("form", "mock-form");
  const query = el("input");
  query.name = "query";
  query.type = "search";
  query.placeholder = "recordings: a search, e.g. method:GET (default: all, the newest 1000)";
  query.setAttribute("aria-label", "Which recorded exchanges answer");
  const start = el("button", null, "Simulate");
  start.type = "submit";
  form.append(query, checkbox("latency", "reproduce latency", "Answer after each recording's own duration"),
    checkbox("passthrough", "forward misses", "Forward a request no recording matches instead of the 404"), start);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    start.disabled = true;
    const payload = { latency: form.elements.latency.checked, passthrough: form.elements.passthrough.checked };
    if (query.value.trim()) payload.query = query.value.trim();
    if (realm !== null) payload.realm = realm;
    try {
      renderOn(await send("PUT", payload));
    } catch (error) {
      showError(`Cannot simulate ${service}: ${error.message}`);
      start.disabled = false;
    }
  });
  box.append(head, note, form);
}

function renderOn(simulation) {
  clear(box);
  const head = el("h2", null, "Simulated");
  head.prepend(el("span", "badge mock", "mock"), " ");
  const source = simulation.source === "har"
    ? `${simulation.har_entries} HAR entr${simulation.har_entries === 1 ? "y" : "ies"}`
    : simulation.query ? `its exchanges matching ${simulation.query}` : "its recorded exchanges";
  const options = ["latency", "passthrough"].filter((name) => simulation[name]);
  const text = `The gateway answers from ${simulation.recordings} recording(s): ${source}` +
    `${options.length ? ` (${options.join(", ")})` : ""}; set by ${simulation.origin}.`;
  const stop = el("button", null, "Stop simulating");
  stop.type = "button";
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    try {
      await send("DELETE");
      renderOff();
    } catch (error) {
      showError(`Cannot stop simulating ${service}: ${error.message}`);
      stop.disabled = false;
    }
  });
  const download = el("a", "mock-download", "Download recordings (HAR, redacted)");
  download.href = withRealm(`${base}/recordings.har`);
  const answered = el("a", null, "Answers so far");
  answered.href = `/?${new URLSearchParams({ q: `is:mock service:${service}` })}`;
  const row = el("p", "mock-actions");
  row.append(stop, " ", download, " · ", answered);
  box.append(head, el("p", "mock-state", text), row);
}

async function load() {
  try {
    const response = await fetch(withRealm(base), { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await problemText(response));
    const state = await response.json();
    if (state.simulated) renderOn(state);
    else renderOff();
  } catch (error) {
    clear(box);
    showError(`Cannot read whether ${service} is simulated: ${error.message}`);
  }
  box.hidden = false;
}

if (box) load();
