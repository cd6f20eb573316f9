// A tolerant JSON pretty-printer for a prefix of a JSON text (a body the capture cap cut):
// pure functions, no DOM. Whatever the input, they return; the tokens of the output are the
// tokens of the input (only the whitespace between tokens changes).

const STRUCTURAL = new Set(["{", "}", "[", "]", ":", ","]);
const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);

/** The tokens of `text`, a JSON text or any prefix of one, whitespace left out:
 * [kind, text] with kind "punct" ({ } [ ] : ,), "string" (a last one may lack its closing
 * quote), "number", "literal" (true, false, null or a prefix of one) or "other" (a character
 * JSON has no place for, kept as it is). */
export function jsonPrefixTokens(text) {
  const tokens = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (WHITESPACE.has(c)) {
      i++;
    } else if (STRUCTURAL.has(c)) {
      tokens.push(["punct", c]);
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      j = Math.min(j + 1, n);
      tokens.push(["string", text.slice(i, j)]);
      i = j;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      let j = i + 1;
      while (j < n && /[0-9eE.+-]/.test(text[j])) j++;
      tokens.push(["number", text.slice(i, j)]);
      i = j;
    } else if (c >= "a" && c <= "z") {
      let j = i + 1;
      while (j < n && text[j] >= "a" && text[j] <= "z") j++;
      tokens.push(["literal", text.slice(i, j)]);
      i = j;
    } else {
      const code = text.codePointAt(i);
      const width = code > 0xffff ? 2 : 1;
      tokens.push(["other", text.slice(i, i + width)]);
      i += width;
    }
  }
  return tokens;
}

/** `text` (JSON or a prefix of it) laid out as JSON.stringify(value, null, 2) would, as far as
 * it goes: [kind, text] pieces, kind as jsonPrefixTokens' plus "key" (a string before a colon)
 * and "space" (the layout between tokens). Joined, they are prettyJsonPrefix(text). */
export function prettyJsonPrefixPieces(text, indent = "  ") {
  const tokens = jsonPrefixTokens(text);
  const pieces = [];
  let depth = 0;
  const newline = () => pieces.push(["space", `\n${indent.repeat(depth)}`]);
  for (let i = 0; i < tokens.length; i++) {
    const [kind, value] = tokens[i];
    const next = tokens[i + 1];
    if (kind !== "punct") {
      const prev = pieces[pieces.length - 1];
      if (prev && prev[0] !== "punct" && prev[0] !== "space") pieces.push(["space", " "]); // never glue two tokens
      pieces.push([kind === "string" && next && next[1] === ":" && next[0] === "punct" ? "key" : kind, value]);
      continue;
    }
    if (value === "{" || value === "[") {
      pieces.push(["punct", value]);
      if (next && next[0] === "punct" && (next[1] === "}" || next[1] === "]")) {
        pieces.push(["punct", next[1]]); // {} and [] stay on one line
        i++;
        continue;
      }
      depth++;
      newline();
    } else if (value === "}" || value === "]") {
      depth = Math.max(0, depth - 1);
      newline();
      pieces.push(["punct", value]);
    } else if (value === ",") {
      pieces.push(["punct", ","]);
      newline();
    } else {
      pieces.push(["punct", ":"], ["space", " "]);
    }
  }
  return pieces;
}

/** prettyJsonPrefixPieces(text) as one string. */
export function prettyJsonPrefix(text, indent = "  ") {
  return prettyJsonPrefixPieces(text, indent).map((piece) => piece[1]).join("");
}
