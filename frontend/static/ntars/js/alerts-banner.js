// In-app banners for wardens' broadcasts. The hub socket (chat screen) feeds its frames to handleHubFrame();
// a push that arrives while a page is open reaches listenForAlerts() through the service worker. Nothing here
// opens a socket of its own. The banner offers "Seen", which records the acknowledgement on the server.

const ACK_URL = (id) => `/alerts/broadcasts/${id}/ack`;
const DETAIL_URL = (id) => `/alerts/broadcasts/${id}`;
const PAGE_URL = (id) => `/alerts/broadcasts/${id}/`;
const PRIORITY_NAMES = { info: "Info", warning: "Warning", urgent: "Urgent" };
const CONTAINER_ID = "alert-banners";

function csrfToken(doc) {
  const input = doc.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function container(doc) {
  let box = doc.getElementById(CONTAINER_ID);
  if (!box) {
    box = doc.createElement("div");
    box.id = CONTAINER_ID;
    box.className = "cards alert-banners"; // the shell's card grid spaces the banners
    (doc.querySelector("main") || doc.body).prepend(box);
  }
  return box;
}

async function acknowledge(id, doc) {
  const response = await fetch(ACK_URL(id), {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(doc), Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`ack ${response.status}`);
}

/**
 * Show one broadcast as a banner ({id, title, text, priority, author?, url?}); urgent ones interrupt
 * (role=alert), others are announced politely. Returns the banner element; a second call for the same id
 * updates nothing and returns the existing one.
 */
export function showBroadcastBanner(broadcast, doc = document) {
  const id = Number(broadcast && broadcast.id);
  if (!Number.isSafeInteger(id) || id < 1) return null;
  const existing = doc.querySelector(`[data-broadcast-banner="${id}"]`);
  if (existing) return existing;
  const priority = PRIORITY_NAMES[broadcast.priority] ? broadcast.priority : "info";
  const urgent = priority === "urgent";

  const banner = doc.createElement("section");
  const tone = { urgent: "error", warning: "warning", info: "info" }[priority];
  banner.className = `notice ${tone} alert-banner`;
  banner.dataset.broadcastBanner = String(id);
  banner.setAttribute("role", urgent ? "alert" : "status");
  const headingId = `alert-banner-${id}`;
  banner.setAttribute("aria-labelledby", headingId);

  const heading = doc.createElement("h2");
  heading.id = headingId;
  heading.className = "alert-banner-title";
  heading.textContent = `${PRIORITY_NAMES[priority]}: ${broadcast.title || "Alert from the BID"}`;
  banner.append(heading);
  if (broadcast.text) {
    const body = doc.createElement("p");
    body.textContent = broadcast.text;
    banner.append(body);
  }
  if (broadcast.author) {
    const from = doc.createElement("p");
    from.className = "help";
    from.textContent = `From ${broadcast.author}`;
    banner.append(from);
  }

  const actions = doc.createElement("p");
  actions.className = "actions";
  const seen = doc.createElement("button");
  seen.type = "button";
  seen.className = "primary";
  seen.textContent = "Seen";
  seen.setAttribute("aria-describedby", headingId);
  const open = doc.createElement("a");
  open.href = PAGE_URL(id);
  open.className = "button secondary";
  open.textContent = "Open";
  open.setAttribute("aria-describedby", headingId);
  const result = doc.createElement("span");
  result.className = "help";
  result.setAttribute("role", "status");
  actions.append(seen, open, result);
  banner.append(actions);

  seen.addEventListener("click", async () => {
    seen.disabled = true;
    try {
      await acknowledge(id, doc);
      const next = banner.nextElementSibling || banner.previousElementSibling;
      banner.remove();
      const mainEl = doc.querySelector("main");
      if (next && next.querySelector("button")) next.querySelector("button").focus();
      else if (mainEl) mainEl.focus();
    } catch {
      seen.disabled = false;
      result.textContent = "Not recorded: check your connection and try again.";
    }
  });

  container(doc).prepend(banner);
  return banner;
}

/** Feed one hub frame; true when it was an alert frame ({"type": "alert", "broadcast": {...}}). */
export function handleHubFrame(frame, doc = document) {
  if (!frame || frame.type !== "alert" || !frame.broadcast) return false;
  showBroadcastBanner(frame.broadcast, doc);
  return true;
}

async function fetchBroadcast(id) {
  const response = await fetch(DETAIL_URL(id), { credentials: "same-origin", headers: { Accept: "application/json" } });
  return response.ok ? response.json() : null;
}

/** Banners for pushes that arrive while this page is open (the service worker posts {type: "alert"}). */
export function listenForAlerts(doc = document) {
  if (!("serviceWorker" in navigator) || !doc.querySelector("input[name=csrfmiddlewaretoken]")) return;
  navigator.serviceWorker.addEventListener("message", async (event) => {
    const data = event.data;
    if (!data || data.type !== "alert" || !data.broadcast) return;
    const id = Number(data.broadcast.id);
    if (!Number.isSafeInteger(id) || doc.querySelector(`[data-broadcast-banner="${id}"]`)) return;
    // The push may have carried no preview: the banner shows what the server gives this signed-in person.
    const broadcast = await fetchBroadcast(id).catch(() => null);
    if (broadcast) showBroadcastBanner(broadcast, doc);
  });
}
