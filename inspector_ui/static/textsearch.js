// Find in a body: every match of a plain string, case-insensitive, marked in the text nodes of
// an element (a match may run across several, as in coloured markup). Text stays text: the
// marks are <mark> elements around existing text nodes, never parsed markup.

export const MAX_MATCHES = 10_000;

function pattern(query) {
  return new RegExp(query.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "giu");
}

/** [start, end) of every match of `query` in `text` (case-insensitive), at most `limit`. */
export function findAll(text, query, limit = MAX_MATCHES) {
  const found = [];
  if (!query) return found;
  const re = pattern(query);
  let match;
  while (found.length < limit && (match = re.exec(text)) !== null) {
    if (match[0] === "") { re.lastIndex++; continue; }
    found.push([match.index, match.index + match[0].length]);
  }
  return found;
}

/** How many times `query` occurs in `text` (case-insensitive), at most `limit`. */
export function countIn(text, query, limit = MAX_MATCHES) {
  return findAll(text, query, limit).length;
}

/** Take the marks clearHits' sibling put in `root` out again (their text stays). */
export function clearHits(root) {
  const marks = root.querySelectorAll("mark.hit");
  if (!marks.length) return;
  const parents = new Set();
  for (const mark of marks) {
    parents.add(mark.parentNode);
    mark.replaceWith(...mark.childNodes);
  }
  for (const parent of parents) parent.normalize();
}

/** Mark every match of `query` in `root`'s text; returns one array of <mark>s per match, in
 * document order (most matches are one mark; one across coloured spans is several). */
export function markHits(root, query, limit = MAX_MATCHES) {
  clearHits(root);
  if (!query) return [];
  const nodes = [];
  const starts = [];
  let text = "";
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    nodes.push(node);
    starts.push(text.length);
    text += node.data;
  }
  const matches = findAll(text, query, limit);
  const hits = new Array(matches.length);
  // From the last match back: splitting a text node keeps its front part (earlier offsets) as it was.
  let n = nodes.length - 1;
  for (let m = matches.length - 1; m >= 0; m--) {
    const [start, end] = matches[m];
    const marks = [];
    while (n > 0 && starts[n] >= end) n--;
    for (let k = n; k >= 0 && starts[k] + nodes[k].data.length > start; k--) {
      const node = nodes[k];
      const from = Math.max(0, start - starts[k]);
      const to = Math.min(node.data.length, end - starts[k]);
      if (to <= from) continue;
      if (to < node.data.length) node.splitText(to);
      const middle = from > 0 ? node.splitText(from) : node;
      const mark = document.createElement("mark");
      mark.className = "hit";
      middle.replaceWith(mark);
      mark.append(middle);
      marks.unshift(mark);
    }
    hits[m] = marks;
  }
  return hits;
}
