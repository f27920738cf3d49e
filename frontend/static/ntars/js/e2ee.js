// NTARS end-to-end encryption, format v1: the browser twin of chat/crypto.py. WebCrypto only.
// docs/security.md pins every byte; tests/chat/vectors/v1.json is reproduced by both implementations.
// Bytes are Uint8Array; every failure throws E2EEError with a stable `code` shared with Python.
import { E2EEError, b64d, b64e, bytesEqual, canonicalJson, malformed, parseCanonical } from "./canonical.js";

export { E2EEError, b64d, b64e, canonicalJson, parseCanonical };

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

export const VERSION = 1;
export const MAX_ENVELOPE_BYTES = 64 * 1024;
export const MAX_ROTATION_BYTES = 1024 * 1024;
export const MAX_ATTACHMENTS = 10;

const LABEL_FINGERPRINT = utf8.encode("NTARS-v1 fingerprint");
const LABEL_SAFETY_NUMBER = utf8.encode("NTARS-v1 safety-number");
const LABEL_WRAP = utf8.encode("NTARS-v1 epoch-wrap");
const LABEL_ROTATION_SIG = utf8.encode("NTARS-v1 rotation-sig");
const LABEL_MESSAGE_KEYS = utf8.encode("NTARS-v1 message-keys");
const LABEL_KEY_COMMITMENT = utf8.encode("NTARS-v1 key-commitment");
const LABEL_MESSAGE_SIG = utf8.encode("NTARS-v1 message-sig");
const LABEL_BLOB = utf8.encode("NTARS-v1 blob");
// Device approval (the key directory, not the message format): named by the integration contract.
const LABEL_DEVICE_APPROVAL = utf8.encode("NTARS-approve-v1");

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const BLOB_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MIME = /^[a-z0-9][a-z0-9.+-]{0,63}\/[a-z0-9][a-z0-9.+-]{0,63}$/;
const HEADER_FIELDS = ["device", "epoch", "fc", "group", "kc", "msg_id", "nonce", "sender", "sent_at", "v"];

const P = 2n ** 255n - 19n;
// u (X25519) and y (Ed25519) coordinates of the points of order 1, 2, 4 and 8, reduced mod p.
const X25519_LOW_ORDER = new Set([
  0n,
  1n,
  P - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
]);
const ED25519_LOW_ORDER = new Set([
  0n,
  1n,
  P - 1n,
  2707385501144840649318225287225658788936804267575313519463743609750303402022n,
  55188659117513257062467267217118295137698188065244968500265048394206261417927n,
]);

// ---------------------------------------------------------------------------------------------------------
// Small helpers

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function randomBytes(length) {
  return crypto.getRandomValues(new Uint8Array(length));
}

function given(value, length) {
  if (value === null || value === undefined) return randomBytes(length);
  if (!(value instanceof Uint8Array) || value.length !== length) throw malformed(`expected ${length} bytes`);
  return value;
}

function fields(value, required, optional = []) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed("not an object");
  const keys = Object.keys(value);
  const allowed = new Set([...required, ...optional]);
  if (!required.every((key) => Object.hasOwn(value, key)) || !keys.every((key) => allowed.has(key))) {
    throw malformed("unexpected fields");
  }
  return value;
}

function int(value, low, high = Number.MAX_SAFE_INTEGER) {
  if (!Number.isSafeInteger(value) || value < low || value > high) throw malformed("integer field out of range");
  return value;
}

function match(pattern, value) {
  if (typeof value !== "string" || !pattern.test(value)) throw malformed("string field has the wrong shape");
  return value;
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

async function hmac(key, data) {
  const hmacKey = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", hmacKey, data));
}

async function hkdf(ikm, { salt, info, length }) {
  const key = ikm instanceof CryptoKey ? ikm : await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

async function aesGcm(mode, key, nonce, data, aad) {
  const aesKey = await subtle.importKey("raw", key, "AES-GCM", false, [mode]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle[mode](params, aesKey, data));
}

async function aesGcmOpen(key, nonce, data, aad, what) {
  try {
    return await aesGcm("decrypt", key, nonce, data, aad);
  } catch {
    throw new E2EEError("bad_ciphertext", `${what} does not open`);
  }
}

function littleEndianCoordinate(raw) {
  let n = 0n;
  for (let i = raw.length - 1; i >= 0; i -= 1) n = (n << 8n) | BigInt(i === 31 ? raw[i] & 0x7f : raw[i]);
  return n % P;
}

function checkPublic(raw, lowOrder, name) {
  if (!(raw instanceof Uint8Array) || raw.length !== 32) throw malformed(`${name} public key must be 32 bytes`);
  if (lowOrder.has(littleEndianCoordinate(raw))) throw new E2EEError("weak_key", `all-zero or low-order ${name} key`);
  return raw;
}

export const checkX25519Public = (raw) => checkPublic(raw, X25519_LOW_ORDER, "X25519");
export const checkEd25519Public = (raw) => checkPublic(raw, ED25519_LOW_ORDER, "Ed25519");

async function x25519(privateKey, publicRaw) {
  checkX25519Public(publicRaw);
  let shared;
  try {
    const publicKey = await subtle.importKey("raw", publicRaw, { name: "X25519" }, true, []);
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: publicKey }, privateKey, 256));
  } catch {
    throw new E2EEError("weak_key", "X25519 agreement refused"); // WebCrypto refuses all-zero secrets
  }
  if (shared.every((byte) => byte === 0)) throw new E2EEError("weak_key", "all-zero shared secret");
  return shared;
}

async function ed25519Verify(publicRaw, signature, data) {
  let ok = false;
  try {
    checkEd25519Public(publicRaw);
    const key = await subtle.importKey("raw", publicRaw, { name: "Ed25519" }, true, ["verify"]);
    ok = await subtle.verify({ name: "Ed25519" }, key, signature, data);
  } catch {
    ok = false;
  }
  if (!ok) throw new E2EEError("bad_signature", "signature does not verify");
}

async function ed25519Sign(privateKey, data) {
  return new Uint8Array(await subtle.sign({ name: "Ed25519" }, privateKey, data));
}

// Import a PKCS8 private key non-extractable; its public half comes from a throwaway extractable import.
async function importPrivatePkcs8(pkcs8, name, usages) {
  const extractable = await subtle.importKey("pkcs8", pkcs8, { name }, true, usages);
  const jwk = await subtle.exportKey("jwk", extractable);
  const key = await subtle.importKey("pkcs8", pkcs8, { name }, false, usages);
  return { key, publicRaw: b64d(jwk.x, 32) };
}

async function exportRawPublic(publicKey) {
  return new Uint8Array(await subtle.exportKey("raw", publicKey));
}

// ---------------------------------------------------------------------------------------------------------
// Device keys, fingerprints, safety numbers

// A device: { signingKey, agreementKey } (private CryptoKeys, non-extractable) and their raw public halves.
export async function generateDeviceKeys() {
  const signing = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const agreement = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  return {
    signingKey: signing.privateKey,
    agreementKey: agreement.privateKey,
    signingPublic: await exportRawPublic(signing.publicKey),
    agreementPublic: await exportRawPublic(agreement.publicKey),
  };
}

// Only for test vectors and key transfer from Python: browsers cannot export raw private keys.
export async function importDeviceKeysPkcs8(signingPkcs8, agreementPkcs8) {
  const signing = await importPrivatePkcs8(signingPkcs8, "Ed25519", ["sign"]);
  const agreement = await importPrivatePkcs8(agreementPkcs8, "X25519", ["deriveBits"]);
  return {
    signingKey: signing.key,
    agreementKey: agreement.key,
    signingPublic: signing.publicRaw,
    agreementPublic: agreement.publicRaw,
  };
}

export function digits60(digest) {
  let n = 0n;
  for (const byte of digest) n = (n << 8n) | BigInt(byte);
  const digits = (n % 10n ** 60n).toString().padStart(60, "0");
  return digits.match(/.{5}/g).join(" ");
}

export async function fingerprint(signingPublic, agreementPublic) {
  checkEd25519Public(signingPublic);
  checkX25519Public(agreementPublic);
  return digits60(await sha256(concat(LABEL_FINGERPRINT, signingPublic, agreementPublic)));
}

function safetySide(devices) {
  const blobs = devices
    .map(([signing, agreement]) => concat(checkEd25519Public(signing), checkX25519Public(agreement)))
    .sort(compareBytes);
  if (blobs.length < 1 || blobs.length > 0xffff) throw malformed("a side needs 1 to 65535 devices");
  return concat(new Uint8Array([blobs.length >> 8, blobs.length & 0xff]), ...blobs);
}

// Pairwise safety number of two users, each given as a list of [signingPublic, agreementPublic].
export async function safetyNumber(a, b) {
  const [low, high] = [safetySide(a), safetySide(b)].sort(compareBytes);
  return digits60(await sha256(concat(LABEL_SAFETY_NUMBER, low, high)));
}

// What an approving device signs (chat/crypto.py device_approval_bytes); signPub and dhPub are base64url text.
export function deviceApprovalBytes({ user, device, signPub, dhPub }) {
  int(user, 1);
  match(DEVICE_ID, device);
  checkEd25519Public(b64d(signPub, 32));
  checkX25519Public(b64d(dhPub, 32));
  return concat(LABEL_DEVICE_APPROVAL, canonicalJson({ device, dh_pub: dhPub, sign_pub: signPub, user, v: VERSION }));
}

// An approved device vouches for another device of the same user; resolves to the base64url signature.
export async function signDeviceApproval({ keys, user, device, signPub, dhPub }) {
  return b64e(await ed25519Sign(keys.signingKey, deviceApprovalBytes({ user, device, signPub, dhPub })));
}

export async function verifyDeviceApproval({ signingPublic, signature, user, device, signPub, dhPub }) {
  const data = deviceApprovalBytes({ user, device, signPub, dhPub });
  let sig;
  try {
    sig = b64d(signature, 64);
  } catch {
    throw new E2EEError("bad_signature", "signature is not 64 bytes of base64url");
  }
  await ed25519Verify(signingPublic, sig, data);
}

// ---------------------------------------------------------------------------------------------------------
// Group epoch keys: wrapping and signed rotation records

export function newEpochKey() {
  return randomBytes(32);
}

function wrapAad({ group, epoch, device }) {
  return canonicalJson({ device, epoch, group, v: VERSION });
}

async function wrapKeyNonce(shared, epk, rpk, salt, aad) {
  const okm = await hkdf(concat(shared, epk, rpk), { salt, info: concat(LABEL_WRAP, aad), length: 44 });
  return [okm.slice(0, 32), okm.slice(32)];
}

export async function wrapEpochKey({
  epochKey,
  group,
  epoch,
  device,
  agreementPublic,
  ephemeralPkcs8 = null,
  salt = null,
}) {
  int(group, 1);
  int(epoch, 1);
  match(DEVICE_ID, device);
  if (!(epochKey instanceof Uint8Array) || epochKey.length !== 32) throw malformed("epoch key must be 32 bytes");
  let ephemeral;
  let epk;
  if (ephemeralPkcs8) {
    ({ key: ephemeral, publicRaw: epk } = await importPrivatePkcs8(ephemeralPkcs8, "X25519", ["deriveBits"]));
  } else {
    const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    ephemeral = pair.privateKey;
    epk = await exportRawPublic(pair.publicKey);
  }
  const wrapSalt = given(salt, 16);
  const shared = await x25519(ephemeral, agreementPublic);
  const aad = wrapAad({ group, epoch, device });
  const [key, nonce] = await wrapKeyNonce(shared, epk, agreementPublic, wrapSalt, aad);
  const ct = await aesGcm("encrypt", key, nonce, epochKey, aad);
  return { ct: b64e(ct), device, epk: b64e(epk), salt: b64e(wrapSalt) };
}

export async function createRotation({ signer, byDevice, group, epoch, prevEpoch, wraps }) {
  const sorted = [...wraps].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
  const record = { by_device: byDevice, epoch, group, prev_epoch: prevEpoch, v: VERSION, wraps: sorted };
  const sig = await ed25519Sign(signer.signingKey, concat(LABEL_ROTATION_SIG, canonicalJson(record)));
  const data = canonicalJson({ record, sig: b64e(sig) });
  readRotation(data); // refuse to emit anything a recipient would call malformed
  return data;
}

// A fresh epoch key wrapped to every [deviceId, agreementPublic]; returns { rotation, epochKey }.
export async function rotateEpoch({ signer, byDevice, group, epoch, prevEpoch, recipients }) {
  const epochKey = newEpochKey();
  const wraps = [];
  for (const [device, agreementPublic] of recipients) {
    wraps.push(await wrapEpochKey({ epochKey, group, epoch, device, agreementPublic }));
  }
  const rotation = await createRotation({ signer, byDevice, group, epoch, prevEpoch, wraps });
  return { rotation, epochKey };
}

// Parse a rotation and check its shape; the signature is not checked here.
export function readRotation(data) {
  const outer = fields(parseCanonical(data, MAX_ROTATION_BYTES), ["record", "sig"]);
  const record = fields(outer.record, ["by_device", "epoch", "group", "prev_epoch", "v", "wraps"]);
  int(record.v, VERSION, VERSION);
  const epoch = int(record.epoch, 1);
  const prevEpoch = int(record.prev_epoch, 0, epoch - 1);
  if (!Array.isArray(record.wraps) || record.wraps.length === 0) throw malformed("wraps must be a non-empty list");
  const wraps = new Map();
  let last = "";
  for (const wrap of record.wraps) {
    fields(wrap, ["ct", "device", "epk", "salt"]);
    const device = match(DEVICE_ID, wrap.device);
    b64d(wrap.ct, 48);
    b64d(wrap.epk, 32);
    b64d(wrap.salt, 16);
    if (device <= last) throw malformed("wraps must be sorted by device, without duplicates");
    wraps.set(device, wrap);
    last = device;
  }
  return {
    group: int(record.group, 1),
    epoch,
    prevEpoch,
    byDevice: match(DEVICE_ID, record.by_device),
    wraps,
    signed: concat(LABEL_ROTATION_SIG, canonicalJson(record)),
    sig: b64d(outer.sig, 64),
  };
}

export async function verifyRotation(data, { signingPublic }) {
  const rotation = readRotation(data);
  await ed25519Verify(signingPublic, rotation.sig, rotation.signed);
  return rotation;
}

// Check a rotation for this group and unwrap this device's epoch key. deviceKey(deviceId) -> raw Ed25519 | null.
export async function openRotation(data, { device, keys, group, minEpoch, deviceKey }) {
  const rotation = readRotation(data);
  if (rotation.group !== group) throw malformed("rotation is for another group");
  if (rotation.epoch < minEpoch) throw new E2EEError("rolled_back_epoch", "epoch is older than the minimum");
  const signingPublic = await deviceKey(rotation.byDevice);
  if (!signingPublic) throw new E2EEError("bad_signature", "rotating device is not in the directory");
  await ed25519Verify(signingPublic, rotation.sig, rotation.signed);
  const wrap = rotation.wraps.get(device);
  if (!wrap) throw new E2EEError("not_recipient", "no wrap for this device");
  const epk = b64d(wrap.epk, 32);
  const shared = await x25519(keys.agreementKey, epk);
  const aad = wrapAad({ group: rotation.group, epoch: rotation.epoch, device });
  const [key, nonce] = await wrapKeyNonce(shared, epk, keys.agreementPublic, b64d(wrap.salt, 16), aad);
  const epochKey = await aesGcmOpen(key, nonce, b64d(wrap.ct, 48), aad, "wrap");
  return { rotation, epochKey };
}

// ---------------------------------------------------------------------------------------------------------
// Messages

// Parse an envelope and check the shape of every header field (all the server may read).
export function readEnvelope(data) {
  const outer = fields(parseCanonical(data, MAX_ENVELOPE_BYTES), ["ct", "header", "sig"]);
  const header = fields(outer.header, HEADER_FIELDS);
  int(header.v, VERSION, VERSION);
  int(header.group, 1);
  int(header.epoch, 1);
  int(header.sender, 1);
  int(header.sent_at, 0);
  match(DEVICE_ID, header.device);
  b64d(header.msg_id, 16);
  b64d(header.nonce, 12);
  b64d(header.kc, 32);
  b64d(header.fc, 32);
  const ct = b64d(outer.ct);
  if (ct.length < 16) throw malformed("ciphertext too short");
  return { header, headerBytes: canonicalJson(header), ct, sig: b64d(outer.sig, 64) };
}

async function envelopeSigned(envelope) {
  return concat(LABEL_MESSAGE_SIG, envelope.headerBytes, await sha256(envelope.ct));
}

// The 64 per-message bytes: encryption key || commitment key. epochKey: raw bytes or an HKDF CryptoKey.
export async function messageKeyMaterial(epochKey, msgId) {
  return hkdf(epochKey, { salt: msgId, info: LABEL_MESSAGE_KEYS, length: 64 });
}

export async function keyCommitment(material) {
  return hmac(material.slice(32), concat(LABEL_KEY_COMMITMENT, material.slice(0, 32)));
}

export async function frankingCommitment(body) {
  const rest = Object.fromEntries(Object.entries(body).filter(([key]) => key !== "fk"));
  return hmac(b64d(body.fk, 32), canonicalJson(rest));
}

export function checkBody(body) {
  fields(body, ["attachments", "fk", "text"], ["urgent"]);
  if (typeof body.text !== "string") throw malformed("text must be a string");
  if ("urgent" in body && typeof body.urgent !== "boolean") throw malformed("urgent must be a boolean");
  b64d(body.fk, 32);
  if (!Array.isArray(body.attachments) || body.attachments.length > MAX_ATTACHMENTS) {
    throw malformed("attachments must be a short list");
  }
  for (const attachment of body.attachments) {
    fields(attachment, ["blob", "key", "mime", "sha256", "size"]);
    match(BLOB_ID, attachment.blob);
    match(MIME, attachment.mime);
    int(attachment.size, 0);
    b64d(attachment.key, 32);
    b64d(attachment.sha256, 32);
  }
  return body;
}

// Seal a message to a group epoch; returns envelope bytes. msgId, nonce and fk are fixed only by test vectors.
export async function encryptMessage({
  keys,
  sender,
  device,
  group,
  epoch,
  epochKey,
  text,
  sentAt,
  attachments = [],
  urgent = null,
  msgId = null,
  nonce = null,
  fk = null,
}) {
  const id = given(msgId, 16);
  const iv = given(nonce, 12);
  const body = { attachments: attachments.map((a) => ({ ...a })), fk: b64e(given(fk, 32)), text };
  if (urgent !== null) body.urgent = urgent;
  checkBody(body);
  const material = await messageKeyMaterial(epochKey, id);
  const header = {
    device,
    epoch,
    fc: b64e(await frankingCommitment(body)),
    group,
    kc: b64e(await keyCommitment(material)),
    msg_id: b64e(id),
    nonce: b64e(iv),
    sender,
    sent_at: sentAt,
    v: VERSION,
  };
  const headerBytes = canonicalJson(header);
  const ct = await aesGcm("encrypt", material.slice(0, 32), iv, canonicalJson(body), headerBytes);
  const sig = await ed25519Sign(keys.signingKey, concat(LABEL_MESSAGE_SIG, headerBytes, await sha256(ct)));
  const data = canonicalJson({ ct: b64e(ct), header, sig: b64e(sig) });
  readEnvelope(data); // refuse to send anything a recipient would call malformed
  return data;
}

async function openCiphertext(envelope, material) {
  if (!bytesEqual(await keyCommitment(material), b64d(envelope.header.kc, 32))) {
    throw new E2EEError("bad_commitment", "key commitment does not match");
  }
  const nonce = b64d(envelope.header.nonce, 12);
  const plain = await aesGcmOpen(material.slice(0, 32), nonce, envelope.ct, envelope.headerBytes, "ciphertext");
  const body = checkBody(parseCanonical(plain, MAX_ENVELOPE_BYTES));
  if (!bytesEqual(await frankingCommitment(body), b64d(envelope.header.fc, 32))) {
    throw new E2EEError("bad_franking", "franking commitment does not match the body");
  }
  return { plain, body };
}

// Verify and decrypt an envelope for `group`; on success its msg_id is added to `seen`.
// epochKeys: Map or (epoch) => key (raw bytes or HKDF CryptoKey); seen: Set-like, has/add may be async;
// deviceKey(sender, device): raw Ed25519 public key if the device belongs to the sender, else null.
export async function decryptMessage(data, { group, epochKeys, minEpoch, seen, deviceKey }) {
  const envelope = readEnvelope(data);
  const { header } = envelope;
  if (header.group !== group) throw malformed("envelope is for another group");
  if (header.epoch < minEpoch) throw new E2EEError("rolled_back_epoch", "epoch is older than the minimum");
  const epochKey = typeof epochKeys === "function" ? await epochKeys(header.epoch) : epochKeys.get(header.epoch);
  if (!epochKey) throw new E2EEError("unknown_epoch", "no key for this epoch");
  if (await seen.has(header.msg_id)) throw new E2EEError("replay", "msg_id seen before");
  const signingPublic = await deviceKey(header.sender, header.device);
  if (!signingPublic) throw new E2EEError("bad_signature", "sender device is not in the directory");
  await ed25519Verify(signingPublic, envelope.sig, await envelopeSigned(envelope));
  const keyMaterial = await messageKeyMaterial(epochKey, b64d(header.msg_id, 16));
  const { plain, body } = await openCiphertext(envelope, keyMaterial);
  await seen.add(header.msg_id);
  return {
    header,
    msgId: header.msg_id,
    text: body.text,
    attachments: body.attachments,
    urgent: body.urgent ?? false,
    body: plain,
    keyMaterial,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Attachments

// Encrypt an attachment under a fresh key: { blob: nonce || ciphertext, key, sha256 (of blob) }.
export async function encryptBlob(data, { key = null, nonce = null } = {}) {
  const blobKey = given(key, 32);
  const iv = given(nonce, 12);
  const blob = concat(iv, await aesGcm("encrypt", blobKey, iv, data, LABEL_BLOB));
  return { blob, key: blobKey, sha256: await sha256(blob) };
}

export async function decryptBlob(blob, { key, sha256: digest }) {
  if (!bytesEqual(await sha256(blob), digest)) throw new E2EEError("bad_ciphertext", "blob hash does not match");
  if (key.length !== 32 || blob.length < 28) throw malformed("bad blob or key length");
  return aesGcmOpen(key, blob.subarray(0, 12), blob.subarray(12), LABEL_BLOB, "blob");
}

// ---------------------------------------------------------------------------------------------------------
// Keystore: this device's keys, epoch keys, seen message ids and pinned safety numbers, in IndexedDB.
// Private and epoch keys are stored as non-extractable CryptoKeys (structured clone keeps them opaque).

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class KeyStore {
  static async open(name = "ntars-e2ee") {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore("device");
      db.createObjectStore("epochs", { keyPath: ["group", "epoch"] });
      db.createObjectStore("seen", { keyPath: "msgId" });
      db.createObjectStore("pins", { keyPath: "user" });
    };
    return new KeyStore(await request(req));
  }

  constructor(db) {
    this.db = db;
  }

  close() {
    this.db.close();
  }

  async #run(storeName, mode, action) {
    const tx = this.db.transaction(storeName, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    const [result] = await Promise.all([request(action(tx.objectStore(storeName))), done]);
    return result;
  }

  // { deviceId, signingKey, agreementKey, signingPublic, agreementPublic } or null.
  async getDevice() {
    return (await this.#run("device", "readonly", (store) => store.get("self"))) ?? null;
  }

  async putDevice(deviceId, keys) {
    await this.#run("device", "readwrite", (store) => store.put({ deviceId, ...keys }, "self"));
  }

  // Stores the epoch key as a non-extractable HKDF CryptoKey (callers should drop the raw bytes).
  async putEpochKey(group, epoch, raw) {
    const key = await subtle.importKey("raw", raw, "HKDF", false, ["deriveBits"]);
    await this.#run("epochs", "readwrite", (store) => store.put({ group, epoch, key }));
  }

  async getEpochKey(group, epoch) {
    return (await this.#run("epochs", "readonly", (store) => store.get([group, epoch])))?.key ?? null;
  }

  async latestEpoch(group) {
    const range = IDBKeyRange.bound([group, 0], [group, Number.MAX_SAFE_INTEGER]);
    const keys = await this.#run("epochs", "readonly", (store) => store.getAllKeys(range));
    return keys.length ? keys[keys.length - 1][1] : 0;
  }

  // A Set-like view of seen message ids for decryptMessage's `seen`.
  seenSet() {
    return {
      has: async (msgId) => (await this.#run("seen", "readonly", (store) => store.count(msgId))) > 0,
      add: async (msgId) => this.#run("seen", "readwrite", (store) => store.put({ msgId })),
    };
  }

  async getPin(user) {
    return (await this.#run("pins", "readonly", (store) => store.get(user)))?.safetyNumber ?? null;
  }

  // Remember a member's safety number; returns true when it differs from the pinned one (warn the user).
  async pin(user, safetyNumber) {
    const previous = await this.getPin(user);
    await this.#run("pins", "readwrite", (store) => store.put({ user, safetyNumber }));
    return previous !== null && previous !== safetyNumber;
  }
}
