// "Copy as…": the request as curl, HTTPie, Python (httpx) or JavaScript (fetch), built by the
// server (storage/pure/snippets.py quotes every captured value), sent through the proxy's
// gateway unless asked otherwise, copied to the clipboard and shown in a box with a close button.
import { copyText } from "./bodies.js";
import { el } from "./dom.js";

const FORMATS = [["curl", "curl"], ["httpie", "HTTPie"], ["python", "Python (httpx)"], ["fetch", "JavaScript (fetch)"]];
let format = "curl"; // kept from one exchange to the next
let upstream = false;
let box = null;
let opener = null;

/** Is the box shown? */
export function snippetOpen() {
  return Boolean(box && box.isConnected);
}

/** Close the box (Esc, ✕); true when there was one to close. */
export function closeSnippet() {
  if (!snippetOpen()) return false;
  box.remove();
  box = null;
  if (opener && opener.isConnected && opener.offsetParent !== null) opener.focus();
  return true;
}

/** Show the snippet of exchange `id` at the top of `container` and copy it; `from` is the button. */
export async function openSnippet(id, container, from) {
  opener = from;
  if (!snippetOpen() || !container.contains(box)) {
    box = buildBox(id);
    container.prepend(box);
  }
  await fill(id, true);
}

function buildBox(id) {
  const section = el("section", "snippet-box");
  section.setAttribute("aria-label", "Copy as");
  const select = el("select");
  select.id = "copy-format";
  for (const [value, label] of FORMATS) {
    const option = el("option", null, label);
    option.value = value;
    select.append(option);
  }
  select.value = format;
  const pick = el("label", "snippet-format", "Copy as ");
  pick.append(select);
  const direct = el("input");
  direct.type = "checkbox";
  direct.id = "copy-upstream";
  direct.checked = upstream;
  const target = el("label", "snippet-target");
  target.append(direct, " straight to the upstream (not captured)");
  target.title = "By default the command goes through the proxy's gateway, so it is captured too";
  const copy = el("button", "snippet-copy", "Copy");
  copy.type = "button";
  const closeButton = el("button", "icon snippet-close", "✕");
  closeButton.type = "button";
  closeButton.title = "Close (Esc)";
  closeButton.setAttribute("aria-label", "Close the snippet");
  const head = el("div", "snippet-head", null, pick, target, copy, closeButton);
  const note = el("p", "note snippet-note");
  note.setAttribute("aria-live", "polite");
  const pre = el("pre", "curl");
  section.append(head, note, pre);

  select.addEventListener("change", () => {
    format = select.value;
    fill(id, true);
  });
  direct.addEventListener("change", () => {
    upstream = direct.checked;
    fill(id, true);
  });
  copy.addEventListener("click", () => copyText(pre.textContent, copy));
  closeButton.addEventListener("click", closeSnippet);
  section.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    event.stopPropagation(); // the box, not the detail behind it
    closeSnippet();
  });
  return section;
}

let fills = 0; // each fill's number: only the newest one's answer is shown

async function fill(id, andCopy) {
  const current = box;
  const mine = ++fills;
  const select = current.querySelector("#copy-format");
  format = select.value;
  const pre = current.querySelector("pre.curl");
  const note = current.querySelector(".snippet-note");
  const params = new URLSearchParams({ format, target: upstream ? "upstream" : "gateway" });
  let command;
  let said;
  try {
    const response = await fetch(`/api/exchanges/${encodeURIComponent(id)}/snippet?${params}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    command = await response.text();
    const via = response.headers.get("x-passageway-snippet-target");
    const why = response.headers.get("x-passageway-snippet-note");
    if (via === "gateway") said = "Through the proxy's gateway: what it sends is captured too.";
    else if (why) said = `Straight to the upstream: ${why}.`;
    else said = "Straight to the upstream: not captured.";
  } catch (error) {
    command = `# could not build the snippet: ${error.message}`;
    said = "";
  }
  // Closed or replaced meanwhile, or a newer choice (format, target) was made while this one's
  // answer was on its way: answers can arrive out of order, and the last choice must win.
  if (current !== box || mine !== fills) return;
  pre.textContent = command;
  note.textContent = said;
  if (andCopy) await copyText(command, current.querySelector(".snippet-copy"));
}
