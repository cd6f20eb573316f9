// The diff view: GET /api/diff?a=A&b=B rendered side by side. Every captured value is text.
import { getJson } from "./api.js";
import { el } from "./dom.js";
import { formatDuration, formatSize } from "./format.js";

const ABSENT = "(absent)";
const TIMINGS = [
  ["duration_ms", "Total"],
  ["connect_ms", "Connect"],
  ["tls_ms", "TLS"],
  ["send_ms", "Send"],
  ["wait_ms", "Wait (TTFB)"],
  ["receive_ms", "Receive"],
];

/** The diff and both exchanges (for context and noise header values); throws with the server's detail. */
export async function loadDiff(a, b) {
  const [diff, xa, xb] = await Promise.all([
    getJson(`/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`),
    getJson(`/api/exchanges/${encodeURIComponent(a)}`).catch(() => null),
    getJson(`/api/exchanges/${encodeURIComponent(b)}`).catch(() => null),
  ]);
  return { diff, xa, xb };
}

function section(title, className) {
  const details = el("details", `section diff-section ${className}`);
  details.open = true;
  details.append(el("summary", "section-title", title));
  return details;
}

function table(className, headings) {
  const node = el("table", `diff-table ${className}`);
  const head = el("thead");
  const tr = el("tr");
  for (const heading of headings) tr.append(el("th", null, heading));
  head.append(tr);
  node.append(head, el("tbody"));
  return node;
}

function row(className, cells) {
  const tr = el("tr", className);
  for (const cell of cells) {
    if (cell instanceof Node) tr.append(cell);
    else tr.append(el("td", null, cell));
  }
  return tr;
}

function valueCell(text, className = "") {
  return el("td", `value ${className}`.trim(), text);
}

function absentCell() {
  return el("td", "value absent", ABSENT);
}

function jsonText(value) {
  if (value === undefined) return ABSENT;
  const text = JSON.stringify(value, null, 2);
  return text === undefined ? String(value) : text;
}

function errorText(error) {
  if (!error) return "—";
  if (typeof error === "object") return `${error.kind ?? "error"}: ${error.message ?? ""}`.trim();
  return String(error);
}

/** The side-by-side view of `{diff, xa, xb}`; `exchangeLink(id)` makes the in-app link to one exchange. */
export function renderDiff(container, { diff, xa, xb }, { exchangeLink }) {
  const view = el("div", "diff-view");
  view.dataset.a = diff.a;
  view.dataset.b = diff.b;

  const sides = el("div", "diff-sides");
  for (const [label, id, x] of [["A", diff.a, xa], ["B", diff.b, xb]]) {
    const card = el("div", `diff-side side-${label.toLowerCase()}`);
    const head = el("div", "side-head");
    head.append(el("span", "side-label", label), exchangeLink(id));
    if (x) {
      head.append(el("span", "c-method", x.method),
        el("span", "status-pill", x.status ?? (x.error ? x.error.kind : "…")));
      if (x.replay_of) head.append(el("span", "badge", `replay of #${x.replay_of}`));
    }
    card.append(head);
    if (x) card.append(el("div", "side-url", x.url)); // a captured URL is text, never a link
    sides.append(card);
  }
  view.append(sides);

  const differing = [];
  if (Object.values(diff.request_line).some((pair) => pair !== null)) differing.push("request line");
  if (diff.status.changed || diff.status.reason || diff.status.error) differing.push("status");
  for (const [key, name] of [["request_headers", "request headers"], ["response_headers", "response headers"]]) {
    const h = diff[key];
    if (h.added.length || h.removed.length || h.changed.length) differing.push(name);
  }
  for (const [key, name] of [["request_body", "request body"], ["response_body", "response body"]]) {
    const body = diff[key];
    if (!["none", "same"].includes(body.kind) && !(body.kind === "json" && !body.changes.length)) differing.push(name);
  }
  if (diff.same) view.append(el("p", "diff-banner same", "Identical apart from noise"));
  else view.append(el("p", "diff-banner differs", `Differences in: ${differing.join(", ")}`));

  view.append(
    requestLineSection(diff.request_line),
    statusSection(diff.status),
    headersSection("Request headers", "request-headers-diff", diff.request_headers, xa?.request_headers, xb?.request_headers),
    headersSection("Response headers", "response-headers-diff", diff.response_headers, xa?.response_headers, xb?.response_headers),
    bodySection("Request body", "request-body-diff", diff.request_body),
    bodySection("Response body", "response-body-diff", diff.response_body),
    timingSection(diff.timing),
  );
  container.append(view);
  return view;
}

function requestLineSection(line) {
  const node = section("Request line", "request-line-diff");
  const changed = Object.entries(line).filter(([, pair]) => pair !== null);
  if (!changed.length) {
    node.append(el("p", "note", "Same method, URL and HTTP version."));
    return node;
  }
  const t = table("pairs", ["", "A", "B"]);
  const labels = { method: "Method", url: "URL", http_version: "HTTP version" };
  for (const [key, [a, b]] of changed) {
    t.tBodies[0].append(row("d-changed", [el("th", null, labels[key] ?? key), valueCell(a ?? "—", "old"), valueCell(b ?? "—", "new")]));
  }
  node.append(t);
  return node;
}

function statusSection(status) {
  const node = section("Status", "status-diff");
  if (!status.changed && !status.reason && !status.error) {
    node.append(el("p", "note", `Same status: ${status.a ?? "no response"}.`));
    return node;
  }
  const t = table("pairs", ["", "A", "B"]);
  const body = t.tBodies[0];
  body.append(row(status.changed ? "d-changed" : "", [el("th", null, "Status"),
    valueCell(status.a ?? "—", "old"), valueCell(status.b ?? "—", "new")]));
  if (status.reason) {
    body.append(row("d-changed", [el("th", null, "Reason"), valueCell(status.reason[0] ?? "—", "old"),
      valueCell(status.reason[1] ?? "—", "new")]));
  }
  if (status.error) {
    body.append(row("d-changed", [el("th", null, "Error"), valueCell(errorText(status.error[0]), "old"),
      valueCell(errorText(status.error[1]), "new")]));
  }
  node.append(t);
  return node;
}

function valuesOf(headers, name) {
  if (!headers) return null;
  return headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/** "1 added, 2 changed" for a headers section's title; "same" when nothing differs. */
export function headerCounts(h) {
  const parts = [[h.added.length, "added"], [h.changed.length, "changed"], [h.removed.length, "removed"]]
    .filter(([n]) => n).map(([n, word]) => `${n} ${word}`);
  return parts.length ? parts.join(", ") : "same";
}

/** A header name with what happened to it, in words (not only a colour). */
function nameCell(name, op) {
  const th = el("th", null, name);
  th.append(el("span", `d-op d-op-${op}`, op));
  return th;
}

function headersSection(title, className, h, aHeaders, bHeaders) {
  const count = h.added.length + h.removed.length + h.changed.length;
  const node = section(`${title} (${headerCounts(h)})`, `headers-diff ${className}`);
  if (count) {
    const t = table("headers-table", ["Name", "A", "B"]);
    const body = t.tBodies[0];
    for (const change of h.changed) {
      body.append(row("d-changed", [nameCell(change.name, "changed"), valueCell(change.a.join("\n"), "old"),
        valueCell(change.b.join("\n"), "new")]));
    }
    for (const [name, value] of h.removed) body.append(row("d-removed", [nameCell(name, "removed"), valueCell(value, "old"), absentCell()]));
    for (const [name, value] of h.added) body.append(row("d-added", [nameCell(name, "added"), absentCell(), valueCell(value, "new")]));
    node.append(t);
  } else {
    node.append(el("p", "note", "No differences."));
  }
  if (h.noise.length) {
    const toggle = el("button", "noise-toggle");
    toggle.type = "button";
    const n = h.noise.length;
    const label = (shown) => `${shown ? "hide" : "show"} ${n} noise header${n === 1 ? "" : "s"}`;
    toggle.textContent = label(false);
    toggle.setAttribute("aria-expanded", "false");
    const noise = table("headers-table noise-headers", ["Name", "A", "B"]);
    noise.hidden = true;
    for (const name of h.noise) {
      const a = valuesOf(aHeaders, name);
      const b = valuesOf(bHeaders, name);
      noise.tBodies[0].append(row("d-noise", [el("th", null, name),
        a === null ? valueCell("differs", "old") : a.length ? valueCell(a.join("\n"), "old") : absentCell(),
        b === null ? valueCell("differs", "new") : b.length ? valueCell(b.join("\n"), "new") : absentCell()]));
    }
    toggle.addEventListener("click", () => {
      noise.hidden = !noise.hidden;
      toggle.textContent = label(!noise.hidden);
      toggle.setAttribute("aria-expanded", String(!noise.hidden));
    });
    toggle.title = "Headers that differ on every request (Date, Content-Length, request ids, …)";
    node.append(toggle, noise);
  }
  return node;
}

function bodySection(title, className, body) {
  const node = section(title, `body-diff ${className}`);
  node.dataset.kind = body.kind;
  if (body.truncated) {
    node.append(el("p", "truncated warning", "Truncated at capture: only the kept bytes were compared."));
  }
  if (body.kind === "none") node.append(el("p", "note", "No body on either side."));
  else if (body.kind === "same") node.append(el("p", "note", "Same body."));
  else if (body.kind === "json") node.append(...jsonChanges(body));
  else if (body.kind === "text") node.append(...textChanges(body));
  else if (body.kind === "binary") node.append(el("p", "note", "Binary bodies differ."), hashes(body.a, body.b));
  else node.append(el("p", "note", `(${body.kind})`));
  return node;
}

function jsonChanges(body) {
  const out = [];
  if (!body.changes.length) out.push(el("p", "note", "Same JSON (apart from ignored keys)."));
  else {
    const t = table("json-changes", ["Path", "A", "B"]);
    for (const change of body.changes) {
      const op = ["changed", "added", "removed"].includes(change.op) ? change.op : "changed";
      const a = "a" in change ? valueCell(jsonText(change.a), "old") : absentCell();
      const b = "b" in change ? valueCell(jsonText(change.b), "new") : absentCell();
      const path = el("th", "json-path", change.path);
      path.title = op;
      path.append(el("span", `d-op d-op-${op}`, op));
      t.tBodies[0].append(row(`d-${op}`, [path, a, b]));
    }
    out.push(t);
  }
  if (body.ignored && body.ignored.length) {
    out.push(el("p", "note", `Ignored: ${body.ignored.join(", ")}`));
  }
  if (body.truncated_output) out.push(el("p", "note", "Only the first changes are listed."));
  return out;
}

function textChanges(body) {
  if (body.too_large) {
    return [el("p", "note", "Too large to compare line by line."), hashes(body.a, body.b)];
  }
  const t = el("table", "diff-table text-diff");
  const head = el("thead");
  const headRow = el("tr");
  headRow.append(el("th", "ln", ""), el("th", null, "A"), el("th", "ln", ""), el("th", null, "B"));
  head.append(headRow);
  const tbody = el("tbody");
  t.append(head, tbody);
  for (const hunk of body.hunks || []) {
    const separator = el("tr", "hunk-head");
    const cell = el("td", null, `@@ A line ${hunk.a_start}, B line ${hunk.b_start}`);
    cell.colSpan = 4;
    separator.append(cell);
    tbody.append(separator);
    let aLine = hunk.a_start;
    let bLine = hunk.b_start;
    let removed = [];
    let added = [];
    const flush = () => {
      for (let i = 0; i < Math.max(removed.length, added.length); i++) {
        const tr = el("tr", "d-text");
        const left = removed[i];
        const right = added[i];
        tr.append(el("td", "ln", left !== undefined ? aLine++ : ""),
          el("td", `line ${left !== undefined ? "old" : "empty"}`, left ?? ""),
          el("td", "ln", right !== undefined ? bLine++ : ""),
          el("td", `line ${right !== undefined ? "new" : "empty"}`, right ?? ""));
        tbody.append(tr);
      }
      removed = [];
      added = [];
    };
    for (const line of hunk.lines) {
      if (line.op === "-") removed.push(line.text);
      else if (line.op === "+") added.push(line.text);
      else {
        flush();
        const tr = el("tr", "d-context");
        tr.append(el("td", "ln", aLine++), el("td", "line", line.text), el("td", "ln", bLine++), el("td", "line", line.text));
        tbody.append(tr);
      }
    }
    flush();
  }
  const out = [t];
  if (body.truncated_output) out.push(el("p", "note", "Only the first lines of the difference are shown."));
  return out;
}

function hashes(a, b) {
  const t = table("pairs", ["", "A", "B"]);
  const size = (side) => (side ? `${side.size.toLocaleString()} bytes (${formatSize(side.size)})` : "(no body)");
  const hash = (side) => (side ? side.sha256 : "—");
  t.tBodies[0].append(
    row("", [el("th", null, "Size"), valueCell(size(a), "old"), valueCell(size(b), "new")]),
    row("", [el("th", null, "SHA-256"), valueCell(hash(a), "old hash"), valueCell(hash(b), "new hash")]),
  );
  return t;
}

/** Is a timing change worth a colour? Only beyond noise: |Δ| ≥ 1 ms and ≥ 10% of the slower
 * side (a 0.1 ms or a 3% wobble is how the same call varies). */
export function timingNoticeable(a, b, delta) {
  if (delta === null || delta === undefined || !Number.isFinite(delta)) return false;
  const base = Math.max(Math.abs(a ?? 0), Math.abs(b ?? 0));
  return Math.abs(delta) >= Math.max(1, 0.1 * base);
}

function timingSection(timing) {
  const node = section("Timings", "timing-diff");
  const t = table("timings", ["Phase", "A", "B", "Δ"]);
  for (const [key, label] of TIMINGS) {
    const value = timing[key] || {};
    const delta = value.delta;
    let deltaText = "–";
    let deltaClass = "";
    if (delta !== null && delta !== undefined) {
      deltaText = `${delta > 0 ? "+" : delta < 0 ? "−" : "±"}${formatDuration(Math.abs(delta))}`;
      if (timingNoticeable(value.a, value.b, delta)) deltaClass = delta > 0 ? "slower" : "faster";
    }
    const show = (ms) => (ms === null || ms === undefined ? "–" : formatDuration(ms));
    t.tBodies[0].append(row(key === "duration_ms" ? "total" : "", [el("th", null, label),
      el("td", "ms", show(value.a)), el("td", "ms", show(value.b)), el("td", `ms delta ${deltaClass}`.trim(), deltaText)]));
  }
  node.append(t);
  return node;
}
