// The service a /services/NAME page is about, for the page's scripts (service.js and its sections).

export function serviceFromPath() {
  const raw = location.pathname.replace(/^\/services\//, "").replace(/\/$/, "");
  try {
    return decodeURIComponent(raw);
  } catch (_) {
    return raw; // a stray % in a hand-typed URL
  }
}
