// The fault banner, on every page of the shell (inspector_ui/shell.py): the fault rules active
// now, each with what it does, its expiry and a Remove button, from GET /api/faults?state=active.
// Refreshed every 5 s while the page is visible, and at once when a form on the page adds a rule
// (the "passageway:faults-changed" event, see fault_form.js). Text only: no markup from the API.
import { el } from "./dom.js";
import { problemText } from "./api.js";

const REFRESH_MS = 5000;
export const FAULTS_CHANGED = "passageway:faults-changed";
let timer = null;

/** "billing POST /pay [x-env=canary]: delay 100-300 ms, status 503 at 20%" */
export function describeRule(rule) {
  const scope = [rule.method, rule.path, rule.header ? `[${rule.header}]` : null].filter(Boolean).join(" ");
  const effects = [];
  if (rule.delay_ms) effects.push(`delay ${rule.delay_ms}${rule.delay_max_ms ? `-${rule.delay_max_ms}` : ""} ms`);
  if (rule.status !== null) effects.push(`status ${rule.status}`);
  if (rule.reset) effects.push("reset");
  if (rule.stall) effects.push("stall");
  const realm = rule.realm ? ` (realm ${rule.realm})` : "";
  return `${rule.service}${realm}${scope ? ` ${scope}` : ""}: ${effects.join(", ")} at ${rule.rate}%`;
}

function untilText(iso) {
  const at = new Date(iso);
  const minutes = Math.max(0, Math.round((at - Date.now()) / 60000));
  const left = minutes < 1 ? "under a minute" : minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`;
  return `until ${at.toLocaleTimeString()} (${left} left)`;
}

function banner() {
  let node = document.getElementById("fault-banner");
  if (!node) {
    node = el("section", "fault-banner");
    node.id = "fault-banner";
    node.setAttribute("role", "status");
    node.setAttribute("aria-label", "Active fault rules");
    node.hidden = true;
    const header = document.querySelector("header.topbar");
    if (header) header.after(node);
    else document.body.prepend(node);
  }
  return node;
}

async function remove(rule, button, node) {
  button.disabled = true;
  let response;
  try {
    response = await fetch(`/api/faults/${encodeURIComponent(rule.id)}`,
      { method: "DELETE", credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (error) {
    showError(node, `Cannot remove fault #${rule.id}: the inspector did not answer (${error.message})`);
    button.disabled = false;
    return;
  }
  if (!response.ok && response.status !== 404) {
    showError(node, `Cannot remove fault #${rule.id}: ${await problemText(response)}`);
    button.disabled = false;
    return;
  }
  refresh();
}

function showError(node, text) {
  node.querySelector(".fault-error")?.remove();
  node.append(el("p", "fault-error", text));
  node.hidden = false;
}

function render(rules) {
  const node = banner();
  node.replaceChildren();
  node.hidden = rules.length === 0;
  if (!rules.length) return;
  node.append(el("strong", "fault-title", rules.length === 1 ? "1 fault rule active" : `${rules.length} fault rules active`));
  const list = el("ul", "fault-list");
  for (const rule of rules) {
    const item = el("li", "fault-item");
    item.dataset.faultId = rule.id;
    const button = el("button", "fault-remove", "Remove");
    button.type = "button";
    button.title = `Remove fault rule #${rule.id} now`;
    button.addEventListener("click", () => remove(rule, button, node));
    item.append(
      el("span", "fault-id", `#${rule.id}`), " ",
      el("span", "fault-what", describeRule(rule)), " ",
      el("span", "fault-until", untilText(rule.expires_at)), " ",
      button,
    );
    if (rule.note) item.title = rule.note;
    list.append(item);
  }
  node.append(list);
}

export async function refresh() {
  try {
    const response = await fetch("/api/faults?state=active", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return; // a page without the API's rights (or an older inspector): no banner
    render((await response.json()).faults || []);
  } catch (_) { /* the inspector is away: the next refresh tries again */ }
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (document.visibilityState === "visible") timer = setTimeout(() => refresh().then(schedule), REFRESH_MS);
}

document.addEventListener(FAULTS_CHANGED, () => refresh().then(schedule));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh().then(schedule);
});
refresh().then(schedule);
