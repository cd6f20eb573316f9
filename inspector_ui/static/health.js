// A service's health probes: the sparkline the services overview draws per row, and the
// history section of the service detail page (renderHealthHistory). Probe errors and
// service names come from the network: text only (el() sets textContent), never HTML.
// Styles: charts.css (every page that draws a sparkline imports it).
import { el, clear } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** "12 ms", "1.2 s"; "–" when there is no latency (the probe got no answer). */
export function formatLatency(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** How long ago an ISO time was, coarsely: "40s", "5m", "3h", "2d". */
export function formatAge(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/**
 * An SVG sparkline of probe latency, oldest left: up probes as a line, failed ones as a red
 * bar the full height (they have no meaningful latency). samples: [{t, ok, latency_ms}].
 */
export function sparkline(samples, { width = 160, height = 28 } = {}) {
  const svg = svgNode("svg", { class: "sparkline", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const failed = samples.filter((s) => !s.ok).length;
  const title = svgNode("title", {});
  title.textContent = samples.length
    ? `${samples.length} probes, ${failed} failed`
    : "no probes yet";
  svg.append(title);
  if (!samples.length) return svg;
  const step = samples.length > 1 ? (width - 2) / (samples.length - 1) : 0;
  const x = (i) => 1 + i * step;
  const latencies = samples.filter((s) => s.ok && s.latency_ms !== null).map((s) => s.latency_ms);
  const top = Math.max(1, ...latencies);
  const y = (ms) => height - 2 - (ms / top) * (height - 4);
  // Runs of answered probes become line segments; a failure ends the run and gets a red bar.
  const runs = [[]];
  samples.forEach((s, i) => {
    if (s.ok && s.latency_ms !== null) {
      runs[runs.length - 1].push(`${x(i).toFixed(1)},${y(s.latency_ms).toFixed(1)}`);
      return;
    }
    svg.append(svgNode("rect", { class: "down", x: Math.max(0, x(i) - 1), y: 0, width: 2, height }));
    runs.push([]);
  });
  for (const run of runs) {
    if (run.length === 1) {
      const [cx, cy] = run[0].split(",");
      svg.append(svgNode("circle", { class: "point", cx, cy, r: 1.5 }));
    } else if (run.length > 1) {
      svg.append(svgNode("polyline", { class: "latency", points: run.join(" ") }));
    }
  }
  return svg;
}

/**
 * Fill the detail page's <section id="health"> with the service's probes of the last hour
 * from /api/services/{name}/health: a sparkline, uptime, and the failures with their reasons.
 */
export async function renderHealthHistory(section, serviceName, realm, { since = "1h" } = {}) {
  const params = new URLSearchParams({ since });
  if (realm !== null && realm !== undefined) params.set("realm", realm);
  const url = `/api/services/${encodeURIComponent(serviceName)}/health?${params}`;
  section.hidden = false;
  // A refresh keeps what is shown until the new figures arrive (no flicker every 10 s).
  if (!section.firstChild) section.append(el("h2", null, "Health"), el("p", "note", "loading…"));
  let body;
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error(typeof problem?.detail === "string" ? problem.detail : `HTTP ${response.status}`);
    }
    body = await response.json();
  } catch (error) {
    clear(section).append(el("h2", null, "Health"), el("p", "error", `Cannot load health probes: ${error.message}`));
    return;
  }
  const samples = body.samples;
  const up = samples.filter((s) => s.ok).length;
  const summary = samples.length
    ? `${samples.length} probes in the last ${since}, ${(100 * up / samples.length).toFixed(1)}% up`
    : `No probes in the last ${since}.`;
  const failures = samples.filter((s) => !s.ok).slice(-20).reverse();
  const list = el("table", "health-failures");
  for (const s of failures) {
    list.append(el("tr", null, null,
      el("td", null, new Date(s.t).toLocaleString()),
      el("td", null, s.proxy),
      el("td", null, s.error || (s.status ? `HTTP ${s.status}` : "down"))));
  }
  // As wide as the section (its card on the service page), from the oldest probe to the newest.
  const width = Math.round(Math.min(1400, Math.max(240, (section.clientWidth || 504) - 24)));
  clear(section).append(el("h2", null, "Health"), el("p", "note", summary), sparkline(samples, { width, height: 48 }));
  if (failures.length) section.append(el("h3", null, "Recent failures"), list);
}
