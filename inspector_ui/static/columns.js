// The exchange list's columns: what a cell shows, how the list sorts, which search term a cell
// adds. Pure: no DOM, no network (app.js draws; tests import this module in the browser).
import { clientStatus, errorLabel } from "./format.js";

/** The orders the list offers: a column header's data-sort, the API's `sort=`. */
export const SORTS = ["time", "duration", "size", "status"];

/** The status cell of a call: {text, code, kind, title}. `code` is what the client got
 * (format.js's clientStatus: the recorded status, or the proxy's own 502/504 for a failed call);
 * "—" when it got no answer (it went away, or the flow was killed). `kind` is the error kind
 * (null for a plain response); `title` says it in words. */
export function statusCell(summary) {
  const error = summary.error || null;
  const code = clientStatus(summary);
  const text = code === null ? (error ? "—" : "…") : String(code);
  if (!error) return { text, code, kind: null, title: "" };
  const got = code === null ? "the client got no answer" : `the client got ${code}`;
  const message = error.message ? `\n${error.message}` : "";
  return { text, code, kind: error.kind, title: `${error.kind}: ${errorLabel(error.kind)} (${got})${message}` };
}

/** "s2xx".."s5xx", or "serr" for a call that never got a status: the cell's colour class, by
 * what the client got (a 502 the proxy made is a 5xx). */
export function clientStatusClass(summary) {
  const code = clientStatus(summary);
  if (code === null) return "serr";
  const hundreds = Math.floor(code / 100);
  return hundreds >= 1 && hundreds <= 5 ? `s${hundreds}xx` : "serr";
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The time cell, in local time: "14:03:12.345" today, "Dec 2 14:03:12" another day
 * ("Dec 2 2025 14:03" another year). */
export function formatWhen(iso, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const sameDay = date.getFullYear() === now.getFullYear() && date.getMonth() === now.getMonth()
    && date.getDate() === now.getDate();
  if (sameDay) return `${clock}.${pad(date.getMilliseconds(), 3)}`;
  const day = `${MONTHS[date.getMonth()]} ${date.getDate()}`;
  if (date.getFullYear() !== now.getFullYear()) return `${day} ${date.getFullYear()} ${clock.slice(0, 5)}`;
  return `${day} ${clock}`;
}

/** A search value, quoted when the search language needs it (spaces, quotes, parentheses). */
export function quoteValue(value) {
  const text = String(value);
  if (text !== "" && /^[^\s"()]+$/.test(text)) return text;
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The search term a cell of `column` stands for, or null (nothing to filter on). */
export function cellTerm(column, summary) {
  if (column === "status") {
    if (summary.status !== null && summary.status !== undefined) return `status:${summary.status}`;
    return summary.error ? "is:error" : null;
  }
  if (column === "service") return summary.service ? `service:${quoteValue(summary.service)}` : null;
  if (column === "method") return summary.method ? `method:${quoteValue(summary.method)}` : null;
  if (column === "host") return summary.host ? `host:${quoteValue(summary.host)}` : null;
  return null;
}

/** `q` with `term` ANDed on (unchanged when it already holds the term). */
export function addTerm(q, term) {
  const current = q.trim();
  if (!current) return term;
  if (current.split(/\s+/).includes(term)) return current;
  return `${current} ${term}`;
}

/** The next state of a header click: the same column flips its order, another starts largest
 * (newest, slowest, biggest, highest) first. */
export function nextSort(current, column) {
  if (current.sort === column) return { sort: column, order: current.order === "desc" ? "asc" : "desc" };
  return { sort: column, order: "desc" };
}

/** Is `s` the list's default order (new rows arrive on top)? */
export function isLiveOrder(s) {
  return s.sort === "time" && s.order === "desc";
}

/** A search error's "did you mean" as the whole corrected search, or null: the parser says
 * `unknown field "stauts" (did you mean "status"?)` at the term's position; the field there
 * is replaced, the rest kept as typed. */
export function suggestedQuery(q, message, position) {
  const match = /\(did you mean "([^"]+)"\?\)/.exec(message || "");
  if (!match || !Number.isInteger(position) || position < 0 || position >= q.length) return null;
  let start = position;
  if (q[start] === "-") start += 1;
  const colon = q.indexOf(":", start);
  if (colon < 0 || /\s/.test(q.slice(start, colon))) return null;
  return q.slice(0, start) + match[1] + q.slice(colon);
}
