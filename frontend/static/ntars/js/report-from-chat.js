// Promote a chat message to a report: the thread's "Report this" link opens /reports/new/?from_chat=<key>
// and leaves what the message said (and the franking proof) in this tab's sessionStorage under
// `ntars-chat-report:<key>`. This module reads it, decrypts the message's photos in the browser and gives the
// form the proof to submit; the server verifies it (docs/security.md §6) and refuses an altered one.
import { b64d, decryptBlob } from "./e2ee.js";

const CHAT_API = "/chat/api/";
const STORAGE_PREFIX = "ntars-chat-report:";

/** {key, data} for the message this page was opened for, {key, data: null} if the tab lost it, or null. */
export function chatReportRequested(search = window.location.search) {
  const key = new URLSearchParams(search).get("from_chat");
  if (!key) return null;
  let data = null;
  try {
    data = JSON.parse(sessionStorage.getItem(STORAGE_PREFIX + key) || "null");
  } catch (error) {
    data = null;
  }
  return { key, data };
}

export function chatReportForget(key) {
  try {
    sessionStorage.removeItem(STORAGE_PREFIX + key);
  } catch (error) {
    // nothing kept
  }
}

/** What the server needs to verify the message: never the group key, only this message's key material. */
export function chatProofOf(data) {
  return {
    group: data.group,
    seq: data.seq,
    body: data.body,
    key_material: data.key_material,
    envelope: data.envelope,
    franking: data.franking ?? null,
  };
}

/** The attachments listed inside the decrypted body (blob id, key, sha256, mime, size). */
export function chatAttachmentsOf(data) {
  try {
    const body = JSON.parse(new TextDecoder().decode(b64d(data.body)));
    return Array.isArray(body.attachments) ? body.attachments : [];
  } catch (error) {
    return [];
  }
}

const EXTENSIONS = { "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp" };

/** Fetch and decrypt each photo of the message; resolves to [{file} | {error}] in the message's order. */
export async function chatPhotosOf(data) {
  const attachments = chatAttachmentsOf(data);
  return Promise.all(attachments.map(async (attachment, index) => {
    try {
      const response = await fetch(`${CHAT_API}blobs/${encodeURIComponent(attachment.blob)}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`http_${response.status}`);
      const blob = new Uint8Array(await response.arrayBuffer());
      const plain = await decryptBlob(blob, { key: b64d(attachment.key, 32), sha256: b64d(attachment.sha256, 32) });
      const ext = EXTENSIONS[attachment.mime] || "bin";
      return { file: new File([plain], `chat-photo-${data.seq}-${index + 1}.${ext}`, { type: attachment.mime }) };
    } catch (error) {
      return { error: error?.code === "bad_ciphertext" ? "the photo was tampered with" : "the photo is no longer on the server" };
    }
  }));
}
