// A small line/area chart in hand-written SVG: time on x, one or more series on y, axes with
// round ticks, a hover readout. No library. Colours come from CSS (classes on the SVG parts,
// app.css variables), so light and dark follow the page; no inline style attribute (the CSP
// forbids them). Values may be null (an empty bucket: no traffic, so no rate or latency); how
// those are drawn is seriesShape's rule below. Styles: charts.css.

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { top: 10, right: 14, bottom: 24, left: 56 };

function svg(tag, attributes = {}, className = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (className) node.setAttribute("class", className);
  return node;
}

/** A y scale from 0 with round ticks (steps of 1, 2, 2.5 or 5 × 10^n) whose top tick is at or
 * above `high`: { max, ticks }. */
export function niceScale(high, count = 4) {
  if (!(high > 0)) return { max: 1, ticks: [0, 0.25, 0.5, 0.75, 1] };
  const raw = high / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const steps = Math.ceil(high / step - 1e-9);
  const ticks = Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toPrecision(12)));
  return { max: ticks[ticks.length - 1], ticks };
}

/** Empty buckets a dashed bridge may cross (with 60 buckets: up to a twelfth of the window). */
export const MAX_BRIDGED_GAP = 5;

/**
 * How to draw one series whose values may be null (a bucket with no traffic has no error rate
 * and no latency; it is not 0): what is honest to draw and what is not.
 * - runs: index lists of consecutive buckets with values, drawn as solid lines;
 * - bridges: [i, j] pairs, the last point of a run and the first of the next, when at most
 *   `maxGap` empty buckets lie between: a faint dashed line, so sparse traffic (a request a
 *   minute in 15 s buckets) still reads as a line, not as scattered dots, without claiming
 *   values where none were measured;
 * - longer gaps are a stretch with no traffic: left empty (the req/s chart shows it at 0);
 * - markers: indexes that get a dot: every point when the series is sparse (values in at most
 *   half the buckets, so each measured bucket can be seen), otherwise only lone points.
 * Pure: no DOM.
 */
export function seriesShape(values, { maxGap = MAX_BRIDGED_GAP } = {}) {
  const runs = [];
  let run = [];
  values.forEach((v, i) => {
    if (v === null || v === undefined || Number.isNaN(v)) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push(i);
  });
  if (run.length) runs.push(run);
  const bridges = [];
  for (let k = 1; k < runs.length; k++) {
    const from = runs[k - 1][runs[k - 1].length - 1];
    const to = runs[k][0];
    if (to - from - 1 <= maxGap) bridges.push([from, to]);
  }
  const measured = runs.reduce((n, r) => n + r.length, 0);
  const sparse = measured * 2 <= values.length;
  const markers = runs.filter((r) => sparse || r.length === 1).flat();
  return { runs, bridges, markers };
}

function timeLabel(ms, spanMs) {
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return spanMs > 2 * 86400e3 ? `${date.getMonth() + 1}/${date.getDate()} ${clock}` : clock;
}

/**
 * A chart in `container` (its previous content replaced).
 * options: { series: [{ name, className, values: [number|null] }], times: [ms epoch],
 *            format: (value) => string, area: bool (fill under the first series),
 *            label: accessible name, max: y maximum instead of the data's (e.g. 1 for a rate),
 *            emptyText: (index) => what the readout says for a null value (default "–") }
 * Returns { update(options) } to redraw in place (keeps hover working).
 */
export function lineChart(container, options) {
  const chart = { options };
  const root = svg("svg", { role: "img", preserveAspectRatio: "none" }, "chart");
  const readout = document.createElement("div");
  readout.className = "chart-readout";
  readout.hidden = true;
  container.replaceChildren(root, readout);

  function geometry() {
    const width = Math.max(container.clientWidth, 200);
    const height = Math.max(container.clientHeight, 120);
    return { width, height, plotWidth: width - MARGIN.left - MARGIN.right, plotHeight: height - MARGIN.top - MARGIN.bottom };
  }

  function draw() {
    const { series, times, format, area, label, max } = chart.options;
    const g = geometry();
    root.setAttribute("viewBox", `0 0 ${g.width} ${g.height}`);
    root.setAttribute("width", g.width);
    root.setAttribute("height", g.height);
    root.setAttribute("aria-label", label || "chart");
    root.replaceChildren();
    readout.hidden = true; // its point may be gone
    const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const scale = niceScale(max ?? (values.length ? Math.max(...values) : 0));
    const yMax = scale.max;
    const t0 = times.length ? times[0] : 0;
    const t1 = times.length > 1 ? times[times.length - 1] : t0 + 1;
    const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0 || 1)) * g.plotWidth;
    const y = (v) => MARGIN.top + g.plotHeight - (v / yMax) * g.plotHeight;
    chart.x = x;

    const axes = svg("g", {}, "chart-axes");
    for (const tick of scale.ticks) {
      axes.append(svg("line", { x1: MARGIN.left, x2: g.width - MARGIN.right, y1: y(tick), y2: y(tick) }, "chart-grid"));
      const text = svg("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, "chart-tick");
      text.textContent = format(tick);
      axes.append(text);
    }
    const timeTicks = Math.max(2, Math.floor(g.plotWidth / 110));
    for (let i = 0; i <= timeTicks && times.length > 1; i++) {
      const t = t0 + ((t1 - t0) * i) / timeTicks;
      const text = svg("text", { x: x(t), y: g.height - 6, "text-anchor": i === 0 ? "start" : i === timeTicks ? "end" : "middle" }, "chart-tick");
      text.textContent = timeLabel(t, t1 - t0);
      axes.append(text);
    }
    axes.append(svg("line", { x1: MARGIN.left, x2: g.width - MARGIN.right, y1: y(0), y2: y(0) }, "chart-axis"));
    root.append(axes);

    series.forEach((s, index) => {
      const shape = seriesShape(s.values);
      const at = (i) => [x(times[i]), y(Math.min(s.values[i], yMax))];
      const path = (indexes) => indexes.map((i, n) => `${n ? "L" : "M"}${at(i)[0].toFixed(1)},${at(i)[1].toFixed(1)}`).join("");
      for (const run of shape.runs) {
        if (area && index === 0 && run.length > 1) {
          const first = at(run[0]);
          const last = at(run[run.length - 1]);
          const fill = `${path(run)}L${last[0].toFixed(1)},${y(0).toFixed(1)}L${first[0].toFixed(1)},${y(0).toFixed(1)}Z`;
          root.append(svg("path", { d: fill }, `chart-area ${s.className}`));
        }
        if (run.length > 1) root.append(svg("path", { d: path(run) }, `chart-line ${s.className}`));
      }
      for (const [from, to] of shape.bridges) root.append(svg("path", { d: path([from, to]) }, `chart-bridge ${s.className}`));
      for (const i of shape.markers) {
        const [cx, cy] = at(i);
        root.append(svg("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 3 }, `chart-dot ${s.className}`));
      }
    });

    chart.cursor = svg("line", { y1: MARGIN.top, y2: MARGIN.top + g.plotHeight, x1: 0, x2: 0, visibility: "hidden" }, "chart-cursor");
    root.append(chart.cursor);
  }

  function nearestIndex(clientX) {
    const { times } = chart.options;
    if (!times.length) return -1;
    const box = root.getBoundingClientRect();
    const px = ((clientX - box.left) / box.width) * geometry().width;
    let best = 0;
    times.forEach((t, i) => {
      if (Math.abs(chart.x(t) - px) < Math.abs(chart.x(times[best]) - px)) best = i;
    });
    return best;
  }

  function showReadout(index) {
    const { series, times, format, emptyText } = chart.options;
    if (index < 0) return hideReadout();
    const cx = chart.x(times[index]);
    chart.cursor.setAttribute("x1", cx);
    chart.cursor.setAttribute("x2", cx);
    chart.cursor.setAttribute("visibility", "visible");
    const lines = [new Date(times[index]).toLocaleString()];
    for (const s of series) {
      const v = s.values[index];
      const empty = emptyText ? emptyText(index) : "–";
      lines.push(`${s.name}: ${v === null || v === undefined ? empty : format(v)}`);
    }
    readout.textContent = lines.join("\n");
    readout.hidden = false;
    readout.classList.toggle("chart-readout-left", cx > geometry().width / 2);
  }

  function hideReadout() {
    readout.hidden = true;
    chart.cursor.setAttribute("visibility", "hidden");
  }

  root.addEventListener("pointermove", (event) => showReadout(nearestIndex(event.clientX)));
  root.addEventListener("pointerleave", hideReadout);
  new ResizeObserver(() => draw()).observe(container);
  draw();

  return {
    update(next) {
      chart.options = next;
      draw();
    },
  };
}
