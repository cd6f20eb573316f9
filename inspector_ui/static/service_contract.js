// The service page's contract (issue 18 §2): the contract's origin, label and date, "Accept current
// as contract" (freeze the inferred document) and "Remove", and the violations of the page's
// window counted per endpoint and rule, each a link to the matching exchanges. Captured names
// (templates, rules) are set as textContent.
import { el, clear } from "./dom.js";
import { getJson, postJson, problemText } from "./api.js";
import { serviceFromPath } from "./service_name.js";

const $ = (id) => document.getElementById(id);
const section = $("service-contract");


const service = serviceFromPath();
const base = `/api/services/${encodeURIComponent(service)}`;
const realm = () => new URLSearchParams(location.search).get("realm") || "";
const since = () => new URLSearchParams(location.search).get("since") || "1h"; // service.js's default
const withRealm = (url) => (realm() ? `${url}${url.includes("?") ? "&" : "?"}${new URLSearchParams({ realm: realm() })}` : url);

function say(text) {
  const note = $("contract-message");
  note.textContent = text;
  note.hidden = !text;
}

async function act(button, run) {
  button.disabled = true;
  say("");
  try {
    await run();
    await load();
  } catch (error) {
    say(error.message);
  } finally {
    button.disabled = false;
  }
}

function renderContract(contract) {
  const info = clear($("contract-info"));
  $("contract-remove").hidden = !contract;
  if (!contract) {
    info.append("No contract: exchanges are not checked. Accept the API inferred from the last 7 days of traffic, "
      + "or set one from a file (passageway contract set NAME FILE, or [services.NAME] contract = \"openapi.yaml\").");
    return;
  }
  const when = new Date(contract.created_at);
  info.append(
    el("strong", null, contract.origin), " contract",
    contract.label ? el("span", null, ` · ${contract.label}`) : "",
    ` · ${Number.isNaN(when.getTime()) ? contract.created_at : when.toLocaleString()}`,
    ` · ${contract.operations} operation(s) · `,
    el("a", null, "document", null),
  );
  info.lastChild.href = withRealm(`${base}/contract`);
}

function renderCounts(counts) {
  const body = clear($("contract-counts").tBodies[0]);
  $("contract-counts").hidden = !counts.length;
  $("contract-none").hidden = counts.length > 0;
  for (const count of counts) {
    const q = `service:${service} violation:${count.rule}`;
    const link = el("a", null, String(count.count));
    link.href = `/?q=${encodeURIComponent(q)}`;
    const row = el("tr", null, null,
      el("td", null, count.method), el("td", null, null, el("code", null, count.template ?? "")),
      el("td", null, null, el("code", null, count.rule)));
    const cell = el("td", "num");
    cell.append(link);
    row.append(cell);
    body.append(row);
  }
}

async function load() {
  let answer;
  try {
    answer = await getJson(withRealm(`${base}/violations?${new URLSearchParams({ since: since(), limit: "1" })}`));
  } catch (error) {
    say(error.message);
    return;
  }
  section.hidden = false;
  $("contract-window").textContent = `Violations in the last ${answer.since}`;
  renderContract(answer.contract);
  renderCounts(answer.counts);
}

if (section) {
  $("contract-accept").addEventListener("click", (event) => act(event.currentTarget, () =>
    postJson(withRealm(`${base}/contract/accept`), {})));
  $("contract-remove").addEventListener("click", (event) => act(event.currentTarget, async () => {
    const response = await fetch(withRealm(`${base}/contract`),
      { method: "DELETE", credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await problemText(response));
  }));
  load();
  // The page's window picker sets ?since= (service.js): count over the new window too.
  $("service-window-picker")?.addEventListener("click", () => setTimeout(load, 0));
}
