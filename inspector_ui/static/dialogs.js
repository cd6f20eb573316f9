// The inspector's modal dialogs (Share…, Shares, Download HAR…): one way to head, open and close
// them. Closing empties a dialog (nothing it showed, such as a raw choice or a new link,
// outlives it) and gives the focus back to the button that opened it.
import { el, clear } from "./dom.js";

let opener = null; // the button that opened the open dialog

/** The title bar: a heading (titleId names it for aria-labelledby) and a close button. */
export function dialogHead(dialog, titleId, title) {
  const close = el("button", "icon dialog-close", "✕");
  close.type = "button";
  close.title = "Close (Esc)";
  close.addEventListener("click", () => dialog.close());
  const heading = el("h2", "dialog-title", title);
  heading.id = titleId;
  return el("div", "dialog-head", null, heading, close);
}

/** Once per dialog: the backdrop closes it, and closing empties it and refocuses its opener. */
export function wireDialog(dialog) {
  if (dialog.dataset.wired) return;
  dialog.dataset.wired = "1";
  // A click on the backdrop lands on the <dialog> itself: it closes, like Esc.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener("close", () => {
    if (dialog.open) return; // "close" is dispatched later: the dialog may be open again already
    clear(dialog);
    if (opener && opener.isConnected && !opener.disabled) opener.focus();
    opener = null;
  });
}

/** Open `dialog` as a modal; `from` (else the focused element) gets the focus back on close. */
export function showModal(dialog, from) {
  opener = from || document.activeElement;
  if (!dialog.open) dialog.showModal();
}
