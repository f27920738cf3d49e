"""E2EE format v1 (chat/crypto.py): the pinned vectors, and every way a recipient must say no.

Regenerate tests/chat/vectors/v1.json (only when the format deliberately changes) with
`.venv/bin/python -m tests.chat.test_crypto`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import crypto as c
from chat.crypto import E2EEError, b64d, b64e

VECTORS_PATH = Path(__file__).parent / "vectors" / "v1.json"

GROUP = 7
EPOCH = 2
SENT_AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z in milliseconds
DEVICES = {  # device id -> user id
    "alice-phone": 1,
    "bob-phone": 2,
    "bob-tablet": 2,
    "warden-laptop": 3,
}


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"NTARS test vector " + label.encode()).digest()


def vector_keys(device: str) -> c.DeviceKeys:
    return c.DeviceKeys(
        signing=Ed25519PrivateKey.from_private_bytes(_seed(f"{device} signing")),
        agreement=X25519PrivateKey.from_private_bytes(_seed(f"{device} agreement")),
    )


def directory(keys: dict[str, c.DeviceKeys], owners: dict[str, int]) -> Any:
    """A device_key(sender, device) callback: the device's signing key only if the sender owns it."""

    def device_key(sender: int, device: str) -> bytes | None:
        return keys[device].signing_public if owners.get(device) == sender else None

    return device_key


def seal(header: dict[str, Any], ct: bytes, keys: c.DeviceKeys) -> bytes:
    """Sign an arbitrary header and ciphertext the way a (possibly malicious) sender would."""
    header_bytes = c.canonical_json(header)
    sig = keys.signing.sign(c.LABEL_MESSAGE_SIG + header_bytes + hashlib.sha256(ct).digest())
    return c.canonical_json({"ct": b64e(ct), "header": header, "sig": b64e(sig)})


def resealed(envelope: bytes, keys: c.DeviceKeys, **changes: Any) -> bytes:
    """The envelope with header fields changed and validly re-signed by `keys`."""
    parsed = c.read_envelope(envelope)
    return seal({**parsed.header, **changes}, parsed.ct, keys)


def forge_with_body(*, keys: c.DeviceKeys, epoch_key: bytes, header: dict[str, Any], body: bytes) -> bytes:
    """A sender's envelope around an arbitrary body, with a correct kc and whatever fc the header says."""
    material = c.message_key_material(epoch_key, b64d(header["msg_id"]))
    header = {**header, "kc": b64e(c.key_commitment(material))}
    ct = AESGCM(material[:32]).encrypt(b64d(header["nonce"]), body, c.canonical_json(header))
    return seal(header, ct, keys)


CANONICAL_CASES: list[Any] = [
    {"b": 1, "a": [True, False, None], "é": "x", "\U0001f600": 1, "\uffff": 2, "": 0},
    {"text": 'quote " backslash \\ slash / nul \x00 unit \x1f tab \t nl \n del \x7f ls \u2028 ok 🧢'},
    [0, -1, 9007199254740991, -9007199254740991, "", [], {}],
]

NON_CANONICAL = [
    b'{"a":1.0}',
    b'{"a": 1}',
    b'{"b":1,"a":2}',
    b'{"a":1,"a":1}',
    b'{"a":9007199254740992}',
    b'{"a":-0}',
    b'{"a":1e2}',
    b'{"a":"\\u0041"}',
    b'{"a":"\\ud800"}',
    b'{"a":NaN}',
    b'\xef\xbb\xbf{"a":1}',
    b'{"a":"\xff"}',
    b'{"a":1}\n',
]

WEAK_X25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (2**255 - 20).to_bytes(32, "little"),
    (2**255 - 19).to_bytes(32, "little"),
    (2**255 - 18).to_bytes(32, "little"),
    bytes(31) + b"\x80",
]

WEAK_ED25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    (2**255 - 20).to_bytes(32, "little"),
    (2**255 - 19).to_bytes(32, "little"),
    (1).to_bytes(32, "little")[:31] + b"\x80",
]


def build_vectors() -> dict[str, Any]:
    """Every v1 vector, from fixed private keys and fixed "random" inputs; deterministic."""
    keys = {device: vector_keys(device) for device in DEVICES}
    devices = {}
    for device, user in DEVICES.items():
        signing_pkcs8, agreement_pkcs8 = keys[device].to_pkcs8()
        devices[device] = {
            "user": user,
            "signing_pkcs8": b64e(signing_pkcs8),
            "agreement_pkcs8": b64e(agreement_pkcs8),
            "signing_public": b64e(keys[device].signing_public),
            "agreement_public": b64e(keys[device].agreement_public),
            "fingerprint": c.fingerprint(keys[device].signing_public, keys[device].agreement_public),
        }

    def publics(*names: str) -> list[tuple[bytes, bytes]]:
        return [(keys[n].signing_public, keys[n].agreement_public) for n in names]

    safety = {
        "a": ["alice-phone"],
        "b": ["bob-tablet", "bob-phone"],
        "value": c.safety_number(publics("alice-phone"), publics("bob-tablet", "bob-phone")),
    }

    epoch_key = _seed("epoch key")
    wrap_inputs = []
    wraps = []
    for device in DEVICES:
        ephemeral = X25519PrivateKey.from_private_bytes(_seed(f"ephemeral for {device}"))
        salt = _seed(f"salt for {device}")[:16]
        wrap_inputs.append(
            {"device": device, "ephemeral_pkcs8": b64e(c._pkcs8(ephemeral)), "salt": b64e(salt)}
        )
        wraps.append(
            c.wrap_epoch_key(
                epoch_key=epoch_key,
                group=GROUP,
                epoch=EPOCH,
                device=device,
                agreement_public=keys[device].agreement_public,
                ephemeral=ephemeral,
                salt=salt,
            )
        )
    rotation = c.create_rotation(
        signer=keys["warden-laptop"],
        by_device="warden-laptop",
        group=GROUP,
        epoch=EPOCH,
        prev_epoch=1,
        wraps=wraps,
    )

    blob_plain = b"\x89PNG fake photo bytes " + bytes(range(256))
    blob_key, blob_nonce = _seed("blob key"), _seed("blob nonce")[:12]
    blob, _, blob_sha = c.encrypt_blob(blob_plain, key=blob_key, nonce=blob_nonce)
    attachment = {
        "blob": "b-0001",
        "key": b64e(blob_key),
        "mime": "image/jpeg",
        "sha256": b64e(blob_sha),
        "size": 278,
    }

    message_inputs: dict[str, Any] = {
        "device": "alice-phone",
        "sender": 1,
        "group": GROUP,
        "epoch": EPOCH,
        "text": 'Shoplifter heading to Abington St – red cap 🧢, "Tony"\nCCTV has him',
        "sent_at": SENT_AT,
        "attachments": [attachment],
        "urgent": True,
        "msg_id": b64e(_seed("msg id")[:16]),
        "nonce": b64e(_seed("nonce")[:12]),
        "fk": b64e(_seed("franking key")),
    }
    envelope = _encrypt_from_inputs(keys, epoch_key, message_inputs)
    plain_inputs: dict[str, Any] = {
        "device": "bob-tablet",
        "sender": 2,
        "group": GROUP,
        "epoch": EPOCH,
        "text": "Thanks, doors locked.",
        "sent_at": SENT_AT + 61_000,
        "attachments": [],
        "urgent": None,
        "msg_id": b64e(_seed("msg id 2")[:16]),
        "nonce": b64e(_seed("nonce 2")[:12]),
        "fk": b64e(_seed("franking key 2")),
    }
    plain_envelope = _encrypt_from_inputs(keys, epoch_key, plain_inputs)
    material = c.message_key_material(epoch_key, b64d(message_inputs["msg_id"]))
    body = AESGCM(material[:32]).decrypt(
        b64d(message_inputs["nonce"]), c.read_envelope(envelope).ct, c.read_envelope(envelope).header_bytes
    )

    server_key, kid, server_time = _seed("server franking key"), "2026-01", SENT_AT + 250
    tag = c.envelope_franking_tag(server_key=server_key, kid=kid, envelope=envelope, server_time=server_time)

    return {
        "version": 1,
        "note": "Generated by tests/chat/test_crypto.py build_vectors(); bytes fields are base64url, no padding.",
        "canonical": [
            {"value": value, "json": c.canonical_json(value).decode()} for value in CANONICAL_CASES
        ],
        "non_canonical": [b64e(data) for data in NON_CANONICAL],
        "weak_x25519": [b64e(key) for key in WEAK_X25519],
        "weak_ed25519": [b64e(key) for key in WEAK_ED25519],
        "devices": devices,
        "safety_number": safety,
        "rotation": {
            "group": GROUP,
            "epoch": EPOCH,
            "prev_epoch": 1,
            "by_device": "warden-laptop",
            "epoch_key": b64e(epoch_key),
            "wraps": wrap_inputs,
            "rotation": rotation.decode(),
        },
        "blob": {
            "plaintext": b64e(blob_plain),
            "key": b64e(blob_key),
            "nonce": b64e(blob_nonce),
            "blob": b64e(blob),
            "sha256": b64e(blob_sha),
        },
        "messages": [
            {
                "inputs": message_inputs,
                "key_material": b64e(material),
                "body": body.decode(),
                "envelope": envelope.decode(),
            },
            {
                "inputs": plain_inputs,
                "key_material": b64e(c.message_key_material(epoch_key, b64d(plain_inputs["msg_id"]))),
                "envelope": plain_envelope.decode(),
            },
        ],
        "franking": {
            "server_key": b64e(server_key),
            "kid": kid,
            "server_time": server_time,
            "tag": b64e(tag),
        },
        "rejections": _rejections(keys, epoch_key, envelope, message_inputs),
    }


def _encrypt_from_inputs(keys: dict[str, c.DeviceKeys], epoch_key: bytes, inputs: dict[str, Any]) -> bytes:
    return c.encrypt_message(
        keys=keys[inputs["device"]],
        sender=inputs["sender"],
        device=inputs["device"],
        group=inputs["group"],
        epoch=inputs["epoch"],
        epoch_key=epoch_key,
        text=inputs["text"],
        sent_at=inputs["sent_at"],
        attachments=inputs["attachments"],
        urgent=inputs["urgent"],
        msg_id=b64d(inputs["msg_id"]),
        nonce=b64d(inputs["nonce"]),
        fk=b64d(inputs["fk"]),
    )


def _rejections(
    keys: dict[str, c.DeviceKeys], epoch_key: bytes, envelope: bytes, inputs: dict[str, Any]
) -> list[dict[str, str]]:
    """Envelopes a recipient (group 7, epoch keys {2}, min_epoch 2, nothing seen) must refuse, and why."""
    alice, bob = keys["alice-phone"], keys["bob-phone"]
    parsed = c.read_envelope(envelope)
    ct = bytearray(parsed.ct)
    ct[0] ^= 1
    good_body = {"attachments": [], "fk": b64e(bytes(32)), "text": "fine"}
    body_bytes = c.canonical_json(good_body)
    header = {**parsed.header, "msg_id": b64e(_seed("forged id")[:16])}
    cases = {
        "not canonical": (envelope.replace(b'{"ct"', b'{ "ct"'), c.CODE_MALFORMED),
        "other group": (resealed(envelope, alice, group=8), c.CODE_MALFORMED),
        "header field missing": (
            seal({k: v for k, v in parsed.header.items() if k != "sent_at"}, parsed.ct, alice),
            c.CODE_MALFORMED,
        ),
        "ciphertext altered": (_swap_ct(envelope, bytes(ct)), c.CODE_BAD_SIGNATURE),
        "forged sender": (resealed(envelope, bob), c.CODE_BAD_SIGNATURE),
        "device of another user": (resealed(envelope, bob, device="bob-phone"), c.CODE_BAD_SIGNATURE),
        "rolled back epoch": (resealed(envelope, alice, epoch=1), c.CODE_ROLLED_BACK_EPOCH),
        "unknown epoch": (resealed(envelope, alice, epoch=3), c.CODE_UNKNOWN_EPOCH),
        "key commitment altered": (resealed(envelope, alice, kc=b64e(bytes(32))), c.CODE_BAD_COMMITMENT),
        "header altered under signature": (
            resealed(envelope, alice, sent_at=SENT_AT + 1),
            c.CODE_BAD_CIPHERTEXT,
        ),
        "franking commitment lies": (
            forge_with_body(
                keys=alice, epoch_key=epoch_key, header={**header, "fc": b64e(bytes(32))}, body=body_bytes
            ),
            c.CODE_BAD_FRANKING,
        ),
        "body not canonical": (
            forge_with_body(
                keys=alice,
                epoch_key=epoch_key,
                header={**header, "fc": b64e(c.franking_commitment(good_body))},
                body=body_bytes.replace(b"{", b"{ ", 1),
            ),
            c.CODE_MALFORMED,
        ),
    }
    return [{"name": name, "envelope": data.decode(), "code": code} for name, (data, code) in cases.items()]


def _swap_ct(envelope: bytes, ct: bytes) -> bytes:
    """The envelope with its ciphertext replaced and the signature left as it was."""
    outer = json.loads(envelope)
    return c.canonical_json({**outer, "ct": b64e(ct)})


# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def vkeys() -> dict[str, c.DeviceKeys]:
    return {device: vector_keys(device) for device in DEVICES}


def recipient_args(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    args = {
        "group": GROUP,
        "epoch_keys": {EPOCH: b64d(vectors["rotation"]["epoch_key"])},
        "min_epoch": EPOCH,
        "seen": set(),
        "device_key": directory(vkeys, DEVICES),
    }
    return args | overrides


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Call something that must raise E2EEError; return its code."""
    with pytest.raises(E2EEError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def open_for(
    vkeys: dict[str, c.DeviceKeys],
    rotation: bytes,
    device: str,
    *,
    min_epoch: int = EPOCH,
    as_device: str | None = None,
) -> tuple[c.Rotation, bytes]:
    """Open a rotation with `device`'s keys (claiming to be `as_device` if given)."""
    return c.open_rotation(
        rotation,
        device=as_device or device,
        keys=vkeys[device],
        group=GROUP,
        min_epoch=min_epoch,
        device_key=lambda d: vkeys[d].signing_public,
    )


def test_it_reproduces_the_v1_vectors(vectors: dict[str, Any]) -> None:
    assert build_vectors() == vectors


def test_it_accepts_the_v1_vectors(vectors: dict[str, Any], vkeys: dict[str, c.DeviceKeys]) -> None:
    for device, info in vectors["devices"].items():
        keys = c.DeviceKeys.from_pkcs8(
            signing=b64d(info["signing_pkcs8"]), agreement=b64d(info["agreement_pkcs8"])
        )
        assert keys.signing_public == b64d(info["signing_public"])
        assert c.fingerprint(keys.signing_public, keys.agreement_public) == info["fingerprint"]
        rotation, epoch_key = open_for(
            vkeys | {device: keys}, vectors["rotation"]["rotation"].encode(), device
        )
        assert (rotation.epoch, rotation.prev_epoch, rotation.by_device) == (EPOCH, 1, "warden-laptop")
        assert epoch_key == b64d(vectors["rotation"]["epoch_key"])

    first, second = vectors["messages"]
    message = c.decrypt_message(first["envelope"].encode(), **recipient_args(vkeys, vectors))
    assert message.text == first["inputs"]["text"]
    assert message.attachments == first["inputs"]["attachments"]
    assert message.urgent is True
    assert message.body == first["body"].encode()
    assert message.key_material == b64d(first["key_material"])
    assert c.decrypt_message(second["envelope"].encode(), **recipient_args(vkeys, vectors)).urgent is False

    blob = vectors["blob"]
    assert c.decrypt_blob(b64d(blob["blob"]), key=b64d(blob["key"]), sha256=b64d(blob["sha256"])) == b64d(
        blob["plaintext"]
    )
    for case in vectors["canonical"]:
        assert c.canonical_json(case["value"]) == case["json"].encode()
        assert c.parse_canonical(case["json"].encode()) == case["value"]


def test_it_rejects_the_v1_rejection_vectors(vectors: dict[str, Any], vkeys: dict[str, c.DeviceKeys]) -> None:
    for case in vectors["rejections"]:
        args = recipient_args(vkeys, vectors)
        assert refused(c.decrypt_message, case["envelope"].encode(), **args) == case["code"], case["name"]


def test_it_refuses_non_canonical_json() -> None:
    for data in NON_CANONICAL:
        assert refused(c.parse_canonical, data) == c.CODE_MALFORMED, data
    for value in [{"a": 1.5}, {"a": 2**53}, {1: "a"}, {"a": "\ud800"}, {"a": b"bytes"}, {"a": float("nan")}]:
        assert refused(c.canonical_json, value) == c.CODE_MALFORMED, value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(codec="utf-8"), max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_it_round_trips_canonical_json(value: Any) -> None:
    encoded = c.canonical_json(value)
    assert c.parse_canonical(encoded) == value
    assert json.loads(encoded) == value


# ---------------------------------------------------------------------------------------------------------
# Negative properties


@pytest.fixture(scope="module")
def sample(vectors: dict[str, Any]) -> bytes:
    return vectors["messages"][0]["envelope"].encode()


def refused_envelope(envelope: bytes, vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any]) -> str:
    # Epoch 1 is known too, so moving a message between known epochs is covered.
    epoch_keys = {1: _seed("older epoch key"), EPOCH: b64d(vectors["rotation"]["epoch_key"])}
    args = recipient_args(vkeys, vectors, epoch_keys=epoch_keys, min_epoch=1)
    return refused(c.decrypt_message, envelope, **args)


def _altered(value: Any, delta: int) -> Any:
    if isinstance(value, int):
        return value + delta
    if value in DEVICES:
        return next(d for d in DEVICES if d != value)
    raw = bytearray(b64d(value))
    raw[delta % len(raw)] ^= 1 << (delta % 8)
    return b64e(bytes(raw))


@given(field=st.sampled_from(sorted(c.HEADER_FIELDS - {"v"})), delta=st.integers(1, 1000))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_it_rejects_any_altered_header_field(
    sample: bytes, vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], field: str, delta: int
) -> None:
    outer = json.loads(sample)
    outer["header"][field] = _altered(outer["header"][field], delta)
    refused_envelope(c.canonical_json(outer), vkeys, vectors)


@given(index=st.integers(0, 10_000), bit=st.integers(0, 7))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_it_rejects_any_altered_ciphertext_or_signature_byte(
    sample: bytes, vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], index: int, bit: int
) -> None:
    outer = json.loads(sample)
    for part in ("ct", "sig"):
        raw = bytearray(b64d(outer[part]))
        raw[index % len(raw)] ^= 1 << bit
        changed = c.canonical_json({**outer, part: b64e(bytes(raw))})
        assert refused_envelope(changed, vkeys, vectors) == c.CODE_BAD_SIGNATURE


@given(index=st.integers(0, 10_000), byte=st.integers(0, 255))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_it_rejects_any_altered_envelope_byte(
    sample: bytes, vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], index: int, byte: int
) -> None:
    data = bytearray(sample)
    position = index % len(data)
    data[position] = byte if data[position] != byte else byte ^ 0x20
    refused_envelope(bytes(data), vkeys, vectors)


@given(text=st.text(max_size=200), impostor=st.sampled_from(["bob-phone", "bob-tablet", "warden-laptop"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
def test_it_rejects_a_member_forging_another_members_message(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], text: str, impostor: str
) -> None:
    epoch_key = b64d(vectors["rotation"]["epoch_key"])
    common = {"group": GROUP, "epoch": EPOCH, "epoch_key": epoch_key, "text": text, "sent_at": SENT_AT}
    # Claims to be alice on alice's device, but signed with the impostor's key.
    forged = c.encrypt_message(keys=vkeys[impostor], sender=1, device="alice-phone", **common)
    # Claims to be alice but names the impostor's own device.
    named = c.encrypt_message(keys=vkeys[impostor], sender=1, device=impostor, **common)
    for envelope in (forged, named):
        args = recipient_args(vkeys, vectors)
        assert refused(c.decrypt_message, envelope, **args) == c.CODE_BAD_SIGNATURE


def test_it_rejects_a_replayed_message(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], sample: bytes
) -> None:
    seen: set[str] = set()
    message = c.decrypt_message(sample, **recipient_args(vkeys, vectors, seen=seen))
    assert seen == {message.msg_id}
    args = recipient_args(vkeys, vectors, seen=seen)
    assert refused(c.decrypt_message, sample, **args) == c.CODE_REPLAY


def test_it_rejects_rolled_back_and_unknown_epochs(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any], sample: bytes
) -> None:
    args = recipient_args(vkeys, vectors, min_epoch=3)
    assert refused(c.decrypt_message, sample, **args) == c.CODE_ROLLED_BACK_EPOCH
    args = recipient_args(vkeys, vectors, epoch_keys={1: bytes(32)}, min_epoch=1)
    assert refused(c.decrypt_message, sample, **args) == c.CODE_UNKNOWN_EPOCH
    rotation = vectors["rotation"]["rotation"].encode()
    assert refused(open_for, vkeys, rotation, "alice-phone", min_epoch=EPOCH + 1) == c.CODE_ROLLED_BACK_EPOCH


def test_it_refuses_all_zero_and_low_order_keys(vkeys: dict[str, c.DeviceKeys]) -> None:
    alice = vkeys["alice-phone"]
    for weak in WEAK_X25519:
        assert refused(c.fingerprint, alice.signing_public, weak) == c.CODE_WEAK_KEY
        wrap_args = {"epoch_key": bytes(32), "group": 1, "epoch": 1, "device": "d", "agreement_public": weak}
        assert refused(c.wrap_epoch_key, **wrap_args) == c.CODE_WEAK_KEY
    for weak in WEAK_ED25519:
        assert refused(c.fingerprint, weak, alice.agreement_public) == c.CODE_WEAK_KEY


def test_it_refuses_a_wrap_with_a_low_order_ephemeral_key(vkeys: dict[str, c.DeviceKeys]) -> None:
    for weak in WEAK_X25519:
        wrap = {"ct": b64e(bytes(48)), "device": "alice-phone", "epk": b64e(weak), "salt": b64e(bytes(16))}
        rotation = c.create_rotation(
            signer=vkeys["warden-laptop"],
            by_device="warden-laptop",
            group=GROUP,
            epoch=3,
            prev_epoch=2,
            wraps=[wrap],
        )
        assert refused(open_for, vkeys, rotation, "alice-phone", min_epoch=3) == c.CODE_WEAK_KEY


def test_it_keeps_a_removed_device_out_of_the_next_epoch(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any]
) -> None:
    stayers = ["alice-phone", "warden-laptop"]  # bob left the group with both his devices
    rotation, epoch_key = c.rotate_epoch(
        signer=vkeys["warden-laptop"],
        by_device="warden-laptop",
        group=GROUP,
        epoch=EPOCH + 1,
        prev_epoch=EPOCH,
        recipients=[(d, vkeys[d].agreement_public) for d in stayers],
    )
    assert (
        sorted(c.verify_rotation(rotation, signing_public=vkeys["warden-laptop"].signing_public).wraps)
        == stayers
    )
    assert open_for(vkeys, rotation, "alice-phone")[1] == epoch_key
    assert refused(open_for, vkeys, rotation, "bob-phone") == c.CODE_NOT_RECIPIENT
    # Bob tries alice's wrap with his own key.
    assert refused(open_for, vkeys, rotation, "bob-phone", as_device="alice-phone") == c.CODE_BAD_CIPHERTEXT

    envelope = c.encrypt_message(
        keys=vkeys["alice-phone"],
        sender=1,
        device="alice-phone",
        group=GROUP,
        epoch=EPOCH + 1,
        epoch_key=epoch_key,
        text="after bob left",
        sent_at=SENT_AT,
    )
    old_key = b64d(vectors["rotation"]["epoch_key"])
    bobs = recipient_args(vkeys, vectors, epoch_keys={EPOCH: old_key})
    assert refused(c.decrypt_message, envelope, **bobs) == c.CODE_UNKNOWN_EPOCH
    # Using the old key for the new epoch gets him nowhere.
    bobs = recipient_args(vkeys, vectors, epoch_keys={EPOCH + 1: old_key})
    assert refused(c.decrypt_message, envelope, **bobs) == c.CODE_BAD_COMMITMENT
    stayer = recipient_args(vkeys, vectors, epoch_keys={EPOCH + 1: epoch_key})
    assert c.decrypt_message(envelope, **stayer).text == "after bob left"


def test_it_rejects_a_rotation_not_signed_by_its_rotating_device(
    vkeys: dict[str, c.DeviceKeys], vectors: dict[str, Any]
) -> None:
    rotation = vectors["rotation"]["rotation"].encode()
    bob_public = vkeys["bob-phone"].signing_public
    assert refused(c.verify_rotation, rotation, signing_public=bob_public) == c.CODE_BAD_SIGNATURE
    outer = json.loads(rotation)
    outer["record"]["by_device"] = "bob-phone"  # claim bob rotated, keep the warden's signature
    assert refused(open_for, vkeys, c.canonical_json(outer), "alice-phone") == c.CODE_BAD_SIGNATURE
    outer = json.loads(rotation)
    outer["record"]["prev_epoch"] = EPOCH
    assert refused(c.read_rotation, c.canonical_json(outer)) == c.CODE_MALFORMED


def test_it_renders_fingerprints_and_order_independent_safety_numbers(vkeys: dict[str, c.DeviceKeys]) -> None:
    def pub(*names: str) -> list[tuple[bytes, bytes]]:
        return [(vkeys[n].signing_public, vkeys[n].agreement_public) for n in names]

    number = c.safety_number(pub("alice-phone"), pub("bob-phone", "bob-tablet"))
    assert number == c.safety_number(pub("bob-tablet", "bob-phone"), pub("alice-phone"))
    assert number != c.safety_number(pub("alice-phone"), pub("bob-phone"))  # a new device changes it
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)


# ---------------------------------------------------------------------------------------------------------
# Attachments and franking


@given(data=st.binary(max_size=4096))
def test_it_round_trips_blobs(data: bytes) -> None:
    blob, key, digest = c.encrypt_blob(data)
    assert c.decrypt_blob(blob, key=key, sha256=digest) == data
    tampered = bytes([blob[0] ^ 1]) + blob[1:]
    assert refused(c.decrypt_blob, tampered, key=key, sha256=digest) == c.CODE_BAD_CIPHERTEXT
    rehashed = hashlib.sha256(tampered).digest()
    assert refused(c.decrypt_blob, tampered, key=key, sha256=rehashed) == c.CODE_BAD_CIPHERTEXT


def report_args(vectors: dict[str, Any], vkeys: dict[str, c.DeviceKeys], **overrides: Any) -> dict[str, Any]:
    message, franking = vectors["messages"][0], vectors["franking"]
    args = {
        "body": message["body"].encode(),
        "key_material": b64d(message["key_material"]),
        "envelope": message["envelope"].encode(),
        "server_tag": b64d(franking["tag"]),
        "server_key": b64d(franking["server_key"]),
        "kid": franking["kid"],
        "server_time": franking["server_time"],
        "signing_public": vkeys["alice-phone"].signing_public,
    }
    return args | overrides


def test_it_verifies_a_report_proof(vectors: dict[str, Any], vkeys: dict[str, c.DeviceKeys]) -> None:
    proof = c.verify_report_proof(**report_args(vectors, vkeys))
    assert (proof.group, proof.sender, proof.device, proof.server_time) == (
        GROUP,
        1,
        "alice-phone",
        SENT_AT + 250,
    )
    assert proof.text == vectors["messages"][0]["inputs"]["text"]


def test_it_rejects_a_forged_report(vectors: dict[str, Any], vkeys: dict[str, c.DeviceKeys]) -> None:
    body = json.loads(vectors["messages"][0]["body"])
    framed = c.canonical_json({**body, "text": "something alice never said"})
    material = bytearray(b64d(vectors["messages"][0]["key_material"]))
    material[0] ^= 1  # another encryption key under the same commitment key
    other_material = c.message_key_material(b64d(vectors["rotation"]["epoch_key"]), bytes(16))
    other_tag = hmac.new(b64d(vectors["franking"]["server_key"]), b"x", hashlib.sha256).digest()
    cases = [
        ({"server_time": SENT_AT + 251}, c.CODE_BAD_SERVER_TAG),
        ({"server_tag": other_tag}, c.CODE_BAD_SERVER_TAG),
        ({"kid": "2025-12"}, c.CODE_BAD_SERVER_TAG),
        ({"body": framed}, c.CODE_BAD_FRANKING),
        ({"key_material": bytes(material)}, c.CODE_BAD_COMMITMENT),
        ({"key_material": other_material}, c.CODE_BAD_COMMITMENT),
        ({"signing_public": vkeys["bob-phone"].signing_public}, c.CODE_BAD_SIGNATURE),
    ]
    for overrides, code in cases:
        assert refused(c.verify_report_proof, **report_args(vectors, vkeys, **overrides)) == code, overrides


if __name__ == "__main__":
    VECTORS_PATH.parent.mkdir(exist_ok=True)
    VECTORS_PATH.write_text(
        json.dumps(build_vectors(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {VECTORS_PATH}")
