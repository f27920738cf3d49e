// What the service worker needs to know on this device when a push arrives and no page is open: whose
// device it is (user_id, device_id), their "no preview" choice, and the signing keys of chat sender devices
// (to check an E2EE preview's signature). IndexedDB database "ntars-alerts" (docs/alerts.md, "In the
// browser"). Nothing secret is kept here: the E2EE keys stay in e2ee.js's KeyStore.

const DB_NAME = "ntars-alerts";
const DB_VERSION = 1;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = indexedDB.open(DB_NAME, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    db.createObjectStore("settings");
    db.createObjectStore("directory", { keyPath: ["user", "device"] });
  };
  return request(req);
}

async function run(storeName, mode, action) {
  const db = await openDb();
  try {
    const tx = db.transaction(storeName, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    const [result] = await Promise.all([request(action(tx.objectStore(storeName))), done]);
    return result;
  } finally {
    db.close();
  }
}

/** The device's copy of a setting (undefined when never saved). */
export async function getSetting(name) {
  return run("settings", "readonly", (store) => store.get(name));
}

export async function setSetting(name, value) {
  await run("settings", "readwrite", (store) => store.put(value, name));
}

/** True when lock-screen previews are off for the person last seen on this device. */
export async function noPreview() {
  try {
    return (await getSetting("no_preview")) === true;
  } catch {
    return true; // storage unreadable: show nothing of the content rather than too much
  }
}

/**
 * The chat client calls this for every directory entry it has checked: a sender device's Ed25519 key, and
 * optionally the sender's display name (a preview then reads "<name>: <text>").
 */
export async function rememberDeviceKey(user, device, signingPublic, name = "") {
  if (!Number.isSafeInteger(user) || user < 1 || !DEVICE_ID.test(device)) throw new TypeError("bad directory entry");
  if (!(signingPublic instanceof Uint8Array) || signingPublic.length !== 32) throw new TypeError("bad key");
  const entry = { user, device, signingPublic, name: typeof name === "string" ? name.slice(0, 120) : "" };
  await run("directory", "readwrite", (store) => store.put(entry));
}

/** The remembered display name of a sender (any of their devices), or "". */
export async function senderNameOf(user, device) {
  if (!Number.isSafeInteger(user) || typeof device !== "string") return "";
  const entry = await run("directory", "readonly", (store) => store.get([user, device]));
  return entry && typeof entry.name === "string" ? entry.name : "";
}

/** The remembered signing key of `device` if it belongs to `user`, else null (decryptMessage's deviceKey). */
export async function deviceKeyOf(user, device) {
  if (!Number.isSafeInteger(user) || typeof device !== "string") return null;
  const entry = await run("directory", "readonly", (store) => store.get([user, device]));
  return entry ? entry.signingPublic : null;
}

/** Forget everything about the person (sign-out on a shared phone, or a device removed). */
export async function forgetAll() {
  await run("settings", "readwrite", (store) => store.clear());
  await run("directory", "readwrite", (store) => store.clear());
}
