// One API test run (/test-runs/<id>): its header (test, monitor, realm, source, verdict, when,
// how long, its trace) and each step: the request line, status, duration, attempts, error,
// captures and every assert with what was expected and what came back, linked to the step's
// exchange and to the trace. From GET /api/test-runs/<id>. Asserts and captures hold captured
// text (and secrets arrive already replaced by [secret:NAME]): text only, via dom.js.
import { bindThemeToggle, el, clear } from "./dom.js";
import { getJson } from "./api.js";
import { formatDuration } from "./format.js";

const $ = (id) => document.getElementById(id);

/** The run id from /test-runs/<id>; null when the address holds none. */
function runIdFromLocation() {
  const match = /^\/test-runs\/([1-9][0-9]{0,17})\/?$/.exec(location.pathname);
  return match ? match[1] : null;
}

function traceHref(traceId) {
  return `/traces/${encodeURIComponent(traceId)}`;
}

function exchangeHref(id) {
  return `/?id=${encodeURIComponent(id)}`;
}

function verdict(passed) {
  return el("span", `verdict ${passed ? "passed" : "failed"}`, passed ? "passed" : "failed");
}

function fact(list, term, ...values) {
  const dd = el("dd");
  for (const value of values) dd.append(typeof value === "string" ? document.createTextNode(value) : value);
  list.append(el("dt", null, term), dd);
}

function renderHead(run) {
  const head = clear($("run-head"));
  const title = el("h1", null, null, verdict(run.passed), el("span", "run-test", run.test));
  head.append(title);
  document.title = `${run.passed ? "✓" : "✗"} ${run.test} · Test run · Passageway`;
  const facts = el("dl", "run-facts");
  if (run.monitor) {
    const monitor = el("a", "run-monitor", run.monitor);
    monitor.href = "/monitors";
    fact(facts, "Monitor", monitor);
  }
  fact(facts, "File", run.file);
  fact(facts, "Realm", run.realm ?? "default");
  fact(facts, "Source", run.source);
  const started = new Date(run.started_at);
  fact(facts, "Started", Number.isNaN(started.getTime()) ? String(run.started_at) : started.toLocaleString());
  fact(facts, "Duration", formatDuration(run.duration_ms));
  if (run.trace_id) {
    const trace = el("a", "run-trace", run.trace_id);
    trace.href = traceHref(run.trace_id);
    trace.title = "The run's trace: every step and the calls it caused";
    fact(facts, "Trace", trace);
  }
  head.append(facts);
  if (run.error) {
    const problem = el("p", "run-error", `Could not run: ${run.error}`);
    problem.setAttribute("role", "alert");
    head.append(problem);
  }
}

function capturesList(captures) {
  const names = Object.keys(captures || {});
  if (!names.length) return null;
  const table = el("table", "captures");
  table.append(el("caption", null, "Captures"));
  const body = el("tbody");
  for (const name of names) body.append(el("tr", null, null, el("th", null, name), el("td", "mono", captures[name])));
  table.append(body);
  return table;
}

function assertsTable(asserts) {
  if (!asserts || !asserts.length) return el("p", "note", "No asserts.");
  const table = el("table", "asserts");
  const head = el("tr");
  for (const text of ["Line", "Assert", "Expected", "Actual", "Result"]) {
    const th = el("th", null, text);
    th.scope = "col";
    head.append(th);
  }
  table.append(el("thead", null, null, head));
  const body = el("tbody");
  for (const a of asserts) {
    const tr = el("tr", a.passed ? "assert passed" : "assert failed");
    const result = el("td", "result", null, verdict(a.passed));
    if (a.message) result.append(el("div", "assert-message", a.message));
    tr.append(
      el("td", "line", `${a.line}${a.column ? `:${a.column}` : ""}`),
      el("td", "text mono", a.text),
      el("td", "expected mono", a.expected),
      el("td", "actual mono", a.actual),
      result,
    );
    body.append(tr);
  }
  table.append(body);
  return table;
}

function stepPassed(step) {
  return !step.error && (step.asserts || []).every((a) => a.passed);
}

function renderStep(step, run) {
  const passed = stepPassed(step);
  const section = el("section", `step ${passed ? "passed" : "failed"}`);
  section.dataset.index = String(step.index);
  const status = step.status === null || step.status === undefined ? "no answer" : String(step.status);
  const header = el("h2", "step-line", null,
    el("span", "step-number", `${step.index + 1}.`),
    el("span", "step-method", step.method),
    el("span", "step-url mono", step.url));
  section.append(header);
  const facts = el("div", "step-facts");
  facts.append(
    el("span", `step-status ${passed ? "" : "bad"}`.trim(), status),
    el("span", "step-duration", step.duration_ms === null || step.duration_ms === undefined ? "–" : formatDuration(step.duration_ms)),
    el("span", "step-attempts", `${step.attempts} attempt${step.attempts === 1 ? "" : "s"}`),
    el("span", "step-where", `line ${step.line}`),
  );
  if (step.exchange_id !== null && step.exchange_id !== undefined) {
    const link = el("a", "step-exchange", `exchange #${step.exchange_id}`);
    link.href = exchangeHref(step.exchange_id);
    facts.append(link);
  } else {
    facts.append(el("span", "note step-no-exchange", "exchange not captured (yet)"));
  }
  if (run.trace_id) {
    const trace = el("a", "step-trace", "trace");
    trace.href = traceHref(run.trace_id);
    trace.title = `span ${step.span_id}`;
    facts.append(trace);
  }
  section.append(facts);
  if (step.error) {
    const problem = el("p", "step-error", step.error);
    problem.setAttribute("role", "alert");
    section.append(problem);
  }
  const captures = capturesList(step.captures);
  if (captures) section.append(captures);
  section.append(assertsTable(step.asserts));
  return section;
}

function renderSteps(run) {
  const steps = clear($("run-steps"));
  if (!run.steps || !run.steps.length) {
    if (!run.error) steps.append(el("p", "note", "This test has no steps."));
    return;
  }
  for (const step of run.steps) steps.append(renderStep(step, run));
}

async function load() {
  const id = runIdFromLocation();
  if (id === null) {
    clear($("run-head")).append(el("p", "problem", "not a test run id in this address"));
    return;
  }
  let run;
  try {
    run = await getJson(`/api/test-runs/${id}`);
  } catch (error) {
    clear($("run-head")).append(el("p", "problem", error.status === 404 ? `no test run #${id}` : `Cannot load run #${id}: ${error.message}`));
    return;
  }
  renderHead(run);
  renderSteps(run);
}

bindThemeToggle($("theme-toggle"));

load();
