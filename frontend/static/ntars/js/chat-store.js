// This device's chat state in IndexedDB, one database per signed-in person ("ntars-chat-u<id>"):
//   outbox   messages waiting for the hub's ack (text, urgent flag, photo), keyed by client_id;
//   reads    the last seq read per group (unread counts);
//   seen     msg_id -> where it was first accepted (group, seq): the same msg_id anywhere else is a replay;
//   warnings key changes of members that this person has not looked at yet.
// Decrypted history is not kept: each page decrypts what the hub replays. Only unsent drafts stay on the phone.

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class ChatStore {
  static async open(userId) {
    const req = indexedDB.open(`ntars-chat-u${userId}`, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore("outbox", { keyPath: "clientId" });
      db.createObjectStore("reads", { keyPath: "group" });
      db.createObjectStore("seen", { keyPath: "msgId" });
      db.createObjectStore("warnings", { keyPath: "user" });
    };
    return new ChatStore(await request(req));
  }

  constructor(db) {
    this.db = db;
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

  // --- outbox ---------------------------------------------------------------------------------------------

  outboxPut(entry) {
    return this.#run("outbox", "readwrite", (store) => store.put(entry));
  }

  outboxDelete(clientId) {
    return this.#run("outbox", "readwrite", (store) => store.delete(clientId));
  }

  async outboxGet(clientId) {
    return (await this.#run("outbox", "readonly", (store) => store.get(clientId))) ?? null;
  }

  /** Waiting entries (all groups, or one), oldest first. */
  async outboxAll(group = null) {
    const all = await this.#run("outbox", "readonly", (store) => store.getAll());
    return all.filter((e) => group === null || e.group === group).sort((a, b) => a.createdAt - b.createdAt);
  }

  // --- read marks ----------------------------------------------------------------------------------------

  async lastRead(group) {
    return (await this.#run("reads", "readonly", (store) => store.get(group)))?.seq ?? 0;
  }

  async markRead(group, seq) {
    if (seq > (await this.lastRead(group))) {
      await this.#run("reads", "readwrite", (store) => store.put({ group, seq }));
    }
  }

  // --- replay set ------------------------------------------------------------------------------------------

  /**
   * decryptMessage's `seen` for the event at (group, seq): a msg_id counts as seen only if it was accepted at
   * another place in a stream. Decrypting the same event again (a page reload, a second tab) is not a replay.
   */
  seenAt(group, seq) {
    return {
      has: async (msgId) => {
        const row = await this.#run("seen", "readonly", (store) => store.get(msgId));
        return Boolean(row) && (row.group !== group || row.seq !== seq);
      },
      add: async (msgId) => {
        const row = await this.#run("seen", "readonly", (store) => store.get(msgId));
        if (!row) await this.#run("seen", "readwrite", (store) => store.put({ msgId, group, seq }));
      },
    };
  }

  // --- key-change warnings -----------------------------------------------------------------------------

  warningPut(user, name) {
    return this.#run("warnings", "readwrite", (store) => store.put({ user, name, at: Date.now() }));
  }

  warningDelete(user) {
    return this.#run("warnings", "readwrite", (store) => store.delete(user));
  }

  async warnings() {
    return this.#run("warnings", "readonly", (store) => store.getAll());
  }
}
