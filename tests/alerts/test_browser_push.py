"""Push in a real Chromium on a phone-sized page against a real Daphne: subscribing a device, and what the
service worker shows for pushes delivered through the DevTools protocol (ServiceWorker.deliverPushMessage).

The real push service is out of reach here: PushManager.subscribe is replaced in an init script by one that
returns a subscription of tests/alerts/fake_push.py (a real P-256 key and auth secret), and the delivery
engine's pushes land on that fake service, whose decrypted payloads are then handed to the worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from alerts import push, services
from alerts.models import Broadcast, BroadcastRecipient, PushSubscription
from chat import crypto
from members.models import User
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService, FakeSubscription
from tests.cast import Cast
from tests.frontend.test_browser_shell import horizontal_overflow, unnamed_controls
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Stands in for the browser's push service: PushManager.subscribe() answers with the fake service's
# subscription (kept in localStorage so it survives reloads, like a real one), and every call is counted.
PUSH_STUB = """
((sub) => {
  const log = JSON.parse(localStorage.getItem("push-test-log") || '{"permission": 0, "subscribe": []}');
  const save = () => localStorage.setItem("push-test-log", JSON.stringify(log));
  save();
  const realRequest = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => { log.permission += 1; save(); return realRequest(...args); };
  const b64e = (bytes) => btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const make = (serverKey) => ({
    endpoint: sub.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: serverKey },
    toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: { p256dh: sub.p256dh, auth: sub.auth } }),
    unsubscribe: async () => { localStorage.removeItem("push-test-subscribed"); log.unsubscribed = true; save(); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    log.subscribe.push({ key: b64e(key), userVisibleOnly: options.userVisibleOnly });
    save();
    localStorage.setItem("push-test-subscribed", b64e(key));
    return make(key.buffer);
  };
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem("push-test-subscribed");
    if (!key) return null;
    return make(Uint8Array.from(atob(key.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0)).buffer);
  };
})
"""

NOTIFICATIONS = """async (since) => {
  // The push event runs in the worker; its notification appears shortly after. Look until one newer than the
  // push is there. (Closing the old ones instead would race: Chrome names tagged notifications by their tag.)
  const registration = await navigator.serviceWorker.ready;
  const deadline = Date.now() + 30000;  // a busy CI machine starts workers slowly
  for (;;) {
    const shown = (await registration.getNotifications()).filter((n) => n.timestamp >= since);
    if (shown.length) {
      return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag,
                                 requireInteraction: n.requireInteraction, data: n.data }));
    }
    if (Date.now() > deadline) throw new Error("no notification was shown");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}"""


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    # No worker in the server: the test runs the delivery engine itself against its fake push service, with
    # the same VAPID key the server hands to browsers.
    return daphne_factory(worker=False, extra_env={
        "PUSH_ENDPOINT_ALLOWLIST": "127.0.0.1", "VAPID_PRIVATE_KEY": settings.VAPID_PRIVATE_KEY,
    })


@pytest.fixture
def signed_in(new_context: Callable[..., Any], server: DaphneProcess) -> Callable[..., Any]:
    """A phone-sized context signed in as `user` (force_login's session cookie), notifications allowed."""

    def make(user: User, *, stub: FakeSubscription | None = None) -> Any:
        client = Client()
        client.force_login(user)
        context = new_context()
        context.add_cookies([{
            "name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "domain": "127.0.0.1", "path": "/",
        }])
        context.grant_permissions(["notifications"], origin=server.url)
        if stub is not None:
            context.add_init_script(f"{PUSH_STUB}({json.dumps(stub.as_json() | stub.as_json()['keys'])})")
        return context

    return make


def a_broadcast(cast: Cast, **options: Any) -> Broadcast:
    """A warden's broadcast to Gold Street, made in a plain thread: its after-commit event publish uses
    async_to_sync, which cannot run in the thread where Playwright's event loop is running."""
    options.setdefault("street_ids", [cast.gold.pk])

    def create() -> Broadcast:
        try:
            return services.broadcast_create(author=cast.warden, **options)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(create).result()


def watched(page: Any) -> list[str]:
    """Script errors and CSP violations on the page, collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def open_with_worker(page: Any, url: str) -> None:
    """Open `url` and wait until the service worker is active and controls the page."""
    page.goto(url)
    page.evaluate("""async () => {
        await navigator.serviceWorker.ready;
        if (!navigator.serviceWorker.controller) {
            await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
        }
    }""")


def deliver_push(page: Any, origin: str, payload: Any) -> list[dict[str, Any]]:
    """Hand a push message to the page's service worker, as the push service would (DevTools protocol).

    Returns the notifications it shows (waits for at least one); see deliver_push_quietly for none."""
    since = deliver_push_quietly(page, origin, payload)
    return page.evaluate(NOTIFICATIONS, since)


def deliver_push_quietly(page: Any, origin: str, payload: Any) -> int:
    """Deliver a push without waiting for a notification; returns the page clock just before it."""
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")

    def ours() -> list[dict[str, Any]]:
        return [r for r in registrations if r["scopeURL"] == f"{origin}/" and not r["isDeleted"]]

    # The registration list arrives as an event after `enable` returns; each round trip lets it through.
    deadline = time.monotonic() + 30
    while not ours() and time.monotonic() < deadline:
        page.evaluate("() => new Promise((resolve) => requestAnimationFrame(resolve))")
    assert ours(), registrations
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    since = int(page.evaluate("Date.now()"))
    cdp.send("ServiceWorker.deliverPushMessage",
             {"origin": origin, "registrationId": ours()[0]["registrationId"], "data": data})
    cdp.detach()
    return since


def turn_on_push(page: Any, base: str, label: str = "Shop phone") -> None:
    """Subscribe this browser on the Alerts page (the context needs `stub=`), and wait for the worker."""
    open_with_worker(page, f"{base}/alerts/")
    page.get_by_label("Name for this device").fill(label)
    page.get_by_role("button", name="Turn on notifications").click()
    expect(page.get_by_text(f"Notifications are on for {label}.")).to_be_visible()


def set_no_preview(page: Any, base: str, on: bool) -> None:
    page.goto(f"{base}/alerts/")
    page.get_by_label("No preview").set_checked(on)
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your alert preferences are saved.")).to_be_visible()


def chat_envelope(cast: Cast, *, text: str, epoch_key: bytes, epoch: int = 1) -> tuple[bytes, crypto.DeviceKeys]:
    """An urgent message from bob's phone to Gold Street, sealed with chat/crypto.py."""
    sender = crypto.DeviceKeys.generate()
    envelope = crypto.encrypt_message(
        keys=sender, sender=cast.bob.pk, device="bob-phone", group=cast.gold_group.pk, epoch=epoch,
        epoch_key=epoch_key, text=text, sent_at=int(time.time() * 1000), urgent=True,
    )
    return envelope, sender


def give_device_keys(page: Any, *, user: int, group: int, epoch: int, epoch_key: bytes, sender: int, device: str,
                     signing_public: bytes) -> None:
    """What the chat screens keep on the device: the group's epoch key (the person's KeyStore) and the sender
    device's key in the directory cache."""
    page.evaluate(
        """async (a) => {
            const e2ee = await import("/static/ntars/js/e2ee.js");
            const store = await e2ee.KeyStore.open(`ntars-e2ee-u${a.user}`);
            await store.putDevice("alice-phone", await e2ee.generateDeviceKeys());
            await store.putEpochKey(a.group, a.epoch, e2ee.b64d(a.epochKey));
            store.close();
            const alerts = await import("/static/ntars/js/alerts-store.js");
            await alerts.rememberDeviceKey(a.sender, a.device, e2ee.b64d(a.signingPublic));
        }""",
        {"user": user, "group": group, "epoch": epoch, "epochKey": crypto.b64e(epoch_key), "sender": sender, "device": device,
         "signingPublic": crypto.b64e(signing_public)},
    )


def test_it_subscribes_after_the_click_and_removes_the_device(
    cast: Cast, server: DaphneProcess, signed_in: Any, fake_push: FakePushService
) -> None:
    device = fake_push.subscribe()
    page = signed_in(cast.alice, stub=device).new_page()
    problems = watched(page)
    open_with_worker(page, f"{server.url}/alerts/")
    enable = page.get_by_role("button", name="Turn on notifications")
    expect(enable).to_be_visible()
    log = lambda: json.loads(page.evaluate("localStorage.getItem('push-test-log')"))  # noqa: E731
    assert log()["permission"] == 0, "no permission prompt before the person asks for notifications"

    page.get_by_label("Name for this device").fill("Shop phone")
    enable.click()
    expect(page.get_by_text("Notifications are on for Shop phone.")).to_be_visible()
    stored = PushSubscription.objects.get(user=cast.alice)
    assert (stored.endpoint, stored.p256dh, stored.auth, stored.label) == (
        device.endpoint, device.p256dh, device.auth, "Shop phone"
    )
    assert log()["permission"] == 1
    assert log()["subscribe"] == [{"key": push.vapid_public_key(), "userVisibleOnly": True}]
    card = page.locator(f'[data-device-id="{stored.pk}"]')
    expect(card.get_by_text("This device", exact=True)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Notifications are on for this device.")).to_be_visible()

    card.get_by_role("button", name="Remove Shop phone").click()
    expect(page.get_by_text("Removed Shop phone: it gets no more notifications.")).to_be_visible()
    assert not PushSubscription.objects.filter(user=cast.alice).exists()
    assert log()["unsubscribed"] is True  # the browser's subscription ends with the device
    assert problems == []


def test_it_shows_a_broadcast_push_and_hides_it_with_no_preview(
    cast: Cast, server: DaphneProcess, signed_in: Any, fake_push: FakePushService
) -> None:
    broadcast = a_broadcast(cast, title="Shoplifters on Gold Street", text="Group of 6 heading north, lock doors.",
                            priority="urgent")
    page = signed_in(cast.alice, stub=fake_push.subscribe()).new_page()
    problems = watched(page)
    turn_on_push(page, server.url)

    [shown] = deliver_push(page, server.url, json.loads(services.broadcast_push_payload(broadcast, preview=True)))
    assert shown["title"] == "Shoplifters on Gold Street"
    assert shown["body"] == "Group of 6 heading north, lock doors."
    assert shown["tag"] == f"broadcast-{broadcast.pk}"
    assert shown["requireInteraction"] is True  # urgent: stays until tapped
    assert shown["data"]["url"] == f"/alerts/broadcasts/{broadcast.pk}/"

    # The server's no-preview payload carries nothing of the alert.
    [shown] = deliver_push(page, server.url, json.loads(services.broadcast_push_payload(broadcast, preview=False)))
    assert (shown["title"], shown["body"]) == ("Urgent alert from the BID", "Open NTARS to read it.")

    # "No preview" chosen on this device hides even a payload that was built with one.
    set_no_preview(page, server.url, True)
    [shown] = deliver_push(page, server.url, json.loads(services.broadcast_push_payload(broadcast, preview=True)))
    assert (shown["title"], shown["body"]) == ("Urgent alert from the BID", "Open NTARS to read it.")
    assert problems == []


def test_it_decrypts_an_e2ee_chat_preview_or_shows_the_generic_text(
    cast: Cast, server: DaphneProcess, signed_in: Any, fake_push: FakePushService
) -> None:
    group = cast.gold_group
    epoch_key = crypto.new_epoch_key()
    envelope, sender = chat_envelope(cast, text="Man in a red cap\nheading to the market", epoch_key=epoch_key)
    payload = {"kind": "chat", "group": group.pk, "group_name": group.name, "seq": 7, "urgent": True,
               "envelope": crypto.b64e(envelope)}
    assert len(json.dumps(payload, separators=(",", ":")).encode()) <= push.MAX_PAYLOAD_BYTES
    page = signed_in(cast.alice, stub=fake_push.subscribe()).new_page()
    problems = watched(page)
    turn_on_push(page, server.url)

    # No keys on this device yet: the generic line, and nothing of the message.
    [shown] = deliver_push(page, server.url, payload)
    assert (shown["title"], shown["body"]) == ("Gold Street", "New urgent message on Gold Street")
    assert shown["data"]["url"] == f"/chat/{group.pk}/"
    assert shown["requireInteraction"] is True

    give_device_keys(page, user=cast.alice.pk, group=group.pk, epoch=1, epoch_key=epoch_key, sender=cast.bob.pk, device="bob-phone",
                     signing_public=sender.signing_public)
    [shown] = deliver_push(page, server.url, payload)
    assert (shown["title"], shown["body"]) == ("Gold Street", "Man in a red cap heading to the market")
    assert shown["tag"] == f"chat-{group.pk}"

    # Sealed in an epoch this device has no key for, or signed by a device not in the directory: generic.
    other_epoch, _ = chat_envelope(cast, text="Not for this phone", epoch_key=crypto.new_epoch_key(), epoch=2)
    [shown] = deliver_push(page, server.url, payload | {"envelope": crypto.b64e(other_epoch)})
    assert shown["body"] == "New urgent message on Gold Street"
    forged, _ = chat_envelope(cast, text="Forged by someone else", epoch_key=epoch_key)
    [shown] = deliver_push(page, server.url, payload | {"envelope": crypto.b64e(forged)})
    assert shown["body"] == "New urgent message on Gold Street"

    # Ids only (what the server sends when it leaves the envelope out), and "no preview" on this device.
    [shown] = deliver_push(page, server.url, {k: v for k, v in payload.items() if k != "envelope"})
    assert shown["body"] == "New urgent message on Gold Street"
    set_no_preview(page, server.url, True)
    [shown] = deliver_push(page, server.url, payload)
    assert shown["body"] == "New urgent message on Gold Street"
    assert problems == []


def test_it_skips_a_chat_notification_for_the_thread_on_screen(
    cast: Cast, server: DaphneProcess, signed_in: Any
) -> None:
    group = cast.gold_group
    page = signed_in(cast.alice).new_page()
    open_with_worker(page, f"{server.url}/alerts/")
    page.goto(f"{server.url}/chat/{group.pk}/")  # the thread (whatever the chat screen renders there)
    page.evaluate("""() => {
        window.toldByWorker = new Promise((resolve) => {
            navigator.serviceWorker.addEventListener("message", (event) => resolve(event.data), { once: true });
        });
    }""")
    payload = {"kind": "chat", "group": group.pk, "group_name": group.name, "seq": 8, "urgent": True}
    deliver_push_quietly(page, server.url, payload)
    assert page.evaluate("() => window.toldByWorker") == {"type": "chat.push", "group": group.pk, "seq": 8}
    assert page.evaluate("async () => (await (await navigator.serviceWorker.ready).getNotifications()).length") == 0

    # Another group's thread is not on screen: that one is shown.
    [shown] = deliver_push(page, server.url, payload | {"group": cast.abington_group.pk, "group_name": "Abington Street"})
    assert shown["body"] == "New urgent message on Abington Street"


def test_it_delivers_a_wardens_urgent_broadcast_to_gold_street_devices_only(
    cast: Cast, server: DaphneProcess, signed_in: Any, fake_push: FakePushService
) -> None:
    devices = {name: subscribe(fake_push, getattr(cast, name))[0] for name in ("alice", "bob", "charlie")}
    alice = signed_in(cast.alice).new_page()
    open_with_worker(alice, f"{server.url}/alerts/")

    warden = signed_in(cast.warden).new_page()
    problems = watched(warden)
    warden.goto(f"{server.url}/alerts/")
    warden.get_by_role("button", name="Menu").click()
    warden.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcast", exact=True).click()
    expect(warden.get_by_role("heading", name="Broadcast an alert")).to_be_visible()
    warden.get_by_label("Title", exact=True).fill("Shoplifters heading north")
    warden.get_by_label("Text", exact=True).fill("Group of 6 on Gold Street, lock your doors.")
    warden.get_by_role("radio", name="Urgent").check()
    warden.get_by_role("group", name="Streets (people of the businesses there)").get_by_label("Gold Street").check()
    warden.get_by_label("Expires").select_option(label="In 1 hour")
    warden.get_by_role("button", name="Send broadcast").click()
    expect(warden.get_by_text("Broadcast sent to 2 people.")).to_be_visible()
    expect(warden.get_by_role("heading", name="Shoplifters heading north")).to_be_visible()
    expect(warden.locator('[data-count="recipients"]')).to_have_text("2")
    assert problems == []

    counts = services.deliver_due()
    assert counts["sent"] == 2, counts
    assert len(fake_push.delivered_to(devices["alice"].endpoint)) == 1
    assert len(fake_push.delivered_to(devices["bob"].endpoint)) == 1
    assert fake_push.delivered_to(devices["charlie"].endpoint) == []
    [received] = fake_push.delivered_to(devices["alice"].endpoint)
    assert received.urgency == "high"

    [shown] = deliver_push(alice, server.url, received.json())
    assert (shown["title"], shown["body"]) == ("Shoplifters heading north", "Group of 6 on Gold Street, lock your doors.")
    assert shown["requireInteraction"] is True

    warden.reload()
    expect(warden.locator('[data-count="delivered"]')).to_have_text("2")
    expect(warden.locator('[data-count="failed"]')).to_have_text("0")


def test_it_shows_an_accessible_banner_with_seen(cast: Cast, server: DaphneProcess, signed_in: Any) -> None:
    urgent = a_broadcast(cast, title="Lock doors", text="Shoplifters on Gold Street.", priority="urgent")
    info = a_broadcast(cast, title="Market tomorrow", text="Stalls from 7 am.", priority="info")
    page = signed_in(cast.alice).new_page()
    problems = watched(page)
    open_with_worker(page, f"{server.url}/")
    page.evaluate(
        """async (banners) => {
            const m = await import("/static/ntars/js/alerts-banner.js");
            m.showBroadcastBanner(banners.urgent);
            if (!m.handleHubFrame({ type: "alert", broadcast: banners.info })) throw new Error("frame not handled");
            if (m.handleHubFrame({ type: "chat.message" })) throw new Error("not an alert frame");
        }""",
        {"urgent": services.broadcast_banner(urgent), "info": services.broadcast_banner(info)},
    )
    alarm = page.get_by_role("alert").filter(has=page.get_by_role("heading", name="Urgent: Lock doors"))
    expect(alarm).to_be_visible()
    expect(alarm.get_by_text("Shoplifters on Gold Street.")).to_be_visible()
    notice = page.get_by_role("status").filter(has=page.get_by_role("heading", name="Info: Market tomorrow"))
    expect(notice).to_be_visible()

    # Keyboard: the Seen button takes focus and Enter acknowledges.
    seen = alarm.get_by_role("button", name="Seen")
    seen.focus()
    page.keyboard.press("Enter")
    expect(alarm).to_have_count(0)
    assert BroadcastRecipient.objects.get(broadcast=urgent, user=cast.alice).seen_at is not None
    assert BroadcastRecipient.objects.get(broadcast=info, user=cast.alice).seen_at is None

    # A push that arrives while the app is open shows the banner too (the worker tells the page).
    later = a_broadcast(cast, title="All clear", text="They have left the area.", priority="warning")
    deliver_push_quietly(page, server.url, json.loads(services.broadcast_push_payload(later, preview=False)))
    expect(page.get_by_role("heading", name="Warning: All clear")).to_be_visible()
    expect(page.get_by_text("They have left the area.")).to_be_visible()
    assert problems == []


def test_it_fits_a_phone_with_named_controls_and_works_from_the_keyboard(
    cast: Cast, server: DaphneProcess, signed_in: Any, fake_push: FakePushService
) -> None:
    broadcast = a_broadcast(
        cast, title="A rather long title about a van parked across the loading bay on Gold Street",
        text="Please move it. " * 40, priority="warning", group_ids=[cast.gold_group.pk],
    )
    subscribe(fake_push, cast.alice, label="Till tablet with a long descriptive name for the back office")
    device = fake_push.subscribe()
    alice = signed_in(cast.alice, stub=device).new_page()
    problems = watched(alice)
    for path in ("/alerts/", f"/alerts/broadcasts/{broadcast.pk}/"):
        alice.goto(f"{server.url}{path}")
        assert horizontal_overflow(alice) == 0, path
        alice.get_by_role("button", name="Menu").click()
        assert unnamed_controls(alice) == [], path

    warden = signed_in(cast.warden).new_page()
    problems += watched(warden)
    for path in ("/alerts/broadcasts/new/", f"/alerts/broadcasts/{broadcast.pk}/"):
        warden.goto(f"{server.url}{path}")
        assert horizontal_overflow(warden) == 0, path
        warden.get_by_role("button", name="Menu").click()
        assert unnamed_controls(warden) == [], path

    # From the keyboard: Tab reaches "Turn on notifications", Enter asks the browser and subscribes.
    open_with_worker(alice, f"{server.url}/alerts/")
    expect(alice.get_by_text("This device", exact=True)).to_have_count(0)  # the tablet is another device
    alice.get_by_label("Name for this device").focus()
    alice.keyboard.type("Counter phone")
    alice.keyboard.press("Tab")
    expect(alice.get_by_role("button", name="Turn on notifications")).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.get_by_text("Notifications are on for Counter phone.")).to_be_visible()
    expect(alice.get_by_text("This device", exact=True)).to_have_count(1)
    expect(alice.locator(".card", has_text="Counter phone").get_by_text("This device", exact=True)).to_be_visible()
    expect(alice.get_by_text("open NTARS in a browser with JavaScript and notifications")).to_have_count(0)
    # And the history's "Seen" button works from the keyboard too.
    seen = alice.get_by_role("button", name=f"Seen: {broadcast.title}")
    seen.focus()
    alice.keyboard.press("Enter")
    expect(alice.get_by_text(f"Marked as seen: {broadcast.title}")).to_be_visible()
    assert BroadcastRecipient.objects.get(broadcast=broadcast, user=cast.alice).seen_at is not None
    assert problems == []


def test_it_opens_the_right_page_when_a_notification_is_tapped(
    cast: Cast, server: DaphneProcess, signed_in: Any
) -> None:
    # Headless Chromium cannot tap a notification: the worker's handler runs here against stand-in clients.
    page = signed_in(cast.alice).new_page()
    page.goto(f"{server.url}/alerts/")
    taps = page.evaluate("""async () => {
        const m = await import("/static/ntars/js/alerts-sw.js");
        const origin = location.origin;
        const log = [];
        const client = (path) => ({
            url: origin + path, frameType: "top-level",
            focus: async function () { log.push(["focus", path]); return this; },
            navigate: async (to) => { log.push(["navigate", path, new URL(to).pathname]); return client(new URL(to).pathname); },
        });
        const sw = (windows) => ({ location: { origin }, clients: {
            matchAll: async () => windows,
            openWindow: async (to) => { log.push(["open", new URL(to).pathname]); return null; },
        } });
        const tap = async (url, windows) => {
            log.length = 0;
            await m.openFromNotification({ notification: { data: { url }, close: () => log.push(["close"]) } }, sw(windows));
            return [...log];
        };
        return {
            same: await tap("/chat/7/", [client("/alerts/"), client("/chat/7/")]),
            other: await tap("/alerts/broadcasts/3/", [client("/chat/7/")]),
            none: await tap("/chat/7/", []),
            offSite: await tap("https://evil.example/", []),
            urls: [m.notificationUrl({ type: "alert.broadcast", id: 3, url: "/alerts/broadcasts/3" }),
                   m.notificationUrl({ kind: "chat", group: 7 }), m.notificationUrl({ url: "//evil.example/x" }),
                   m.notificationUrl({ kind: "chat", group: "7/../../x" }), m.notificationUrl(null)],
        };
    }""")
    assert taps["same"] == [["close"], ["focus", "/chat/7/"]]
    assert taps["other"] == [["close"], ["navigate", "/chat/7/", "/alerts/broadcasts/3/"], ["focus", "/alerts/broadcasts/3/"]]
    assert taps["none"] == [["close"], ["open", "/chat/7/"]]
    assert taps["offSite"] == [["close"], ["open", "/alerts/"]]
    assert taps["urls"] == ["/alerts/broadcasts/3/", "/chat/7/", "/alerts/", "/alerts/", "/alerts/"]
