// Share links: the "Share…" dialog (an exchange, its trace, or a search) and the list of live
// shares with Revoke. The server keeps only a hash of a link's token, so a link is shown once,
// right after it is made, and the list can never show one.
import { el, clear } from "./dom.js";
import { postJson, getJson, problemText } from "./api.js";
import { dialogHead, showModal, wireDialog } from "./dialogs.js";

const $ = (id) => document.getElementById(id);

const EXPIRIES = [
  [1, "1 hour"],
  [24, "1 day"],
  [24 * 7, "7 days"],
  [24 * 30, "30 days"],
];
const DEFAULT_EXPIRY = 24 * 7;
const NOTE_MAX = 2000;
const MAX_SHARED = 500; // storage.shares.MAX_SHARED_EXCHANGES
const KIND_LABELS = { exchange: "Exchange", search: "Search", trace: "Trace" };


/** A server date as the reader's local time (the ISO value stays in the title); `short`: to the
 * minute, for the list's columns. */
function when(iso, short = false) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return short ? date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : date.toLocaleString();
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function field(label, control) {
  const wrap = el("label", "field");
  wrap.append(el("span", "field-label", label), control);
  return wrap;
}

/** Esc: close an open share dialog; true when one was open (nothing else should close then). */
export function closeShareUi() {
  for (const dialog of [$("share-dialog"), $("shares-dialog")]) {
    if (dialog.open) {
      dialog.close();
      return true;
    }
  }
  return false;
}

export function shareUiOpen() {
  return $("share-dialog").open || $("shares-dialog").open;
}

// ---------------------------------------------------------------- the "Share…" dialog

/**
 * target: {exchange} (the open exchange's detail; its trace is offered when it has one),
 * {q} (an applied search, frozen when the link is made) or {trace} (a trace id: the trace page).
 */
export function openShareDialog(target, from) {
  const dialog = $("share-dialog");
  wireDialog(dialog);
  clear(dialog);
  const x = target.exchange || null;
  const traceId = x ? null : target.trace || null;
  const title = x ? `Share exchange #${x.id}` : traceId ? "Share this trace" : "Share this search";
  const form = el("form", "share-form");
  form.method = "dialog"; // never a navigation; submit is handled below
  form.noValidate = true;

  let choice = null;
  if (x && x.trace_id) {
    choice = el("fieldset", "share-what");
    choice.append(el("legend", null, "Share"));
    const option = (value, label, checked) => {
      const input = el("input");
      input.type = "radio";
      input.name = "what";
      input.value = value;
      input.checked = checked;
      return el("label", "choice", null, input, label);
    };
    choice.append(
      option("exchange", el("span", null, `this exchange (#${x.id})`), true),
      option("trace", el("span", null, "its whole trace ", el("code", "trace-id", x.trace_id)), false),
    );
  } else if (x) {
    form.append(el("p", "share-subject", null, el("span", "c-method", x.method), el("span", "share-url", x.url)));
  } else if (traceId) {
    form.append(el("p", "share-subject", null, el("span", null, "Every exchange of trace "), el("code", "share-query", traceId)));
  } else {
    const subject = el("p", "share-subject");
    subject.append(el("span", null, "What matches "), el("code", "share-query", target.q),
      el("span", null, ` now (the newest ${MAX_SHARED} at most); later traffic is not added.`));
    form.append(subject);
  }
  if (choice) form.append(choice);

  const expiry = el("select", "share-expiry");
  expiry.name = "expires";
  for (const [hours, label] of EXPIRIES) {
    const option = el("option", null, label);
    option.value = String(hours);
    option.selected = hours === DEFAULT_EXPIRY;
    expiry.append(option);
  }
  const note = el("textarea", "share-note-input");
  note.name = "note";
  note.rows = 3;
  note.maxLength = NOTE_MAX;
  note.placeholder = "What to look at (shown on the shared page)";
  form.append(field("Expires after", expiry), field("Note (optional)", note));
  form.append(el("p", "note", "Anyone with the link can read a redacted copy, taken now, until it expires or is revoked. Credentials and other secrets are replaced by [redacted:…] markers."));
  const problem = el("p", "form-error");
  problem.setAttribute("role", "alert");
  problem.hidden = true;
  const create = el("button", "primary share-create", "Create link");
  create.type = "submit";
  const cancel = el("button", "share-cancel", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => dialog.close());
  form.append(problem, el("div", "dialog-actions", null, create, cancel));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const payload = { expires_in_hours: Number(expiry.value), note: note.value.trim() };
    const what = choice ? form.elements.what.value : null;
    if (traceId) payload.trace_id = traceId;
    else if (!x) payload.q = target.q;
    else if (what === "trace") payload.trace_id = x.trace_id;
    else payload.exchange_id = x.id;
    create.disabled = true;
    create.textContent = "Creating…";
    problem.hidden = true;
    try {
      const created = await postJson("/api/shares", payload);
      if (dialog.open) showCreated(dialog, created);
    } catch (error) {
      problem.textContent = `Could not make the link: ${error.message}`;
      problem.hidden = false;
      create.disabled = false;
      create.textContent = "Create link";
    }
  });

  dialog.append(dialogHead(dialog, "share-dialog-title", title), form);
  showModal(dialog, from);
  (choice ? choice.querySelector("input:checked") : expiry).focus();
}

function showCreated(dialog, created) {
  const body = el("div", "share-created");
  const link = el("input", "share-link");
  link.type = "text";
  link.readOnly = true;
  link.value = new URL(created.url, location.origin).href;
  link.setAttribute("aria-label", "Share link");
  link.addEventListener("focus", () => link.select());
  const copy = el("button", "primary share-copy", "Copy");
  copy.type = "button";
  const copied = el("span", "copy-state");
  copied.setAttribute("aria-live", "polite");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link.value);
      copy.textContent = "Copied ✓";
      copied.textContent = "";
    } catch (_) {
      // No clipboard permission: select the link for Ctrl+C / ⌘C.
      link.focus();
      link.select();
      copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
  const what = {
    exchange: `exchange #${created.selector}`,
    search: plural(created.exchange_count, "exchange"),
    trace: `${plural(created.exchange_count, "exchange")} of trace ${created.selector}`,
  }[created.kind] || plural(created.exchange_count, "exchange");
  const expires = el("span", null, when(created.expires_at));
  expires.title = created.expires_at;
  const facts = el("p", "share-facts");
  facts.append(
    el("strong", null, "This link is shown once: copy it now. "),
    el("span", null, `It shares ${what}, expires `), expires,
    el("span", null, ", and shows secrets redacted. Revoke it any time under Shares."),
  );
  const done = el("button", "share-done", "Done");
  done.type = "button";
  done.addEventListener("click", () => dialog.close());
  body.append(el("div", "link-row", null, link, copy), copied, facts, el("div", "dialog-actions", null, done));
  const form = dialog.querySelector(".share-form");
  form.replaceWith(body);
  link.focus();
}

// ---------------------------------------------------------------- the list of live shares

/** What a share holds, as a person finds it again: an exchange by its method, service and path
 * (its #id links to it), a trace by its id (linking to the trace page), a search as written. */
function selectorCell(share) {
  const cell = el("td", "share-selector");
  if (share.kind === "exchange" && /^[0-9]+$/.test(share.selector)) {
    const link = el("a", "permalink", `#${share.selector}`);
    link.href = `/?${new URLSearchParams({ id: share.selector })}`;
    link.title = "Open this exchange in the inspector";
    cell.append(link);
    const x = share.exchange;
    if (x) {
      const what = el("span", "share-exchange");
      what.append(el("span", "c-method", x.method));
      if (x.service) what.append(el("span", "share-service", x.service));
      what.append(el("span", "share-path", x.path));
      cell.append(what);
    } else {
      cell.append(el("span", "note share-exchange-gone", "no longer stored here (the link keeps its copy)"));
    }
  } else if (share.kind === "search") {
    const link = el("a", "mono", share.selector);
    link.href = `/?${new URLSearchParams({ q: share.selector })}`;
    link.title = "Run this search now (the share keeps what it matched when it was made)";
    cell.append(link);
  } else if (share.kind === "trace") {
    const link = el("a", "mono trace-link", share.selector);
    link.href = `/traces/${encodeURIComponent(share.selector)}`;
    link.title = "Open this trace";
    cell.append(link);
  } else {
    cell.append(el("code", null, share.selector));
  }
  return cell;
}

async function revoke(id) {
  let response;
  try {
    response = await fetch(`/api/shares/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch (error) {
    throw new Error(`the inspector did not answer (${error.message})`);
  }
  if (!response.ok && response.status !== 404) throw new Error(await problemText(response));
}

function revokeCell(share, refresh, problem) {
  const cell = el("td", "share-revoke");
  const ask = el("button", "revoke", "Revoke");
  ask.type = "button";
  ask.title = "The link answers 410 Gone from then on";
  ask.addEventListener("click", () => {
    const yes = el("button", "danger revoke-confirm", "Revoke");
    yes.type = "button";
    const keep = el("button", "revoke-keep", "Keep");
    keep.type = "button";
    // Stacked (the question above its two buttons) so it fits the narrow last column.
    const confirmBox = el("div", "confirm", null, el("span", "confirm-question", "Revoke this link?"),
      el("span", "confirm-buttons", null, yes, keep));
    confirmBox.setAttribute("role", "group");
    confirmBox.setAttribute("aria-label", "Revoke this link?");
    keep.addEventListener("click", () => {
      confirmBox.replaceWith(ask);
      ask.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      keep.disabled = true;
      yes.textContent = "Revoking…";
      try {
        await revoke(share.id);
        await refresh();
      } catch (error) {
        problem.textContent = `Could not revoke share ${share.id}: ${error.message}`;
        problem.hidden = false;
        confirmBox.replaceWith(ask);
      }
    });
    ask.replaceWith(confirmBox);
    keep.focus();
  });
  cell.append(ask);
  return cell;
}

export function openSharesList(from) {
  const dialog = $("shares-dialog");
  wireDialog(dialog);
  clear(dialog);
  const problem = el("p", "form-error");
  problem.setAttribute("role", "alert");
  problem.hidden = true;
  const content = el("div", "shares-content", null, el("p", "note", "loading…"));
  const refresh = async () => {
    let shares;
    try {
      shares = (await getJson("/api/shares")).data;
    } catch (error) {
      clear(content).append(el("p", "problem", `Could not load the shares: ${error.message}`));
      return;
    }
    if (!dialog.open) return;
    clear(content);
    if (!shares.length) {
      content.append(el("p", "note empty-shares", "No live shares. Make one with Share… in an exchange, or Share search."));
      return;
    }
    const table = el("table", "shares-table");
    const head = el("tr");
    for (const name of ["Kind", "What", "Note", "Created", "Expires", "Exchanges", ""]) head.append(el("th", null, name));
    table.append(el("thead", null, null, head));
    const tbody = el("tbody");
    for (const share of shares) {
      const row = el("tr");
      row.dataset.id = String(share.id);
      const created = el("td", "share-when", when(share.created_at, true));
      created.title = share.created_at;
      const expires = el("td", "share-when", when(share.expires_at, true));
      expires.title = share.expires_at;
      row.append(
        el("td", "share-kind", KIND_LABELS[share.kind] || share.kind),
        selectorCell(share),
        el("td", "share-note-cell", share.note || ""),
        created,
        expires,
        el("td", "share-count", String(share.exchange_count)),
        revokeCell(share, refreshAfterRevoke, problem),
      );
      tbody.append(row);
    }
    table.append(tbody);
    content.append(table, el("p", "note", "Links are shown only when made: the server keeps a hash of each, so a lost link cannot be shown again (make a new one)."));
  };
  const refreshAfterRevoke = async () => {
    await refresh();
    if (!content.contains(document.activeElement)) (content.querySelector(".revoke") || dialog.querySelector(".dialog-close")).focus();
  };
  dialog.append(dialogHead(dialog, "shares-dialog-title", "Live shares"), problem, content);
  showModal(dialog, from);
  dialog.querySelector(".dialog-close").focus();
  refresh();
}
