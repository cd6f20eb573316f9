// The detail bar's actions: a row of buttons while the bar has room for them next to the title,
// else an "Actions ⋯" menu button (a WAI-ARIA menu: arrows, Home/End, Esc, Tab). The title
// (number, method, status, error) is never squeezed for them, and the close button stays put.

/** Wire the bar; returns {fit, closeMenu}: fit() re-measures (it also runs on every resize and
 * whenever the title, the actions or their labels change). */
export function initDetailActions({ bar, title, actions, toggle, close }) {
  let open = false;
  let queued = false;

  const items = () => [...actions.querySelectorAll("button")].filter((b) => !b.hidden);

  function setMenuMode(menu) {
    bar.classList.toggle("collapsed", menu);
    if (menu) {
      actions.setAttribute("role", "menu");
      actions.setAttribute("aria-labelledby", toggle.id);
    } else {
      actions.removeAttribute("role");
      actions.removeAttribute("aria-labelledby");
      closeMenu(false);
    }
    for (const item of items()) {
      if (menu) {
        item.setAttribute("role", "menuitem");
        item.tabIndex = -1;
      } else {
        item.removeAttribute("role");
        item.removeAttribute("tabindex");
      }
    }
  }

  function fit() {
    queued = false;
    if (actions.hidden || bar.offsetParent === null) {
      toggle.hidden = true;
      if (actions.hidden) setMenuMode(false);
      return;
    }
    const wasOpen = open;
    bar.classList.remove("collapsed");
    bar.classList.add("measuring"); // one line each, at their natural widths (no paint in between)
    const line = title.querySelector(".title-line") || title;
    const style = getComputedStyle(bar);
    const gap = parseFloat(style.columnGap) || 0;
    const room = bar.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const need = line.scrollWidth + actions.scrollWidth + close.offsetWidth + 2 * gap;
    bar.classList.remove("measuring");
    const menu = need > room;
    setMenuMode(menu);
    toggle.hidden = !menu;
    if (menu && wasOpen) openMenu(false);
  }

  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(fit);
  }

  function openMenu(focusFirst = true) {
    open = true;
    actions.classList.add("open");
    toggle.setAttribute("aria-expanded", "true");
    if (focusFirst) {
      const [first] = items().filter((b) => !b.disabled);
      if (first) first.focus();
    }
  }

  function closeMenu(refocus = true) {
    const wasOpen = open;
    open = false;
    actions.classList.remove("open");
    toggle.setAttribute("aria-expanded", "false");
    if (wasOpen && refocus) toggle.focus();
    return wasOpen;
  }

  toggle.addEventListener("click", () => (open ? closeMenu() : openMenu()));
  toggle.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      openMenu(false);
      const list = items().filter((b) => !b.disabled);
      const target = event.key === "ArrowDown" ? list[0] : list[list.length - 1];
      if (target) target.focus();
    }
  });
  actions.addEventListener("keydown", (event) => {
    if (!bar.classList.contains("collapsed") || !open) return;
    const list = items().filter((b) => !b.disabled);
    const at = list.indexOf(document.activeElement);
    let target = null;
    if (event.key === "ArrowDown") target = list[(at + 1) % list.length];
    else if (event.key === "ArrowUp") target = list[(at - 1 + list.length) % list.length];
    else if (event.key === "Home") [target] = list;
    else if (event.key === "End") target = list[list.length - 1];
    else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // Esc closes the menu, not the detail behind it
      closeMenu();
      return;
    } else if (event.key === "Tab") {
      closeMenu(false);
      return;
    } else {
      return;
    }
    event.preventDefault();
    if (target) target.focus();
  });
  // Choosing an item closes the menu (after the item's own handler ran).
  actions.addEventListener("click", (event) => {
    if (open && event.target.closest("button")) setTimeout(() => closeMenu(false), 0);
  });
  document.addEventListener("pointerdown", (event) => {
    if (open && !actions.contains(event.target) && !toggle.contains(event.target)) closeMenu(false);
  });

  new ResizeObserver(schedule).observe(bar);
  new MutationObserver(schedule).observe(title, { childList: true, subtree: true, characterData: true });
  new MutationObserver(schedule).observe(actions, { attributeFilter: ["hidden"] });
  for (const item of actions.querySelectorAll("button")) {
    new MutationObserver(schedule).observe(item, { childList: true, characterData: true, subtree: true });
  }
  schedule();
  return { fit, closeMenu, isOpen: () => open };
}
