// Push notifications, run by the service worker (sw.js imports this module): what a phone shows when NTARS
// pushes, and where a tap on it goes. The server builds the payloads (docs/alerts.md, "Push payloads").
//
// Lock screens are public: a chat push carries no plaintext. If it carries the E2EE envelope, this worker
// tries to open it with the keys the chat screens keep on this device (KeyStore "ntars-e2ee-u<user>"); when it
// cannot (no keys, unknown sender device, any check failing) or the person chose "no preview", it shows only
// "New urgent message on <group>".
import { KeyStore, b64d, decryptMessage } from "./e2ee.js";
import { deviceKeyOf, getSetting, noPreview, senderNameOf } from "./alerts-store.js";
import { ChatStore } from "./chat-store.js";

const PREVIEW_CHARS = 160;
const MAX_ENVELOPE_CHARS = 8192;
const ICON = "/static/ntars/icons/icon-192.png";
const BADGE = "/static/ntars/icons/maskable-192.png";
const FALLBACK_URL = "/alerts/";
const PRIORITY_NAMES = { info: "Info", warning: "Warning", urgent: "Urgent" };

const isId = (value) => Number.isSafeInteger(value) && value > 0;
const text = (value, limit) => (typeof value === "string" ? value.trim().slice(0, limit) : "");

/** The page a notification opens: only paths on this site, never a URL a payload names elsewhere. */
export function notificationUrl(data) {
  if (data && data.type === "alert.broadcast" && isId(data.id)) return `/alerts/broadcasts/${data.id}/`;
  if (data && data.kind === "chat" && isId(data.group)) return `/chat/${data.group}/`;
  if (data && typeof data.url === "string" && /^\/(?!\/)[\w\-/.?=&%]*$/.test(data.url)) return data.url;
  return FALLBACK_URL;
}

/** One line for a lock screen: no control characters, collapsed spaces, at most PREVIEW_CHARS. */
export function previewLine(value) {
  const line = String(value).replace(/[\u0000-\u001f\u007f\u2028\u2029]+/gu, " ").replace(/\s+/gu, " ").trim();
  return line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS - 1).trimEnd()}…` : line;
}

/** Decrypt a chat push's envelope with this device's keys; the text, or null when it cannot be read here. */
export async function chatPreviewText(data) {
  if (typeof data.envelope !== "string" || data.envelope.length > MAX_ENVELOPE_CHARS) return null;
  // The chat screens keep one KeyStore and one ChatStore per person: the one whose device this is.
  const user = await getSetting("user_id").catch(() => null);
  if (!isId(user)) return null;
  const keysName = `ntars-e2ee-u${user}`;
  const chatName = `ntars-chat-u${user}`;
  let keys = null;
  let chat = null;
  try {
    // Opening a store would create an empty one on a device that never used chat: look first.
    const known = new Set((await indexedDB.databases()).map((db) => db.name));
    if (!known.has(keysName)) return null;
    keys = await KeyStore.open(keysName);
    chat = known.has(chatName) ? await ChatStore.open(user) : null;
    // Only "has": a preview must not use up the message id, the chat screen still has to accept it.
    const replays = chat && isId(data.seq) ? chat.seenAt(data.group, data.seq) : null;
    const message = await decryptMessage(b64d(data.envelope), {
      group: data.group,
      epochKeys: (epoch) => keys.getEpochKey(data.group, epoch),
      minEpoch: Math.max(1, await keys.latestEpoch(data.group)),
      seen: { has: async (msgId) => (replays ? replays.has(msgId) : false), add: async () => {} },
      // Only the keys the chat screens wrote down (rememberDeviceKey): asking the server from here would renew
      // the session's idle timeout from a phone in a pocket.
      deviceKey: (sender, device) => deviceKeyOf(sender, device),
    });
    const said = message.text.trim() ? message.text : message.attachments.length ? "Photo" : "";
    if (!said) return null;
    const name = await senderNameOf(message.header.sender, message.header.device).catch(() => "");
    return previewLine(name ? `${name}: ${said}` : said);
  } catch {
    return null; // the reason stays on the device: a lock screen shows the generic line either way
  } finally {
    keys?.close();
    chat?.db.close();
  }
}

/**
 * What to show for a push payload: { title, options } or null to show nothing (chat already open).
 * env: { noPreview: () => Promise<bool>, focusedOn: (path) => Promise<bool>, preview: (data) => Promise<text|null> }
 */
export async function notificationFor(data, env) {
  const url = notificationUrl(data);
  const base = { icon: ICON, badge: BADGE, data: { url }, timestamp: Date.now() };
  if (data && data.type === "alert.broadcast" && isId(data.id)) {
    const urgent = data.priority === "urgent";
    const generic = data.preview === false || (await env.noPreview());
    const priority = PRIORITY_NAMES[data.priority] || "New";
    return {
      title: generic ? `${priority} alert from the BID` : text(data.title, 120) || `${priority} alert from the BID`,
      options: {
        ...base,
        body: generic ? "Open NTARS to read it." : previewLine(text(data.body, 4000)),
        tag: `broadcast-${data.id}`,
        renotify: urgent,
        requireInteraction: urgent,
        data: { url, broadcast: data.id },
      },
    };
  }
  if (data && data.kind === "chat" && isId(data.group)) {
    // The person is reading this thread right now: the chat screen shows the message itself.
    if (await env.focusedOn(url)) return null;
    const urgent = data.urgent !== false;
    const group = text(data.group_name, 120) || "your street group";
    const generic = `New ${urgent ? "urgent " : ""}message on ${group}`;
    let body = generic;
    if (data.preview !== false && !(await env.noPreview())) body = (await env.preview(data)) || generic;
    return {
      title: group,
      options: {
        ...base,
        body,
        tag: `chat-${data.group}`,
        renotify: true,
        requireInteraction: urgent,
        data: { url, group: data.group, seq: isId(data.seq) ? data.seq : null },
      },
    };
  }
  return {
    title: (data && text(data.title, 120)) || "NTARS",
    options: { ...base, body: data && data.body ? previewLine(text(data.body, 4000)) : "Open NTARS to see what is new." },
  };
}

async function windows(sw) {
  return sw.clients.matchAll({ type: "window", includeUncontrolled: true });
}

function pathOf(client) {
  try {
    return new URL(client.url).pathname;
  } catch {
    return "";
  }
}

/** The `push` handler: show what the payload asks for (or, for an open chat thread, nothing). */
export async function showPush(event, sw = self) {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch {
    data = null; // not JSON: shown as the generic "see what is new"
  }
  const reading = async (path) =>
    (await windows(sw)).filter((client) => client.focused && client.visibilityState === "visible" && pathOf(client) === path);
  const env = { noPreview, preview: chatPreviewText, focusedOn: async (path) => (await reading(path)).length > 0 };
  let note;
  try {
    note = await notificationFor(data, env);
  } catch {
    note = await notificationFor(null, env); // never lose a push to a bug: the generic "see what is new"
  }
  if (data && data.type === "alert.broadcast" && isId(data.id)) {
    // Pages that are open show the in-app banner too (alerts-banner.js fetches the text it may show).
    for (const client of await windows(sw)) {
      client.postMessage({ type: "alert", broadcast: { id: data.id, priority: data.priority } });
    }
  }
  if (note === null) {
    // Not shown because the thread is on screen: tell that screen, so it can catch up if its socket lags.
    for (const client of await reading(notificationUrl(data))) {
      client.postMessage({ type: "chat.push", group: data.group, seq: isId(data.seq) ? data.seq : null });
    }
    return;
  }
  await sw.registration.showNotification(note.title, note.options);
}

/** The `notificationclick` handler: focus a window already on that page, else reuse one, else open one. */
export async function openFromNotification(event, sw = self) {
  event.notification.close();
  const url = notificationUrl({ url: event.notification.data && event.notification.data.url });
  const target = new URL(url, sw.location.origin);
  const open = await windows(sw);
  const same = open.find((client) => pathOf(client) === target.pathname);
  if (same) return same.focus();
  const reusable = open.find((client) => "navigate" in client && client.frameType === "top-level");
  if (reusable) {
    try {
      const navigated = await reusable.navigate(target.href);
      if (navigated) return navigated.focus();
    } catch {
      // not controlled by this worker: open a new window below
    }
  }
  return sw.clients.openWindow(target.href);
}
