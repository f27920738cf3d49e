// The Alerts page: turn on push notifications on this device. The browser's permission prompt appears only
// after the person presses the button (browsers ignore, and people distrust, prompts on page load).
// Devices, preferences and history are plain forms that work without this script.
import { forgetAll, getSetting, setSetting } from "./alerts-store.js";

function b64urlBytes(text) {
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function sameKey(subscription, key) {
  const current = subscription.options && subscription.options.applicationServerKey;
  if (!current) return true; // browsers that do not say: trust the subscription
  const bytes = new Uint8Array(current);
  return bytes.length === key.length && bytes.every((byte, i) => byte === key[i]);
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function guessLabel() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return /Mobile/.test(ua) ? "Android phone" : "Android tablet";
  if (/Macintosh/.test(ua)) return "Mac";
  if (/Windows/.test(ua)) return "Windows computer";
  return "This browser";
}

function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

async function subscribe(panel) {
  const response = await fetch(panel.dataset.vapidUrl, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error("The server has no notification key yet.");
  const key = b64urlBytes((await response.json()).publicKey);
  const registration = await navigator.serviceWorker.ready;
  const existing = await registration.pushManager.getSubscription();
  // A subscription made for another server key cannot receive our pushes: replace it.
  if (existing && !sameKey(existing, key)) await existing.unsubscribe();
  return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
}

async function register(panel, subscription, label) {
  const response = await fetch(panel.dataset.subscriptionsUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ subscription: subscription.toJSON(), label }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || "The server did not accept this device.");
  return answer;
}

async function enable(panel, state, button, labelInput) {
  button.disabled = true;
  state.textContent = "Asking your browser…";
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      state.textContent =
        permission === "denied"
          ? "Notifications are blocked for NTARS: allow them in your browser's site settings, then try again."
          : "Notifications stay off: you did not allow them.";
      return;
    }
    const subscription = await subscribe(panel);
    const device = await register(panel, subscription, labelInput.value.trim() || guessLabel());
    await remember(panel, device.id);
    state.textContent = "Notifications are on for this device.";
    // Reload so the device list (rendered by the server) shows it.
    window.location.assign(`${panel.dataset.pageUrl}?added=${encodeURIComponent(device.id)}#devices`);
  } catch (error) {
    state.textContent = `Notifications could not be turned on: ${error.message || error.name}`;
  } finally {
    button.disabled = false;
  }
}

/**
 * What the service worker needs when a push comes for the person this device now belongs to: whose chat keys
 * to use and their "no preview" choice (a copy, refreshed whenever they open this page).
 */
async function remember(panel, deviceId) {
  await setSetting("device_id", deviceId);
  await setSetting("user_id", Number(panel.dataset.userId));
  await setSetting("no_preview", panel.dataset.noPreview === "true");
}

/** This browser's device in the list, if it is subscribed and belongs to the person looking at the page. */
async function thisDevice(state) {
  const subscription = await currentSubscription().catch(() => null);
  const deviceId = await getSetting("device_id").catch(() => undefined);
  const card = subscription && deviceId ? document.querySelector(`[data-device-id="${deviceId}"]`) : null;
  if (!card) return null;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = "This device";
  card.querySelector(".device-name").append(" ", badge);
  state.textContent = "Notifications are on for this device.";
  return { card, subscription, deviceId };
}

async function start() {
  const panel = document.getElementById("push-panel");
  if (!panel || !supported()) return;
  document.getElementById("push-unsupported").remove();
  panel.hidden = false;
  const state = document.getElementById("push-state");
  const button = document.getElementById("push-enable");
  const labelInput = document.getElementById("device-label");
  labelInput.placeholder = guessLabel();
  if (Notification.permission === "denied") {
    state.textContent = "Notifications are blocked for NTARS in this browser's site settings.";
  }
  button.addEventListener("click", () => enable(panel, state, button, labelInput));

  const mine = await thisDevice(state);
  if (mine) {
    await remember(panel, mine.deviceId).catch(() => undefined);
    button.textContent = "Turn on notifications again";
    // Removing this device also ends the browser's subscription and what the worker kept for it.
    mine.card.querySelector("form.remove-device").addEventListener("submit", async (event) => {
      event.preventDefault();
      await mine.subscription.unsubscribe().catch(() => false);
      await forgetAll().catch(() => undefined);
      event.target.submit();
    });
  }
}

start();
