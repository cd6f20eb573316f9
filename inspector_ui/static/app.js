// Passageway inspector: live list, search, detail pane, keyboard. No build step, no framework.
import { bindThemeToggle, el, clear } from "./dom.js";
import { releaseObjectUrls, renderBody } from "./bodies.js";
import { loadDiff, renderDiff } from "./diff.js";
import { clientStatus, errorLabel, formatDuration, formatSize, formatTime, statusClass } from "./format.js";
import { copyText } from "./bodies.js";
import { closeSnippet, openSnippet } from "./copy_as.js";
import { initDetailActions } from "./detail_actions.js";
import { renderEditor, replayAsCaptured } from "./replay.js";
import { closeHarDialog, harDialogOpen, openHarDialog } from "./har.js";
import { closeShareUi, openShareDialog, openSharesList, shareUiOpen } from "./shares.js";
import { addTerm, cellTerm, clientStatusClass, formatWhen, isLiveOrder, nextSort, statusCell, suggestedQuery } from "./columns.js";
import { bindSplit } from "./split.js";
import { fillHelp } from "./help.js";
import * as pending from "./pending.js";
import "./exchange_violations.js"; // lists an exchange's contract violations in the pane (issue 18)

const ROW_HEIGHT = 28; // px; must match .row in app.css (the list is virtualized on it)
const PAGE = 100;
const OVERSCAN = 12;
const MAX_LOADED = 100_000; // rows kept in memory; beyond this, a search narrows better than scrolling
const MAX_PAUSED = 5_000;
const TEST_STEPS_MAX = 20; // exchanges a test made from a search holds at most (the endpoint's limit)
const HIDE_TESTS_KEY = "passageway-hide-tests"; // localStorage: "1" hides what API tests sent
const NOT_TESTS = "-is:test";

const $ = (id) => document.getElementById(id);
const listEl = $("list");
const sizer = $("sizer");
const searchInput = $("search");

const state = {
  q: "",
  rows: [], // summaries, newest first (ids descending)
  next: null, // keyset cursor for the next (older) page
  loading: false,
  generation: 0, // bumps on every new search, so stale responses are dropped
  selectedId: null,
  openId: null,
  paused: false,
  pausedQueue: [],
  newCount: 0,
  ws: null,
  reconnectDelay: 500,
  queryError: false,
  listed: false, // the first page of the current search has loaded
  diff: null, // [a, b] while the diff view is shown (?diff=A,B)
  editing: false, // the replay editor is in the detail pane
  compareA: null, // the exchange "Compare…" marked, waiting for a second one
  hideTests: readHideTests(),
  order: { sort: "time", order: "desc" }, // the list's order (columns.js); anything else pages with a cursor
  revealId: null, // /?id=N: load pages until this row is in the list, then scroll to it
};

function readHideTests() {
  try {
    return localStorage.getItem(HIDE_TESTS_KEY) === "1";
  } catch (_) {
    return false; // storage disabled: not remembered
  }
}

/** The search the list runs: the applied one, with test traffic left out when the toggle says so.
 * Appended, so a query error's position still points into the search box's text. */
function listQuery() {
  if (!state.hideTests) return state.q;
  return state.q ? `${state.q} ${NOT_TESTS}` : NOT_TESTS;
}

// ---------------------------------------------------------------- list (virtualized)

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderRows();
  });
}

function renderRows() {
  const calls = pending.pendingRows(); // calls in progress sit above the stored exchanges
  const total = calls.length + state.rows.length;
  sizer.style.height = `${total * ROW_HEIGHT}px`; // CSSOM: allowed under the CSP
  const first = Math.max(0, Math.floor(listEl.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(total, Math.ceil((listEl.scrollTop + listEl.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const fragment = document.createDocumentFragment();
  for (let i = first; i < last; i++) {
    if (i < calls.length) {
      const key = pending.pendingKey(calls[i].uuid);
      fragment.append(pending.decorateRow(rowElement(calls[i], i),
        calls[i], { selected: state.selectedId === key, open: state.openId === key }));
    } else fragment.append(rowElement(state.rows[i - calls.length], i));
  }
  if (!total && !state.loading) {
    let text = state.q ? "No exchange matches this search." : "No traffic captured yet: send a request through the proxy.";
    if (state.queryError) text = "Fix the query above to see results.";
    fragment.append(el("p", "empty-list", text));
  }
  sizer.replaceChildren(fragment);
  if (last >= total - 30) loadMore();
  updateFooter();
}

function rowElement(summary, index) {
  const row = el("div", "row");
  row.dataset.id = summary.id;
  row.setAttribute("role", "row");
  row.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
  if (summary.id === state.selectedId) row.classList.add("selected");
  if (summary.id === state.openId) row.classList.add("open");
  const got = statusCell(summary);
  const status = el("span", `c-status ${clientStatusClass(summary)}`, got.text);
  if (got.kind) {
    status.classList.add("failed"); // ⚠ drawn by CSS: the cell's text stays the status
    status.title = got.title;
    status.setAttribute("aria-label", `${got.text}, ${got.title}`);
  }
  const path = summary.path + (summary.query ? `?${summary.query}` : "");
  const pathCell = el("span", "c-path", path);
  pathCell.title = summary.url; // text only: a title is never a link
  const time = el("span", "c-time", formatWhen(summary.captured_at));
  time.title = summary.captured_at;
  const service = el("span", "c-service", summary.service ?? "");
  service.title = summary.service ?? "";
  const host = el("span", "c-host", summary.host ?? "");
  host.title = summary.host ?? "";
  const method = el("span", `c-method m-${/^[A-Z]+$/.test(summary.method) ? summary.method : "OTHER"}`, summary.method);
  for (const [column, cell] of [["status", status], ["service", service], ["method", method], ["host", host]]) {
    const term = cellTerm(column, summary);
    if (term) addFilterButton(cell, term);
  }
  row.append(
    time,
    service,
    method,
    host,
    pathCell,
    status,
    el("span", "c-duration", formatDuration(summary.duration_ms)),
    el("span", "c-size", formatSize(summary.response_size)),
  );
  if (summary.websocket) pathCell.prepend(el("span", "badge", "ws"));
  if (summary.replay_of) pathCell.prepend(el("span", "badge", "replay"));
  if (summary.test_name) {
    const badge = el("span", "badge test", "test");
    badge.title = `sent by the API test ${summary.test_name}`;
    pathCell.prepend(badge);
  }
  if (summary.fault) {
    const badge = el("span", "badge fault", "fault");
    badge.title = `touched by fault rule ${summary.fault}`;
    pathCell.prepend(badge);
  }
  if (summary.mock) {
    const badge = el("span", "badge mock", "mock");
    badge.title = summary.mock === "no-match" ? "simulated: no recording matched" : `answered by recording ${summary.mock}`;
    pathCell.prepend(badge);
  }
  return row;
}

/** A cell's ⊕ button (shown on hover): add `term` to the search; Alt+click on the cell does the same. */
function addFilterButton(cell, term) {
  cell.dataset.term = term;
  const button = el("button", "cell-filter"); // ⊕ drawn by CSS: the cell's text stays its value
  button.type = "button";
  button.tabIndex = -1; // a mouse shortcut: the keyboard has the search box
  button.title = `Add ${term} to the search (or Alt+click the cell)`;
  button.setAttribute("aria-label", `Add ${term} to the search`);
  cell.append(button);
}

function updateFooter() {
  const footer = $("list-footer");
  if (state.queryError) {
    footer.textContent = state.rows.length ? "the search has an error · showing the last good results" : "the search has an error";
    return;
  }
  let text = `${state.rows.length.toLocaleString()} loaded`;
  if (pending.pendingCount()) text += ` · ${pending.pendingCount()} pending`;
  if (state.loading) text += " · loading…";
  else if (state.next === null) text += " · end of list";
  else if (state.rows.length >= MAX_LOADED) text += " · refine the search to see older exchanges";
  if (state.q) text += " · filtered";
  if (state.hideTests) text += " · test traffic hidden";
  if (!isLiveOrder(state.order)) text += ` · by ${state.order.sort} ${state.order.order === "desc" ? "↓" : "↑"}, not live`;
  footer.textContent = text;
}

/** The sortable headers: aria-sort and the arrow on the sorted one. */
function updateSortHeaders() {
  for (const button of document.querySelectorAll(".list-head button.sort")) {
    const active = button.dataset.sort === state.order.sort;
    const cell = button.parentElement;
    cell.setAttribute("aria-sort", active ? (state.order.order === "desc" ? "descending" : "ascending") : "none");
    button.querySelector(".sort-arrow").textContent = active ? (state.order.order === "desc" ? " ↓" : " ↑") : "";
    button.classList.toggle("active", active);
  }
  const words = isLiveOrder(state.order) ? "newest first" : `sorted by ${state.order.sort}`;
  listEl.setAttribute("aria-label", `Captured exchanges, ${words}`);
}

function sortBy(column) {
  state.order = nextSort(state.order, column);
  reload();
}

/** Add a cell's term to the applied search and run it. */
function filterOn(term) {
  search(addTerm(state.q, term));
}

function indexOfId(id) {
  if (!isLiveOrder(state.order)) return state.rows.findIndex((s) => s.id === id);
  // rows are sorted by id, descending: binary search
  let lo = 0;
  let hi = state.rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const midId = state.rows[mid].id;
    if (midId === id) return mid;
    if (midId > id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function atTop() {
  return listEl.scrollTop < ROW_HEIGHT / 2;
}

/** Put newer summaries on top, keeping what the user is looking at still when scrolled away. */
function prepend(summaries) {
  const topId = state.rows.length ? state.rows[0].id : 0;
  const fresh = summaries.filter((s) => s.id > topId).sort((a, b) => b.id - a.id);
  if (!fresh.length) return;
  const replaced = fresh.filter((s) => finishedPending(s)).length; // these take their pending row's place
  const stayPut = !atTop();
  state.rows.unshift(...fresh);
  if (state.rows.length === fresh.length) updateSearchActions(); // the search matches something now
  if (stayPut) {
    listEl.scrollTop += (fresh.length - replaced) * ROW_HEIGHT;
    state.newCount += fresh.length - replaced;
  }
  updateNewCount();
  scheduleRender();
}

/** A stored exchange arrived: its pending row (same uuid) goes, and a selection or an open
 * detail of that row moves to the exchange. True when it was pending. */
function finishedPending(summary) {
  if (!pending.finishPending(summary.uuid)) return false;
  const key = pending.pendingKey(summary.uuid);
  if (state.selectedId === key) state.selectedId = summary.id;
  if (state.openId === key) openDetail(summary.id);
  return true;
}

/** A {"type": "pending"} message, or a pending row of a first page. */
function receivePending(summary) {
  // Paused, the list holds still (the finished exchange is queued as usual); sorted, it is not live.
  if (state.paused || !isLiveOrder(state.order)) return;
  const stayPut = !atTop();
  if (pending.updatePending(summary, (uuid) => state.rows.some((row) => row.uuid === uuid)) && stayPut) {
    listEl.scrollTop += ROW_HEIGHT;
  }
  pending.tickWhilePending(listEl, scheduleRender);
  scheduleRender();
}

function updateNewCount() {
  const button = $("new-count");
  const sorted = !isLiveOrder(state.order);
  if (atTop() && !sorted) state.newCount = 0;
  button.hidden = state.newCount === 0;
  button.textContent = sorted ? `${state.newCount} new · refresh the sorted list` : `↑ ${state.newCount} new`;
}

// ---------------------------------------------------------------- loading

function listUrl(before, limit = PAGE) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (!isLiveOrder(state.order)) {
    params.set("sort", state.order.sort);
    params.set("order", state.order.order);
    if (before) params.set("cursor", String(before));
  } else if (before) params.set("before", String(before));
  const q = listQuery();
  if (q) params.set("q", q);
  return `/api/exchanges?${params}`;
}

async function fetchPage(before, limit = PAGE) {
  const response = await fetch(listUrl(before, limit));
  if (response.status === 400) {
    const problem = await response.json().catch(() => ({}));
    const error = new Error(problem.message || problem.detail || "bad query");
    error.position = Number.isInteger(problem.position) ? problem.position : null;
    error.queryError = true;
    throw error;
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

async function reload() {
  const generation = ++state.generation;
  closeStream();
  // The rows on screen stay until the new search answers: a bad query keeps the last good results.
  const keptRows = state.rows;
  state.loading = true;
  state.newCount = 0;
  state.pausedQueue = [];
  state.listed = false;
  updateSearchActions();
  updateNewCount();
  updateSortHeaders();
  updateFooter();
  try {
    const page = await fetchPage(null);
    if (generation !== state.generation) return;
    pending.clearPending();
    for (const summary of page.data) if (summary.pending) pending.updatePending(summary);
    if (pending.pendingCount()) pending.tickWhilePending(listEl, scheduleRender);
    state.rows = page.data.filter((s) => !s.pending);
    state.next = page.next;
    state.queryError = false;
    showQueryError(null);
    listEl.scrollTop = 0;
    if (state.revealId !== null) await reveal(generation);
    if (generation !== state.generation) return;
    state.listed = true;
    updateSearchActions();
    if (state.selectedId === null && state.rows.length) state.selectedId = state.rows[0].id;
  } catch (error) {
    if (generation !== state.generation) return;
    state.loading = false;
    if (error.queryError) {
      state.queryError = true;
      state.rows = keptRows;
      updateSearchActions();
      showQueryError(error, keptRows.length);
      setLiveState("off", "no live view: fix the query");
    } else {
      $("list-footer").textContent = `Could not load: ${error.message}`;
      setLiveState("off", "offline");
    }
    scheduleRender();
    return;
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  scheduleRender();
  openStream(generation);
}

/** /?id=N: load pages (1000 at a time) until row N is in the list, then put it mid-list. */
async function reveal(generation) {
  const id = state.revealId;
  state.revealId = null;
  while (indexOfId(id) < 0 && state.next !== null && state.rows.length < MAX_LOADED) {
    if (isLiveOrder(state.order) && state.rows.length && state.rows[state.rows.length - 1].id < id) break;
    const page = await fetchPage(state.next, 1000);
    if (generation !== state.generation) return;
    state.rows.push(...page.data);
    state.next = page.next;
  }
  const index = indexOfId(id);
  if (index < 0) return;
  state.selectedId = id;
  sizer.style.height = `${state.rows.length * ROW_HEIGHT}px`;
  listEl.scrollTop = Math.max(0, index * ROW_HEIGHT - (listEl.clientHeight - ROW_HEIGHT) / 2);
}

async function loadMore() {
  if (state.loading || state.next === null || state.rows.length >= MAX_LOADED) return;
  const generation = state.generation;
  state.loading = true;
  try {
    const page = await fetchPage(state.next);
    if (generation !== state.generation) return;
    if (isLiveOrder(state.order)) {
      const lastId = state.rows.length ? state.rows[state.rows.length - 1].id : Infinity;
      state.rows.push(...page.data.filter((s) => !s.pending && s.id < lastId));
    } else {
      state.rows.push(...page.data); // the cursor continues after the last row: no overlap
    }
    state.next = page.next;
  } catch (error) {
    if (generation === state.generation) $("list-footer").textContent = `Could not load more: ${error.message}`;
    return;
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  scheduleRender();
}

// ---------------------------------------------------------------- live stream

function setLiveState(kind, text) {
  const badge = $("live-state");
  badge.dataset.state = kind;
  badge.textContent = text;
}

function closeStream() {
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close();
    state.ws = null;
  }
}

function openStream(generation) {
  const params = new URLSearchParams();
  const q = listQuery();
  if (q) params.set("q", q);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/stream${params.size ? `?${params}` : ""}`);
  state.ws = ws;
  setLiveState("connecting", "connecting");
  ws.onmessage = (event) => {
    if (generation !== state.generation) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (message.type === "hello") {
      state.reconnectDelay = 500;
      setLiveState(state.paused ? "paused" : "live", state.paused ? "paused" : "live");
      const topId = state.rows.length ? state.rows[0].id : 0;
      // Exchanges captured between the first page and this hello (or while disconnected).
      if (message.last_id && message.last_id > topId && isLiveOrder(state.order)) catchUp(generation);
    } else if (message.type === "exchange") {
      receive(message.data);
    } else if (message.type === "pending") {
      receivePending(message.data);
    } else if (message.type === "error") {
      // The server refused the query for the live view (then closes): say so, do not retry.
      ws.onclose = null;
      state.ws = null;
      state.queryError = true;
      showQueryError({ message: message.message || "bad query", position: message.position ?? null });
      setLiveState("off", "no live view: fix the query");
    }
    // Anything else ("replay-job" progress, types added later) is not for this view: ignored.
  };
  ws.onclose = () => {
    if (generation !== state.generation) return;
    state.ws = null;
    setLiveState("off", "reconnecting…");
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(delay * 2, 10_000);
    setTimeout(() => { if (generation === state.generation) openStream(generation); }, delay);
  };
}

async function catchUp(generation) {
  try {
    const page = await fetchPage(null);
    if (generation !== state.generation) return;
    for (const summary of page.data) if (summary.pending) receivePending(summary);
    page.data = page.data.filter((s) => !s.pending);
    const topId = state.rows.length ? state.rows[0].id : 0;
    if (page.next !== null && page.data.length && page.data[page.data.length - 1].id > topId) {
      reload(); // more missed than one page: start over rather than leave a hole
      return;
    }
    for (const summary of page.data.slice().reverse()) receive(summary);
  } catch (_) { /* the live stream still works */ }
}

function receive(summary) {
  if (!isLiveOrder(state.order)) {
    // A sorted list is not live: new rows are counted, and the button re-sorts.
    state.newCount += 1;
    updateNewCount();
    return;
  }
  if (state.paused) {
    state.pausedQueue.push(summary);
    if (state.pausedQueue.length > MAX_PAUSED) state.pausedQueue.shift();
    $("pause").textContent = `Resume (${state.pausedQueue.length})`;
    return;
  }
  prepend([summary]);
}

function togglePause() {
  state.paused = !state.paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(state.paused));
  if (state.paused) {
    button.textContent = "Resume";
    setLiveState("paused", "paused");
  } else {
    button.textContent = "Pause";
    const queued = state.pausedQueue;
    state.pausedQueue = [];
    if (queued.length >= MAX_PAUSED) reload();
    else prepend(queued);
    if (state.ws) setLiveState("live", "live");
  }
}

// ---------------------------------------------------------------- search and URL state

function showQueryError(error, kept = 0) {
  const box = $("search-error");
  searchInput.classList.toggle("invalid", Boolean(error));
  searchInput.setAttribute("aria-invalid", String(Boolean(error)));
  if (!error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.querySelector(".message").textContent = error.message;
  const query = clear(box.querySelector(".query"));
  const text = state.q;
  query.hidden = error.position === null || error.position === undefined;
  if (!query.hidden) {
    // The query with the offending term marked, on the same line.
    const at = Math.max(0, Math.min(error.position, text.length));
    const end = text.indexOf(" ", at) < 0 ? text.length : text.indexOf(" ", at);
    query.append(
      document.createTextNode(text.slice(0, at)),
      el("mark", "error-at", text.slice(at, Math.max(end, at + 1)) || " "),
      document.createTextNode(text.slice(Math.max(end, at + 1))),
    );
    query.title = `position ${error.position}`;
  }
  const suggestion = box.querySelector(".suggestion");
  const fixed = suggestedQuery(text, error.message, error.position);
  suggestion.hidden = fixed === null;
  if (fixed !== null) {
    suggestion.textContent = `Search ${fixed}`;
    suggestion.dataset.query = fixed;
  }
  box.querySelector(".kept").textContent = kept ? "· the list shows the last good search" : "";
}

function queryFromLocation() {
  return new URLSearchParams(location.search).get("q") || "";
}

function openIdFromLocation() {
  const id = new URLSearchParams(location.search).get("id");
  return id && /^[1-9][0-9]{0,17}$/.test(id) ? Number(id) : null;
}

/** ?diff=A,B: null when absent, [a, b], or {bad: raw} for a value that is not two ids. */
function diffFromLocation() {
  const raw = new URLSearchParams(location.search).get("diff");
  if (raw === null) return null;
  const match = /^\s*([1-9][0-9]{0,17})\s*,\s*([1-9][0-9]{0,17})\s*$/.exec(raw);
  return match ? [Number(match[1]), Number(match[2])] : { bad: raw };
}

// The address is the view: ?q= the search (a new history entry per search), &id= the
// open exchange (replaced in place, so Back returns to the previous search), &diff=A,B the
// diff view (a new history entry: Back leaves it).
function viewUrl(q, id, diff = null) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (id !== null) params.set("id", String(id));
  let query = params.toString();
  // Written by hand: URLSearchParams would send the comma as %2C.
  if (Array.isArray(diff)) query += `${query ? "&" : ""}diff=${diff[0]},${diff[1]}`;
  return query ? `/?${query}` : "/";
}

function replaceOpenIdInUrl(id) {
  const url = viewUrl(state.q, id);
  if (url !== location.pathname + location.search) history.replaceState({ q: state.q }, "", url);
}

function search(q, { push = true } = {}) {
  q = q.trim();
  state.q = q;
  searchInput.value = q;
  if (push) {
    const url = viewUrl(q, state.openId, state.diff);
    if (url !== location.pathname + location.search) history.pushState({ q, diff: Array.isArray(state.diff) }, "", url);
  }
  document.title = baseTitle();
  reload();
}

/** "Share search" and "Download HAR…" act on the applied search: the box must hold it,
 * unedited and valid. An empty search downloads everything (the newest 10,000), but shares nothing. */
function updateSearchActions() {
  const applied = searchInput.value.trim() === state.q && !state.queryError;
  const share = $("share-search");
  share.disabled = !(applied && state.q !== "");
  share.title = !share.disabled ? `Make a read-only link to what “${state.q}” matches now`
    : "Make a read-only link to what a search matches now (run a search first)";
  const har = $("har-search");
  har.disabled = !applied;
  if (!applied) har.title = state.queryError ? "Fix the search to download what it matches"
    : "Download what the search matches as a HAR file (press Enter to run the search first)";
  else har.title = state.q ? `Download what “${state.q}” matches as a HAR file (redacted)`
    : "Download everything captured (the newest 10,000) as a HAR file (redacted)";
  const test = $("test-search");
  const { count } = listedCount();
  test.disabled = !(applied && state.q !== "" && count !== 0);
  test.title = !test.disabled
    ? `Download an API test (a Hurl file) of the first ${TEST_STEPS_MAX} exchanges “${listQuery()}” matches, in capture order, chained`
    : "Download a search's exchanges as a chained API test (run a search that matches something first)";
}

/** Download a generated test (GET /api/tests/new.hurl answers with an attachment): no
 * captured byte passes through this page. */
function downloadTest(params) {
  const link = el("a");
  link.href = `/api/tests/new.hurl?${new URLSearchParams(params)}`;
  link.download = ""; // the server names the file
  document.body.append(link);
  link.click();
  link.remove();
}

/** How many exchanges the applied search matches, as far as the list knows:
 * {count, more}; count null before the first page. */
function listedCount() {
  if (!state.listed) return { count: null, more: true };
  const count = state.rows.length + state.pausedQueue.length;
  return { count, more: state.next !== null || state.pausedQueue.length >= MAX_PAUSED };
}

// ---------------------------------------------------------------- selection and detail

function select(id, { scroll = true } = {}) {
  state.selectedId = id;
  if (scroll) {
    const index = indexOfId(id);
    if (index >= 0) {
      const top = (index + pending.pendingCount()) * ROW_HEIGHT;
      if (top < listEl.scrollTop) listEl.scrollTop = top;
      else if (top + ROW_HEIGHT > listEl.scrollTop + listEl.clientHeight) {
        listEl.scrollTop = top + ROW_HEIGHT - listEl.clientHeight;
      }
    }
  }
  scheduleRender();
  if (state.openId !== null && state.openId !== id) openDetailSoon(id);
}

function moveSelection(delta) {
  if (!state.rows.length) return;
  let index = state.selectedId === null ? -1 : indexOfId(state.selectedId);
  index = index < 0 ? 0 : Math.max(0, Math.min(state.rows.length - 1, index + delta));
  select(state.rows[index].id);
}

let detailTimer = null;
function openDetailSoon(id) {
  clearTimeout(detailTimer);
  detailTimer = setTimeout(() => openDetail(id), 120);
}

let detailGeneration = 0;
let currentExchange = null;

async function openDetail(id) {
  const generation = ++detailGeneration;
  state.openId = id;
  state.selectedId = id;
  if (state.diff !== null) document.title = baseTitle();
  state.diff = null;
  state.editing = false;
  currentExchange = null;
  scheduleRender();
  const pane = $("detail");
  pane.hidden = false;
  document.body.classList.add("with-detail");
  document.body.classList.remove("with-diff");
  $("detail-actions").hidden = true; // until the exchange is here: a click before would do nothing
  $("replay-info").hidden = true;
  showActionMessage(null);
  updateCompareUi();
  const body = clear($("detail-body"));
  clear($("detail-title")).append(permalinkTo(id));
  replaceOpenIdInUrl(id);
  body.append(el("p", "note", "loading…"));
  let exchange;
  try {
    const response = await fetch(`/api/exchanges/${encodeURIComponent(id)}`);
    if (!response.ok) throw new Error(response.status === 404 ? "not found (deleted?)" : `HTTP ${response.status}`);
    exchange = await response.json();
  } catch (error) {
    if (generation === detailGeneration) clear(body).append(el("p", "problem", `Could not load #${id}: ${error.message}`));
    return;
  }
  if (generation !== detailGeneration) return;
  currentExchange = exchange;
  $("detail-actions").hidden = false;
  releaseObjectUrls();
  renderDetail(clear(body), exchange);
  scheduleRender(); // list width changed
}

/** The detail pane of a call in progress: what is known so far; the finished exchange replaces it. */
function openPending(uuid) {
  const summary = pending.pendingByUuid(uuid);
  if (!summary) return;
  detailGeneration++;
  const key = pending.pendingKey(uuid);
  state.selectedId = key;
  state.openId = key;
  state.diff = null;
  state.editing = false;
  currentExchange = null;
  const pane = $("detail");
  pane.hidden = false;
  document.body.classList.add("with-detail");
  document.body.classList.remove("with-diff");
  $("detail-actions").hidden = true; // nothing to replay, share or copy yet
  $("replay-info").hidden = true;
  showActionMessage(null);
  clear($("detail-title")).append(el("span", "status-pill s-pending", "pending"), ` ${summary.method} ${summary.path}`);
  replaceOpenIdInUrl(null);
  pending.renderPendingDetail(clear($("detail-body")), summary);
  scheduleRender();
}

function closeDetail() {
  detailGeneration++;
  state.openId = null;
  state.diff = null;
  state.editing = false;
  currentExchange = null;
  releaseObjectUrls();
  $("detail").hidden = true;
  document.body.classList.remove("with-detail", "with-diff");
  updateCompareUi();
  replaceOpenIdInUrl(null);
  scheduleRender();
  listEl.focus();
}

function section(title, open = true) {
  const details = el("details", "section");
  details.open = open;
  details.append(el("summary", "section-title", title));
  return details;
}

function headersTable(headers) {
  if (!headers || !headers.length) return el("p", "note", "(none)");
  const table = el("table", "headers");
  const tbody = el("tbody");
  for (const [name, value] of headers) {
    const tr = el("tr");
    tr.append(el("th", null, name), el("td", null, value));
    tbody.append(tr);
  }
  table.append(tbody);
  return table;
}

const TABS = [
  ["headers", "Headers"],
  ["request", "Request"],
  ["response", "Response"],
  ["timing", "Timing"],
  ["messages", "Messages"],
];
let activeTab = "response"; // kept from one exchange to the next, like DevTools

// The exchange's own link, /?id=N: it opens the exchange with no search.
function permalinkTo(id) {
  const link = el("a", "permalink", `#${id}`);
  link.href = viewUrl("", id);
  link.title = "Link to this exchange";
  return link;
}

const WEBSOCKET_NO_REPLAY = "Replaying a WebSocket conversation is not supported (only its opening handshake was an HTTP request)";
const REASONS = { 502: "Bad Gateway", 504: "Gateway Timeout" };

/** The title: number, method, what the client got (and why it failed), then the whole URL. */
function detailTitle(x) {
  const got = clientStatus(x);
  const status = el("span", `status-pill ${statusClass(x)}`, got ?? (x.error ? "no answer" : "…"));
  const line = el("span", "title-line", null,
    permalinkTo(x.id),
    el("span", `c-method m-${/^[A-Z]+$/.test(x.method) ? x.method : "OTHER"}`, x.method),
    status,
  );
  if (x.error) {
    const kind = el("span", "error-kind", errorLabel(x.error.kind));
    kind.title = `${x.error.kind}: ${x.error.message}`;
    status.title = got !== null && x.status === null ? `${got} answered by the proxy, not the upstream` : "";
    line.append(kind);
  }
  const copy = el("button", "copy-url", "Copy URL");
  copy.type = "button";
  copy.title = "Copy the full URL";
  copy.addEventListener("click", () => copyText(x.url, copy));
  const url = el("span", "detail-url", x.url); // a captured URL is text, never a link
  url.tabIndex = 0; // scrollable by keyboard when long
  return [line, el("span", "url-line", null, url, copy)];
}

/** What the client got for a failed call, in words, at the top of the Response tab. */
function errorBox(x) {
  const got = clientStatus(x);
  const box = el("div", "error-box");
  box.setAttribute("role", "note");
  box.append(el("p", "error-title", errorLabel(x.error.kind)));
  const answer = got === null ? "The client got no answer."
    : `The client got ${got} ${x.status !== null ? (x.reason ?? "") : REASONS[got] ?? ""}`.trim()
      + (x.status === null ? " from the proxy: no response came from the upstream." : ".");
  box.append(el("p", "error-answer", answer));
  box.append(el("p", "error-detail", null, el("code", "error-code", x.error.kind), document.createTextNode(` ${x.error.message}`)));
  return box;
}

function renderDetail(body, x) {
  // For the panes' extensions (exchange_violations.js): which exchange is shown now.
  document.dispatchEvent(new CustomEvent("passageway:exchange-shown", { detail: { id: x.id } }));
  const title = $("detail-title");
  clear(title).append(...detailTitle(x));
  title.title = "";
  for (const id of ["replay", "edit-replay"]) {
    const button = $(id);
    if (x.websocket) {
      button.setAttribute("aria-disabled", "true");
      button.dataset.title ??= button.title;
      button.title = WEBSOCKET_NO_REPLAY;
    } else {
      button.removeAttribute("aria-disabled");
      if (button.dataset.title) button.title = button.dataset.title;
    }
  }
  const info = $("replay-info");
  info.hidden = !x.replay_of;
  if (x.replay_of) {
    const link = $("replay-of");
    link.textContent = `Replay of #${x.replay_of}`;
    link.href = viewUrl("", x.replay_of);
    link.dataset.id = x.replay_of;
  }
  updateCompareUi();

  const builders = {
    headers: (panel) => renderHeadersTab(panel, x),
    request: (panel) => (x.request_body ? renderBody(panel, x.id, "request", x.request_body)
      : panel.append(el("p", "note", "No request body."))),
    response: (panel) => {
      if (x.error) panel.append(errorBox(x));
      if (x.response_body) renderBody(panel, x.id, "response", x.response_body);
      else if (!x.error) panel.append(el("p", "note", "No response body."));
    },
    timing: (panel) => panel.append(timingsSection(x)),
    messages: (panel) => renderWebSocket(panel, x.id),
  };
  const tablist = el("div", "tabs");
  tablist.setAttribute("role", "tablist");
  const panels = {};
  const buttons = {};
  const show = (key) => {
    activeTab = key;
    for (const [name, button] of Object.entries(buttons)) {
      const active = name === key;
      button.setAttribute("aria-selected", String(active));
      button.tabIndex = active ? 0 : -1;
      panels[name].hidden = !active;
    }
    const panel = panels[key];
    if (!panel.dataset.built) {
      panel.dataset.built = "1";
      builders[key](panel);
    }
  };
  for (const [key, label] of TABS) {
    if (key === "messages" && !x.websocket) continue;
    let text = label;
    if (key === "request" && x.request_body) text += ` · ${formatSize(x.request_body.size)}`;
    if (key === "response" && x.response_body) text += ` · ${formatSize(x.response_body.size)}`;
    if (key === "messages") text += ` (${x.websocket_messages ?? "?"})`;
    const button = el("button", "tab", text);
    button.type = "button";
    button.dataset.tab = key;
    button.setAttribute("role", "tab");
    button.addEventListener("click", () => show(key));
    buttons[key] = button;
    const panel = el("div", `tab-panel panel-${key}${key === "response" ? " response-body" : ""}${key === "request" ? " request-body" : ""}`);
    panel.setAttribute("role", "tabpanel");
    panel.hidden = true;
    panels[key] = panel;
    tablist.append(button);
  }
  body.append(tablist, ...Object.values(panels));
  // A WebSocket's story is its messages; otherwise keep the tab the reader chose last.
  const preferred = x.websocket && activeTab === "response" ? "messages" : activeTab;
  show(buttons[preferred] ? preferred : "headers");
  if (preferred !== activeTab) activeTab = "response";
}

function renderHeadersTab(panel, x) {
  const general = section("General");
  const facts = el("dl", "facts");
  const fact = (name, value) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(el("dt", null, name), value instanceof Node ? el("dd", null, null, value) : el("dd", null, value));
  };
  fact("Exchange", `#${x.id}`);
  fact("Captured", x.captured_at);
  fact("Service", x.service);
  fact("Realm", x.realm);
  fact("Called by", x.caller);
  fact("URL", x.url);
  const got = clientStatus(x);
  fact("Status", x.status !== null ? `${x.status} ${x.reason ?? ""}`.trim()
    : got !== null ? `${got} ${REASONS[got] ?? ""} (answered by the proxy)` : null);
  if (x.error) fact("Error", `${errorLabel(x.error.kind)} (${x.error.kind}): ${x.error.message}`);
  fact("Duration", formatDuration(x.duration_ms));
  fact("HTTP version", x.http_version);
  fact("Client", x.client_addr);
  if (x.trace_id) {
    const trace = el("a", "trace-link", x.trace_id);
    trace.href = `/traces/${encodeURIComponent(x.trace_id)}`;
    trace.title = "Show the whole trace as a waterfall";
    fact("Trace", trace);
  }
  fact("Span", x.span_id);
  fact("Parent span", x.parent_span_id);
  fact("Request id", x.request_id);
  if (x.replay_of) fact("Replay of", `#${x.replay_of}`);
  if (x.fault) fact("Fault", `injected by rule ${x.fault}`);
  if (x.mock) fact("Mock", x.mock === "no-match" ? "simulated: no recording matched" : `answered by recording ${x.mock}`);
  if (x.tags && x.tags.length) fact("Tags", x.tags.join(", "));
  general.append(facts);
  const reqHeaders = section(`Request headers (${(x.request_headers || []).length})`);
  reqHeaders.append(headersTable(x.request_headers));
  const resHeaders = section(`Response headers (${(x.response_headers || []).length})`);
  resHeaders.append(headersTable(x.response_headers));
  panel.append(general, resHeaders, reqHeaders);
}

function timingsSection(x) {
  const t = x.timings || {};
  const phases = [
    ["connect", "Connect", t.connect_ms],
    ["tls", "TLS", t.tls_ms],
    ["send", "Send", t.send_ms],
    ["wait", "Wait (TTFB)", t.wait_ms],
    ["receive", "Receive", t.receive_ms],
  ];
  const sum = phases.reduce((acc, p) => acc + (p[2] || 0), 0);
  const total = Math.max(x.duration_ms || 0, sum) || 1;
  const sectionEl = section(`Timings (${formatDuration(x.duration_ms) || "n/a"})`);
  const chart = el("div", "waterfall");
  let offset = 0;
  for (const [key, label, ms] of phases) {
    const row = el("div", "wf-row");
    const track = el("div", "wf-track");
    const bar = el("div", `wf-bar wf-${key}`);
    if (ms !== null && ms !== undefined) {
      bar.style.marginLeft = `${(offset / total) * 100}%`; // CSSOM, not a style attribute: CSP-safe
      bar.style.width = `${Math.max((ms / total) * 100, 0.5)}%`;
      offset += ms;
    } else {
      bar.classList.add("none");
    }
    track.append(bar);
    row.append(el("span", "wf-label", label), track, el("span", "wf-ms", ms === null || ms === undefined ? "–" : formatDuration(ms)));
    chart.append(row);
  }
  sectionEl.append(chart);
  return sectionEl;
}

async function renderWebSocket(container, id) {
  const list = el("ol", "ws-messages", "loading…");
  container.append(list);
  try {
    const response = await fetch(`/api/exchanges/${id}/websocket`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { data } = await response.json();
    clear(list);
    if (!data.length) list.append(el("li", "note", "(no messages)"));
    for (const m of data) {
      const item = el("li", `ws-${m.from_client ? "out" : "in"}`);
      item.append(
        el("span", "ws-dir", m.from_client ? "↑ client" : "↓ server"),
        el("span", "ws-time", m.timestamp ? formatTime(m.timestamp) : ""),
        el("span", "ws-kind", m.kind === "close" ? `close ${m.close_code ?? ""}` : m.kind),
        el("span", "ws-size", formatSize(m.size) + (m.truncated ? " (truncated)" : "")),
      );
      let payload = m.text;
      if (payload === null || payload === undefined) {
        const raw = atob(m.data_b64 || "");
        payload = Array.from(raw.slice(0, 256), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
        if (raw.length > 256) payload += " …";
      }
      item.append(el("pre", "ws-payload", payload));
      list.append(item);
    }
  } catch (error) {
    clear(list).append(el("li", "problem", `Could not load messages: ${error.message}`));
  }
}

function copySnippet(event) {
  const x = currentExchange;
  if (!x || state.diff !== null) return;
  openSnippet(x.id, $("detail-body"), event.currentTarget);
}

// ---------------------------------------------------------------- replay, compare, diff

function baseTitle() {
  return state.q ? `${state.q} · Passageway inspector` : "Passageway inspector";
}

/** One line under the detail bar: a replay's failure (role="alert"), or nothing. */
function showActionMessage(text, kind = "problem") {
  const box = $("action-message");
  box.hidden = !text;
  box.className = `action-message ${kind}`;
  box.textContent = text || "";
}

async function replayNow() {
  const x = currentExchange;
  if (!x || state.diff !== null) return;
  if (x.websocket) {
    showActionMessage(WEBSOCKET_NO_REPLAY, "note");
    return;
  }
  const button = $("replay");
  const generation = detailGeneration;
  button.disabled = true;
  button.textContent = "Replaying…";
  showActionMessage(null);
  try {
    const result = await replayAsCaptured(x.id);
    if (generation === detailGeneration) openDetail(result.id);
  } catch (error) {
    if (generation === detailGeneration) showActionMessage(`Replay of #${x.id} failed: ${error.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Replay";
  }
}

function openEditor() {
  const x = currentExchange;
  if (!x || state.editing || state.diff !== null) return;
  if (x.websocket) {
    showActionMessage(WEBSOCKET_NO_REPLAY, "note");
    return;
  }
  state.editing = true;
  showActionMessage(null);
  const generation = detailGeneration;
  const body = clear($("detail-body"));
  body.scrollTop = 0;
  $("edit-replay").setAttribute("aria-pressed", "true");
  renderEditor(body, x.id, {
    onCancel: closeEditor,
    onSent: (newId, { compare }) => {
      if (generation !== detailGeneration) return;
      if (compare) openDiff(x.id, newId);
      else openDetail(newId);
    },
  });
}

function closeEditor() {
  if (!state.editing) return;
  state.editing = false;
  $("edit-replay").setAttribute("aria-pressed", "false");
  if (currentExchange) renderDetail(clear($("detail-body")), currentExchange);
  $("edit-replay").focus();
}

/** "Compare…" marks the open exchange as A; in another exchange the same button compares. */
function compareClicked() {
  const id = state.openId;
  if (id === null) return;
  if (state.compareA !== null && state.compareA !== id) {
    openDiff(state.compareA, id);
    return;
  }
  state.compareA = state.compareA === id ? null : id;
  updateCompareUi();
}

function cancelCompare() {
  state.compareA = null;
  updateCompareUi();
}

function updateCompareUi() {
  const a = state.compareA;
  $("compare-banner").hidden = a === null;
  if (a !== null) $("compare-text").textContent = `Comparing with #${a} — open another exchange and press Compare with #${a}`;
  const button = $("compare");
  const other = a !== null && a !== state.openId;
  button.textContent = other ? `Compare with #${a}` : "Compare…";
  button.setAttribute("aria-pressed", String(a !== null && a === state.openId));
  button.title = other ? `Show what changed from #${a} to this exchange` : "Mark this exchange, then open another one to compare";
  $("edit-replay").setAttribute("aria-pressed", String(state.editing));
}

/** The diff view of a (old) and b (new): a new history entry, so Back returns. */
function openDiff(a, b) {
  state.compareA = null;
  state.diff = [a, b];
  history.pushState({ q: state.q, diff: true }, "", viewUrl(state.q, null, [a, b]));
  showDiff([a, b]);
}

async function showDiff(diff) {
  const generation = ++detailGeneration;
  clearTimeout(detailTimer);
  state.diff = diff;
  state.openId = null;
  state.editing = false;
  currentExchange = null;
  releaseObjectUrls();
  updateCompareUi();
  $("detail").hidden = false;
  document.body.classList.add("with-detail", "with-diff");
  $("detail-actions").hidden = true;
  $("replay-info").hidden = true;
  showActionMessage(null);
  scheduleRender();
  const title = clear($("detail-title"));
  const body = clear($("detail-body"));
  body.scrollTop = 0;
  if (!Array.isArray(diff)) {
    title.append(el("span", null, "Compare"));
    title.title = "";
    const problem = el("p", "problem diff-error",
      `Bad diff link: “diff=${diff.bad}”. Expected two exchange ids, like /?diff=12,15.`);
    problem.setAttribute("role", "alert");
    body.append(problem);
    return;
  }
  const [a, b] = diff;
  title.append(permalinkTo(a), el("span", "arrow", " → "), permalinkTo(b));
  title.title = `Exchange #${a} compared with #${b}`;
  document.title = `#${a} → #${b} · Passageway inspector`;
  body.append(el("p", "note", "comparing…"));
  try {
    const data = await loadDiff(a, b);
    if (generation !== detailGeneration) return;
    renderDiff(clear(body), data, { exchangeLink: permalinkTo });
  } catch (error) {
    if (generation !== detailGeneration) return;
    const problem = el("p", "problem diff-error", `Could not compare #${a} with #${b}: ${error.message}`);
    problem.setAttribute("role", "alert");
    clear(body).append(problem);
  }
}

function closeDiff() {
  if (history.state && history.state.diff) {
    history.back(); // to the view the diff was opened from (popstate shows it)
    return;
  }
  closeDetail(); // opened from a link or a reload: drop ?diff= in place
  document.title = baseTitle();
}

// ---------------------------------------------------------------- theme

// ---------------------------------------------------------------- wiring

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement
    || target instanceof HTMLSelectElement || target.isContentEditable;
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (shareUiOpen() || harDialogOpen()) {
    // A dialog is modal: Esc closes it (and nothing behind it); other keys stay in it.
    if (event.key === "Escape") {
      event.preventDefault();
      if (!closeShareUi()) closeHarDialog();
    }
    return;
  }
  if (event.key === "Escape") {
    const help = $("help");
    if (!help.hidden) {
      help.hidden = true;
      $("help-toggle").setAttribute("aria-expanded", "false");
    } else if (typing(event.target)) {
      event.target.blur();
      listEl.focus();
    } else if (closeSnippet()) {
      // the snippet box first: it sits on top of the detail
    } else if (state.editing) {
      closeEditor();
    } else if (state.diff !== null) {
      closeDiff();
    } else if (state.openId !== null) {
      closeDetail();
    } else if (state.compareA !== null) {
      cancelCompare();
    }
    return;
  }
  if (typing(event.target)) return;
  if (event.target instanceof HTMLButtonElement && event.key === "Enter") return;
  if (event.target.closest && event.target.closest("summary") && event.key === "Enter") return;
  switch (event.key) {
    case "/":
      event.preventDefault();
      searchInput.focus();
      searchInput.select();
      break;
    case "j":
    case "ArrowDown":
      event.preventDefault();
      moveSelection(1);
      break;
    case "k":
    case "ArrowUp":
      event.preventDefault();
      moveSelection(-1);
      break;
    case "Enter":
      if (state.selectedId !== null) {
        event.preventDefault();
        if (pending.isPendingKey(state.selectedId)) openPending(state.selectedId.slice(pending.PENDING_PREFIX.length));
        else openDetail(state.selectedId);
      }
      break;
    default:
  }
});

listEl.addEventListener("scroll", () => {
  updateNewCount();
  scheduleRender();
});
listEl.addEventListener("click", (event) => {
  const filter = event.target.closest(".cell-filter");
  const cell = event.target.closest("[data-term]");
  if (filter || (event.altKey && cell)) {
    event.preventDefault();
    filterOn(cell.dataset.term);
    return;
  }
  const row = event.target.closest(".row");
  if (!row) return;
  if (row.classList.contains("pending")) {
    openPending(row.dataset.uuid);
    return;
  }
  const id = Number(row.dataset.id);
  select(id, { scroll: false });
  openDetail(id);
});
window.addEventListener("resize", scheduleRender);

$("new-count").addEventListener("click", () => {
  if (!isLiveOrder(state.order)) {
    reload(); // the sorted list again, with the new rows in their places
    return;
  }
  listEl.scrollTop = 0;
  state.newCount = 0;
  updateNewCount();
});
$("pause").addEventListener("click", togglePause);
bindThemeToggle($("theme-toggle"));
$("detail-close").addEventListener("click", () => (state.diff !== null ? closeDiff() : closeDetail()));
$("copy-curl").addEventListener("click", copySnippet);
initDetailActions({
  bar: $("detail-bar"), title: $("detail-title"), actions: $("detail-actions"), menu: $("actions-menu"),
  toggle: $("actions-toggle"), close: $("detail-close"),
});
$("share").addEventListener("click", (event) => {
  if (currentExchange && state.diff === null) openShareDialog({ exchange: currentExchange }, event.currentTarget);
});
$("share-search").addEventListener("click", (event) => {
  if (state.q && !state.queryError) openShareDialog({ q: state.q }, event.currentTarget);
});
$("shares-open").addEventListener("click", (event) => openSharesList(event.currentTarget));
$("har-search").addEventListener("click", (event) => {
  if (searchInput.value.trim() === state.q && !state.queryError) {
    openHarDialog({ q: state.q, ...listedCount() }, event.currentTarget);
  }
});
searchInput.addEventListener("input", updateSearchActions);
$("test-search").addEventListener("click", () => {
  if (searchInput.value.trim() === state.q && state.q && !state.queryError) {
    downloadTest({ q: listQuery(), limit: String(TEST_STEPS_MAX) });
  }
});
$("save-test").addEventListener("click", () => {
  if (currentExchange && state.diff === null) downloadTest({ exchange: String(currentExchange.id) });
});
const hideTests = $("hide-tests");
hideTests.checked = state.hideTests;
hideTests.addEventListener("change", () => {
  state.hideTests = hideTests.checked;
  try {
    localStorage.setItem(HIDE_TESTS_KEY, state.hideTests ? "1" : "0");
  } catch (_) { /* not remembered */ }
  reload();
});
$("replay").addEventListener("click", replayNow);
$("edit-replay").addEventListener("click", openEditor);
$("compare").addEventListener("click", compareClicked);
$("compare-original").addEventListener("click", () => {
  if (currentExchange && currentExchange.replay_of) openDiff(currentExchange.replay_of, currentExchange.id);
});
$("compare-cancel").addEventListener("click", cancelCompare);
$("replay-of").addEventListener("click", (event) => {
  if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  event.preventDefault(); // in-app: keep the list and the search
  const id = Number(event.currentTarget.dataset.id);
  select(id, { scroll: true });
  openDetail(id);
});

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  search(searchInput.value);
  listEl.focus();
});
$("help-toggle").addEventListener("click", () => {
  const help = $("help");
  help.hidden = !help.hidden;
  $("help-toggle").setAttribute("aria-expanded", String(!help.hidden));
  if (!help.hidden) fillHelp(help, state.rows.slice(0, 200));
});
$("search-error").querySelector(".suggestion").addEventListener("click", (event) => {
  search(event.currentTarget.dataset.query);
  listEl.focus();
});
document.querySelector(".list-head").addEventListener("click", (event) => {
  const button = event.target.closest("button.sort");
  if (button) sortBy(button.dataset.sort);
});
bindSplit($("split"), document.querySelector(".list-pane"), document.querySelector(".layout"), scheduleRender);
$("help").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-example]");
  if (!button) return;
  $("help").hidden = true;
  $("help-toggle").setAttribute("aria-expanded", "false");
  search(button.dataset.example);
});
function showLocation() {
  const diff = diffFromLocation();
  state.diff = Array.isArray(diff) ? diff : null;
  const id = openIdFromLocation();
  state.revealId = diff === null ? id : null;
  search(queryFromLocation(), { push: false });
  if (diff !== null) showDiff(diff);
  else if (id !== null) openDetail(id);
  else if (state.openId !== null || !$("detail").hidden) closeDetail();
}

window.addEventListener("popstate", showLocation);

showLocation();
listEl.focus();
