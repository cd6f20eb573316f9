// Applied before the first paint (a classic script in <head>), so a stored theme never flashes.
try {
  const theme = localStorage.getItem("passageway-theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch (_) { /* storage may be disabled */ }
