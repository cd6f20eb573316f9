// The Services page's dependency graph, drawn as SVG with DOM calls (no library, no markup
// strings): callers on the left, what they call to their right, one column per layer.
// Edges come from /api/services/graph: declared (dashed), observed in traffic (solid) or both
// (thick); an edge seen but not declared, or declared but not seen, is coloured and labelled.
// Names come from heartbeats and traffic: they are only ever text.

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 168;
const NODE_H = 38;
const GAP_X = 96;
const GAP_Y = 22;
const MARGIN = 16;
const NAME_CHARS = 20; // longer names are cut in the box; the full name is the node's tooltip
const FLAG_TEXT = { undeclared: "undeclared", unseen: "unseen" };
const MARKERS = ["both", "declared", "observed", "undeclared", "unseen"];

function svg(tag, className, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  if (className) node.setAttribute("class", className);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function titled(node, text) {
  const title = svg("title");
  title.textContent = text;
  node.append(title);
  return node;
}

/** Each node's column: 0 for nodes nothing calls, else one right of its rightmost caller.
 * Cycles cannot push a node beyond the last column (at most nodes.length - 1). */
export function layers(names, edges) {
  const layer = new Map(names.map((name) => [name, 0]));
  for (let round = 0; round < names.length; round += 1) {
    let changed = false;
    for (const edge of edges) {
      if (edge.caller === edge.service || !layer.has(edge.caller) || !layer.has(edge.service)) continue;
      const wanted = layer.get(edge.caller) + 1;
      if (wanted < names.length && layer.get(edge.service) < wanted) {
        layer.set(edge.service, wanted);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

/** Box positions: {name: {x, y}}, and the drawing's size. */
export function layout(names, edges) {
  const layer = layers(names, edges);
  const columns = [];
  for (const name of [...names].sort()) {
    const column = layer.get(name);
    (columns[column] ??= []).push(name);
  }
  const at = new Map();
  let rows = 0;
  columns.forEach((column, i) => {
    (column ?? []).forEach((name, row) => at.set(name, { x: MARGIN + i * (NODE_W + GAP_X), y: MARGIN + row * (NODE_H + GAP_Y) }));
    rows = Math.max(rows, column?.length ?? 0);
  });
  const width = MARGIN * 2 + Math.max(columns.length, 1) * NODE_W + Math.max(columns.length - 1, 0) * GAP_X;
  const height = MARGIN * 2 + Math.max(rows, 1) * NODE_H + Math.max(rows - 1, 0) * GAP_Y;
  return { at, width, height };
}

function edgePath(from, to) {
  if (from === to) { // a service calling itself: a loop over its box
    const x = from.x + NODE_W - 28;
    return `M ${x} ${from.y} C ${x - 10} ${from.y - 30}, ${x + 30} ${from.y - 30}, ${x + 18} ${from.y}`;
  }
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_H / 2;
  const bend = Math.max(40, Math.abs(x2 - x1) / 2);
  return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2 - 2} ${y2}`;
}

function edgeText(edge, since) {
  const how = {
    both: "declared and seen in traffic",
    declared: `declared, not seen in traffic in the last ${since}`,
    observed: edge.flag === "undeclared" ? `seen in traffic, not declared by ${edge.caller}` : "seen in traffic",
  }[edge.kind];
  const calls = edge.requests ? `; ${edge.requests} request${edge.requests === 1 ? "" : "s"}, ${edge.errors} failed` : "";
  return `${edge.caller} → ${edge.service}: ${how}${calls}`;
}

function markerDefs() {
  const defs = svg("defs");
  for (const kind of MARKERS) {
    const marker = svg("marker", `arrow arrow-${kind}`, {
      id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    });
    marker.append(svg("path", null, { d: "M 0 0 L 10 5 L 0 10 z" }));
    defs.append(marker);
  }
  return defs;
}

function nodeBox(node, place) {
  const state = node.state ?? "none";
  const known = node.configured || node.registered;
  const group = svg("g", `node state-${state}${known ? "" : " missing"}`, { transform: `translate(${place.x} ${place.y})` });
  group.dataset.name = node.name;
  group.append(svg("rect", null, { width: NODE_W, height: NODE_H, rx: 6 }));
  const name = svg("text", "node-name", { x: 10, y: 16 });
  name.textContent = node.name.length > NAME_CHARS ? `${node.name.slice(0, NAME_CHARS - 1)}…` : node.name;
  const facts = [node.configured ? "configured" : null, node.registered ? `registered, ${node.state}` : null];
  const detail = svg("text", "node-detail", { x: 10, y: 30 });
  detail.textContent = known ? facts.filter(Boolean).join(" · ") : "not running here";
  group.append(name, detail);
  return titled(group, `${node.name}: ${detail.textContent}`);
}

/** Replace `container`'s content with the graph of `body` (an /api/services/graph answer). */
export function renderGraph(container, body, since) {
  const names = body.nodes.map((node) => node.name);
  const { at, width, height } = layout(names, body.edges);
  const drawing = svg("svg", "dependency-graph", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  titled(drawing, `Dependencies: ${body.edges.length} edge${body.edges.length === 1 ? "" : "s"} between ${names.length} services`);
  drawing.append(markerDefs());
  const edges = svg("g", "edges");
  for (const edge of body.edges) {
    const look = edge.flag ?? edge.kind;
    const group = svg("g", `edge kind-${edge.kind}${edge.flag ? ` flag-${edge.flag}` : ""}`);
    group.dataset.caller = edge.caller;
    group.dataset.service = edge.service;
    const from = at.get(edge.caller);
    const to = at.get(edge.service);
    group.append(svg("path", "edge-line", { d: edgePath(from, to), "marker-end": `url(#arrow-${look})` }));
    if (edge.flag) {
      const label = svg("text", "edge-label", {
        x: (from.x + NODE_W + to.x) / 2, y: (from.y + to.y + NODE_H) / 2 - 4, "text-anchor": "middle",
      });
      label.textContent = FLAG_TEXT[edge.flag] ?? edge.flag;
      group.append(label);
    }
    edges.append(titled(group, edgeText(edge, since)));
  }
  const nodes = svg("g", "nodes");
  for (const node of body.nodes) nodes.append(nodeBox(node, at.get(node.name)));
  drawing.append(edges, nodes);
  container.replaceChildren(drawing);
}

/** The flagged edges as sentences, for the list under the drawing. */
export function flaggedEdges(body, since) {
  return body.edges.filter((edge) => edge.flag).map((edge) => ({ flag: edge.flag, text: edgeText(edge, since) }));
}
