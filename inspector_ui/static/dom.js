// The only way this UI builds DOM: elements, classes, and text via textContent. Never innerHTML.

/** el("span", "cls other", "text", child...) */
export function el(tag, className, text, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const child of children) if (child) node.append(child);
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** The top bar's light/dark button: flips the page's theme and remembers it (theme.js applies
 * it before the first paint of every page). */
export function bindThemeToggle(button) {
  button.addEventListener("click", () => {
    const root = document.documentElement;
    root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
    try { localStorage.setItem("passageway-theme", root.dataset.theme); } catch (_) { /* not remembered */ }
  });
}
