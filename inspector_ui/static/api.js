// Small fetch helpers shared by the replay editor and the diff view. Server problems are
// {detail: "one line"}; FastAPI's validation errors are {detail: [{msg, loc}, ...]}.

/** The server's one-line explanation of a failed response. */
export async function problemText(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch (_) { /* not JSON */ }
  let text = "";
  const detail = problem && problem.detail;
  if (typeof detail === "string") text = detail;
  else if (Array.isArray(detail)) {
    text = detail.map((item) => {
      const where = Array.isArray(item.loc) ? item.loc.filter((part) => part !== "body").join(".") : "";
      return where ? `${where}: ${item.msg}` : String(item.msg ?? "");
    }).join("; ");
  } else if (problem && typeof problem.message === "string") text = problem.message;
  text = text.replace(/\s+/g, " ").trim();
  return text || `HTTP ${response.status} ${response.statusText}`.trim();
}

/** POST JSON; the parsed answer, or an Error carrying the server's one-line detail. */
export async function postJson(url, payload) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload ?? {}),
      credentials: "same-origin",
    });
  } catch (error) {
    throw new Error(`the inspector did not answer (${error.message})`);
  }
  if (!response.ok) {
    const error = new Error(await problemText(response));
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/** GET JSON, or an Error with the server's detail. */
export async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    const error = new Error(await problemText(response));
    error.status = response.status;
    throw error;
  }
  return response.json();
}
