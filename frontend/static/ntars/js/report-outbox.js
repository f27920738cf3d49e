// The report outbox: reports (with their photos as Blobs) wait in IndexedDB until they reach the server.
// Each entry carries a client-generated UUID (client_id), so sending it twice files it once.

const DB_NAME = "ntars-reports";
const STORE = "outbox";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "client_id" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keep `entry` ({client_id, url, fields: {name: value}, files: [{name, type, blob}], queued_at}). */
export function outboxPut(entry) {
  return withStore("readwrite", (store) => store.put(entry));
}

export function outboxDelete(clientId) {
  return withStore("readwrite", (store) => store.delete(clientId));
}

export async function outboxAll() {
  const entries = await withStore("readonly", (store) => store.getAll());
  return (entries || []).sort((a, b) => a.queued_at.localeCompare(b.queued_at));
}

export function csrfToken(doc = document) {
  const input = doc.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/**
 * Try to send one entry. Resolves to {state, status, body}: "sent" (filed, or already filed), "rejected"
 * (the server refused it for good: 413/422, the body says why), or "waiting" (no signal, signed out, server
 * trouble: try again later).
 */
export async function outboxSend(entry, token = csrfToken()) {
  const data = new FormData();
  for (const [name, value] of Object.entries(entry.fields)) {
    if (value !== "" && value !== null && value !== undefined) data.append(name, value);
  }
  data.set("client_id", entry.client_id);
  for (const file of entry.files || []) data.append("photos", file.blob, file.name);
  let response;
  try {
    response = await fetch(entry.url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": token, Accept: "application/json" },
    });
  } catch (error) {
    return { state: "waiting", status: 0, body: null };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (response.ok) return { state: "sent", status: response.status, body };
  if (response.status === 413 || response.status === 422 || response.status === 400) {
    return { state: "rejected", status: response.status, body };
  }
  return { state: "waiting", status: response.status, body };
}

let flushing = null;

/** Send every waiting entry, oldest first; `onResult(entry, result)` hears about each one. */
export function outboxFlush(onResult = () => {}) {
  if (flushing) return flushing;
  flushing = (async () => {
    try {
      for (const entry of await outboxAll()) {
        const result = await outboxSend(entry);
        if (result.state !== "waiting") await outboxDelete(entry.client_id);
        onResult(entry, result);
        if (result.state === "waiting" && result.status === 0) break; // still no signal
      }
    } finally {
      flushing = null;
    }
  })();
  return flushing;
}

/** Flush now, whenever the connection comes back, and every `everyMs` while anything waits. */
export function outboxWatch(onResult, everyMs = 30000) {
  const run = () => {
    if (navigator.onLine) outboxFlush(onResult).catch(() => {});
  };
  window.addEventListener("online", run);
  window.setInterval(() => {
    outboxAll().then((entries) => { if (entries.length) run(); }).catch(() => {});
  }, everyMs);
  run();
}
