// Shared by the chat pages: the page's config, DOM building, the chat JSON API, and friendly times.
// No innerHTML anywhere: decrypted text is untrusted and only ever becomes text nodes.

/** The page's config, rendered by chat/pages.py with json_script (data, never code). */
export function pageConfig(doc = document) {
  const node = doc.getElementById("chat-config");
  return node ? JSON.parse(node.textContent) : null;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "hidden") node.hidden = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function csrfToken(doc = document) {
  const input = doc.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** An API refusal or a network failure: `status` 0 means no answer (offline), `code` is the API's error. */
export class ApiError extends Error {
  constructor(status, code, detail = "") {
    super(`${status} ${code}${detail ? `: ${detail}` : ""}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }

  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** Call the chat API (same origin, session cookie, CSRF header on writes); resolves to the JSON body. */
export async function api(base, path, { method = "GET", json = undefined, body = undefined, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (error) {
    throw new ApiError(0, "offline", "no answer from the server");
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || `http_${response.status}`, data?.detail || "");
  }
  return data;
}

/** Raw bytes from the API (encrypted blobs). */
export async function apiBytes(base, path) {
  let response;
  try {
    response = await fetch(base + path, { credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, "offline", "no answer from the server");
  }
  if (!response.ok) throw new ApiError(response.status, `http_${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short" });

/** "14:02" today, "Tue 3 Mar, 14:02" on other days. */
export function shortTime(date, now = new Date()) {
  const sameDay = date.toDateString() === now.toDateString();
  return sameDay ? clock.format(date) : `${day.format(date)}, ${clock.format(date)}`;
}

/** "in 6 days", "in 3 hours", "in 12 minutes", "in under a minute". */
export function untilText(date, now = new Date()) {
  const seconds = Math.max(0, (date.getTime() - now.getTime()) / 1000);
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (seconds >= size) {
      const count = Math.round(seconds / size);
      return `in ${count} ${unit}${count === 1 ? "" : "s"}`;
    }
  }
  return "in under a minute";
}

/** Put a notice in a status region (kind: info, warning, error, success; empty text clears it). */
export function say(region, text, kind = "info") {
  if (!region) return;
  region.textContent = text;
  region.dataset.kind = text ? kind : "";
}

/** A short name for this browser, used as the device label ("Chrome on Android"). */
export function deviceLabel(nav = navigator) {
  const ua = nav.userAgent || "";
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
    : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const system = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iPhone" : /Mac OS X/.test(ua) ? "Mac"
    : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "a device";
  return `${browser} on ${system}`;
}

/**
 * Show the key-change warnings this person has not looked at yet (store: ChatStore). Each says whose keys
 * changed, links to the safety numbers, and can be dismissed once checked.
 */
export async function renderKeyWarnings(container, store, devicesUrl) {
  if (!container) return;
  const warnings = await store.warnings();
  container.replaceChildren(
    ...warnings.map((warning) => {
      const dismiss = el("button", { type: "button", class: "link", text: "I have checked" });
      dismiss.addEventListener("click", async () => {
        await store.warningDelete(warning.user);
        await renderKeyWarnings(container, store, devicesUrl);
      });
      return el(
        "div",
        { class: "notice warning key-warning", role: "alert", "data-user": warning.user },
        el("p", {
          text: `${warning.name}’s security keys have changed. This is normal after a new phone or a reinstall, `
            + "but it could also mean someone is trying to listen in.",
        }),
        el("p", {}, el("a", { href: `${devicesUrl}#user-${warning.user}`, text: "Compare safety numbers" }), " ", dismiss),
      );
    }),
  );
}

/** Labels for roles without a business, shown in place of one next to a sender's name. */
export const ROLE_LABELS = {
  warden: "BID warden",
  bid_admin: "BID office",
  case_officer: "Council",
  police: "Police",
  public_realm: "Council",
  dpo: "BID office",
};
