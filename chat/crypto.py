"""NTARS end-to-end encryption, format v1: device keys, group epoch keys, messages, attachments, franking.

Pure functions with no Django in them. The browser twin is frontend/static/ntars/js/e2ee.js; docs/security.md
pins every byte and tests/chat/vectors/v1.json holds the test vectors both implementations must reproduce.
Every failure raises E2EEError with a stable `code` (the CODE_* constants below).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping, MutableSet, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1

# Domain-separation labels: each is used for exactly one purpose and none contains "{".
LABEL_FINGERPRINT = b"NTARS-v1 fingerprint"
LABEL_SAFETY_NUMBER = b"NTARS-v1 safety-number"
LABEL_WRAP = b"NTARS-v1 epoch-wrap"
LABEL_ROTATION_SIG = b"NTARS-v1 rotation-sig"
LABEL_MESSAGE_KEYS = b"NTARS-v1 message-keys"
LABEL_KEY_COMMITMENT = b"NTARS-v1 key-commitment"
LABEL_MESSAGE_SIG = b"NTARS-v1 message-sig"
LABEL_BLOB = b"NTARS-v1 blob"
LABEL_FRANKING_TAG = b"NTARS-v1 franking-tag"
# Device approval (the key directory, not the message format): named by the integration contract.
LABEL_DEVICE_APPROVAL = b"NTARS-approve-v1"

CODE_MALFORMED = "malformed"
CODE_WEAK_KEY = "weak_key"
CODE_BAD_SIGNATURE = "bad_signature"
CODE_BAD_COMMITMENT = "bad_commitment"
CODE_BAD_CIPHERTEXT = "bad_ciphertext"
CODE_BAD_FRANKING = "bad_franking"
CODE_BAD_SERVER_TAG = "bad_server_tag"
CODE_UNKNOWN_EPOCH = "unknown_epoch"
CODE_ROLLED_BACK_EPOCH = "rolled_back_epoch"
CODE_REPLAY = "replay"
CODE_NOT_RECIPIENT = "not_recipient"

MAX_SAFE_INTEGER = 2**53 - 1
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_ROTATION_BYTES = 1024 * 1024
MAX_ATTACHMENTS = 10
KEY_BYTES = 32
SALT_BYTES = 16
MSG_ID_BYTES = 16
NONCE_BYTES = 12
MAC_BYTES = 32
SIG_BYTES = 64
TAG_BYTES = 16

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
BLOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
MIME_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")

_P = 2**255 - 19
# u (X25519) and y (Ed25519) coordinates of the points of order 1, 2, 4 and 8, reduced mod p (as libsodium).
_X25519_LOW_ORDER = frozenset(
    {
        0,
        1,
        _P - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)
_ED25519_LOW_ORDER = frozenset(
    {
        0,
        1,
        _P - 1,
        2707385501144840649318225287225658788936804267575313519463743609750303402022,
        55188659117513257062467267217118295137698188065244968500265048394206261417927,
    }
)


class E2EEError(Exception):
    """A v1 check failed; `code` is stable and shared with the JavaScript implementation."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


# ---------------------------------------------------------------------------------------------------------
# Encodings: base64url without padding, canonical JSON


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: Any, length: int | None = None) -> bytes:
    """Decode strict unpadded base64url (canonical trailing bits), optionally of an exact byte length."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise E2EEError(CODE_MALFORMED, "bad base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64e(raw) != text:
        raise E2EEError(CODE_MALFORMED, "non-canonical base64url")
    if length is not None and len(raw) != length:
        raise E2EEError(CODE_MALFORMED, f"expected {length} bytes")
    return raw


def _check_json_value(value: Any) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise E2EEError(CODE_MALFORMED, "integer out of range")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise E2EEError(CODE_MALFORMED, "object key is not a string")
            _check_json_value(item)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json_value(item)
        return
    raise E2EEError(CODE_MALFORMED, f"{type(value).__name__} is not allowed in canonical JSON")


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: keys sorted by code point, no whitespace, UTF-8, safe integers only, no floats."""
    try:
        _check_json_value(value)
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError, TypeError) as exc:
        raise E2EEError(CODE_MALFORMED, "not canonical JSON") from exc


def _reject_constant(token: str) -> Any:
    raise E2EEError(CODE_MALFORMED, f"{token} is not allowed")


def _reject_float(token: str) -> Any:
    raise E2EEError(CODE_MALFORMED, "floats are not allowed")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise E2EEError(CODE_MALFORMED, "duplicate key")
    return result


def parse_canonical(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Any:
    """Parse bytes that must be exactly the canonical JSON encoding of their value."""
    if not isinstance(data, bytes | bytearray) or len(data) > max_bytes:
        raise E2EEError(CODE_MALFORMED, "not bytes or too large")
    try:
        value = json.loads(
            bytes(data).decode("utf-8"),
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise E2EEError(CODE_MALFORMED, "not JSON") from exc
    if canonical_json(value) != data:
        raise E2EEError(CODE_MALFORMED, "not in canonical form")
    return value


def _fields(value: Any, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict) or not required <= value.keys() <= required | optional:
        raise E2EEError(CODE_MALFORMED, "unexpected fields")
    return value


def _int(value: Any, low: int, high: int = MAX_SAFE_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise E2EEError(CODE_MALFORMED, "integer field out of range")
    return value


def _match(pattern: re.Pattern[str], value: Any) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise E2EEError(CODE_MALFORMED, "string field has the wrong shape")
    return value


# ---------------------------------------------------------------------------------------------------------
# Primitives


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _random(value: bytes | None, length: int) -> bytes:
    if value is None:
        return os.urandom(length)
    if len(value) != length:
        raise E2EEError(CODE_MALFORMED, f"expected {length} bytes")
    return value


def _check_public(raw: bytes, low_order: frozenset[int], name: str) -> bytes:
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        raise E2EEError(CODE_MALFORMED, f"{name} public key must be 32 bytes")
    # Both curves encode a field element little-endian with the top bit masked (a sign bit for Ed25519).
    if (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _P in low_order:
        raise E2EEError(CODE_WEAK_KEY, f"all-zero or low-order {name} key")
    return raw


def check_x25519_public(raw: bytes) -> bytes:
    """Return raw if it is a usable X25519 public key; all-zero and low-order points are refused."""
    return _check_public(raw, _X25519_LOW_ORDER, "X25519")


def check_ed25519_public(raw: bytes) -> bytes:
    """Return raw if it is a usable Ed25519 public key; all-zero and small-order points are refused."""
    return _check_public(raw, _ED25519_LOW_ORDER, "Ed25519")


def _x25519(private: X25519PrivateKey, public_raw: bytes) -> bytes:
    check_x25519_public(public_raw)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(public_raw))
    except ValueError as exc:  # OpenSSL refuses an all-zero shared secret
        raise E2EEError(CODE_WEAK_KEY, "all-zero shared secret") from exc
    if not any(shared):
        raise E2EEError(CODE_WEAK_KEY, "all-zero shared secret")
    return shared


def _ed25519_verify(public_raw: bytes, signature: bytes, data: bytes) -> None:
    try:
        check_ed25519_public(public_raw)
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError, E2EEError) as exc:
        raise E2EEError(CODE_BAD_SIGNATURE, "signature does not verify") from exc


def _x25519_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _pkcs8(private: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def x25519_from_pkcs8(der: bytes) -> X25519PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, X25519PrivateKey):
        raise E2EEError(CODE_MALFORMED, "not an X25519 PKCS8 key")
    return key


def ed25519_from_pkcs8(der: bytes) -> Ed25519PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise E2EEError(CODE_MALFORMED, "not an Ed25519 PKCS8 key")
    return key


# ---------------------------------------------------------------------------------------------------------
# Device keys, fingerprints, safety numbers


@dataclass(frozen=True)
class DeviceKeys:
    """One device's private keys: Ed25519 for signing, X25519 for receiving epoch keys."""

    signing: Ed25519PrivateKey
    agreement: X25519PrivateKey

    @classmethod
    def generate(cls) -> DeviceKeys:
        return cls(signing=Ed25519PrivateKey.generate(), agreement=X25519PrivateKey.generate())

    @classmethod
    def from_pkcs8(cls, *, signing: bytes, agreement: bytes) -> DeviceKeys:
        return cls(signing=ed25519_from_pkcs8(signing), agreement=x25519_from_pkcs8(agreement))

    def to_pkcs8(self) -> tuple[bytes, bytes]:
        return _pkcs8(self.signing), _pkcs8(self.agreement)

    @property
    def signing_public(self) -> bytes:
        return self.signing.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def agreement_public(self) -> bytes:
        return _x25519_public(self.agreement)


def digits_60(digest: bytes) -> str:
    """Render a 32-byte digest as 12 groups of 5 decimal digits (big-endian integer mod 10**60)."""
    number = f"{int.from_bytes(digest, 'big') % 10**60:060d}"
    return " ".join(number[i : i + 5] for i in range(0, 60, 5))


def fingerprint(signing_public: bytes, agreement_public: bytes) -> str:
    """A device's fingerprint: SHA-256(label || Ed25519 public || X25519 public) as 60 digits."""
    check_ed25519_public(signing_public)
    check_x25519_public(agreement_public)
    return digits_60(hashlib.sha256(LABEL_FINGERPRINT + signing_public + agreement_public).digest())


def _safety_side(devices: Sequence[tuple[bytes, bytes]]) -> bytes:
    blobs = sorted(check_ed25519_public(sig) + check_x25519_public(dh) for sig, dh in devices)
    if not 1 <= len(blobs) <= 0xFFFF:
        raise E2EEError(CODE_MALFORMED, "a side needs 1 to 65535 devices")
    return len(blobs).to_bytes(2, "big") + b"".join(blobs)


def safety_number(a: Sequence[tuple[bytes, bytes]], b: Sequence[tuple[bytes, bytes]]) -> str:
    """Pairwise safety number of two users, each given as their devices' (signing, agreement) public keys."""
    low, high = sorted((_safety_side(a), _safety_side(b)))
    return digits_60(hashlib.sha256(LABEL_SAFETY_NUMBER + low + high).digest())


def device_approval_bytes(*, user: int, device: str, sign_pub: str, dh_pub: str) -> bytes:
    """What an approving device signs: label || canonical {"device", "dh_pub", "sign_pub", "user", "v": 1}."""
    _int(user, 1)
    _match(DEVICE_ID_RE, device)
    check_ed25519_public(b64d(sign_pub, KEY_BYTES))
    check_x25519_public(b64d(dh_pub, KEY_BYTES))
    payload = {"device": device, "dh_pub": dh_pub, "sign_pub": sign_pub, "user": user, "v": VERSION}
    return LABEL_DEVICE_APPROVAL + canonical_json(payload)


def sign_device_approval(*, keys: DeviceKeys, user: int, device: str, sign_pub: str, dh_pub: str) -> str:
    """An approved device vouches for another device of the same user; returns the base64url signature."""
    data = device_approval_bytes(user=user, device=device, sign_pub=sign_pub, dh_pub=dh_pub)
    return b64e(keys.signing.sign(data))


def verify_device_approval(
    *, signing_public: bytes, signature: str, user: int, device: str, sign_pub: str, dh_pub: str
) -> None:
    """Check an approval signature under the approving device's Ed25519 key (else `bad_signature`)."""
    data = device_approval_bytes(user=user, device=device, sign_pub=sign_pub, dh_pub=dh_pub)
    try:
        sig = b64d(signature, SIG_BYTES)
    except E2EEError as exc:
        raise E2EEError(CODE_BAD_SIGNATURE, "signature is not 64 bytes of base64url") from exc
    _ed25519_verify(signing_public, sig, data)


# ---------------------------------------------------------------------------------------------------------
# Group epoch keys: wrapping and signed rotation records


def new_epoch_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _wrap_aad(*, group: int, epoch: int, device: str) -> bytes:
    return canonical_json({"device": device, "epoch": epoch, "group": group, "v": VERSION})


def _wrap_key_nonce(shared: bytes, epk: bytes, rpk: bytes, salt: bytes, aad: bytes) -> tuple[bytes, bytes]:
    okm = _hkdf(shared + epk + rpk, salt=salt, info=LABEL_WRAP + aad, length=KEY_BYTES + NONCE_BYTES)
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def wrap_epoch_key(
    *,
    epoch_key: bytes,
    group: int,
    epoch: int,
    device: str,
    agreement_public: bytes,
    ephemeral: X25519PrivateKey | None = None,
    salt: bytes | None = None,
) -> dict[str, str]:
    """Wrap an epoch key to one recipient device (ephemeral and salt are fixed only by test vectors)."""
    _int(group, 1)
    _int(epoch, 1)
    _match(DEVICE_ID_RE, device)
    if len(epoch_key) != KEY_BYTES:
        raise E2EEError(CODE_MALFORMED, "epoch key must be 32 bytes")
    ephemeral = ephemeral or X25519PrivateKey.generate()
    salt = _random(salt, SALT_BYTES)
    epk = _x25519_public(ephemeral)
    shared = _x25519(ephemeral, agreement_public)
    aad = _wrap_aad(group=group, epoch=epoch, device=device)
    key, nonce = _wrap_key_nonce(shared, epk, agreement_public, salt, aad)
    ct = AESGCM(key).encrypt(nonce, epoch_key, aad)
    return {"ct": b64e(ct), "device": device, "epk": b64e(epk), "salt": b64e(salt)}


@dataclass(frozen=True)
class Rotation:
    """A parsed rotation record; `signed` and `sig` are what the signature covers and the signature."""

    group: int
    epoch: int
    prev_epoch: int
    by_device: str
    wraps: dict[str, dict[str, str]]
    signed: bytes = field(repr=False)
    sig: bytes = field(repr=False)


def create_rotation(
    *,
    signer: DeviceKeys,
    by_device: str,
    group: int,
    epoch: int,
    prev_epoch: int,
    wraps: Sequence[dict[str, str]],
) -> bytes:
    """Build and sign a rotation record {record, sig} from wraps made with wrap_epoch_key."""
    record = {
        "by_device": by_device,
        "epoch": epoch,
        "group": group,
        "prev_epoch": prev_epoch,
        "v": VERSION,
        "wraps": sorted(wraps, key=lambda wrap: wrap["device"]),
    }
    signed = LABEL_ROTATION_SIG + canonical_json(record)
    data = canonical_json({"record": record, "sig": b64e(signer.signing.sign(signed))})
    read_rotation(data)  # refuse to emit anything a recipient would call malformed
    return data


def rotate_epoch(
    *,
    signer: DeviceKeys,
    by_device: str,
    group: int,
    epoch: int,
    prev_epoch: int,
    recipients: Sequence[tuple[str, bytes]],
) -> tuple[bytes, bytes]:
    """Make a fresh epoch key wrapped to every (device id, X25519 public); return (rotation, epoch key)."""
    epoch_key = new_epoch_key()
    wraps = [
        wrap_epoch_key(epoch_key=epoch_key, group=group, epoch=epoch, device=device, agreement_public=public)
        for device, public in recipients
    ]
    rotation = create_rotation(
        signer=signer, by_device=by_device, group=group, epoch=epoch, prev_epoch=prev_epoch, wraps=wraps
    )
    return rotation, epoch_key


def read_rotation(data: bytes) -> Rotation:
    """Parse a rotation and check its shape; the signature is not checked here."""
    outer = _fields(parse_canonical(data, max_bytes=MAX_ROTATION_BYTES), {"record", "sig"})
    record = _fields(outer["record"], {"by_device", "epoch", "group", "prev_epoch", "v", "wraps"})
    _int(record["v"], VERSION, VERSION)
    epoch = _int(record["epoch"], 1)
    prev_epoch = _int(record["prev_epoch"], 0, epoch - 1)
    wraps_list = record["wraps"]
    if not isinstance(wraps_list, list) or not wraps_list:
        raise E2EEError(CODE_MALFORMED, "wraps must be a non-empty list")
    wraps: dict[str, dict[str, str]] = {}
    last = ""
    for wrap in wraps_list:
        _fields(wrap, {"ct", "device", "epk", "salt"})
        device = _match(DEVICE_ID_RE, wrap["device"])
        b64d(wrap["ct"], KEY_BYTES + TAG_BYTES)
        b64d(wrap["epk"], KEY_BYTES)
        b64d(wrap["salt"], SALT_BYTES)
        if device <= last:
            raise E2EEError(CODE_MALFORMED, "wraps must be sorted by device, without duplicates")
        wraps[device] = wrap
        last = device
    return Rotation(
        group=_int(record["group"], 1),
        epoch=epoch,
        prev_epoch=prev_epoch,
        by_device=_match(DEVICE_ID_RE, record["by_device"]),
        wraps=wraps,
        signed=LABEL_ROTATION_SIG + canonical_json(record),
        sig=b64d(outer["sig"], SIG_BYTES),
    )


def verify_rotation(data: bytes, *, signing_public: bytes) -> Rotation:
    """Parse a rotation and check it is signed by the device whose Ed25519 public key is given."""
    rotation = read_rotation(data)
    _ed25519_verify(signing_public, rotation.sig, rotation.signed)
    return rotation


def open_rotation(
    data: bytes,
    *,
    device: str,
    keys: DeviceKeys,
    group: int,
    min_epoch: int,
    device_key: Callable[[str], bytes | None],
) -> tuple[Rotation, bytes]:
    """Check a rotation for this group and unwrap this device's epoch key; return (rotation, epoch key)."""
    rotation = read_rotation(data)
    if rotation.group != group:
        raise E2EEError(CODE_MALFORMED, "rotation is for another group")
    if rotation.epoch < min_epoch:
        raise E2EEError(CODE_ROLLED_BACK_EPOCH, "epoch is older than the minimum")
    signing_public = device_key(rotation.by_device)
    if signing_public is None:
        raise E2EEError(CODE_BAD_SIGNATURE, "rotating device is not in the directory")
    _ed25519_verify(signing_public, rotation.sig, rotation.signed)
    wrap = rotation.wraps.get(device)
    if wrap is None:
        raise E2EEError(CODE_NOT_RECIPIENT, "no wrap for this device")
    epk = b64d(wrap["epk"], KEY_BYTES)
    shared = _x25519(keys.agreement, epk)
    aad = _wrap_aad(group=rotation.group, epoch=rotation.epoch, device=device)
    key, nonce = _wrap_key_nonce(shared, epk, keys.agreement_public, b64d(wrap["salt"], SALT_BYTES), aad)
    try:
        epoch_key = AESGCM(key).decrypt(nonce, b64d(wrap["ct"], KEY_BYTES + TAG_BYTES), aad)
    except InvalidTag as exc:
        raise E2EEError(CODE_BAD_CIPHERTEXT, "wrap does not open") from exc
    return rotation, epoch_key


# ---------------------------------------------------------------------------------------------------------
# Messages


HEADER_FIELDS = frozenset(
    {"device", "epoch", "fc", "group", "kc", "msg_id", "nonce", "sender", "sent_at", "v"}
)
BODY_OPTIONAL = frozenset({"urgent"})


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope; nothing in it has been verified yet."""

    header: dict[str, Any]
    ct: bytes
    sig: bytes

    @property
    def header_bytes(self) -> bytes:
        return canonical_json(self.header)

    @property
    def signed(self) -> bytes:
        return LABEL_MESSAGE_SIG + self.header_bytes + hashlib.sha256(self.ct).digest()


def read_envelope(data: bytes) -> Envelope:
    """Parse an envelope and check the shape of every header field (what the server may read)."""
    outer = _fields(parse_canonical(data), {"ct", "header", "sig"})
    header = _fields(outer["header"], set(HEADER_FIELDS))
    _int(header["v"], VERSION, VERSION)
    _int(header["group"], 1)
    _int(header["epoch"], 1)
    _int(header["sender"], 1)
    _int(header["sent_at"], 0)
    _match(DEVICE_ID_RE, header["device"])
    b64d(header["msg_id"], MSG_ID_BYTES)
    b64d(header["nonce"], NONCE_BYTES)
    b64d(header["kc"], MAC_BYTES)
    b64d(header["fc"], MAC_BYTES)
    ct = b64d(outer["ct"])
    if len(ct) < TAG_BYTES:
        raise E2EEError(CODE_MALFORMED, "ciphertext too short")
    return Envelope(header=header, ct=ct, sig=b64d(outer["sig"], SIG_BYTES))


def message_key_material(epoch_key: bytes, msg_id: bytes) -> bytes:
    """The 64 per-message bytes: encryption key || commitment key (revealed in a report)."""
    return _hkdf(epoch_key, salt=msg_id, info=LABEL_MESSAGE_KEYS, length=2 * KEY_BYTES)


def key_commitment(key_material: bytes) -> bytes:
    """kc: HMAC-SHA256 under the commitment key over the label and the encryption key."""
    return _hmac(key_material[KEY_BYTES:], LABEL_KEY_COMMITMENT + key_material[:KEY_BYTES])


def franking_commitment(body: dict[str, Any]) -> bytes:
    """fc: HMAC-SHA256 under the franking key fk over the canonical body without fk."""
    fk = b64d(body["fk"], KEY_BYTES)
    return _hmac(fk, canonical_json({k: v for k, v in body.items() if k != "fk"}))


def check_body(body: Any) -> dict[str, Any]:
    """Check the shape of a decrypted message body."""
    _fields(body, {"attachments", "fk", "text"}, BODY_OPTIONAL)
    if not isinstance(body["text"], str):
        raise E2EEError(CODE_MALFORMED, "text must be a string")
    if "urgent" in body and not isinstance(body["urgent"], bool):
        raise E2EEError(CODE_MALFORMED, "urgent must be a boolean")
    b64d(body["fk"], KEY_BYTES)
    attachments = body["attachments"]
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise E2EEError(CODE_MALFORMED, "attachments must be a short list")
    for attachment in attachments:
        _fields(attachment, {"blob", "key", "mime", "sha256", "size"})
        _match(BLOB_ID_RE, attachment["blob"])
        _match(MIME_RE, attachment["mime"])
        _int(attachment["size"], 0)
        b64d(attachment["key"], KEY_BYTES)
        b64d(attachment["sha256"], MAC_BYTES)
    return body


def encrypt_message(
    *,
    keys: DeviceKeys,
    sender: int,
    device: str,
    group: int,
    epoch: int,
    epoch_key: bytes,
    text: str,
    sent_at: int,
    attachments: Sequence[Mapping[str, Any]] = (),
    urgent: bool | None = None,
    msg_id: bytes | None = None,
    nonce: bytes | None = None,
    fk: bytes | None = None,
) -> bytes:
    """Seal a message to a group epoch; returns the envelope bytes (msg_id, nonce, fk only fixed by vectors)."""
    msg_id = _random(msg_id, MSG_ID_BYTES)
    nonce = _random(nonce, NONCE_BYTES)
    body: dict[str, Any] = {
        "attachments": [dict(a) for a in attachments],
        "fk": b64e(_random(fk, KEY_BYTES)),
        "text": text,
    }
    if urgent is not None:
        body["urgent"] = urgent
    check_body(body)
    material = message_key_material(epoch_key, msg_id)
    header = {
        "device": device,
        "epoch": epoch,
        "fc": b64e(franking_commitment(body)),
        "group": group,
        "kc": b64e(key_commitment(material)),
        "msg_id": b64e(msg_id),
        "nonce": b64e(nonce),
        "sender": sender,
        "sent_at": sent_at,
        "v": VERSION,
    }
    header_bytes = canonical_json(header)
    ct = AESGCM(material[:KEY_BYTES]).encrypt(nonce, canonical_json(body), header_bytes)
    sig = keys.signing.sign(LABEL_MESSAGE_SIG + header_bytes + hashlib.sha256(ct).digest())
    data = canonical_json({"ct": b64e(ct), "header": header, "sig": b64e(sig)})
    read_envelope(data)  # refuse to send anything a recipient would call malformed
    return data


@dataclass(frozen=True)
class Message:
    """A verified, decrypted message; `body` and `key_material` are what a member reveals in a report."""

    header: dict[str, Any]
    text: str
    attachments: list[dict[str, Any]]
    urgent: bool
    body: bytes = field(repr=False)
    key_material: bytes = field(repr=False)

    @property
    def msg_id(self) -> str:
        return str(self.header["msg_id"])


def _open_ciphertext(envelope: Envelope, key_material: bytes) -> tuple[bytes, dict[str, Any]]:
    """Check kc, decrypt, check the body and fc; returns (body bytes, body)."""
    if not hmac.compare_digest(key_commitment(key_material), b64d(envelope.header["kc"], MAC_BYTES)):
        raise E2EEError(CODE_BAD_COMMITMENT, "key commitment does not match")
    try:
        plain = AESGCM(key_material[:KEY_BYTES]).decrypt(
            b64d(envelope.header["nonce"], NONCE_BYTES), envelope.ct, envelope.header_bytes
        )
    except InvalidTag as exc:
        raise E2EEError(CODE_BAD_CIPHERTEXT, "ciphertext does not open") from exc
    body = check_body(parse_canonical(plain))
    if not hmac.compare_digest(franking_commitment(body), b64d(envelope.header["fc"], MAC_BYTES)):
        raise E2EEError(CODE_BAD_FRANKING, "franking commitment does not match the body")
    return plain, body


def decrypt_message(
    data: bytes,
    *,
    group: int,
    epoch_keys: Mapping[int, bytes],
    min_epoch: int,
    seen: MutableSet[str],
    device_key: Callable[[int, str], bytes | None],
) -> Message:
    """Verify and decrypt an envelope for `group`; on success its msg_id is added to `seen`.

    device_key(sender, device) returns that device's Ed25519 public key if the device belongs to the sender
    (per the key directory), else None.
    """
    envelope = read_envelope(data)
    header = envelope.header
    if header["group"] != group:
        raise E2EEError(CODE_MALFORMED, "envelope is for another group")
    if header["epoch"] < min_epoch:
        raise E2EEError(CODE_ROLLED_BACK_EPOCH, "epoch is older than the minimum")
    epoch_key = epoch_keys.get(header["epoch"])
    if epoch_key is None:
        raise E2EEError(CODE_UNKNOWN_EPOCH, "no key for this epoch")
    if header["msg_id"] in seen:
        raise E2EEError(CODE_REPLAY, "msg_id seen before")
    signing_public = device_key(header["sender"], header["device"])
    if signing_public is None:
        raise E2EEError(CODE_BAD_SIGNATURE, "sender device is not in the directory")
    _ed25519_verify(signing_public, envelope.sig, envelope.signed)
    material = message_key_material(epoch_key, b64d(header["msg_id"], MSG_ID_BYTES))
    plain, body = _open_ciphertext(envelope, material)
    seen.add(header["msg_id"])
    return Message(
        header=header,
        text=body["text"],
        attachments=body["attachments"],
        urgent=body.get("urgent", False),
        body=plain,
        key_material=material,
    )


# ---------------------------------------------------------------------------------------------------------
# Attachments


def encrypt_blob(
    data: bytes, *, key: bytes | None = None, nonce: bytes | None = None
) -> tuple[bytes, bytes, bytes]:
    """Encrypt an attachment under a fresh key; returns (blob = nonce || ciphertext, key, SHA-256 of blob)."""
    key = _random(key, KEY_BYTES)
    nonce = _random(nonce, NONCE_BYTES)
    blob = nonce + AESGCM(key).encrypt(nonce, data, LABEL_BLOB)
    return blob, key, hashlib.sha256(blob).digest()


def decrypt_blob(blob: bytes, *, key: bytes, sha256: bytes) -> bytes:
    """Check an attachment blob against its hash and decrypt it."""
    if not hmac.compare_digest(hashlib.sha256(blob).digest(), sha256):
        raise E2EEError(CODE_BAD_CIPHERTEXT, "blob hash does not match")
    if len(key) != KEY_BYTES or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise E2EEError(CODE_MALFORMED, "bad blob or key length")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], LABEL_BLOB)
    except InvalidTag as exc:
        raise E2EEError(CODE_BAD_CIPHERTEXT, "blob does not open") from exc


# ---------------------------------------------------------------------------------------------------------
# Franking (server side): the server tags what it relays; a report reveals the body and key material


def franking_tag(
    *,
    server_key: bytes,
    kid: str,
    fc: bytes,
    group: int,
    sender: int,
    device: str,
    msg_id: bytes,
    server_time: int,
) -> bytes:
    """The server's HMAC-SHA256 tag binding a franking commitment to who sent it, where and when."""
    payload = {
        "device": device,
        "fc": b64e(fc),
        "group": group,
        "kid": kid,
        "msg_id": b64e(msg_id),
        "sender": sender,
        "server_time": server_time,
        "v": VERSION,
    }
    return _hmac(server_key, LABEL_FRANKING_TAG + canonical_json(payload))


def envelope_franking_tag(*, server_key: bytes, kid: str, envelope: bytes, server_time: int) -> bytes:
    """franking_tag for an envelope the server relays (reads only its header)."""
    header = read_envelope(envelope).header
    return franking_tag(
        server_key=server_key,
        kid=kid,
        fc=b64d(header["fc"]),
        group=header["group"],
        sender=header["sender"],
        device=header["device"],
        msg_id=b64d(header["msg_id"]),
        server_time=server_time,
    )


@dataclass(frozen=True)
class ReportProof:
    """What a verified report proves: this device of this sender sent this body to this group at this time."""

    group: int
    sender: int
    device: str
    msg_id: str
    epoch: int
    sent_at: int
    server_time: int
    kid: str
    text: str
    attachments: list[dict[str, Any]]


def verify_report_proof(
    *,
    body: bytes,
    key_material: bytes,
    envelope: bytes,
    server_tag: bytes,
    server_key: bytes,
    kid: str,
    server_time: int,
    signing_public: bytes,
) -> ReportProof:
    """Check a reported message: server tag, franking commitment, key commitment, decryption, signature."""
    parsed = read_envelope(envelope)
    header = parsed.header
    if len(key_material) != 2 * KEY_BYTES:
        raise E2EEError(CODE_MALFORMED, "key material must be 64 bytes")
    expected_tag = envelope_franking_tag(
        server_key=server_key, kid=kid, envelope=envelope, server_time=server_time
    )
    if not hmac.compare_digest(expected_tag, server_tag):
        raise E2EEError(CODE_BAD_SERVER_TAG, "server tag does not match")
    claimed = check_body(parse_canonical(body))
    if not hmac.compare_digest(franking_commitment(claimed), b64d(header["fc"], MAC_BYTES)):
        raise E2EEError(CODE_BAD_FRANKING, "reported body does not match the franking commitment")
    plain, _ = _open_ciphertext(parsed, key_material)
    if not hmac.compare_digest(plain, body):
        raise E2EEError(CODE_BAD_CIPHERTEXT, "ciphertext does not decrypt to the reported body")
    _ed25519_verify(signing_public, parsed.sig, parsed.signed)
    return ReportProof(
        group=header["group"],
        sender=header["sender"],
        device=header["device"],
        msg_id=header["msg_id"],
        epoch=header["epoch"],
        sent_at=header["sent_at"],
        server_time=server_time,
        kid=kid,
        text=claimed["text"],
        attachments=claimed["attachments"],
    )
