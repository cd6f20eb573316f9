// Body viewers: JSON as a lazily built foldable tree (a body the capture cap cut, pretty-printed
// as far as it goes), markup as coloured escaped text, images, text, hex dumps; a toolbar to
// find in the body, copy it, and switch between pretty and raw.
import { el } from "./dom.js";
import { bodyKind, formatSize, hexDump, imageType, looksLikeText, markupTokens } from "./format.js";
import { prettyJsonPrefix } from "./jsonprefix.js";
import { JsonTree } from "./jsontree.js";
import { markHits, MAX_MATCHES } from "./textsearch.js";

const MAX_TEXT = 2 * 1024 * 1024; // characters shown before "showing the first ..."
const SEARCH_DELAY = 150; // ms of quiet typing before a search runs
const objectUrls = new Set();
let preferRaw = false; // Pretty/Raw, kept from one body to the next

/** Revoke the image URLs of the previous exchange. */
export function releaseObjectUrls() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls.clear();
}

/** Fetch and render one side's body into `container`; `info` is the BodyInfo metadata. */
export async function renderBody(container, exchangeId, side, info) {
  const rawUrl = `/api/exchanges/${exchangeId}/${side}/body`;
  const notes = el("div", "body-notes");
  container.append(notes);
  const meta = [formatSize(info.size)];
  if (info.content_type) meta.push(info.content_type);
  if (info.encoding) meta.push(`${info.encoding}-encoded`);
  notes.append(el("span", "body-meta", meta.join(" · ")));
  const download = el("a", "download", info.truncated ? "download what was kept" : "download");
  download.href = rawUrl; // our own URL, never a captured one
  download.setAttribute("download", "");
  if (info.truncated) {
    notes.append(el("span", "truncated", `Truncated: kept ${formatSize(info.stored_size)} of ${formatSize(info.size)}`));
  }
  notes.append(download);

  const view = el("div", "body-view", "loading…");
  container.append(view);
  let bytes;
  try {
    const response = await fetch(`${rawUrl}?decoded=true`);
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      view.textContent = problem.detail || problem.message || `HTTP ${response.status}`;
      view.className = "body-view problem";
      return;
    }
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    view.textContent = `could not load the body: ${error}`;
    view.className = "body-view problem";
    return;
  }
  view.replaceChildren();
  const start = performance.now();
  const body = readBody(bytes, info.content_type, info.truncated);
  if (body.text === null) {
    view.dataset.kind = renderOpaque(view, bytes, body.kind, info.content_type);
    return;
  }
  const viewer = new BodyViewer(view, body, side);
  notes.after(viewer.toolbar);
  viewer.show();
  performance.measure("passageway:body", { start }); // decode, parse and build, for the browser tests
}

/** {kind, text, cut, truncated}: text null for what is not text (empty, images, binary). */
function readBody(bytes, contentType, truncated) {
  let kind = bodyKind(contentType);
  if (bytes.length === 0) return { kind: "empty", text: null };
  if (kind === "guess") kind = looksLikeText(bytes) ? "text" : "binary";
  if (kind === "image" || kind === "binary") return { kind, text: null };
  let text = new TextDecoder("utf-8").decode(bytes);
  const cut = text.length > MAX_TEXT;
  if (cut) text = text.slice(0, MAX_TEXT);
  return { kind, text, cut, truncated };
}

function renderOpaque(view, bytes, kind, contentType) {
  if (kind === "empty") {
    view.append(el("p", "empty", "(empty)"));
  } else if (kind === "image") {
    const url = URL.createObjectURL(new Blob([bytes], { type: imageType(contentType) }));
    objectUrls.add(url);
    const img = el("img", "body-image");
    img.alt = "response image";
    img.src = url;
    view.append(img);
  } else {
    view.append(el("pre", "hex", hexDump(bytes)));
    if (bytes.length > 65536) view.append(el("p", "note", `Hex dump of the first 64 KB of ${formatSize(bytes.length)}.`));
  }
  return kind;
}

/** One text body: the pretty or raw view, and the toolbar's find, copy and switch. */
class BodyViewer {
  constructor(view, body, side) {
    this.view = view;
    this.body = body;
    this.tree = null;
    this.matches = []; // per match: the marks (text views) or a tree match
    this.index = -1;
    this.query = "";
    this.timer = null;
    this.value = undefined;
    if (body.kind === "json" && !body.truncated && !body.cut) {
      try {
        this.value = JSON.parse(body.text);
      } catch (_) { /* not valid JSON: pretty-printed as far as it reads */ }
    }
    this.hasPretty = body.kind === "json" || body.kind === "markup";
    this.toolbar = this.buildToolbar(side);
  }

  buildToolbar(side) {
    const bar = el("div", "body-tools");
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", `${side === "request" ? "Request" : "Response"} body`);
    if (this.hasPretty) {
      const group = el("span", "view-switch");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "View");
      this.prettyButton = button("Pretty", "view-pretty", "Laid out and coloured");
      this.rawButton = button("Raw", "view-raw", "The body as it was sent");
      this.prettyButton.addEventListener("click", () => this.setRaw(false));
      this.rawButton.addEventListener("click", () => this.setRaw(true));
      group.append(this.prettyButton, this.rawButton);
      bar.append(group);
    }
    const find = el("span", "body-find");
    this.input = el("input", "body-search");
    this.input.type = "search";
    this.input.placeholder = "Find in body";
    this.input.spellcheck = false;
    this.input.setAttribute("aria-label", `Find in the ${side} body (Enter: next, Shift+Enter: previous)`);
    this.count = el("span", "hit-count");
    this.count.setAttribute("aria-live", "polite");
    const prev = button("↑", "icon hit-prev", "Previous match (Shift+Enter)");
    const next = button("↓", "icon hit-next", "Next match (Enter)");
    prev.setAttribute("aria-label", "Previous match");
    next.setAttribute("aria-label", "Next match");
    prev.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(this.input.value), SEARCH_DELAY);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      if (this.input.value !== this.query) this.search(this.input.value);
      else this.step(event.shiftKey ? -1 : 1);
    });
    find.append(this.input, this.count, prev, next);
    const copy = button("Copy", "copy-body", "Copy the body (decoded) to the clipboard");
    copy.addEventListener("click", () => copyText(this.body.text, copy));
    bar.append(find, copy);
    return bar;
  }

  setRaw(raw) {
    preferRaw = raw;
    this.show();
    this.search(this.query);
  }

  /** Render the pretty or raw view (only the pretty view of valid JSON is a tree). */
  show() {
    const raw = this.hasPretty && preferRaw;
    if (this.prettyButton) {
      this.prettyButton.setAttribute("aria-pressed", String(!raw));
      this.rawButton.setAttribute("aria-pressed", String(raw));
    }
    const { kind, text, cut, truncated } = this.body;
    const view = this.view;
    view.replaceChildren();
    this.tree = null;
    if (kind === "json" && !raw) {
      if (this.value !== undefined) {
        this.tree = new JsonTree(this.value);
        view.append(this.tree.element);
        view.dataset.kind = "json";
      } else {
        const why = truncated ? "Truncated JSON: pretty-printed as far as it goes." : cut
          ? `JSON cut at ${formatSize(MAX_TEXT)} characters: pretty-printed as far as it goes.`
          : "Not valid JSON: pretty-printed as far as it reads.";
        view.append(el("p", "note json-prefix-note", why), el("pre", "json-prefix", prettyJsonPrefix(text)));
        view.dataset.kind = "json-prefix";
      }
    } else if (kind === "markup" && !raw) {
      const pre = el("pre", "markup");
      for (const [tokenKind, tokenText] of markupTokens(text)) {
        pre.append(tokenKind === "text" ? document.createTextNode(tokenText) : el("span", `m-${tokenKind}`, tokenText));
      }
      view.append(pre);
      view.dataset.kind = "markup";
    } else {
      view.append(el("pre", raw ? "raw" : "text", text));
      view.dataset.kind = raw ? "raw" : "text";
    }
    if (cut) view.append(el("p", "note", `Showing the first ${formatSize(MAX_TEXT)} characters.`));
  }

  search(query) {
    clearTimeout(this.timer);
    this.query = query;
    if (this.tree) this.matches = this.tree.search(query);
    else this.matches = markHits(this.view.querySelector("pre"), query);
    this.index = this.matches.length ? 0 : -1;
    this.showCurrent();
  }

  step(delta) {
    if (this.input.value !== this.query) {
      this.search(this.input.value);
      return;
    }
    if (!this.matches.length) return;
    this.index = (this.index + delta + this.matches.length) % this.matches.length;
    this.showCurrent();
  }

  showCurrent() {
    const total = this.matches.length;
    const capped = total >= MAX_MATCHES ? "+" : "";
    this.count.textContent = !this.query ? "" : total ? `${this.index + 1} of ${total.toLocaleString()}${capped}` : "no match";
    this.input.classList.toggle("no-match", Boolean(this.query) && total === 0);
    for (const mark of this.view.querySelectorAll("mark.current")) mark.classList.remove("current");
    if (this.index < 0) return;
    const match = this.matches[this.index];
    let first;
    if (this.tree) {
      first = this.tree.reveal(match);
    } else {
      for (const mark of match) mark.classList.add("current");
      [first] = match;
    }
    if (first) first.scrollIntoView({ block: "center", inline: "nearest" });
  }
}

function button(text, className, title) {
  const node = el("button", className, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

/** Copy `text`; the button says Copied (or why not) for a moment. */
export async function copyText(text, buttonEl) {
  const label = buttonEl.textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    // No clipboard permission (a plain-HTTP origin other than localhost): the older way.
    const area = el("textarea", "offscreen");
    area.value = text;
    document.body.append(area);
    area.select();
    try { copied = document.execCommand("copy"); } catch (_) { copied = false; }
    area.remove();
  }
  buttonEl.textContent = copied ? "Copied ✓" : "Copy failed";
  setTimeout(() => { buttonEl.textContent = label; }, 1500);
  return copied;
}
