// The /v1 client: GET with the read token, problem+json errors, and the
// token prompt. The token lives in this tab's sessionStorage only; it is
// sent in the Authorization header and never in a URL, nor logged.

const tokenKey = "sketchd.readToken";

// Problem is an API error: the RFC 9457 problem the server answered.
export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.parameter = body && body.parameter;
  }
}

export function hasToken() {
  return !!sessionStorage.getItem(tokenKey);
}

export function forgetToken() {
  sessionStorage.removeItem(tokenKey);
}

// prompting is the open token prompt, shared by every request that got a
// 401 while it is open.
let prompting = null;

// askToken opens the token dialog and resolves once a token is saved.
function askToken(refused) {
  if (prompting) return prompting;
  const dlg = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-msg").textContent = refused
    ? "The token was refused; enter the read token (or the admin token)."
    : "";
  prompting = new Promise((resolve) => {
    const done = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(tokenKey, t);
      input.value = "";
      form.removeEventListener("submit", done);
      dlg.close();
      prompting = null;
      document.dispatchEvent(new CustomEvent("sketchd-token"));
      resolve();
    };
    form.addEventListener("submit", done);
    // Escape would close the dialog without a token: keep it open.
    dlg.oncancel = (ev) => ev.preventDefault();
  });
  dlg.showModal();
  input.focus();
  return prompting;
}

// getJSON fetches an API path ("/v1/...") and returns its JSON. A 401
// asks for the token and retries; other errors throw a Problem.
export async function getJSON(path, signal) {
  for (;;) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(tokenKey);
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (res.status === 401) {
      if (token) forgetToken();
      await askToken(!!token);
      continue;
    }
    if (!res.ok) throw new Problem(res.status, body);
    return body;
  }
}
