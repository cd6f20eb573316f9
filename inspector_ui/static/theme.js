// Applied before the first paint (a classic script in <head>), so the page never flashes
// the wrong theme. The root always carries data-theme: the stored choice, else the system's,
// so the stylesheet needs a single dark palette.
(() => {
  const KEY = "passageway-theme";
  const system = matchMedia("(prefers-color-scheme: dark)");
  const stored = () => {
    try {
      const theme = localStorage.getItem(KEY);
      return theme === "light" || theme === "dark" ? theme : null;
    } catch (_) {
      return null; // storage may be disabled
    }
  };
  const apply = () => {
    document.documentElement.dataset.theme = stored() || (system.matches ? "dark" : "light");
  };
  apply();
  system.addEventListener("change", apply);
})();
