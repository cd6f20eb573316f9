// The draggable line between the exchange list and the detail pane: a separator the mouse drags
// and the arrow keys move (Home/End to the limits), its place remembered in localStorage.

const KEY = "passageway-split"; // localStorage: the list's share of the width, in percent
const MIN = 20;
const MAX = 80;
const STEP = 2;

/** The share to use: a stored, sane number, else `fallback`. Pure. */
export function clampSplit(value, fallback = 48) {
  const number = Number(value);
  if (value === null || value === "" || !Number.isFinite(number)) return fallback;
  return Math.min(MAX, Math.max(MIN, Math.round(number * 10) / 10));
}

function stored() {
  try {
    return localStorage.getItem(KEY);
  } catch (_) {
    return null; // storage disabled: not remembered
  }
}

/** Wire `handle` to size `pane` (the list) inside `container`; `onResize` after each change. */
export function bindSplit(handle, pane, container, onResize) {
  let share = clampSplit(stored());
  const apply = (value, remember) => {
    share = clampSplit(value, share);
    pane.style.setProperty("--list-share", `${share}%`); // CSSOM: allowed under the CSP
    handle.setAttribute("aria-valuenow", String(Math.round(share)));
    handle.setAttribute("aria-valuetext", `list ${Math.round(share)}% of the width`);
    if (remember) {
      try { localStorage.setItem(KEY, String(share)); } catch (_) { /* not remembered */ }
    }
    onResize();
  };
  apply(share, false);
  handle.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    handle.setPointerCapture(event.pointerId);
    handle.classList.add("dragging");
    const box = container.getBoundingClientRect();
    const move = (e) => apply(((e.clientX - box.left) / box.width) * 100, false);
    const up = (e) => {
      handle.releasePointerCapture(e.pointerId);
      handle.classList.remove("dragging");
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      apply(share, true);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  });
  handle.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: share - STEP, ArrowRight: share + STEP, Home: MIN, End: MAX };
    if (!(event.key in moves)) return;
    event.preventDefault();
    event.stopPropagation();
    apply(moves[event.key], true);
  });
  handle.addEventListener("dblclick", () => apply(48, true));
}
