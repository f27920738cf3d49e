// NTARS wire-format helpers: strict unpadded base64url and canonical JSON, byte for byte as chat/crypto.py
// (docs/security.md, "Encodings"). Every failure throws E2EEError("malformed").

export class E2EEError extends Error {
  constructor(code, detail = "") {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "E2EEError";
    this.code = code;
  }
}

export const malformed = (detail) => new E2EEError("malformed", detail);

const B64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextEncoder();

export function b64e(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function b64d(text, length = null) {
  if (typeof text !== "string" || !B64URL.test(text) || text.length % 4 === 1) {
    throw malformed("bad base64url");
  }
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  if (b64e(bytes) !== text) throw malformed("non-canonical base64url");
  if (length !== null && bytes.length !== length) throw malformed(`expected ${length} bytes`);
  return bytes;
}

// Object keys sort by Unicode code point (what Python's sort_keys does), not by UTF-16 code unit.
function compareCodePoints(a, b) {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i);
    const cb = b.codePointAt(j);
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return a.length - i - (b.length - j);
}

function quote(text) {
  if (!text.isWellFormed()) throw malformed("lone surrogate");
  return JSON.stringify(text);
}

function encode(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return quote(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw malformed("only safe integers are allowed");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(encode).join(",")}]`;
  const proto = typeof value === "object" ? Object.getPrototypeOf(value) : undefined;
  if (proto === Object.prototype || proto === null) {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((key) => `${quote(key)}:${encode(value[key])}`).join(",")}}`;
  }
  throw malformed(`${typeof value} is not allowed in canonical JSON`);
}

// Canonical JSON as a string: keys sorted, no whitespace, safe integers only.
export function canonicalString(value) {
  try {
    return encode(value);
  } catch (error) {
    if (error instanceof E2EEError) throw error;
    throw malformed("not canonical JSON"); // e.g. RangeError on absurd nesting
  }
}

export function canonicalJson(value) {
  return utf8.encode(canonicalString(value));
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

// Parse bytes that must be exactly the canonical encoding of their value.
export function parseCanonical(bytes, maxBytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length > maxBytes) throw malformed("not bytes or too large");
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw malformed("not JSON");
  }
  if (!bytesEqual(canonicalJson(value), bytes)) throw malformed("not in canonical form");
  return value;
}
