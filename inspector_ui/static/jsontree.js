// A JSON value as a foldable tree, built lazily: a folded node shows its size ([12 items],
// {4 keys}) and builds its children only when opened, 100 at a time; search runs over the value
// itself, so it finds matches in folded nodes too, and opens the way to the one shown.
import { el } from "./dom.js";
import { countIn, markHits, MAX_MATCHES } from "./textsearch.js";

export const CHUNK = 100; // children built per "show more"
const OPEN_BUDGET = 300; // entries shown at first, opening levels breadth-first while they fit

const isContainer = (value) => value !== null && typeof value === "object";

function sizeText(value) {
  const count = Array.isArray(value) ? value.length : Object.keys(value).length;
  const noun = Array.isArray(value) ? "item" : "key";
  return `${count.toLocaleString()} ${noun}${count === 1 ? "" : "s"}`;
}

export class JsonTree {
  constructor(value) {
    this.value = value;
    this.element = el("div", "json");
    this.nodes = new Map(); // path -> container controller (paths: "" root, "/3/0" by entry index)
    this.spans = new Map(); // path + "|k" (its key) or "|v" (a scalar) -> the span shown
    this.query = "";
    this.hits = new Map(); // span key -> its marks, per occurrence
    this.current = null;
    this.element.append(this.node("", null, value, true));
    this.openBreadthFirst();
  }

  /** One entry: a line for a scalar or an empty container, a <details> for the rest. */
  node(path, key, value, last) {
    const comma = last ? "" : ",";
    const head = [];
    if (key !== null) head.push(this.span(path, "k", "j-key", JSON.stringify(key)), document.createTextNode(": "));
    if (!isContainer(value)) {
      const type = value === null ? "null" : typeof value;
      const line = el("div", "j-line");
      line.append(...head, this.span(path, "v", `j-${type}`, JSON.stringify(value)), comma);
      return line;
    }
    const isArray = Array.isArray(value);
    const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
    const keys = isArray ? null : Object.keys(value);
    const count = isArray ? value.length : keys.length;
    if (count === 0) {
      const line = el("div", "j-line");
      line.append(...head, open + close + comma);
      return line;
    }
    const details = el("details", "j-node");
    const summary = el("summary", "j-summary");
    summary.append(...head, open, el("span", "j-count", sizeText(value)), el("span", "j-fold", close + comma));
    const children = el("div", "j-children");
    details.append(summary, children, el("div", "j-close", close + comma));
    let shown = 0;
    let more = null;
    const controller = {
      path, count, details,
      isOpen: () => details.open,
      open: () => {
        controller.build();
        details.open = true;
      },
      build: () => {
        if (shown === 0) controller.showMore();
      },
      showMore: () => {
        const end = Math.min(count, shown + CHUNK);
        const fragment = document.createDocumentFragment();
        for (let i = shown; i < end; i++) {
          const childKey = isArray ? null : keys[i];
          fragment.append(this.node(`${path}/${i}`, childKey, isArray ? value[i] : value[childKey], i === count - 1));
        }
        shown = end;
        if (more) more.remove();
        children.append(fragment);
        more = null;
        if (shown < count) {
          const left = count - shown;
          more = el("button", "j-more", `show ${Math.min(CHUNK, left)} more (${left.toLocaleString()} left)`);
          more.type = "button";
          more.addEventListener("click", () => controller.showMore());
          children.append(more);
        }
      },
      ensureShown: (index) => {
        controller.build();
        while (shown <= index && shown < count) controller.showMore();
      },
      shown: () => shown,
      childPaths: function* () {
        for (let i = 0; i < shown; i++) {
          const child = isArray ? value[i] : value[keys[i]];
          if (isContainer(child)) yield `${path}/${i}`;
        }
      },
    };
    details.addEventListener("toggle", () => { if (details.open) controller.build(); });
    this.nodes.set(path, controller);
    return details;
  }

  span(path, part, className, text) {
    const span = el("span", className, text);
    const key = `${path}|${part}`;
    this.spans.set(key, span);
    if (this.query) this.hits.set(key, markHits(span, this.query));
    return span;
  }

  /** Open the root, then levels breadth-first while what they show stays under OPEN_BUDGET. */
  openBreadthFirst() {
    const root = this.nodes.get("");
    if (!root) return;
    root.open();
    let used = root.shown();
    const queue = [...root.childPaths()];
    while (queue.length) {
      const next = this.nodes.get(queue.shift());
      const adds = Math.min(next.count, CHUNK);
      if (used + adds > OPEN_BUDGET) break;
      next.open();
      used += adds;
      queue.push(...next.childPaths());
    }
  }

  /** Every match of `query` in the value (keys and scalars as written in JSON), whether shown or
   * not: [{key: span key, nth: occurrence in that span}], in document order, at most MAX_MATCHES. */
  search(query) {
    this.query = query;
    this.current = null;
    for (const [key, span] of this.spans) this.hits.set(key, markHits(span, query));
    const matches = [];
    if (!query) return matches;
    const add = (key, text) => {
      const count = countIn(text, query, MAX_MATCHES - matches.length);
      for (let nth = 0; nth < count; nth++) matches.push({ key, nth });
    };
    const walk = (path, value) => {
      if (matches.length >= MAX_MATCHES) return;
      if (!isContainer(value)) {
        add(`${path}|v`, JSON.stringify(value));
        return;
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length && matches.length < MAX_MATCHES; i++) walk(`${path}/${i}`, value[i]);
        return;
      }
      let i = 0;
      for (const [k, v] of Object.entries(value)) {
        if (matches.length >= MAX_MATCHES) return;
        add(`${path}/${i}|k`, JSON.stringify(k));
        walk(`${path}/${i}`, v);
        i++;
      }
    };
    walk("", this.value);
    return matches;
  }

  /** Show match `match` (one of search()'s): open the nodes on its way, build its span, mark it
   * as the current one; returns its first <mark> (to scroll to), or null. */
  reveal(match) {
    if (this.current) for (const mark of this.current) mark.classList.remove("current");
    this.current = null;
    const [path] = match.key.split("|");
    const steps = path.split("/").slice(1).map(Number);
    let at = "";
    for (const index of steps) {
      const controller = this.nodes.get(at);
      if (!controller) break;
      controller.open();
      controller.ensureShown(index);
      at = `${at}/${index}`;
    }
    const marks = (this.hits.get(match.key) || [])[match.nth];
    if (!marks) return null;
    for (const mark of marks) mark.classList.add("current");
    this.current = marks;
    return marks[0];
  }
}
