// Pure helpers of the read-only share page (share.js): how its times read and in which order
// its exchanges are listed. No DOM, no I/O: the browser tests import them directly.

/** An ISO time as people read it, in the reader's zone: "Dec 3, 2026, 6:18:04 PM" (with
 * `withDate` false, the time alone); the raw value (microseconds and all) is for a title. */
export function readableTime(iso, { withDate = true } = {}) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return withDate
    ? date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" })
    : date.toLocaleTimeString(undefined, { timeStyle: "medium" });
}

/** Whether all these ISO times fall on one local day (then the list shows times alone). */
export function sameDay(isos) {
  const days = new Set(isos.filter(Boolean).map((iso) => new Date(iso).toDateString()));
  return days.size <= 1;
}

/**
 * The snapshot's exchanges in the order the page lists them (the snapshot keeps them oldest
 * first): a search newest first, as the inspector lists it; a trace in its call tree's order
 * (root first, each call before the calls it made, as the waterfall above draws them), any
 * exchange the tree does not hold after it; anything else as stored.
 */
export function displayOrder(snapshot) {
  const exchanges = [...(snapshot.exchanges || [])];
  if (snapshot.kind === "search") return exchanges.sort((a, b) => b.id - a.id);
  if (snapshot.kind === "trace" && snapshot.trace && Array.isArray(snapshot.trace.nodes)) {
    const rank = new Map(snapshot.trace.nodes.map((node, index) => [node.exchange_id, index]));
    const place = (x) => (rank.has(x.id) ? rank.get(x.id) : rank.size + exchanges.indexOf(x));
    return exchanges.sort((a, b) => place(a) - place(b));
  }
  return exchanges;
}
