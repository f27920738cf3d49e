// One group's thread: live, end-to-end encrypted messages and the composer (text, photo, urgent).
// Messages typed without signal wait in IndexedDB (chat-store.js) and go when the hub is back, with the same
// client_id so the hub stores each once. Every message can be reported; your own can be withdrawn.
import { handleHubFrame } from "./alerts-banner.js";
import {
  ApiError,
  ROLE_LABELS,
  el,
  pageConfig,
  renderKeyWarnings,
  say,
  shortTime,
  untilText,
} from "./chat-common.js";
import { ChatKeys, b64std, fromB64std } from "./chat-keys.js";
import { HubError, HubSocket, hubUrl, uuid4 } from "./chat-socket.js";
import { ChatStore } from "./chat-store.js";
import { E2EEError, b64e } from "./e2ee.js";
import { markReported } from "./report-chat-marks.js";

const PHOTO_MAX_EDGE = 1600;
const PHOTO_QUALITY = 0.85;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 15000;
const REKEY_CODES = new Set(["stale_epoch", "rotation_required"]);
const ANNOUNCE_MAX = 160;
const PHOTO_ERRORS = "The photo could not be prepared on this phone.";

const E2EE_REASONS = {
  unknown_epoch: "This device has no key for this message (it was sent before this device joined).",
  rolled_back_epoch: "Refused: this message uses an out-of-date group key.",
  replay: "Refused: this message was replayed from elsewhere.",
  bad_signature: "Refused: the sender’s signature does not check out.",
  removed_device: "Not shown: it came from a device that is no longer approved, so it cannot be checked.",
  bad_commitment: "Refused: the message was tampered with.",
  bad_ciphertext: "Refused: the message was tampered with.",
  bad_franking: "Refused: the message cannot be reported, so it is not shown.",
  malformed: "Refused: the message is damaged.",
  unavailable: "This message could not be opened yet (no connection to the server). It will be tried again.",
};

class Thread {
  constructor(config) {
    this.config = config;
    this.group = config.group.id;
    this.me = config.user.id;
    this.list = document.getElementById("messages");
    this.status = document.getElementById("chat-status");
    this.announcer = document.getElementById("announce");
    this.online = document.getElementById("thread-online");
    this.warnings = document.getElementById("key-warnings");
    this.form = document.getElementById("composer");
    this.text = document.getElementById("chat-text");
    this.photoInput = document.getElementById("chat-photo");
    this.urgent = document.getElementById("chat-urgent");
    this.preview = document.getElementById("photo-preview");
    this.previewImg = document.getElementById("photo-preview-img");
    this.lastSeq = new Map(config.groups.map((g) => [g.id, g.last_seq]));
    // Replay the last `history` events of this group when the page opens; later connections resume.
    const mine = config.groups.find((g) => g.id === this.group);
    this.lastSeq.set(this.group, Math.max(0, (mine ? mine.last_seq : 0) - config.history));
    this.items = new Map(); // seq -> <li>
    this.reportable = new Map(); // seq -> what the report page needs
    this.laterFrames = new Map(); // seq -> message frame whose keys could not be fetched yet
    this.maxEpoch = 0;
    this.caughtUp = false;
    this.queue = Promise.resolve(); // frames of this group are handled one at a time, in seq order
    this.photo = null; // {blob, mime} ready to send
    this.flushing = false;
    this.flushAgain = false;
    this.objectUrls = [];
  }

  async start() {
    markReported(this.list, this.group); // "Reported" on the messages this user reported
    this.store = await ChatStore.open(this.me);
    this.keys = await ChatKeys.open(this.config, this.store);
    this.#wireComposer();
    await this.#renderOutbox();
    let device;
    try {
      device = await this.keys.ensureDevice();
    } catch (error) {
      const stored = await this.keys.keyStore.getDevice();
      if (!(error instanceof ApiError && error.status === 0 && stored?.registered)) {
        say(this.status, "Chat could not set up this device’s keys. Reload the page to try again.", "error");
        throw error;
      }
      device = stored; // no signal: carry on with what this phone already has
      this.keys.device = stored;
    }
    if (device.status === "pending") {
      this.#pending();
      return;
    }
    this.keys.directory(this.group).then(() => this.#showWarnings()).catch(() => {});
    this.#showWarnings();
    this.socket = new HubSocket({
      url: hubUrl(this.config.ws),
      device: device.deviceId,
      resume: () => Object.fromEntries([...this.lastSeq].map(([g, seq]) => [String(g), seq])),
    });
    this.socket.addEventListener("state", (event) => this.#onState(event.detail));
    this.socket.addEventListener("frame", (event) => this.#onFrame(event.detail));
    this.socket.start();
    window.setInterval(() => this.#tick(), 30000);
    document.addEventListener("visibilitychange", () => this.#markRead());
    window.addEventListener("pagehide", () => this.objectUrls.forEach((url) => URL.revokeObjectURL(url)));
  }

  #pending() {
    say(this.status, "", "info");
    this.status.replaceChildren(
      "This device is waiting to be approved by one of your other devices. ",
      el("a", { href: this.config.devices_url, text: "See your devices" }),
    );
    this.status.dataset.kind = "warning";
    this.form.querySelectorAll("textarea, input, button").forEach((node) => { node.disabled = true; });
    this.keys.watchApproval(() => window.location.reload());
  }

  #showWarnings() {
    return renderKeyWarnings(this.warnings, this.store, this.config.devices_url);
  }

  // --- connection ------------------------------------------------------------------------------------------

  #onState({ state, code }) {
    this.status.dataset.state = state;
    if (state === "ready") {
      say(this.status, "Connected. Messages are end-to-end encrypted.", "success");
      window.clearTimeout(this.statusTimer);
      this.statusTimer = window.setTimeout(() => {
        if (this.socket.ready && this.status.dataset.kind === "success") say(this.status, "");
      }, 4000);
      for (const li of this.list.querySelectorAll("li.pending[data-state=queued]")) this.#setPendingState(li, "sending");
      this.#retryLater();
      this.flush();
    } else if (state === "offline") {
      say(this.status, "No signal. Messages you write now are kept on this phone and sent when it returns.", "warning");
      this.#markQueued();
    } else if (state === "connecting") {
      say(this.status, this.caughtUp ? "Reconnecting…" : "Connecting…", "info");
    } else if (state === "revoked") {
      say(this.status, "You have been signed out. Sign in again to keep chatting.", "error");
    } else if (state === "refused") {
      say(this.status, code === "unknown_device"
        ? "This device is not approved for chat. Check your devices."
        : "The chat server refused this device.", "error");
    }
  }

  #onFrame(frame) {
    if (handleHubFrame(frame)) return; // a warden's broadcast: the in-app banner
    if (frame.type === "caught_up" || frame.type === "message" || frame.type === "retracted") {
      if (frame.seq > (this.lastSeq.get(frame.group) ?? 0)) this.lastSeq.set(frame.group, frame.seq);
    }
    if (frame.group !== undefined && frame.group !== this.group) return;
    this.queue = this.queue.then(() => this.#handle(frame)).catch((error) => {
      console.error("NTARS chat: frame not handled:", error?.name, error?.code ?? "");
    });
  }

  async #handle(frame) {
    switch (frame.type) {
      case "message":
        await this.#message(frame);
        break;
      case "retracted":
        this.#withdrawn(frame.target_seq);
        break;
      case "caught_up":
        this.#caughtUp();
        break;
      case "presence":
        this.#presence(frame.online);
        break;
      case "membership":
        if (!frame.member) {
          say(this.status, "You are no longer a member of this group.", "error");
          this.form.querySelectorAll("textarea, input, button").forEach((node) => { node.disabled = true; });
        }
        break;
      case "keys.changed":
        await this.keys.directory(this.group, { refresh: true });
        await this.#showWarnings();
        this.keys.epochState.delete(this.group);
        break;
      case "epoch.rotated":
        await this.keys.refreshEpochs(this.group);
        break;
      case "revoked":
        say(this.status, "You have been signed out. Sign in again to keep chatting.", "error");
        break;
      default:
        break;
    }
  }

  #retryLater() {
    const frames = [...this.laterFrames.values()];
    this.laterFrames.clear();
    for (const frame of frames) {
      this.queue = this.queue.then(async () => {
        this.items.get(frame.seq)?.remove();
        this.items.delete(frame.seq);
        await this.#message(frame);
      }).catch(() => {});
    }
  }

  #caughtUp() {
    const first = !this.caughtUp;
    this.caughtUp = true;
    this.list.setAttribute("aria-busy", "false");
    if (first) this.#scrollToEnd();
    this.#markRead();
  }

  #presence(online) {
    const others = online.filter((id) => id !== this.me).length;
    this.online.textContent = others ? `${others} other member${others === 1 ? "" : "s"} online` : "";
  }

  // --- incoming messages ---------------------------------------------------------------------------------

  async #message(frame) {
    if (this.items.has(frame.seq)) return;
    const sender = frame.sender || { id: null, name: "Former member", business: null, role: "" };
    if (frame.retracted || !frame.envelope) {
      this.#insert(frame.seq, this.#tombstone(frame.seq, sender));
      return;
    }
    let result = null;
    let problem = null;
    try {
      result = await this.keys.decrypt(this.group, frame.seq, fromB64std(frame.envelope), this.maxEpoch);
      if (sender.id !== null && result.header.sender !== sender.id) {
        problem = "bad_signature"; // the server's label and the signed header disagree
        result = null;
      }
    } catch (error) {
      if (error instanceof ApiError) {
        // The keys could not be fetched (no signal, server trouble): show a placeholder, try again when back.
        this.laterFrames.set(frame.seq, frame);
        this.#insert(frame.seq, this.#unreadable(frame, sender, "unavailable"));
        return;
      }
      if (!(error instanceof E2EEError)) throw error;
      problem = E2EE_REASONS[error.code] ? error.code : "malformed";
      if (problem === "bad_signature" && this.keys.unknownDevices.has(`${sender.id}:${frame.device}`)) {
        problem = "removed_device"; // not in the directory: a device removed since, or a forgery; unverifiable
      }
    }
    if (result) this.maxEpoch = Math.max(this.maxEpoch, result.header.epoch);
    const item = result ? this.#bubble(frame, sender, result) : this.#unreadable(frame, sender, problem);
    this.#insert(frame.seq, item);
    if (result && sender.id === this.me) this.#settlePending({ seq: frame.seq, msgId: result.msgId });
    if (this.caughtUp) {
      if (sender.id !== this.me) {
        const text = result ? result.text || (result.attachments.length ? "a photo" : "") : "a message it cannot show";
        this.#announce(`${result?.urgent ? "Urgent: " : ""}${sender.name}: ${text}`);
      }
      this.#markRead();
    }
  }

  #senderLine(sender, when, urgent) {
    const org = sender.business || ROLE_LABELS[sender.role] || "";
    return el(
      "p",
      { class: "msg-meta" },
      el("span", { class: "msg-sender", text: sender.name }),
      org ? el("span", { class: "msg-business", text: org }) : null,
      el("time", { class: "msg-time", datetime: when.toISOString(), text: shortTime(when) }),
      urgent ? el("span", { class: "badge msg-urgent", text: "Urgent" }) : null,
    );
  }

  #expiry(expiresAt) {
    const when = new Date(expiresAt);
    return el("span", {
      class: "msg-expiry",
      "data-expires": expiresAt,
      title: `Disappears ${when.toLocaleString("en-GB")}`,
      text: `Disappears ${untilText(when)}`,
    });
  }

  #bubble(frame, sender, result) {
    const mine = sender.id === this.me;
    const when = new Date(frame.server_time);
    const li = el("li", {
      class: `msg${mine ? " mine" : ""}${result.urgent ? " urgent" : ""}`,
      "data-seq": frame.seq,
      "data-msg-id": result.msgId,
      "data-expires": frame.expires_at,
    });
    const foot = el("p", { class: "msg-foot" }, this.#expiry(frame.expires_at));
    if (mine) foot.append(el("span", { class: "msg-state", "data-state": "sent", text: "Sent" }));
    foot.append(this.#reportLink(frame, sender, result, when));
    if (mine || this.config.moderator) foot.append(this.#retractButton(frame.seq, sender, when));
    li.append(this.#senderLine(sender, when, result.urgent));
    if (result.text) li.append(el("p", { class: "msg-text", text: result.text }));
    li.append(...result.attachments.map((attachment) => this.#photo(attachment, sender)), foot);
    return li;
  }

  #unreadable(frame, sender, code) {
    const when = new Date(frame.server_time);
    return el(
      "li",
      { class: "msg unreadable", "data-seq": frame.seq, "data-problem": code, "data-expires": frame.expires_at },
      this.#senderLine(sender, when, false),
      el("p", { class: "msg-problem", text: E2EE_REASONS[code] || E2EE_REASONS.malformed }),
    );
  }

  #tombstone(seq, sender) {
    return el(
      "li",
      { class: "msg withdrawn", "data-seq": seq },
      el("p", { class: "msg-problem", text: `Message withdrawn${sender?.name ? ` (${sender.name})` : ""}.` }),
    );
  }

  #withdrawn(seq) {
    const item = this.items.get(seq);
    this.reportable.delete(seq);
    if (!item) return;
    const name = item.querySelector(".msg-sender")?.textContent;
    const replacement = this.#tombstone(seq, { name });
    item.replaceWith(replacement);
    this.items.set(seq, replacement);
    if (this.caughtUp) this.#announce(`A message${name ? ` from ${name}` : ""} was withdrawn.`);
  }

  #photo(attachment, sender) {
    const figure = el("figure", { class: "msg-photo" }, el("span", { class: "help", text: "Decrypting photo…" }));
    this.keys.downloadPhoto(attachment).then((blob) => {
      const url = URL.createObjectURL(blob);
      this.objectUrls.push(url);
      figure.replaceChildren(el("img", { src: url, alt: `Photo from ${sender.name}`, loading: "lazy" }));
    }).catch((error) => {
      figure.replaceChildren(el("span", {
        class: "msg-problem",
        text: error?.code === "bad_ciphertext" ? "The photo was tampered with and is not shown." : "The photo could not be loaded.",
      }));
    });
    return figure;
  }

  #reportLink(frame, sender, result, when) {
    const key = `${this.group}:${frame.seq}`;
    this.reportable.set(frame.seq, {
      group: this.group,
      group_name: this.config.group.name,
      seq: frame.seq,
      sender: { id: sender.id, name: sender.name, business: sender.business },
      device: result.header.device,
      text: result.text,
      urgent: result.urgent,
      attachments: result.attachments.length,
      sent_at: result.header.sent_at,
      server_time: frame.server_time,
      msg_id: result.msgId,
      envelope: frame.envelope,
      body: b64e(result.body),
      key_material: b64e(result.keyMaterial),
      franking: frame.franking ?? null,
    });
    const link = el(
      "a",
      { class: "msg-report", href: `${this.config.report_url}?from_chat=${encodeURIComponent(key)}` },
      "Report this",
      el("span", { class: "visually-hidden", text: ` message from ${sender.name}, ${shortTime(when)}` }),
    );
    // The report page is told what the message said through this tab's sessionStorage only (never the URL).
    link.addEventListener("click", () => {
      const data = this.reportable.get(frame.seq);
      if (data) sessionStorage.setItem(`ntars-chat-report:${key}`, JSON.stringify(data));
    });
    return link;
  }

  #retractButton(seq, sender, when) {
    const button = el(
      "button",
      { type: "button", class: "link msg-retract" },
      "Withdraw",
      el("span", { class: "visually-hidden", text: ` message from ${sender.name}, ${shortTime(when)}` }),
    );
    button.addEventListener("click", async () => {
      if (!window.confirm("Withdraw this message for everyone?")) return;
      button.disabled = true;
      try {
        await this.socket.request({ type: "retract", group: this.group, seq, client_id: uuid4() });
      } catch (error) {
        button.disabled = false;
        say(this.status, "The message could not be withdrawn. Try again.", "error");
      }
    });
    return button;
  }

  #insert(seq, item) {
    const nearEnd = this.#nearEnd();
    this.items.set(seq, item);
    const later = [...this.list.children].find((node) => node.dataset.seq && Number(node.dataset.seq) > seq && !node.classList.contains("pending"));
    const firstPending = this.list.querySelector(".pending");
    this.list.insertBefore(item, later || firstPending || null);
    if (this.caughtUp && nearEnd) this.#scrollToEnd();
  }

  #nearEnd() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 200;
  }

  #scrollToEnd() {
    this.form.scrollIntoView({ block: "end" });
  }

  #announce(text) {
    const short = text.length > ANNOUNCE_MAX ? `${text.slice(0, ANNOUNCE_MAX - 1)}…` : text;
    this.announcer.textContent = short;
  }

  #markRead() {
    if (document.visibilityState !== "visible" || !this.caughtUp) return;
    const seq = this.lastSeq.get(this.group) ?? 0;
    if (seq) this.store.markRead(this.group, seq).catch(() => {});
  }

  #tick() {
    const now = new Date();
    for (const node of this.list.querySelectorAll("[data-expires]")) {
      const when = new Date(node.dataset.expires);
      if (node.tagName === "LI" && when <= now) {
        this.items.delete(Number(node.dataset.seq));
        this.reportable.delete(Number(node.dataset.seq));
        node.remove();
      } else if (node.classList.contains("msg-expiry")) {
        node.textContent = `Disappears ${untilText(when, now)}`;
      }
    }
  }

  // --- composer and outbox -------------------------------------------------------------------------------

  #wireComposer() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#compose().catch((error) => {
        console.error("NTARS chat: not queued:", error?.name);
        say(this.status, "The message could not be saved on this phone.", "error");
      });
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.photoInput.addEventListener("change", () => this.#pickPhoto());
    document.getElementById("photo-remove").addEventListener("click", () => this.#clearPhoto());
  }

  async #pickPhoto() {
    const file = this.photoInput.files[0];
    if (!file) return;
    try {
      this.photo = await preparePhoto(file);
    } catch (error) {
      this.#clearPhoto();
      say(this.status, PHOTO_ERRORS, "error");
      return;
    }
    const url = URL.createObjectURL(this.photo.blob);
    this.objectUrls.push(url);
    this.previewImg.src = url;
    this.preview.hidden = false;
  }

  #clearPhoto() {
    this.photo = null;
    this.photoInput.value = "";
    this.preview.hidden = true;
    this.previewImg.removeAttribute("src");
  }

  async #compose() {
    const text = this.text.value.trim();
    if (!text && !this.photo) {
      this.text.focus();
      return;
    }
    const entry = {
      clientId: uuid4(),
      group: this.group,
      text,
      urgent: this.urgent.checked,
      photo: this.photo,
      attachments: null,
      envelope: null,
      epoch: 0,
      msgId: null,
      createdAt: Date.now(),
      state: "sending",
    };
    await this.store.outboxPut(entry);
    this.text.value = "";
    this.urgent.checked = false;
    this.#clearPhoto();
    this.list.append(this.#pendingBubble(entry));
    this.#scrollToEnd();
    this.text.focus();
    this.flush();
  }

  async #renderOutbox() {
    for (const entry of await this.store.outboxAll(this.group)) this.list.append(this.#pendingBubble(entry));
  }

  #pendingBubble(entry) {
    const when = new Date(entry.createdAt);
    const li = el(
      "li",
      { class: `msg mine pending${entry.urgent ? " urgent" : ""}`, "data-client-id": entry.clientId },
      this.#senderLine({ name: this.config.user.name, role: "" }, when, entry.urgent),
      entry.text ? el("p", { class: "msg-text", text: entry.text }) : null,
      entry.photo ? el("p", { class: "help", text: "Photo attached" }) : null,
      el("p", { class: "msg-foot" }, el("span", { class: "msg-state" })),
    );
    this.#setPendingState(li, entry.state === "failed" ? "failed" : this.socket?.ready ? "sending" : "queued");
    return li;
  }

  #pendingItem(clientId) {
    return this.list.querySelector(`li.pending[data-client-id="${CSS.escape(clientId)}"]`);
  }

  #setPendingState(li, state, reason = "") {
    if (!li) return;
    li.dataset.state = state;
    const slot = li.querySelector(".msg-state");
    const labels = { queued: "Waiting for signal…", sending: "Sending…", sent: "Sent" };
    if (state === "failed") {
      const retry = el("button", { type: "button", class: "link msg-retry" }, "Not sent. Tap to retry");
      retry.addEventListener("click", () => this.#retry(li.dataset.clientId));
      slot.replaceChildren(retry, reason ? el("span", { class: "msg-reason", text: ` ${reason}` }) : "");
    } else {
      slot.replaceChildren(labels[state]);
    }
    slot.dataset.state = state;
  }

  #markQueued() {
    for (const li of this.list.querySelectorAll("li.pending")) {
      if (li.dataset.state === "sending") this.#setPendingState(li, "queued");
    }
  }

  async #retry(clientId) {
    const entry = await this.store.outboxGet(clientId);
    if (!entry) return;
    entry.state = "sending";
    await this.store.outboxPut(entry);
    this.#setPendingState(this.#pendingItem(clientId), this.socket.ready ? "sending" : "queued");
    this.flush();
  }

  /** A sent message came back through the stream: the pending bubble gives way to the real one. */
  #settlePending({ seq, msgId }) {
    for (const li of this.list.querySelectorAll("li.pending")) {
      if (li.dataset.msgId === msgId || Number(li.dataset.seq) === seq) li.remove();
    }
  }

  /** Send every waiting entry of this group, oldest first, one at a time (so they keep their order). */
  async flush() {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        for (const entry of await this.store.outboxAll(this.group)) {
          if (entry.state === "failed") continue;
          if (!this.socket?.ready) return;
          const sent = await this.#send(entry);
          if (!sent) break; // keep the order: later entries wait for this one
        }
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
  }

  /** Try to get one entry acknowledged; true when done with it (sent or failed for good). */
  async #send(entry) {
    const li = this.#pendingItem(entry.clientId);
    this.#setPendingState(li, "sending");
    let rekey = false;
    for (let attempt = 0; ; attempt += 1) {
      if (!this.socket.ready) {
        this.#setPendingState(li, "queued");
        return false;
      }
      try {
        await this.#prepare(entry, { rekey });
        const frame = { type: "send", group: this.group, client_id: entry.clientId, envelope: entry.envelope };
        if (entry.urgent) frame.urgent = true;
        const ack = await this.socket.request(frame);
        await this.store.outboxDelete(entry.clientId);
        if (li) {
          li.dataset.seq = ack.seq;
          this.#setPendingState(li, "sent");
          if (this.items.has(ack.seq)) li.remove();
        }
        return true;
      } catch (error) {
        const code = error?.code || "";
        if (error instanceof HubError && REKEY_CODES.has(code) && attempt < 3) {
          rekey = true; // the group moved to a new epoch (or must): seal it again, same client_id
          continue;
        }
        if (this.#worthRetrying(error) && attempt < 6) {
          await wait(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt));
          continue;
        }
        if (error instanceof ApiError && error.status === 0) {
          this.#setPendingState(li, "queued");
          return false;
        }
        entry.state = "failed";
        await this.store.outboxPut(entry);
        this.#setPendingState(li, "failed", failureText(error));
        return true;
      }
    }
  }

  #worthRetrying(error) {
    if (error instanceof HubError) return error.retryable && error.code !== "cancelled";
    if (error instanceof ApiError) return error.retryable && error.status !== 0;
    return false;
  }

  /** Upload the photo and seal the message (once; again only when the group's epoch moved). */
  async #prepare(entry, { rekey }) {
    if (entry.photo && !entry.attachments) {
      const bytes = new Uint8Array(await entry.photo.blob.arrayBuffer());
      entry.attachments = [await this.keys.uploadPhoto(this.group, bytes, entry.photo.mime)];
      await this.store.outboxPut(entry);
    }
    if (entry.envelope && !rekey) return;
    const sealed = await this.keys.encrypt(this.group, {
      text: entry.text, attachments: entry.attachments || [], urgent: entry.urgent,
    }, { refresh: rekey });
    entry.envelope = b64std(sealed.envelope);
    entry.epoch = sealed.epoch;
    entry.msgId = sealed.msgId;
    await this.store.outboxPut(entry);
    const li = this.#pendingItem(entry.clientId);
    if (li) li.dataset.msgId = sealed.msgId;
  }
}

function failureText(error) {
  const code = error?.code || "";
  if (code === "not_member") return "You are not in this group any more.";
  if (code === "envelope_too_large" || code === "http_413") return "It is too large.";
  if (code === "not_recipient") return "This device is not approved for the group yet.";
  return "";
}

function wait(ms) {
  return new Promise((resolve) => { window.setTimeout(resolve, ms); });
}

/** Re-encode a photo as JPEG, at most PHOTO_MAX_EDGE px: this drops EXIF (GPS) before it is encrypted. */
async function preparePhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, PHOTO_MAX_EDGE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("encode failed"))), "image/jpeg", PHOTO_QUALITY);
  });
  return { blob, mime: "image/jpeg" };
}

const config = pageConfig();
if (config) {
  const thread = new Thread(config);
  thread.list.setAttribute("aria-busy", "true");
  thread.start().catch((error) => console.error("NTARS chat:", error?.name, error?.code ?? ""));
}
