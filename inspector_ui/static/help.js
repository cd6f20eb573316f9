// The search help's examples, made of this store's own names: services from /api/services (or
// the list), a host and a trace id from the loaded exchanges. Generic text when there are none.
import { el } from "./dom.js";
import { quoteValue } from "./columns.js";

let services = null; // names, once fetched

async function serviceNames(rows) {
  if (services === null) {
    try {
      const response = await fetch("/api/services");
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      services = [...new Set((body.services || []).map((s) => s.name).filter(Boolean))];
    } catch (_) {
      services = [];
    }
  }
  const seen = rows.map((r) => r.service).filter(Boolean);
  return [...new Set([...services, ...seen])];
}

function setExample(button, example) {
  button.dataset.example = example;
  button.textContent = example;
}

/** Fill the help (`help`, the #help element) for a store whose loaded summaries are `rows`. */
export async function fillHelp(help, rows) {
  const names = await serviceNames(rows);
  const service = help.querySelector('button[data-kind="service"]');
  const more = help.querySelector('.help-more[data-kind="service"]');
  more.replaceChildren();
  if (names.length) {
    setExample(service, `service:${quoteValue(names[0])}`);
    const others = names.slice(1, 4);
    if (others.length) more.append(" · also ");
    others.forEach((name, i) => {
      const button = el("button", "help-alt", `service:${quoteValue(name)}`);
      button.type = "button";
      button.dataset.example = button.textContent;
      more.append(button, i < others.length - 1 ? " " : "");
    });
  } else {
    setExample(service, "service:NAME");
    more.append(" (no service has sent traffic here yet)");
  }
  const host = rows.find((r) => r.host)?.host;
  if (host) setExample(help.querySelector('button[data-kind="host"]'), `host:${quoteValue(host)}`);
  const trace = rows.find((r) => r.trace_id)?.trace_id;
  if (trace) setExample(help.querySelector('button[data-kind="trace"]'), `trace:${trace.slice(0, 8)}`);
}
