// Body viewers: JSON as a foldable tree, markup as coloured escaped text, images, text, hex dumps.
import { el } from "./dom.js";
import { bodyKind, formatSize, hexDump, imageType, looksLikeText, markupTokens } from "./format.js";

const MAX_TEXT = 2 * 1024 * 1024; // characters shown before "showing the first ..."
const OPEN_DEPTH_SMALL = 4; // JSON levels open at first (bodies under 20 KB)
const OPEN_DEPTH_LARGE = 2;
const objectUrls = new Set();

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
  view.dataset.kind = renderBytes(view, bytes, info.content_type, info.truncated);
}

function renderBytes(view, bytes, contentType, truncated) {
  let kind = bodyKind(contentType);
  if (bytes.length === 0) {
    view.append(el("p", "empty", "(empty)"));
    return "empty";
  }
  if (kind === "guess") kind = looksLikeText(bytes) ? "text" : "binary";
  if (kind === "image") {
    const type = imageType(contentType);
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    objectUrls.add(url);
    const img = el("img", "body-image");
    img.alt = "response image";
    img.src = url;
    view.append(img);
    return "image";
  }
  if (kind === "binary") {
    view.append(el("pre", "hex", hexDump(bytes)));
    if (bytes.length > 65536) view.append(el("p", "note", `Hex dump of the first 64 KB of ${formatSize(bytes.length)}.`));
    return "binary";
  }
  let text = new TextDecoder("utf-8").decode(bytes);
  const cut = text.length > MAX_TEXT;
  if (cut) text = text.slice(0, MAX_TEXT);
  if (kind === "json") {
    let value;
    let parsed = false;
    if (!truncated && !cut) {
      try {
        value = JSON.parse(text);
        parsed = true;
      } catch (_) { /* shown as text below */ }
    }
    if (parsed) {
      const tree = el("div", "json");
      const openDepth = text.length < 20000 ? OPEN_DEPTH_SMALL : OPEN_DEPTH_LARGE;
      tree.append(jsonNode(null, value, 0, true, openDepth));
      view.append(tree);
      return "json";
    }
    view.append(el("p", "note", truncated ? "Truncated JSON, shown as text." : "Not valid JSON, shown as text."));
  }
  if (kind === "markup") {
    const pre = el("pre", "markup");
    for (const [tokenKind, tokenText] of markupTokens(text)) {
      pre.append(tokenKind === "text" ? document.createTextNode(tokenText) : el("span", `m-${tokenKind}`, tokenText));
    }
    view.append(pre);
  } else {
    view.append(el("pre", "text", text));
  }
  if (cut) view.append(el("p", "note", `Showing the first ${formatSize(MAX_TEXT)} characters.`));
  return kind === "json" ? "text" : kind;
}

/** One JSON value as a line (scalars) or a <details> (objects, arrays; children built when opened). */
function jsonNode(key, value, depth, last, openDepth) {
  const comma = last ? "" : ",";
  const keyPart = () => (key === null ? null : el("span", "j-key", JSON.stringify(key)));
  const sep = () => (key === null ? null : el("span", "j-punct", ": "));
  if (value === null || typeof value !== "object") {
    const line = el("div", "j-line");
    const type = value === null ? "null" : typeof value;
    line.append(...[keyPart(), sep(), el("span", `j-${type}`, JSON.stringify(value)), comma ? el("span", "j-punct", comma) : null].filter(Boolean));
    return line;
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [null, v, i]) : Object.entries(value).map(([k, v], i) => [k, v, i]);
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) {
    const line = el("div", "j-line");
    line.append(...[keyPart(), sep(), el("span", "j-punct", open + close + comma)].filter(Boolean));
    return line;
  }
  const node = el("details", "j-node");
  const summary = el("summary", "j-summary");
  summary.append(...[keyPart(), sep(), el("span", "j-punct", open),
    el("span", "j-count", `${entries.length} ${isArray ? "item" : "key"}${entries.length === 1 ? "" : "s"}`)].filter(Boolean));
  summary.dataset.close = close + comma; // shown by CSS when folded
  node.append(summary);
  const children = el("div", "j-children");
  node.append(children, el("div", "j-close", close + comma));
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    const count = entries.length;
    for (const [k, v, i] of entries) children.append(jsonNode(k, v, depth + 1, i === count - 1, openDepth));
  };
  node.addEventListener("toggle", () => { if (node.open) build(); });
  if (depth < openDepth) {
    node.open = true;
    build();
  }
  return node;
}
