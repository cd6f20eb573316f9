// Replay: as captured (one POST) or through an editor prefilled from the server's template.
// Everything captured goes into form controls as values (never markup).
import { getJson, postJson } from "./api.js";
import { el } from "./dom.js";
import { bodyKind, formatSize } from "./format.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const OTHER_URL = "\u0000other"; // the target <select>'s "Other URL…" option (no service has this name)

/** Replay exchange `id` as captured: {id, replay_of, status}, or an Error with the server's detail. */
export function replayAsCaptured(id) {
  return postJson(`/api/exchanges/${encodeURIComponent(id)}/replay`, {});
}

function isUrl(target) {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(target || "");
}

function headerValue(headers, name) {
  const found = headers.find(([n]) => n.toLowerCase() === name);
  return found ? found[1] : null;
}

function base64Size(text) {
  const clean = (text || "").replace(/\s+/g, "");
  const padding = clean.endsWith("==") ? 2 : clean.endsWith("=") ? 1 : 0;
  return Math.max(0, Math.floor((clean.length * 3) / 4) - padding);
}

/** The body as the editor shows it: JSON pretty-printed with 2 spaces when declared and valid. */
export function editableBody(text, contentType) {
  if (text === null || text === undefined) return "";
  if (bodyKind(contentType) === "json") {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) { /* shown as captured */ }
  }
  return text;
}

function field(labelText, control, className = "field") {
  const label = el("label", className);
  label.append(el("span", "field-label", labelText), control);
  return label;
}

function input(name, value, placeholder = "") {
  const node = el("input");
  node.type = "text";
  node.name = name;
  node.value = value ?? "";
  node.spellcheck = false;
  node.autocomplete = "off";
  if (placeholder) node.placeholder = placeholder;
  return node;
}

function button(text, className, type = "button") {
  const node = el("button", className, text);
  node.type = type;
  return node;
}

/**
 * Render the editor for exchange `id` into `container`.
 * onSent(newId, { compare }) after a successful send; onCancel() to go back to the detail.
 */
export async function renderEditor(container, id, { onSent, onCancel }) {
  const loading = el("p", "note", "loading the request…");
  container.append(loading);
  let template;
  try {
    template = await getJson(`/api/exchanges/${encodeURIComponent(id)}/replay`);
  } catch (error) {
    loading.replaceWith(el("p", "problem", `Cannot replay #${id}: ${error.message}`));
    const back = button("Back to the exchange", "secondary");
    back.addEventListener("click", onCancel);
    container.append(back);
    return null;
  }
  if (!loading.isConnected) return null; // the pane moved on while the template loaded
  const form = buildForm(id, template, { onSent, onCancel });
  loading.replaceWith(form);
  form.querySelector("input[name=method]").focus();
  return form;
}

function buildForm(id, template, { onSent, onCancel }) {
  const form = el("form", "replay-editor");
  form.noValidate = true; // our own checks, with our own messages
  form.setAttribute("aria-label", `Edit and replay #${id}`);
  form.append(el("h3", "editor-title", `Edit and replay #${id}`));

  // -- request line: method, target, path
  const method = input("method", template.method);
  method.setAttribute("list", "replay-methods");
  method.classList.add("method-input");
  const methods = el("datalist");
  methods.id = "replay-methods";
  for (const name of METHODS) {
    const option = el("option");
    option.value = name;
    methods.append(option);
  }

  const target = el("select");
  target.name = "target";
  const services = Array.isArray(template.targets) ? template.targets : [];
  const capturedIsUrl = isUrl(template.target);
  const addOption = (value, text) => {
    const option = el("option", null, text);
    option.value = value;
    target.append(option);
  };
  if (!services.includes(template.target)) addOption(template.target, `${template.target} (as captured)`);
  for (const name of services) addOption(name, name === template.target ? `${name} (as captured)` : name);
  const freeUrl = template.allow_any_target || capturedIsUrl;
  const url = input("url", capturedIsUrl ? template.target : "", "http://host:port (base URL)");
  const urlField = field("URL", url, "field url-field");
  if (freeUrl) addOption(OTHER_URL, "Other URL…");
  target.value = template.target;
  const syncUrl = () => { urlField.hidden = !(freeUrl && target.value === OTHER_URL); };
  target.addEventListener("change", () => {
    syncUrl();
    if (!urlField.hidden) url.focus();
  });
  syncUrl();

  const path = input("path", template.path, "/path?query");
  path.classList.add("path-input");
  const line = el("div", "request-line");
  line.append(field("Method", method, "field method-field"), field("Target", target, "field target-field"), urlField,
    field("Path", path, "field path-field"), methods);
  form.append(line);

  // -- headers
  const headersBox = el("fieldset", "header-rows");
  headersBox.append(el("legend", null, "Headers"));
  const rows = el("div", "rows");
  headersBox.append(rows);
  const addRow = (name = "", value = "") => {
    const row = el("div", "header-row");
    const nameInput = input("header-name", name, "Name");
    nameInput.classList.add("h-name");
    nameInput.setAttribute("aria-label", "Header name");
    const valueInput = input("header-value", value, "Value");
    valueInput.classList.add("h-value");
    valueInput.setAttribute("aria-label", name ? `Value of ${name}` : "Header value");
    const remove = button("✕", "icon remove-header");
    remove.title = "Remove this header";
    remove.setAttribute("aria-label", `Remove header ${name}`.trim());
    remove.addEventListener("click", () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      (next ? next.querySelector(".h-name") : addHeader).focus();
    });
    row.append(nameInput, valueInput, remove);
    rows.append(row);
    return row;
  };
  for (const [name, value] of template.headers || []) addRow(name, value);
  const addHeader = button("Add header", "add-header");
  addHeader.addEventListener("click", () => addRow().querySelector(".h-name").focus());
  headersBox.append(addHeader);
  form.append(headersBox);

  // -- body
  const bodyBox = el("fieldset", "body-field");
  bodyBox.append(el("legend", null, "Body"));
  const contentType = headerValue(template.headers || [], "content-type");
  const binary = template.body_base64 !== null && template.body_base64 !== undefined;
  let textarea = null;
  let shownBody = "";
  if (template.body_truncated) {
    bodyBox.append(el("p", "truncated warning",
      "The captured body was cut at the body cap: it cannot be sent as captured. Supply the whole body below."));
  }
  if (binary && !template.body_truncated) {
    bodyBox.append(el("p", "note binary-body", `binary, ${base64Size(template.body_base64).toLocaleString()} bytes (${
      formatSize(base64Size(template.body_base64))}), sent as captured`));
  } else {
    shownBody = template.body_truncated ? "" : editableBody(template.body, contentType);
    textarea = el("textarea", "body-input");
    textarea.name = "body";
    textarea.spellcheck = false;
    textarea.value = shownBody;
    textarea.rows = Math.min(20, Math.max(4, shownBody.split("\n").length + 1));
    textarea.setAttribute("aria-label", "Request body");
    if (template.body_truncated) {
      textarea.placeholder = "the whole request body (required)";
      textarea.required = true;
    } else if (template.body === null) {
      textarea.placeholder = "no body captured; anything typed here is sent";
    }
    bodyBox.append(textarea);
  }
  form.append(bodyBox);

  // -- the trace: a replay starts one of its own (linked to this exchange) unless kept
  const keepTrace = el("input");
  keepTrace.type = "checkbox";
  keepTrace.name = "keep_trace";
  form.append(el("label", "keep-trace", null, keepTrace,
    el("span", null, "Keep the original's trace (else the replay starts a trace of its own, linked to this one)")));

  // -- actions and the server's answer
  const problem = el("p", "form-error");
  problem.setAttribute("role", "alert");
  problem.hidden = true;
  const actions = el("div", "editor-actions");
  const send = button("Send", "primary send", "submit");
  const sendCompare = button("Send and compare", "send-compare", "submit");
  const cancel = button("Cancel", "cancel");
  cancel.addEventListener("click", onCancel);
  actions.append(send, sendCompare, cancel);
  form.append(problem, actions);

  const showProblem = (text) => {
    problem.textContent = text;
    problem.hidden = false;
  };

  const payload = () => {
    const out = {};
    const methodValue = method.value.trim().toUpperCase();
    if (!methodValue) throw new Error("the method is empty");
    if (methodValue !== template.method) out.method = methodValue;
    if (target.value === OTHER_URL) {
      const base = url.value.trim();
      if (!isUrl(base)) throw new Error("the URL must start with http:// or https://");
      out.target = base;
    } else if (target.value !== template.target) {
      out.target = target.value;
    }
    const pathValue = path.value.trim();
    if (!pathValue.startsWith("/")) throw new Error("the path must start with '/'");
    if (pathValue !== template.path) out.path = pathValue;
    // The form's header list is authoritative: drop every captured header, send the rows.
    const names = new Set((template.headers || []).map(([name]) => name));
    out.remove_headers = [...names];
    out.set_headers = [];
    for (const row of rows.querySelectorAll(".header-row")) {
      const name = row.querySelector(".h-name").value.trim();
      const value = row.querySelector(".h-value").value;
      if (!name && !value) continue;
      if (!name) throw new Error(`a header with the value ${JSON.stringify(value.slice(0, 40))} has no name`);
      out.set_headers.push([name, value]);
    }
    if (textarea) {
      const text = textarea.value;
      if (template.body_truncated && !text) throw new Error("the captured body was truncated: supply the whole body");
      // Unchanged: the server sends the captured bytes (exactly, not our pretty-printed copy).
      if (template.body_truncated || text !== shownBody) out.body = text;
    }
    if (keepTrace.checked) out.keep_trace = true;
    return out;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const compare = event.submitter === sendCompare;
    problem.hidden = true;
    let edits;
    try {
      edits = payload();
    } catch (error) {
      showProblem(error.message);
      return;
    }
    const label = compare ? sendCompare : send;
    const text = label.textContent;
    send.disabled = sendCompare.disabled = true;
    label.textContent = "Sending…";
    form.setAttribute("aria-busy", "true");
    try {
      const result = await postJson(`/api/exchanges/${encodeURIComponent(id)}/replay`, edits);
      onSent(result.id, { compare });
    } catch (error) {
      showProblem(error.message);
    } finally {
      send.disabled = sendCompare.disabled = false;
      label.textContent = text;
      form.removeAttribute("aria-busy");
    }
  });
  return form;
}
