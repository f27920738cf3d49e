// The hub socket (protocol v1, chat/protocol.py): welcome -> hello (device, resume) -> replay -> ready, then live.
// It reconnects with backoff (at once when the signal returns), resumes from the last seq seen per group, and
// re-sends every unacknowledged request with the same client_id on each new connection, so the hub stores
// each message once. Frames are handed to listeners as "frame" events; "state" events say how it is going.

export const CLOSE_REVOKED = 4401;
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const MAX_BACKOFF_MS = 10000;

/** A refusal from the hub (an `error` frame for a request), or a request dropped before its ack. */
export class HubError extends Error {
  constructor(code, detail = "", retryable = false) {
    super(`${code}${detail ? `: ${detail}` : ""}`);
    this.name = "HubError";
    this.code = code;
    this.detail = detail;
    this.retryable = retryable;
  }
}

export function uuid4() {
  return crypto.randomUUID();
}

export class HubSocket extends EventTarget {
  /**
   * url: ws(s) URL of the hub; device: this device's id (sent in hello); resume(): {group: last seq} to send in
   * hello (the page's view of what it has already shown).
   */
  constructor({ url, device, resume = () => ({}) }) {
    super();
    this.url = url;
    this.device = device;
    this.resume = resume;
    this.ws = null;
    this.state = "idle"; // idle | connecting | ready | offline | revoked | stopped
    this.user = null;
    this.pending = new Map(); // client_id -> {frame, resolve, reject}
    this.attempt = 0;
    this.timer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.onOnline = () => this.#reconnectNow();
    this.onOffline = () => this.#dropForOffline();
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    if (navigator.onLine === false) this.#setState("offline");
    else this.#open();
  }

  stop() {
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    this.#setState("stopped");
    this.#clearTimers();
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  /** Reconnect now (after the page registered or re-registered its device, say). */
  restart(device = this.device) {
    this.device = device;
    if (this.state === "stopped" || this.state === "revoked") return;
    this.state = "idle";
    this.#reconnectNow();
  }

  get ready() {
    return this.state === "ready";
  }

  /**
   * Send a request frame (send / retract) carrying a client_id. It goes now if the socket is ready, otherwise
   * on the next ready; it is re-sent on every new connection until the hub acks it or refuses it.
   * Resolves with the ack frame; rejects with HubError (error frame) or when cancel(clientId) is called.
   */
  request(frame) {
    return new Promise((resolve, reject) => {
      const entry = { frame, resolve, reject };
      this.pending.set(frame.client_id, entry);
      if (this.ready) this.#transmit(frame);
    });
  }

  /** Forget a pending request (its promise rejects with code "cancelled"). */
  cancel(clientId) {
    const entry = this.pending.get(clientId);
    if (!entry) return;
    this.pending.delete(clientId);
    entry.reject(new HubError("cancelled", "request withdrawn by the page", true));
  }

  #setState(state, detail = {}) {
    if (this.state === "stopped" || (this.state === "revoked" && state !== "stopped")) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  #emit(frame) {
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  #transmit(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  #clearTimers() {
    window.clearTimeout(this.timer);
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pongTimer);
  }

  #open() {
    if (this.state === "stopped" || this.state === "revoked") return;
    this.#clearTimers();
    this.#setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.#scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      this.#handle(ws, frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.#clearTimers();
      if (event.code === CLOSE_REVOKED) {
        this.#setState("revoked");
        for (const [key, entry] of this.pending) entry.reject(new HubError("revoked", "signed out", false));
        this.pending.clear();
        return;
      }
      if (this.state === "stopped" || this.state === "refused") return;
      if (event.code === 4400 || event.code === 4429) this.attempt = Math.max(this.attempt, 8); // back off long
      if (navigator.onLine === false) this.#setState("offline");
      else this.#scheduleReconnect();
    });
  }

  #handle(ws, frame) {
    switch (frame.type) {
      case "welcome": {
        this.user = frame.user;
        const hello = { type: "hello", v: 1 };
        if (this.device) hello.device = this.device;
        const resume = Object.fromEntries(
          Object.entries(this.resume() || {}).filter(([, seq]) => Number.isSafeInteger(seq) && seq > 0),
        );
        if (Object.keys(resume).length) hello.resume = resume;
        ws.send(JSON.stringify(hello));
        break;
      }
      case "ready":
        this.attempt = 0;
        this.#setState("ready", { groups: frame.groups });
        this.#startPings(ws);
        this.#emit(frame);
        for (const entry of this.pending.values()) this.#transmit(entry.frame);
        break;
      case "ack": {
        const entry = this.pending.get(frame.client_id);
        this.pending.delete(frame.client_id);
        if (entry) entry.resolve(frame);
        break;
      }
      case "error": {
        const entry = frame.ref ? this.pending.get(frame.ref) : null;
        if (entry) {
          this.pending.delete(frame.ref);
          entry.reject(new HubError(frame.code, frame.detail, frame.retryable));
        } else if (this.state !== "ready" && frame.retryable) {
          ws.close(4000); // hello refused for now (database down): try again on a fresh connection
        } else if (this.state !== "ready") {
          // hello refused for good (e.g. unknown_device): wait until the page fixes it and calls restart().
          this.#setState("refused", { code: frame.code, detail: frame.detail });
          this.#emit(frame);
        } else {
          this.#emit(frame);
        }
        break;
      }
      case "pong":
        window.clearTimeout(this.pongTimer);
        break;
      case "revoked":
        this.#emit(frame);
        break;
      default:
        this.#emit(frame);
    }
  }

  #startPings(ws) {
    window.clearInterval(this.pingTimer);
    // A socket can die without a close (a phone changing networks): no pong in time means reconnect.
    this.pingTimer = window.setInterval(() => {
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: "ping" }));
      window.clearTimeout(this.pongTimer);
      this.pongTimer = window.setTimeout(() => ws.close(4000), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  #scheduleReconnect() {
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.attempt, 10));
    const delay = base * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.#setState("connecting", { retryInMs: delay });
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.#open(), delay);
  }

  #reconnectNow() {
    if (["stopped", "revoked", "ready", "refused"].includes(this.state)) return;
    this.attempt = 0;
    window.clearTimeout(this.timer);
    if (this.ws) this.ws.close(4000);
    this.ws = null;
    this.#open();
  }

  #dropForOffline() {
    if (this.state === "stopped" || this.state === "revoked") return;
    window.clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    this.#clearTimers();
    if (ws) ws.close(4000);
    this.#setState("offline");
  }
}

/** The hub's URL for this page (ws: on http, wss: on https). */
export function hubUrl(path = "/ws/", loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${path}`;
}
