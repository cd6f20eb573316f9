// The service page's "Inferred API": each endpoint's schema as inferred from its traffic
// (GET /api/services/<name>/openapi.json, issue 18 §1), collapsible, and links to the document
// and to the inspector's own Swagger UI showing it. Everything captured (paths, names, schemas,
// examples) is set as textContent: the schemas are shown as JSON text, never as markup.
import { el, clear } from "./dom.js";
import { getJson } from "./api.js";
import { serviceFromPath } from "./service_name.js";

const $ = (id) => document.getElementById(id);
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];


function documentUrl(service, realm) {
  const query = realm ? `?${new URLSearchParams({ realm })}` : "";
  return `/api/services/${encodeURIComponent(service)}/openapi.json${query}`;
}

function schemaText(schema) {
  return JSON.stringify(schema ?? {}, null, 2);
}

function typeText(schema) {
  if (!schema || schema.type === undefined) return "any";
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : String(schema.type);
  const format = schema.format ? ` (${schema.format})` : "";
  const items = schema.type === "array" && schema.items ? ` of ${typeText(schema.items)}` : "";
  return `${type}${format}${items}`;
}

function block(title, schema, example) {
  const details = el("details", "openapi-schema");
  details.append(el("summary", null, title), el("pre", "openapi-json", schemaText(schema)));
  if (example !== undefined) {
    details.append(el("p", "note", "Example (redacted):"), el("pre", "openapi-json", schemaText(example)));
  }
  return details;
}

function renderOperation(path, method, operation) {
  const exchanges = operation["x-passageway-exchanges"];
  const details = el("details", "openapi-operation");
  details.dataset.operation = `${method.toUpperCase()} ${path}`;
  const summary = el("summary", null, null,
    el("span", "openapi-method", method.toUpperCase()), " ", el("code", null, path),
    el("span", "note", ` · ${Number(exchanges || 0).toLocaleString()} exchange(s)`));
  details.append(summary);
  const parameters = operation.parameters || [];
  if (parameters.length) {
    const list = el("ul", "openapi-parameters");
    for (const parameter of parameters) {
      list.append(el("li", null, null,
        el("code", null, parameter.name),
        ` in ${parameter.in}${parameter.required ? ", required" : ""}: ${typeText(parameter.schema)}`));
    }
    details.append(el("h4", null, "Parameters"), list);
  }
  const body = operation.requestBody;
  if (body) {
    for (const [media, content] of Object.entries(body.content || {})) {
      details.append(block(`Request body ${media}${body.required ? " (required)" : ""}`, content.schema, content.example));
    }
  }
  for (const [status, response] of Object.entries(operation.responses || {})) {
    const contents = Object.entries(response.content || {});
    if (!contents.length) {
      details.append(el("p", "openapi-empty", `${status} ${response.description || ""} · no body`));
      continue;
    }
    for (const [media, content] of contents) {
      details.append(block(`Response ${status} ${media}`, content.schema, content.example));
    }
  }
  return details;
}

async function swaggerAvailable() {
  try {
    return (await fetch("/docs")).ok; // off when the inspector runs without its API docs
  } catch (_) {
    return false;
  }
}

async function load() {
  const section = $("service-openapi");
  if (!section) return;
  const service = serviceFromPath();
  const realm = new URLSearchParams(location.search).get("realm") || "";
  const url = documentUrl(service, realm);
  const link = $("openapi-document");
  link.href = url;
  const swagger = $("openapi-swagger");
  swagger.href = `/docs?${new URLSearchParams({ url })}`;
  swagger.hidden = !(await swaggerAvailable());
  const list = clear($("openapi-operations"));
  const note = $("openapi-note");
  let document_;
  try {
    document_ = await getJson(url);
  } catch (error) {
    if (error.status === 404) return; // an unknown service: the page says so already
    section.hidden = false;
    note.textContent = `The inferred API could not be read: ${error.message}`;
    return;
  }
  section.hidden = false;
  const paths = Object.entries(document_.paths || {});
  note.textContent = paths.length
    ? document_.info?.description || ""
    : "No operations inferred yet: the maintenance role summarises new traffic as it is captured.";
  for (const [path, item] of paths) {
    for (const method of METHODS) {
      if (item[method]) list.append(renderOperation(path, method, item[method]));
    }
  }
}

load();
