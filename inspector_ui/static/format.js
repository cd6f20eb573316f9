// Pure helpers: no DOM, no network. Captured values only ever pass through here as strings.

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** "s2xx".."s5xx", "s1xx" or "serr": the colour class of a summary's status. */
export function statusClass(summary) {
  if (summary.error || summary.status === null || summary.status === undefined) return "serr";
  const hundreds = Math.floor(summary.status / 100);
  return hundreds >= 1 && hundreds <= 5 ? `s${hundreds}xx` : "serr";
}

export function statusText(summary) {
  if (summary.status !== null && summary.status !== undefined) return String(summary.status);
  return summary.error ? summary.error.kind : "…";
}

/** Classic 16-bytes-a-line hex dump of a Uint8Array. */
export function hexDump(bytes, limit = 65536) {
  const shown = Math.min(bytes.length, limit);
  const lines = [];
  for (let offset = 0; offset < shown; offset += 16) {
    const row = bytes.subarray(offset, Math.min(offset + 16, shown));
    let hex = "";
    let ascii = "";
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, "0") + " ";
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : ".";
      } else {
        hex += "   ";
      }
      if (i === 7) hex += " ";
    }
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex} |${ascii}|`);
  }
  return lines.join("\n");
}

/** What kind of viewer a body gets, from its stored content type. */
export function bodyKind(contentType) {
  const type = (contentType || "").split(";", 1)[0].trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json") || type === "text/json") return "json";
  if (["image/png", "image/jpeg", "image/gif", "image/webp"].includes(type)) return "image";
  if (type === "text/html" || type === "application/xhtml+xml" || type.endsWith("/xml") || type.endsWith("+xml")) return "markup";
  if (type.startsWith("text/") || ["application/javascript", "application/x-www-form-urlencoded",
    "application/graphql", "application/x-ndjson", "application/yaml"].includes(type)) return "text";
  return type ? "binary" : "guess";
}

/** Same-type image MIME type for a Blob, from a fixed list (never the captured string itself). */
export function imageType(contentType) {
  const type = (contentType || "").split(";", 1)[0].trim().toLowerCase();
  return { "image/png": "image/png", "image/jpeg": "image/jpeg", "image/gif": "image/gif", "image/webp": "image/webp" }[type] || null;
}

/** Split markup into [kind, text] tokens for colouring: tag, attr, value, comment, text. */
export function markupTokens(source) {
  const tokens = [];
  const re = /<!--[\s\S]*?(?:-->|$)|<[^>]*>?/g;
  let last = 0;
  for (const match of source.matchAll(re)) {
    if (match.index > last) tokens.push(["text", source.slice(last, match.index)]);
    const tag = match[0];
    if (tag.startsWith("<!--")) tokens.push(["comment", tag]);
    else {
      const inner = /^(<\/?[^\s>/]*)([\s\S]*?)(\/?>)?$/.exec(tag);
      tokens.push(["tag", inner[1]]);
      const attrs = inner[2];
      const attrRe = /([^\s=]+)(\s*=\s*)?("[^"]*"?|'[^']*'?|[^\s"']*)?/g;
      let at = 0;
      for (const a of attrs.matchAll(attrRe)) {
        if (a[0] === "") { attrRe.lastIndex++; continue; }
        if (a.index > at) tokens.push(["text", attrs.slice(at, a.index)]);
        tokens.push(["attr", a[1]]);
        if (a[2]) tokens.push(["text", a[2]]);
        if (a[3]) tokens.push(["value", a[3]]);
        at = a.index + a[0].length;
      }
      if (at < attrs.length) tokens.push(["text", attrs.slice(at)]);
      if (inner[3]) tokens.push(["tag", inner[3]]);
    }
    last = match.index + tag.length;
  }
  if (last < source.length) tokens.push(["text", source.slice(last)]);
  return tokens;
}

/** Does this look like text (for bodies without a content type)? */
export function looksLikeText(bytes) {
  const sample = bytes.subarray(0, 4096);
  let odd = 0;
  for (const b of sample) if (b === 0 || (b < 0x09) || (b > 0x0d && b < 0x20)) odd++;
  return odd === 0;
}

// What each error kind (storage.pure.record.ERROR_KINDS) means, in words.
const ERROR_LABELS = {
  connect_failed: "Connection refused by upstream",
  timeout: "Upstream timed out",
  upstream_reset: "Upstream closed the connection",
  client_disconnected: "Client went away",
  no_route: "No service for this path",
  protocol_error: "Broken HTTP",
  killed: "Stopped by the proxy",
  imported_error: "Failed (imported)",
  unknown_outcome: "Outcome unknown: the proxy stopped reporting",
};

/** An error kind in human words ("Connection refused by upstream"); an unknown kind as it is. */
export function errorLabel(kind) {
  if (Object.hasOwn(ERROR_LABELS, kind)) return ERROR_LABELS[kind];
  if (/^tls/i.test(kind || "")) return "TLS handshake failed";
  return kind || "Failed";
}

/** What the client got for an exchange (the API's summary or detail): the status it was
 * answered with, the proxy's own 502 or 504 for a failed call that has none recorded, or null
 * when the client got no answer (it went away, or the connection was cut). */
export function clientStatus(x) {
  if (x.status !== null && x.status !== undefined) return x.status;
  const kind = x.error ? x.error.kind : null;
  if (kind === "timeout") return 504;
  if (kind === "connect_failed" || kind === "protocol_error" || kind === "upstream_reset" || /^tls/i.test(kind || "")) return 502;
  return null;
}
