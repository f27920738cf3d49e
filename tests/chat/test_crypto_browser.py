"""E2EE format v1 in Chromium: e2ee.js reproduces and accepts the Python vectors, and the two interoperate.

frontend/static is served over http://127.0.0.1 (a secure context, so WebCrypto is available) by a threaded
http.server; the tests import the ES module into a blank page and exchange base64url strings with Python.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from chat import crypto as c
from chat.crypto import b64d, b64e
from tests.chat.test_crypto import VECTORS_PATH

pytestmark = pytest.mark.browser

STATIC_ROOT = Path(settings.BASE_DIR) / "frontend" / "static"
IMPORT = (
    'const m = await import("/ntars/js/e2ee.js"); const { b64d, b64e } = m; const dec = new TextDecoder();'
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(STATIC_ROOT))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def js(page: Any, static_url: str) -> Any:
    """Run an async JS body (with `m` = the e2ee module and `arg`) in a page on the static server."""
    page.goto(f"{static_url}/ntars/js/")
    assert page.evaluate("window.isSecureContext")

    def run(body: str, arg: Any = None) -> Any:
        return page.evaluate(f"async (arg) => {{ {IMPORT}\n{body} }}", arg)

    run.page = page  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def vectors_text() -> str:
    return VECTORS_PATH.read_text(encoding="utf-8")


PRODUCE = """
const v = JSON.parse(arg);
const out = { canonical: v.canonical.map((c) => dec.decode(m.canonicalJson(c.value))), devices: {} };
const keys = {};
for (const [name, d] of Object.entries(v.devices)) {
  keys[name] = await m.importDeviceKeysPkcs8(b64d(d.signing_pkcs8), b64d(d.agreement_pkcs8));
  out.devices[name] = {
    signing_public: b64e(keys[name].signingPublic),
    agreement_public: b64e(keys[name].agreementPublic),
    fingerprint: await m.fingerprint(keys[name].signingPublic, keys[name].agreementPublic),
  };
}
const pub = (name) => [keys[name].signingPublic, keys[name].agreementPublic];
out.safety_number = await m.safetyNumber(v.safety_number.a.map(pub), v.safety_number.b.map(pub));
const r = v.rotation;
const wraps = [];
for (const w of r.wraps) {
  wraps.push(await m.wrapEpochKey({
    epochKey: b64d(r.epoch_key), group: r.group, epoch: r.epoch, device: w.device,
    agreementPublic: keys[w.device].agreementPublic, ephemeralPkcs8: b64d(w.ephemeral_pkcs8), salt: b64d(w.salt),
  }));
}
out.rotation = dec.decode(await m.createRotation({
  signer: keys[r.by_device], byDevice: r.by_device, group: r.group, epoch: r.epoch, prevEpoch: r.prev_epoch, wraps,
}));
out.messages = [];
for (const { inputs: i } of v.messages) {
  const envelope = await m.encryptMessage({
    keys: keys[i.device], sender: i.sender, device: i.device, group: i.group, epoch: i.epoch,
    epochKey: b64d(r.epoch_key), text: i.text, sentAt: i.sent_at, attachments: i.attachments, urgent: i.urgent,
    msgId: b64d(i.msg_id), nonce: b64d(i.nonce), fk: b64d(i.fk),
  });
  const material = await m.messageKeyMaterial(b64d(r.epoch_key), b64d(i.msg_id));
  out.messages.push({ envelope: dec.decode(envelope), key_material: b64e(material) });
}
const b = v.blob;
const sealed = await m.encryptBlob(b64d(b.plaintext), { key: b64d(b.key), nonce: b64d(b.nonce) });
out.blob = { blob: b64e(sealed.blob), sha256: b64e(sealed.sha256) };
return out;
"""


def test_it_reproduces_the_v1_vectors_in_the_browser(js: Any, vectors_text: str) -> None:
    vectors = json.loads(vectors_text)
    out = js(PRODUCE, vectors_text)
    assert out["canonical"] == [case["json"] for case in vectors["canonical"]]
    for name, device in vectors["devices"].items():
        assert out["devices"][name] == {
            "signing_public": device["signing_public"],
            "agreement_public": device["agreement_public"],
            "fingerprint": device["fingerprint"],
        }
    assert out["safety_number"] == vectors["safety_number"]["value"]
    assert out["rotation"] == vectors["rotation"]["rotation"]
    for produced, expected in zip(out["messages"], vectors["messages"], strict=True):
        assert produced == {"envelope": expected["envelope"], "key_material": expected["key_material"]}
    assert out["blob"] == {"blob": vectors["blob"]["blob"], "sha256": vectors["blob"]["sha256"]}


ACCEPT = """
const v = JSON.parse(arg);
const code = async (promise) => { try { await promise; return "accepted"; } catch (e) { return e.code ?? String(e); } };
const codeOf = (fn) => { try { fn(); return "accepted"; } catch (e) { return e.code ?? String(e); } };
const out = { epochKeys: {}, messages: [], rejections: {} };
const keys = {};
for (const [name, d] of Object.entries(v.devices)) {
  keys[name] = await m.importDeviceKeysPkcs8(b64d(d.signing_pkcs8), b64d(d.agreement_pkcs8));
}
const r = v.rotation;
for (const name of Object.keys(v.devices)) {
  const opened = await m.openRotation(new TextEncoder().encode(r.rotation), {
    device: name, keys: keys[name], group: r.group, minEpoch: r.epoch,
    deviceKey: async (d) => keys[d]?.signingPublic ?? null,
  });
  out.epochKeys[name] = [b64e(opened.epochKey), opened.rotation.prevEpoch, opened.rotation.byDevice];
}
const recipient = (seen) => ({
  group: r.group, epochKeys: new Map([[r.epoch, b64d(r.epoch_key)]]), minEpoch: r.epoch, seen,
  deviceKey: async (sender, device) => (v.devices[device]?.user === sender ? keys[device].signingPublic : null),
});
const seen = new Set();
for (const message of v.messages) {
  const got = await m.decryptMessage(new TextEncoder().encode(message.envelope), recipient(seen));
  out.messages.push({
    text: got.text, attachments: got.attachments, urgent: got.urgent, body: dec.decode(got.body),
    key_material: b64e(got.keyMaterial),
  });
}
out.replay = await code(m.decryptMessage(new TextEncoder().encode(v.messages[0].envelope), recipient(seen)));
for (const rejection of v.rejections) {
  out.rejections[rejection.name] = await code(
    m.decryptMessage(new TextEncoder().encode(rejection.envelope), recipient(new Set())));
}
out.nonCanonical = v.non_canonical.map((data) => codeOf(() => m.parseCanonical(b64d(data), 65536)));
out.parsedCanonical = v.canonical.map((c) => m.parseCanonical(new TextEncoder().encode(c.json), 65536));
out.weakX25519 = v.weak_x25519.map((k) => codeOf(() => m.checkX25519Public(b64d(k))));
out.weakEd25519 = v.weak_ed25519.map((k) => codeOf(() => m.checkEd25519Public(b64d(k))));
const b = v.blob;
out.blob = b64e(await m.decryptBlob(b64d(b.blob), { key: b64d(b.key), sha256: b64d(b.sha256) }));
const tampered = b64d(b.blob);
tampered[20] ^= 1;
out.tamperedBlob = await code(m.decryptBlob(tampered, { key: b64d(b.key), sha256: b64d(b.sha256) }));
return out;
"""


def test_it_accepts_the_v1_vectors_in_the_browser(js: Any, vectors_text: str) -> None:
    vectors = json.loads(vectors_text)
    out = js(ACCEPT, vectors_text)
    rotation = vectors["rotation"]
    for name in vectors["devices"]:
        assert out["epochKeys"][name] == [
            rotation["epoch_key"],
            rotation["prev_epoch"],
            rotation["by_device"],
        ]
    first, second = out["messages"]
    assert first["text"] == vectors["messages"][0]["inputs"]["text"]
    assert first["attachments"] == vectors["messages"][0]["inputs"]["attachments"]
    assert first["body"] == vectors["messages"][0]["body"]
    assert first["urgent"] is True and second["urgent"] is False
    assert [m["key_material"] for m in out["messages"]] == [m["key_material"] for m in vectors["messages"]]
    assert out["replay"] == c.CODE_REPLAY
    assert out["rejections"] == {case["name"]: case["code"] for case in vectors["rejections"]}
    assert set(out["nonCanonical"]) == {c.CODE_MALFORMED}
    assert out["parsedCanonical"] == [case["value"] for case in vectors["canonical"]]
    assert set(out["weakX25519"]) == set(out["weakEd25519"]) == {c.CODE_WEAK_KEY}
    assert out["blob"] == vectors["blob"]["plaintext"]
    assert out["tamperedBlob"] == c.CODE_BAD_CIPHERTEXT


def test_it_decrypts_python_messages_in_the_browser_and_browser_messages_in_python(js: Any) -> None:
    group, py_user, js_user = 11, 41, 42
    py = c.DeviceKeys.generate()
    browser = js(
        """
        window.dev = await m.generateDeviceKeys();
        return {
          signing: b64e(window.dev.signingPublic), agreement: b64e(window.dev.agreementPublic),
          extractable: [window.dev.signingKey.extractable, window.dev.agreementKey.extractable],
        };
        """
    )
    assert browser["extractable"] == [False, False]
    js_signing, js_agreement = b64d(browser["signing"]), b64d(browser["agreement"])
    signing_keys = {"py-1": py.signing_public, "js-1": js_signing}
    owners = {"py-1": py_user, "js-1": js_user}

    rotation, epoch_key = c.rotate_epoch(
        signer=py,
        by_device="py-1",
        group=group,
        epoch=1,
        prev_epoch=0,
        recipients=[("py-1", py.agreement_public), ("js-1", js_agreement)],
    )
    photo = b"\xff\xd8 a small jpeg " * 50
    blob, blob_key, blob_sha = c.encrypt_blob(photo)
    attachment = {
        "blob": "up-1",
        "key": b64e(blob_key),
        "mime": "image/jpeg",
        "sha256": b64e(blob_sha),
        "size": 800,
    }
    envelope = c.encrypt_message(
        keys=py,
        sender=py_user,
        device="py-1",
        group=group,
        epoch=1,
        epoch_key=epoch_key,
        text="From Python: man in grey hoodie, Gold St 🚲",
        sent_at=1_767_225_600_000,
        attachments=[attachment],
    )
    from_browser = js(
        """
        const enc = new TextEncoder();
        const signing = Object.fromEntries(Object.entries(arg.signing).map(([d, k]) => [d, b64d(k)]));
        const deviceKey = async (sender, device) => (arg.owners[device] === sender ? signing[device] : null);
        const { epochKey } = await m.openRotation(b64d(arg.rotation), {
          device: "js-1", keys: window.dev, group: arg.group, minEpoch: 1, deviceKey: async (d) => signing[d] ?? null,
        });
        const got = await m.decryptMessage(b64d(arg.envelope), {
          group: arg.group, epochKeys: new Map([[1, epochKey]]), minEpoch: 1, seen: new Set(), deviceKey,
        });
        const a = got.attachments[0];
        const photo = await m.decryptBlob(b64d(arg.blob), { key: b64d(a.key), sha256: b64d(a.sha256) });
        const mine = await m.encryptBlob(enc.encode("a photo taken in the browser"));
        const reply = await m.encryptMessage({
          keys: window.dev, sender: arg.jsUser, device: "js-1", group: arg.group, epoch: 1, epochKey,
          text: "From the browser: seen him, calling police", sentAt: 1767225660000, urgent: true,
          attachments: [{ blob: "up-2", key: b64e(mine.key), mime: "image/png", sha256: b64e(mine.sha256), size: 28 }],
        });
        const next = await m.rotateEpoch({
          signer: window.dev, byDevice: "js-1", group: arg.group, epoch: 2, prevEpoch: 1,
          recipients: [["js-1", window.dev.agreementPublic], ["py-1", b64d(arg.pyAgreement)]],
        });
        window.epoch2 = next.epochKey;
        return {
          text: got.text, photo: b64e(photo), reply: b64e(reply), blob: b64e(mine.blob),
          rotation: b64e(next.rotation),
        };
        """,
        {
            "group": group,
            "jsUser": js_user,
            "owners": owners,
            "signing": {d: b64e(k) for d, k in signing_keys.items()},
            "rotation": b64e(rotation),
            "envelope": b64e(envelope),
            "blob": b64e(blob),
            "pyAgreement": b64e(py.agreement_public),
        },
    )
    assert from_browser["text"] == "From Python: man in grey hoodie, Gold St 🚲"
    assert b64d(from_browser["photo"]) == photo

    def device_key(sender: int, device: str) -> bytes | None:
        return signing_keys[device] if owners.get(device) == sender else None

    reply = c.decrypt_message(
        b64d(from_browser["reply"]),
        group=group,
        epoch_keys={1: epoch_key},
        min_epoch=1,
        seen=set(),
        device_key=device_key,
    )
    assert (reply.text, reply.urgent, reply.header["sender"]) == (
        "From the browser: seen him, calling police",
        True,
        42,
    )
    attached = reply.attachments[0]
    assert (
        c.decrypt_blob(b64d(from_browser["blob"]), key=b64d(attached["key"]), sha256=b64d(attached["sha256"]))
        == b"a photo taken in the browser"
    )
    opened, epoch2 = c.open_rotation(
        b64d(from_browser["rotation"]),
        device="py-1",
        keys=py,
        group=group,
        min_epoch=2,
        device_key=signing_keys.get,
    )
    assert (opened.by_device, opened.epoch, opened.prev_epoch) == ("js-1", 2, 1)
    in_epoch2 = c.encrypt_message(
        keys=py,
        sender=py_user,
        device="py-1",
        group=group,
        epoch=2,
        epoch_key=epoch2,
        text="epoch 2",
        sent_at=1,
    )
    result = js(
        """
        const signing = b64d(arg.signing);
        const got = await m.decryptMessage(b64d(arg.envelope), {
          group: arg.group, epochKeys: (epoch) => (epoch === 2 ? window.epoch2 : null), minEpoch: 2, seen: new Set(),
          deviceKey: async (sender, device) => (sender === 41 && device === "py-1" ? signing : null),
        });
        return got.text;
        """,
        {"group": group, "envelope": b64e(in_epoch2), "signing": b64e(py.signing_public)},
    )
    assert result == "epoch 2"


def test_it_keeps_device_and_epoch_keys_non_extractable_in_indexeddb(js: Any) -> None:
    epoch_key = c.new_epoch_key()
    first = js(
        """
        const store = await m.KeyStore.open("ntars-e2ee-test");
        const dev = await m.generateDeviceKeys();
        await store.putDevice("js-1", dev);
        await store.putEpochKey(5, 1, b64d(arg));
        const pins = [await store.pin(3, "11111 22222"), await store.pin(3, "11111 22222"), await store.pin(3, "33333")];
        store.close();
        return { signing: b64e(dev.signingPublic), pins };
        """,
        b64e(epoch_key),
    )
    assert first["pins"] == [False, False, True]  # the third is a key change: the UI warns
    js.page.reload()
    after = js(
        """
        const store = await m.KeyStore.open("ntars-e2ee-test");
        const dev = await store.getDevice();
        let exported = "refused";
        try { await crypto.subtle.exportKey("pkcs8", dev.signingKey); exported = "exported"; } catch {}
        const epochKey = await store.getEpochKey(5, 1);
        const envelope = await m.encryptMessage({
          keys: dev, sender: 9, device: dev.deviceId, group: 5, epoch: 1, epochKey, text: "after reload", sentAt: 2,
        });
        const options = {
          group: 5, epochKeys: (epoch) => store.getEpochKey(5, epoch), minEpoch: await store.latestEpoch(5),
          seen: store.seenSet(), deviceKey: async () => dev.signingPublic,
        };
        const text = (await m.decryptMessage(envelope, options)).text;
        let replay = "accepted";
        try { await m.decryptMessage(envelope, options); } catch (e) { replay = e.code; }
        const result = {
          deviceId: dev.deviceId, signing: b64e(dev.signingPublic), exported, text, replay,
          extractable: [dev.signingKey.extractable, dev.agreementKey.extractable, epochKey.extractable],
          envelope: b64e(envelope), pin: await store.getPin(3),
        };
        store.close();
        return result;
        """
    )
    assert after["deviceId"] == "js-1" and after["signing"] == first["signing"]
    assert after["extractable"] == [False, False, False]
    assert after["exported"] == "refused"
    assert (after["text"], after["replay"], after["pin"]) == ("after reload", c.CODE_REPLAY, "33333")
    message = c.decrypt_message(
        b64d(after["envelope"]),
        group=5,
        epoch_keys={1: epoch_key},
        min_epoch=1,
        seen=set(),
        device_key=lambda sender, device: b64d(after["signing"]) if (sender, device) == (9, "js-1") else None,
    )
    assert message.text == "after reload"
