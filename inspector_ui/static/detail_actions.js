// The detail bar's actions: buttons in a row while the bar has room for them next to the title;
// those that do not fit (from the last one back) move into a menu behind a "⋯" button (a
// WAI-ARIA menu: arrows, Home/End, Esc, Tab), "Actions ⋯" when none fits. The title (number,
// method, status, error) is never squeezed for them, and the close button stays put. The buttons
// are moved, not copied: their ids and handlers stay theirs.

/** Wire the bar; returns {fit, closeMenu}: fit() re-measures (it also runs on every resize and
 * whenever the title, the actions or their labels change). */
export function initDetailActions({ bar, title, actions, menu, toggle, close }) {
  const order = [...actions.querySelectorAll("button")]; // as the page lists them
  let open = false;
  let queued = false;

  const menuItems = () => [...menu.querySelectorAll("button")].filter((b) => !b.hidden);

  function fit() {
    queued = false;
    const focused = document.activeElement;
    for (const button of order) {
      actions.append(button);
      button.removeAttribute("role");
      button.removeAttribute("tabindex");
    }
    if (actions.hidden || bar.offsetParent === null) {
      toggle.hidden = true;
      closeMenu(false);
      return;
    }
    bar.classList.add("measuring"); // one line each, at their natural widths (no paint in between)
    const line = title.querySelector(".title-line") || title;
    const style = getComputedStyle(bar);
    const gap = parseFloat(style.columnGap) || 0;
    const room = bar.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const need = () => line.scrollWidth + close.offsetWidth
      + (actions.childElementCount ? actions.scrollWidth + gap : 0)
      + (toggle.hidden ? 0 : toggle.offsetWidth + gap);
    toggle.hidden = true;
    if (need() > room) {
      toggle.hidden = false;
      toggle.textContent = "⋯";
      while (actions.lastElementChild && need() > room) menu.prepend(actions.lastElementChild);
    }
    bar.classList.remove("measuring");
    const all = actions.childElementCount === 0;
    toggle.textContent = all ? "Actions ⋯" : "⋯";
    toggle.setAttribute("aria-label", all ? "Actions" : "More actions");
    for (const item of menuItems()) {
      item.setAttribute("role", "menuitem");
      item.tabIndex = -1;
    }
    if (toggle.hidden) closeMenu(false);
    if (focused instanceof HTMLElement && focused !== document.activeElement && focused.isConnected) focused.focus();
  }

  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(fit);
  }

  function openMenu(focusFirst = true) {
    open = true;
    menu.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    if (focusFirst) {
      const [first] = menuItems();
      if (first) first.focus();
    }
  }

  function closeMenu(refocus = true) {
    const wasOpen = open;
    open = false;
    menu.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    if (wasOpen && refocus) toggle.focus();
    return wasOpen;
  }

  toggle.addEventListener("click", () => (open ? closeMenu() : openMenu()));
  toggle.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      event.stopPropagation(); // the menu's keys, not the list's (j/k, arrows move the selection)
      openMenu(false);
      const list = menuItems();
      const target = event.key === "ArrowDown" ? list[0] : list[list.length - 1];
      if (target) target.focus();
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      event.stopPropagation();
      closeMenu();
    }
  });
  menu.addEventListener("keydown", (event) => {
    const list = menuItems();
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
    event.stopPropagation(); // not the list's arrows
    if (target) target.focus();
  });
  // Choosing an item closes the menu (after the item's own handler ran).
  menu.addEventListener("click", (event) => {
    if (event.target.closest("button")) setTimeout(() => closeMenu(false), 0);
  });
  document.addEventListener("pointerdown", (event) => {
    if (open && !menu.contains(event.target) && !toggle.contains(event.target)) closeMenu(false);
  });

  new ResizeObserver(schedule).observe(bar);
  new MutationObserver(schedule).observe(title, { childList: true, subtree: true, characterData: true });
  new MutationObserver(schedule).observe(actions, { attributeFilter: ["hidden"] });
  for (const item of order) {
    new MutationObserver(schedule).observe(item, { childList: true, characterData: true, subtree: true });
  }
  schedule();
  return { fit, closeMenu, isOpen: () => open };
}
