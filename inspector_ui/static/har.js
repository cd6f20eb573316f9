// "Download HAR…": a small modal dialog that downloads GET /api/har for a search or a trace.
// Redacted unless the reader ticks the one box that names the risk; the tick is never
// remembered. The download is a same-origin <a download> (the server answers with an
// attachment), so no captured byte passes through this page and the inspector's cookie goes
// with it.
import { el, clear } from "./dom.js";
import { dialogHead, showModal, wireDialog } from "./dialogs.js";

const $ = (id) => document.getElementById(id);

const MAX_EXPORT = 10_000; // storage.exports.MAX_EXPORT: the newest a HAR holds at most

function exchanges(n) {
  return `${n.toLocaleString("en-US")} exchange${n === 1 ? "" : "s"}`;
}

/** /api/har for {q} (an empty search: everything) or {trace}, redacted unless raw. */
export function harUrl(target, { raw = false } = {}) {
  const params = new URLSearchParams();
  if (target.trace !== undefined) params.set("trace", target.trace);
  else if (target.q) params.set("q", target.q);
  if (raw) params.set("raw", "true");
  return params.size ? `/api/har?${params}` : "/api/har";
}

/**
 * What the file will hold, in words. target.count: the exchanges known to match (null when
 * unknown); target.more: true when more match than the count says.
 */
function subject(target) {
  const line = el("p", "share-subject har-subject");
  const { count, more } = target;
  let size;
  if (count === null || count === undefined) size = `the newest ${MAX_EXPORT.toLocaleString("en-US")} at most`;
  else if (count >= MAX_EXPORT) size = `the newest ${MAX_EXPORT.toLocaleString("en-US")} (the most one file holds)`;
  else if (more) size = `more than ${exchanges(count)}; the newest ${MAX_EXPORT.toLocaleString("en-US")} at most`;
  else size = exchanges(count);
  if (target.trace !== undefined) {
    line.append(el("span", null, "Every exchange of trace "), el("code", "share-query", target.trace),
      el("span", null, `: ${size}.`));
  } else if (target.q) {
    line.append(el("span", null, "What matches "), el("code", "share-query", target.q), el("span", null, `: ${size}.`));
  } else {
    line.append(el("span", null, `Everything captured (no search): ${size}.`));
  }
  return line;
}

export function harDialogOpen() {
  const dialog = $("har-dialog");
  return Boolean(dialog && dialog.open);
}

/** Esc: close the dialog; true when it was open. */
export function closeHarDialog() {
  if (!harDialogOpen()) return false;
  $("har-dialog").close();
  return true;
}

/**
 * target: {q, count, more} (the applied search; "" for everything) or {trace, count, more}.
 * from: the button that opened it (focused again on close).
 */
export function openHarDialog(target, from) {
  const dialog = $("har-dialog");
  wireDialog(dialog);
  clear(dialog);
  const what = target.trace !== undefined ? "trace" : "search";

  const body = el("div", "share-form har-form");
  body.append(subject(target));
  body.append(el("p", "note", "A HAR 1.2 file, to open in Chrome or Firefox DevTools (Network: Import) or load with ",
    el("code", "nowrap", "passageway import"), document.createTextNode(".")));
  const redactedNote = el("p", "note har-redacted-note",
    "Credentials and other secrets are replaced by [redacted:…] markers, as on share links.");

  const rawBox = el("input", "har-raw");
  rawBox.type = "checkbox";
  rawBox.name = "raw";
  rawBox.checked = false;
  const rawLabel = el("label", "choice har-raw-choice", null, rawBox,
    el("span", null, "Raw HAR — includes passwords, tokens and cookies as captured"));
  const warning = el("p", "warning har-raw-warning",
    "This file will hold every secret as captured: Authorization headers, cookies, API keys, passwords in bodies. "
    + "Keep it to yourself; don't attach it to a ticket or a chat.");
  warning.setAttribute("role", "alert");
  warning.hidden = true;

  const download = el("a", "button primary har-download");
  download.download = ""; // the server names the file (…-raw.har when raw)
  const cancel = el("button", "share-cancel", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => dialog.close());

  const show = () => {
    const raw = rawBox.checked;
    download.href = harUrl(target, { raw });
    download.textContent = raw ? "Download raw HAR" : "Download HAR";
    download.classList.toggle("primary", !raw);
    download.classList.toggle("danger", raw);
    download.title = raw ? "With every secret as captured" : "Secrets replaced by [redacted:…] markers";
    warning.hidden = !raw;
    redactedNote.hidden = raw;
  };
  rawBox.addEventListener("change", show);
  download.addEventListener("click", () => {
    // Let the browser start the download, then close (and forget the raw choice).
    setTimeout(() => { if (dialog.open) dialog.close(); }, 0);
  });
  show();

  body.append(redactedNote, rawLabel, warning, el("div", "dialog-actions", null, download, cancel));
  dialog.append(dialogHead(dialog, "har-dialog-title", `Download this ${what} as HAR`), body);
  showModal(dialog, from);
  download.focus(); // Enter gets the redacted file; raw needs the box ticked first
}
