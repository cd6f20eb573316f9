// The Services page's "Inject fault…" form: a button on each service's row opens a dialog that
// adds a fault rule for that service in its realm (POST /api/faults), then tells the banner
// (faults.js) to show it. The rows are redrawn on every refresh of the page (services.js), so the
// buttons are added to each new row as it appears. Text only, no markup from the API.
import { el } from "./dom.js";
import { postJson } from "./api.js";
import { FAULTS_CHANGED } from "./faults.js";

const DURATION = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)?\s*$/i;

/** "300ms" / "2s" / "250" -> milliseconds; null when it is not a duration. */
function milliseconds(text) {
  const match = DURATION.exec(text);
  if (!match) return null;
  return Number(match[1]) * ((match[2] || "ms").toLowerCase() === "s" ? 1000 : 1);
}

/** "300ms" -> {delay_ms: 300}; "100ms-2s" -> {delay_ms: 100, delay_max_ms: 2000}; "" -> {}. */
export function parseDelay(text) {
  if (!text.trim()) return {};
  const [low, high, ...rest] = text.split("-");
  const lowMs = milliseconds(low);
  const highMs = high === undefined ? null : milliseconds(high);
  if (lowMs === null || rest.length || (high !== undefined && highMs === null)) {
    throw new Error(`delay: "${text}" is not a duration such as 300ms, 2s or a range 100ms-2s`);
  }
  return highMs === null ? { delay_ms: lowMs } : { delay_ms: lowMs, delay_max_ms: highMs };
}

function field(form, label, input, hint) {
  const id = `fault-${input.name}`;
  input.id = id;
  const caption = el("label", null, label);
  caption.htmlFor = id;
  form.append(caption, input);
  if (hint) input.placeholder = hint;
  return input;
}

function input(name, type = "text") {
  const node = el("input");
  node.name = name;
  node.type = type;
  node.autocomplete = "off";
  return node;
}

function openForm(service, realm) {
  const dialog = el("dialog", "fault-dialog");
  dialog.setAttribute("aria-label", `Inject a fault into ${service}`);
  const form = el("form");
  form.method = "dialog";
  dialog.append(el("h2", null, `Inject a fault into ${service}${realm ? ` (realm ${realm})` : ""}`), form);
  const effect = el("select");
  effect.name = "effect";
  for (const [value, text] of [["status", "Error status"], ["delay", "Delay only"], ["reset", "Connection reset"], ["stall", "Stalled body"]]) {
    const option = el("option", null, text);
    option.value = value;
    effect.append(option);
  }
  field(form, "Effect", effect);
  const status = field(form, "Status", input("status", "number"), "503");
  status.value = "503";
  status.min = "100";
  status.max = "599";
  const delay = field(form, "Delay", input("delay"), "300ms, or 100ms-2s (optional)");
  const rate = field(form, "Rate %", input("rate", "number"), "100");
  rate.value = "100";
  rate.min = "0";
  rate.max = "100";
  rate.step = "any";
  const lasts = field(form, "For", input("for"), "10m (at most 7d)");
  lasts.value = "10m";
  const method = field(form, "Method", input("method"), "any");
  const path = field(form, "Path", input("path"), "any, or /orders/{id}, /orders/*");
  const header = field(form, "Header", input("header"), "any, or NAME=VALUE");
  form.append(el("p", "fault-hint", "The proxies of this realm apply it within a second; it ends by itself when its time is up."));
  const error = el("p", "fault-form-error");
  error.setAttribute("role", "alert");
  error.hidden = true;
  const cancel = el("button", null, "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => dialog.close());
  const submit = el("button", "fault-submit", "Inject fault");
  submit.type = "submit";
  form.append(error, el("div", "fault-buttons", null, cancel, submit));
  const syncEffect = () => { status.disabled = effect.value !== "status"; };
  effect.addEventListener("change", syncEffect);
  syncEffect();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let body;
    try {
      body = { service, realm: realm || null, rate: Number(rate.value || "100"), for: lasts.value.trim() || "10m", ...parseDelay(delay.value) };
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
      return;
    }
    if (effect.value === "status") body.status = Number(status.value);
    if (effect.value === "reset") body.reset = true;
    if (effect.value === "stall") body.stall = true;
    for (const [key, node] of [["method", method], ["path", path], ["header", header]]) {
      if (node.value.trim()) body[key] = node.value.trim();
    }
    submit.disabled = true;
    try {
      await postJson("/api/faults", body);
    } catch (problem) {
      error.textContent = `Not injected: ${problem.message}`;
      error.hidden = false;
      submit.disabled = false;
      return;
    }
    dialog.close();
    document.dispatchEvent(new CustomEvent(FAULTS_CHANGED));
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

function addButton(row) {
  if (row.querySelector(".fault-open")) return;
  const service = row.dataset.service;
  if (!service) return;
  const realmText = row.querySelector(".realm-column")?.textContent ?? "";
  const realm = realmText === "–" ? null : realmText;
  const button = el("button", "fault-open", "Inject fault…");
  button.type = "button";
  button.title = `Inject a fault into ${service}'s traffic (delay, error status, reset, stall)`;
  button.addEventListener("click", () => openForm(service, realm));
  row.querySelector("td")?.append(button);
}

const body = document.querySelector("#services tbody");
if (body) {
  new MutationObserver(() => body.querySelectorAll("tr.service-row").forEach(addButton)).observe(body, { childList: true });
  body.querySelectorAll("tr.service-row").forEach(addButton);
}
