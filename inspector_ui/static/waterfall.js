// A trace as a waterfall: one row per call in tree order (storage.traces' `nodes`), indented by
// depth, with a bar on a shared time axis. Used by the trace page and by a shared trace.
// Captured values (service, path, ...) are text only; bars are placed through CSS custom
// properties set with style.setProperty, which the strict CSP allows (no inline style).
import { el, clear } from "./dom.js";
import { formatDuration } from "./format.js";

/** "1.20 s", with a nice round step for axis ticks: 1, 2 or 5 times a power of ten (ms). */
export function tickStep(totalMs, wanted = 6) {
  if (!(totalMs > 0)) return 1;
  const raw = totalMs / wanted;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (factor * power >= raw) return factor * power;
  return 10 * power;
}

function percent(value, total) {
  return total > 0 ? Math.min(100, Math.max(0, (value / total) * 100)) : 0;
}

function statusLabel(node) {
  if (node.status !== null && node.status !== undefined) return String(node.status);
  return node.error_kind || "…";
}

function statusClassOf(node) {
  if (node.error_kind || node.status === null || node.status === undefined) return "serr";
  const hundreds = Math.floor(node.status / 100);
  return hundreds >= 1 && hundreds <= 5 ? `s${hundreds}xx` : "serr";
}

/** A replay kept in its original's trace (and the calls it made): how much later it ran, or null. */
function keptShift(node) {
  return node.replay_shift_ms === null || node.replay_shift_ms === undefined ? null : node.replay_shift_ms;
}

/** Where a row's bar starts: a kept replay's from the start of what it replays. */
function drawnOffset(node) {
  return node.offset_ms - (keptShift(node) || 0);
}

/** Labels that say what kind of call a row is: retry, fault, replay, slowest, failed. */
function badges(node) {
  const out = [];
  if (node.retry) out.push(el("span", "tw-badge tw-retry", `retry ${node.attempt}`));
  if (node.fault) {
    const fault = el("span", "tw-badge tw-fault", `fault ${node.fault}`);
    fault.title = "An injected fault rule touched this call";
    out.push(fault);
  }
  if (node.mock) {
    const mock = el("span", "tw-badge tw-mock", `mock ${node.mock}`);
    mock.title = "A simulated service's recording answered this call";
    out.push(mock);
  }
  if (node.replay_of !== null && node.replay_of !== undefined) out.push(el("span", "tw-badge tw-replay", `replay of #${node.replay_of}`));
  if (node.link === "replay" && keptShift(node) !== null) {
    const later = el("span", "tw-badge tw-later", `${formatDuration(keptShift(node))} later`);
    later.title = `Ran ${formatDuration(keptShift(node))} after what it replays; drawn from its start`;
    out.push(later);
  }
  if (node.slowest) out.push(el("span", "tw-badge tw-slowest", "slowest"));
  if (node.failed) out.push(el("span", "tw-badge tw-failed", "failed"));
  return out;
}

function axis(totalMs) {
  const row = el("div", "tw-axis");
  row.setAttribute("aria-hidden", "true");
  row.append(el("div", "tw-axis-label", "Call"));
  const scale = el("div", "tw-axis-scale");
  const step = tickStep(totalMs);
  for (let at = 0; at <= totalMs + step / 1000; at += step) {
    const tick = el("span", "tw-tick", at === 0 ? "0" : formatDuration(at));
    tick.style.setProperty("--at", `${percent(at, totalMs)}%`);
    scale.append(tick);
  }
  row.append(scale);
  return row;
}

/**
 * Draw `trace` into `container`. onSelect(node) runs on click and Enter; the rows are a
 * keyboard tree (Up/Down, Left/Right collapse and expand, Home/End).
 */
export function renderWaterfall(container, trace, { onSelect } = {}) {
  clear(container);
  // A kept replay is drawn from its original's start: it may reach past the trace's own end.
  const total = Math.max(trace.duration_ms || 0, 0.001,
    ...trace.nodes.filter((node) => keptShift(node) !== null).map((node) => drawnOffset(node) + node.duration_ms));
  const tree = el("div", "tw-rows");
  tree.setAttribute("role", "tree");
  tree.setAttribute("aria-label", "Calls of this trace, in order");
  const collapsed = new Set();
  const rows = [];

  trace.nodes.forEach((node) => {
    const row = el("div", "tw-row");
    row.setAttribute("role", "treeitem");
    row.setAttribute("aria-level", String(node.depth + 1));
    row.id = `tw-row-${node.exchange_id}`;
    row.dataset.exchangeId = String(node.exchange_id);
    row.dataset.depth = String(node.depth);
    row.tabIndex = -1;
    if (node.failed) row.classList.add("tw-failed-row");
    if (node.slowest) row.classList.add("tw-slowest-row");
    if (node.critical) row.classList.add("tw-critical-row");
    if (keptShift(node) !== null) row.classList.add("tw-kept-replay-row");
    row.style.setProperty("--depth", String(Math.min(node.depth, 30)));

    const toggle = el("span", "tw-toggle", node.child_count ? "▾" : "");
    toggle.setAttribute("aria-hidden", "true");
    if (node.child_count) {
      row.setAttribute("aria-expanded", "true");
      toggle.addEventListener("click", (event) => {
        event.stopPropagation();
        setCollapsed(node, !collapsed.has(node.exchange_id));
      });
    }
    const who = node.caller ? `${node.caller} → ${node.service || "?"}` : node.service || node.host || "?";
    const label = el("div", "tw-label", null,
      toggle,
      el("span", "tw-service", who),
      el("span", "tw-method", node.method),
      el("span", "tw-path", node.path),
      el("span", `tw-status ${statusClassOf(node)}`, statusLabel(node)),
      ...badges(node));
    label.title = `${node.method} ${node.path}`;

    const lane = el("div", "tw-lane");
    const bar = el("span", "tw-bar");
    bar.style.setProperty("--offset", `${percent(drawnOffset(node), total)}%`);
    bar.style.setProperty("--width", `${Math.max(percent(node.duration_ms, total), 0.2)}%`);
    // After the bar's end; the lane keeps a margin on its right for the last one.
    const timing = el("span", "tw-duration", formatDuration(node.duration_ms));
    timing.style.setProperty("--offset", `${percent(drawnOffset(node) + node.duration_ms, total)}%`);
    lane.append(bar, timing);
    row.append(label, lane);
    row.setAttribute("aria-label",
      `${who} ${node.method} ${node.path}, ${statusLabel(node)}, ${formatDuration(node.duration_ms)} at +${formatDuration(node.offset_ms)}`
      + `${node.failed ? ", failed" : ""}${node.slowest ? ", slowest" : ""}${node.retry ? `, retry ${node.attempt}` : ""}`
      + `${node.replay_of !== null && node.replay_of !== undefined ? `, replay of #${node.replay_of}` : ""}`
      + `${keptShift(node) !== null ? `, ran ${formatDuration(keptShift(node))} after what it replays` : ""}`);
    row.addEventListener("click", () => select(row, node));
    rows.push({ row, node, toggle });
    tree.append(row);
  });

  function visibleRows() {
    return rows.filter((entry) => !entry.row.hidden);
  }

  function setCollapsed(node, collapse) {
    if (collapse) collapsed.add(node.exchange_id);
    else collapsed.delete(node.exchange_id);
    let hideBelow = null; // depth under which rows are hidden by a collapsed ancestor
    for (const entry of rows) {
      const depth = entry.node.depth;
      if (hideBelow !== null && depth <= hideBelow) hideBelow = null;
      entry.row.hidden = hideBelow !== null;
      if (entry.node.child_count) {
        const closed = collapsed.has(entry.node.exchange_id);
        entry.row.setAttribute("aria-expanded", String(!closed));
        entry.toggle.textContent = closed ? "▸" : "▾";
        if (closed && hideBelow === null) hideBelow = depth;
      }
    }
  }

  function focusRow(row) {
    for (const entry of rows) entry.row.tabIndex = -1;
    row.tabIndex = 0;
    row.focus();
  }

  function select(row, node) {
    for (const entry of rows) entry.row.setAttribute("aria-selected", String(entry.row === row));
    focusRow(row);
    if (onSelect) onSelect(node);
  }

  tree.addEventListener("keydown", (event) => {
    const visible = visibleRows();
    const index = visible.findIndex((entry) => entry.row === document.activeElement);
    if (index < 0) return;
    const { node } = visible[index];
    let target = null;
    if (event.key === "ArrowDown") target = visible[index + 1];
    else if (event.key === "ArrowUp") target = visible[index - 1];
    else if (event.key === "Home") target = visible[0];
    else if (event.key === "End") target = visible[visible.length - 1];
    else if (event.key === "ArrowRight") {
      if (node.child_count && collapsed.has(node.exchange_id)) setCollapsed(node, false);
      else if (node.child_count) target = visible[index + 1];
    } else if (event.key === "ArrowLeft") {
      if (node.child_count && !collapsed.has(node.exchange_id)) setCollapsed(node, true);
      else if (node.parent_id !== null) target = visible.find((entry) => entry.node.exchange_id === node.parent_id);
    } else if (event.key === "Enter" || event.key === " ") {
      select(visible[index].row, node);
    } else return;
    event.preventDefault();
    if (target) focusRow(target.row);
  });

  if (rows.length) rows[0].row.tabIndex = 0;
  container.append(axis(total), tree);
}

/** "Who called whom": caller service -> service, calls and failures. */
export function renderEdges(container, trace) {
  clear(container);
  if (!trace.edges.length) {
    container.append(el("p", "note", "No service-to-service calls were recognised (no caller named, no parent call)."));
    return;
  }
  const table = el("table", "tw-edges");
  const head = el("tr", null, null, el("th", null, "Caller"), el("th", null, "Service"), el("th", null, "Calls"),
    el("th", null, "Failed"));
  for (const cell of head.children) cell.scope = "col";
  table.append(el("caption", null, "Who called whom"), el("thead", null, null, head));
  const body = el("tbody");
  for (const edge of trace.edges) {
    const errors = el("td", edge.errors ? "tw-edge-errors" : null, String(edge.errors));
    body.append(el("tr", null, null, el("td", null, edge.caller), el("td", null, edge.service),
      el("td", null, String(edge.calls)), errors));
  }
  table.append(body);
  container.append(table);
}

/** The facts under a trace's title: start, duration, services, exchanges, errors. */
export function traceFacts(trace) {
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const facts = [
    trace.start ? new Date(trace.start).toLocaleString() : "",
    formatDuration(trace.duration_ms),
    plural(trace.services.length, "service"),
    plural(trace.exchange_count, "exchange"),
    plural(trace.error_count, "error"),
    trace.replay_count ? `${trace.replay_count} kept replay${trace.replay_count === 1 ? "" : "s"} (not in the duration)` : "",
  ];
  return facts.filter(Boolean).join(" · ");
}
