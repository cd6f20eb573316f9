// A small line/area chart in hand-written SVG: time on x, one or more series on y, axes with
// round ticks, a hover readout. No library. Colours come from CSS (classes on the SVG parts,
// app.css variables), so light and dark follow the page; no inline style attribute (the CSP
// forbids them). Values may be null: the line breaks there.

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
 *            label: accessible name, max: y maximum instead of the data's (e.g. 1 for a rate) }
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
      const runs = [];
      let run = [];
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          if (run.length) runs.push(run);
          run = [];
        } else run.push([x(times[i]), y(Math.min(v, yMax))]);
      });
      if (run.length) runs.push(run);
      for (const points of runs) {
        const line = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
        if (area && index === 0) {
          const last = points[points.length - 1];
          const fill = `${line}L${last[0].toFixed(1)},${y(0).toFixed(1)}L${points[0][0].toFixed(1)},${y(0).toFixed(1)}Z`;
          root.append(svg("path", { d: fill }, `chart-area ${s.className}`));
        }
        root.append(svg("path", { d: line }, `chart-line ${s.className}`));
        if (points.length === 1) root.append(svg("circle", { cx: points[0][0], cy: points[0][1], r: 2.5 }, `chart-dot ${s.className}`));
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
    const { series, times, format } = chart.options;
    if (index < 0) return hideReadout();
    const cx = chart.x(times[index]);
    chart.cursor.setAttribute("x1", cx);
    chart.cursor.setAttribute("x2", cx);
    chart.cursor.setAttribute("visibility", "visible");
    const lines = [new Date(times[index]).toLocaleString()];
    for (const s of series) {
      const v = s.values[index];
      lines.push(`${s.name}: ${v === null || v === undefined ? "–" : format(v)}`);
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
