// The exchange pane's contract violations (issue 18 §2): when app.js shows an exchange it sends
// "passageway:exchange-shown"; this lists how that exchange broke its service's contract
// (GET /api/exchanges/<id>/violations) above the tabs. Rule, side, JSON path and message are
// set as textContent: they name captured fields.
import { el, clear } from "./dom.js";
import { getJson } from "./api.js";

const box = document.getElementById("detail-violations");
let shown = null; // the exchange id whose violations are wanted now

async function showViolations(id) {
  shown = id;
  clear(box);
  box.hidden = true;
  let answer;
  try {
    answer = await getJson(`/api/exchanges/${encodeURIComponent(id)}/violations`);
  } catch (_) {
    return; // no such exchange any more, or the inspector is away: the pane shows nothing extra
  }
  if (shown !== id || !answer.violations.length) return;
  const list = el("ul", "violation-list");
  for (const v of answer.violations) {
    list.append(el("li", "violation", null,
      el("code", "violation-rule", v.rule), " ",
      el("span", "violation-side", v.side), " ",
      v.json_path ? el("code", "violation-path", v.json_path) : "",
      v.json_path ? " " : "",
      el("span", "violation-message", v.message)));
  }
  const search = el("a", "violation-search", "all exchanges with violations");
  search.href = `/?q=${encodeURIComponent("is:violation")}`;
  box.append(el("p", "violation-title", `Contract violations (${answer.violations.length}) · `, search), list);
  box.hidden = false;
}

if (box) {
  document.addEventListener("passageway:exchange-shown", (event) => showViolations(event.detail.id));
}
