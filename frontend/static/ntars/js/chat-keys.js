// The E2EE glue between the chat pages, e2ee.js and the server's key directory (docs/security.md):
// this device's keys and registration, the group directories, epoch keys (open, rotate), safety numbers and
// key-change pins, and message/photo encryption. The server never sees a private key, an epoch key or text.
import {
  E2EEError,
  KeyStore,
  b64d,
  b64e,
  canonicalJson,
  decryptBlob,
  decryptMessage,
  encryptBlob,
  encryptMessage,
  fingerprint,
  generateDeviceKeys,
  openRotation,
  readEnvelope,
  rotateEpoch,
  safetyNumber,
  signDeviceApproval,
} from "./e2ee.js";
import { rememberDeviceKey } from "./alerts-store.js";
import { ApiError, api, apiBytes, deviceLabel } from "./chat-common.js";

const utf8 = new TextEncoder();
const DIRECTORY_FRESH_MS = 10000;
const EPOCHS_FRESH_MS = 10000;
const MAX_ROTATION_TRIES = 3;
const APPROVAL_POLL_MS = 4000;
const SEND_STATE_FRESH_MS = 15000;

/** Standard (padded) base64, the hub's envelope encoding. */
export function b64std(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromB64std(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A rotation record from the API: its canonical bytes (the API may hand back the text or the object). */
function rotationBytes(rotation) {
  return typeof rotation === "string" ? utf8.encode(rotation) : canonicalJson(rotation);
}

export class ChatKeys {
  /** config: the page config (user, api); store: ChatStore (warnings). */
  static async open(config, store) {
    const keyStore = await KeyStore.open(`ntars-e2ee-u${config.user.id}`);
    return new ChatKeys(config, store, keyStore);
  }

  constructor(config, store, keyStore) {
    this.config = config;
    this.userId = config.user.id;
    this.base = config.api;
    this.store = store;
    this.keyStore = keyStore;
    this.device = null; // { deviceId, signingKey, agreementKey, signingPublic, agreementPublic, status }
    this.directories = new Map(); // group -> { at, members: Map(user -> member) }
    this.epochState = new Map(); // group -> { current, needsRotation }
    this.epochFetchedAt = new Map(); // group -> when its epochs were last fetched
    this.unknownDevices = new Set(); // "sender:device" the directory did not list (removed since, or forged)
    this.missedAt = new Map(); // "sender:device" -> when a fresh directory read last failed to find it
    this.directoryLoads = new Map(); // group -> the directory request in flight
  }

  // --- this device -----------------------------------------------------------------------------------------

  /**
   * Make sure this browser has device keys registered with the server. Creates them (non-extractable) on
   * first use; re-creates them when the server no longer knows this device (revoked, or re-enrolled by the
   * BID). Returns the device with its status: "approved" or "pending".
   */
  async ensureDevice() {
    let device = await this.keyStore.getDevice();
    if (device && device.registered) {
      const listed = await this.myDevices();
      const mine = listed.find((d) => d.device_id === device.deviceId);
      if (mine && mine.status !== "revoked") {
        device.status = mine.status;
        this.device = device;
        return device;
      }
      device = null; // revoked or forgotten: this browser needs a new identity
    }
    if (!device) {
      const keys = await generateDeviceKeys();
      device = { ...keys, deviceId: crypto.randomUUID(), registered: false, status: "new" };
      await this.keyStore.putDevice(device.deviceId, this.#stored(device));
    }
    const created = await api(this.base, "devices", {
      method: "POST",
      json: {
        device_id: device.deviceId,
        label: deviceLabel(),
        sign_pub: b64e(device.signingPublic),
        dh_pub: b64e(device.agreementPublic),
      },
    });
    device.registered = true;
    device.status = created.status;
    await this.keyStore.putDevice(device.deviceId, this.#stored(device));
    this.device = device;
    return device;
  }

  #stored(device) {
    const { deviceId, ...rest } = device;
    return rest;
  }

  /** While this device is pending, ask every `everyMs` whether one of my other devices approved it. */
  watchApproval(onApproved, everyMs = APPROVAL_POLL_MS) {
    const timer = window.setInterval(async () => {
      try {
        const mine = (await this.myDevices()).find((d) => d.device_id === this.device.deviceId);
        if (mine && mine.status === "approved") {
          window.clearInterval(timer);
          this.device.status = "approved";
          onApproved();
        }
      } catch (error) {
        // no signal, or a server hiccup: ask again next time
      }
    }, everyMs);
    return timer;
  }

  async myDevices() {
    return (await api(this.base, "devices")).devices;
  }

  async fingerprintOfThisDevice() {
    return fingerprint(this.device.signingPublic, this.device.agreementPublic);
  }

  /** Approve one of my pending devices with this (approved) device's signature. */
  async approve(pending) {
    const signature = await signDeviceApproval({
      keys: this.device, user: this.userId, device: pending.device_id, signPub: pending.sign_pub, dhPub: pending.dh_pub,
    });
    return api(this.base, `devices/${encodeURIComponent(pending.device_id)}/approve`, {
      method: "POST", json: { approver_device: this.device.deviceId, signature },
    });
  }

  revoke(deviceId) {
    return api(this.base, `devices/${encodeURIComponent(deviceId)}/revoke`, { method: "POST", json: {} });
  }

  // --- directory, safety numbers, key-change pins --------------------------------------------------------

  /** The group's members and their approved devices: Map(user id -> {user, name, business, devices}). */
  async directory(group, { refresh = false } = {}) {
    const cached = this.directories.get(group);
    if (cached && !refresh) return cached.members;
    // Callers asking at the same time share one request.
    if (!this.directoryLoads.has(group)) {
      this.directoryLoads.set(group, this.#loadDirectory(group).finally(() => this.directoryLoads.delete(group)));
    }
    return this.directoryLoads.get(group);
  }

  async #loadDirectory(group) {
    const data = await api(this.base, `groups/${group}/directory`);
    const members = new Map();
    for (const member of data.members) {
      members.set(member.user, {
        ...member,
        devices: member.devices.map((d) => ({
          ...d, signPublic: b64d(d.sign_pub, 32), dhPublic: b64d(d.dh_pub, 32),
        })),
      });
    }
    this.directories.set(group, { at: Date.now(), members });
    await this.#checkPins(members);
    await this.#rememberForPushes(members);
    return members;
  }

  /** The service worker checks chat previews with these keys when no page is open (docs/alerts.md). */
  async #rememberForPushes(members) {
    try {
      for (const member of members.values()) {
        for (const d of member.devices) await rememberDeviceKey(member.user, d.device_id, d.signPublic, member.name);
      }
    } catch {
      // No IndexedDB (private mode) or an odd entry: pushes then show the generic line, chat works on.
    }
  }

  /**
   * deviceKey(sender, device) for decryptMessage: the directory's key. A device the cached directory does
   * not know (a member's new phone) makes one fresh read; it is asked for again after DIRECTORY_FRESH_MS.
   */
  deviceKeyFor(group) {
    return async (sender, device) => {
      const find = (members) => members.get(sender)?.devices.find((d) => d.device_id === device) ?? null;
      let found = find(await this.directory(group));
      const key = `${sender}:${device}`;
      const missedAt = this.missedAt.get(key) ?? 0;
      if (!found && Date.now() - missedAt > DIRECTORY_FRESH_MS) {
        found = find(await this.directory(group, { refresh: true }));
        if (!found) this.missedAt.set(key, Date.now());
      }
      if (!found) this.unknownDevices.add(key);
      return found ? found.signPublic : null;
    };
  }

  /** A member's own devices, as a stable text: what is pinned (their part of every safety number). */
  async #sideText(devices) {
    const prints = [];
    for (const d of devices) prints.push(await fingerprint(d.signPublic, d.dhPublic));
    return prints.sort().join("|");
  }

  async #checkPins(members) {
    for (const member of members.values()) {
      if (!member.devices.length) continue;
      const changed = await this.keyStore.pin(member.user, await this.#sideText(member.devices));
      if (changed) await this.store.warningPut(member.user, member.name);
    }
  }

  /** Safety numbers between me and each other member of the group: [{user, name, business, number}]. */
  async safetyNumbers(group) {
    const members = await this.directory(group);
    const me = members.get(this.userId);
    const mySide = me && me.devices.length
      ? me.devices.map((d) => [d.signPublic, d.dhPublic])
      : [[this.device.signingPublic, this.device.agreementPublic]];
    const out = [];
    for (const member of members.values()) {
      if (member.user === this.userId || !member.devices.length) continue;
      const number = await safetyNumber(mySide, member.devices.map((d) => [d.signPublic, d.dhPublic]));
      out.push({ user: member.user, name: member.name, business: member.business, number });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  // --- epochs ----------------------------------------------------------------------------------------------

  /** Fetch the group's epochs and open every wrap for this device that is not stored yet. */
  async refreshEpochs(group) {
    const data = await api(this.base, `groups/${group}/epochs?device=${encodeURIComponent(this.device.deviceId)}`);
    const known = await this.keyStore.latestEpoch(group);
    if (data.current < known) throw new E2EEError("rolled_back_epoch", "the server offers an older epoch");
    for (const entry of data.epochs) {
      if (!entry.wrap || !entry.rotation || (await this.keyStore.getEpochKey(group, entry.epoch))) continue;
      try {
        await this.#openEpoch(group, entry);
      } catch (error) {
        if (!(error instanceof E2EEError)) throw error;
        console.warn("NTARS chat: epoch", entry.epoch, "refused:", error.code);
      }
    }
    this.epochFetchedAt.set(group, Date.now());
    const state = { current: data.current, needsRotation: Boolean(data.needs_rotation) };
    this.epochState.set(group, state);
    return state;
  }

  async #openEpoch(group, entry) {
    const bytes = rotationBytes(entry.rotation);
    const open = (members) => openRotation(bytes, {
      device: this.device.deviceId,
      keys: this.device,
      group,
      minEpoch: 1,
      deviceKey: async (byDevice) => {
        for (const member of members.values()) {
          const found = member.devices.find((d) => d.device_id === byDevice);
          if (found) return found.signPublic;
        }
        return null;
      },
    });
    let opened;
    try {
      opened = await open(await this.directory(group));
    } catch (error) {
      if (error?.code !== "bad_signature") throw error;
      opened = await open(await this.directory(group, { refresh: true }));
    }
    await this.keyStore.putEpochKey(group, opened.rotation.epoch, opened.epochKey);
    opened.epochKey.fill(0);
  }

  /** The epoch key for decrypting (fetched from the server when this device has not opened it yet). */
  epochKeysFor(group) {
    return async (epoch) => {
      let key = await this.keyStore.getEpochKey(group, epoch);
      const last = this.epochFetchedAt.get(group) ?? 0;
      if (!key && (epoch > (this.epochState.get(group)?.current ?? 0) || Date.now() - last > EPOCHS_FRESH_MS)) {
        await this.refreshEpochs(group);
        key = await this.keyStore.getEpochKey(group, epoch);
      }
      return key;
    };
  }

  /** The epoch to send in: rotate first when the server says so (a member left, a device changed, a timer). */
  async sendingEpoch(group, { refresh = true } = {}) {
    let state = this.epochState.get(group);
    // A member's new device does not stop anyone sending, so look again now and then: it should get the key.
    const stale = Date.now() - (this.epochFetchedAt.get(group) ?? 0) > SEND_STATE_FRESH_MS;
    if (refresh || !state || stale) state = await this.refreshEpochs(group);
    for (let tries = 0; tries < MAX_ROTATION_TRIES; tries += 1) {
      const haveKey = state.current > 0 && (await this.keyStore.getEpochKey(group, state.current));
      if (!state.needsRotation && haveKey) return state.current;
      const rotated = await this.#rotate(group, state.current);
      if (rotated) return rotated;
      state = await this.refreshEpochs(group); // someone else rotated first: use theirs (or go again)
    }
    throw new E2EEError("unknown_epoch", "could not agree a group key with the server");
  }

  /** Make epoch current+1 for every member device in the directory; returns it, or 0 when someone beat us. */
  async #rotate(group, current) {
    const members = await this.directory(group, { refresh: true });
    const recipients = [];
    for (const member of members.values()) {
      for (const d of member.devices) recipients.push([d.device_id, d.dhPublic]);
    }
    if (!recipients.some(([id]) => id === this.device.deviceId)) {
      throw new E2EEError("not_recipient", "this device is not approved for the group yet");
    }
    const { rotation, epochKey } = await rotateEpoch({
      signer: this.device, byDevice: this.device.deviceId, group, epoch: current + 1, prevEpoch: current, recipients,
    });
    try {
      await api(this.base, `groups/${group}/rotations`, {
        method: "POST", json: { rotation: new TextDecoder().decode(rotation) },
      });
    } catch (error) {
      epochKey.fill(0);
      if (error instanceof ApiError && error.status === 409) return 0;
      throw error;
    }
    await this.keyStore.putEpochKey(group, current + 1, epochKey);
    epochKey.fill(0);
    this.epochState.set(group, { current: current + 1, needsRotation: false });
    return current + 1;
  }

  // --- messages and photos --------------------------------------------------------------------------------

  /** Seal a message for the group's current epoch: { envelope (bytes), epoch, msgId }. */
  async encrypt(group, { text, attachments = [], urgent = false }, { refresh = true } = {}) {
    const epoch = await this.sendingEpoch(group, { refresh });
    const epochKey = await this.keyStore.getEpochKey(group, epoch);
    const envelope = await encryptMessage({
      keys: this.device, sender: this.userId, device: this.device.deviceId, group, epoch, epochKey, text,
      sentAt: Date.now(), attachments, urgent,
    });
    return { envelope, epoch, msgId: readEnvelope(envelope).header.msg_id };
  }

  /** Verify and decrypt the event at (group, seq). minEpoch: the highest epoch seen earlier in the stream. */
  decrypt(group, seq, envelope, minEpoch) {
    return decryptMessage(envelope, {
      group,
      minEpoch,
      epochKeys: this.epochKeysFor(group),
      seen: this.store.seenAt(group, seq),
      deviceKey: this.deviceKeyFor(group),
    });
  }

  /** Encrypt and upload a photo; returns the attachment for the message body. */
  async uploadPhoto(group, bytes, mime) {
    const sealed = await encryptBlob(bytes);
    const uploaded = await api(this.base, `blobs?group=${group}`, {
      method: "POST", body: sealed.blob, headers: { "Content-Type": "application/octet-stream" },
    });
    return { blob: uploaded.blob_id, key: b64e(sealed.key), mime, sha256: b64e(sealed.sha256), size: bytes.length };
  }

  /** Download, check and decrypt an attachment; returns a Blob of the photo. */
  async downloadPhoto(attachment) {
    const blob = await apiBytes(this.base, `blobs/${encodeURIComponent(attachment.blob)}`);
    const plain = await decryptBlob(blob, { key: b64d(attachment.key, 32), sha256: b64d(attachment.sha256, 32) });
    return new Blob([plain], { type: attachment.mime });
  }
}
