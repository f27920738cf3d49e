"""The installable shell: manifest, icons, service worker and the offline page, through Django's client."""

from __future__ import annotations

import re

from django.conf import settings
from django.test import Client
from PIL import Image

from members.models import Agreement
from tests.cast import Cast
from tests.frontend.shell import (
    SW_PATH,
    manifest_json,
    scan,
    shell_version,
    static_path,
    sw_list,
    sw_source,
    sw_version,
)

APP_JS = static_path("/static/ntars/js/pwa.js")


def body(response: object) -> bytes:
    # WhiteNoise answers with a streaming file response.
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return response.content  # type: ignore[attr-defined]


def test_it_serves_the_manifest(db: None, client: Client) -> None:
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = manifest_json(response.content)
    assert manifest["short_name"] == "NTARS"
    assert manifest["name"]
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", str(manifest["theme_color"]))
    assert re.fullmatch(r"#[0-9a-f]{6}", str(manifest["background_color"]))
    assert "orientation" not in manifest  # locking it would fail WCAG 1.3.4


def test_it_links_the_manifest_from_every_page(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    html = client.get("/").content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in html
    assert '<meta name="theme-color" content="#123d5c">' in html
    assert manifest_json(client.get("/manifest.webmanifest").content)["theme_color"] == "#123d5c"


def test_it_declares_icons_that_exist_in_their_sizes(db: None, client: Client) -> None:
    icons = manifest_json(client.get("/manifest.webmanifest").content)["icons"]
    assert isinstance(icons, list)
    declared = {(icon["sizes"], icon["purpose"]) for icon in icons}
    assert {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")} <= declared
    for icon in icons:
        assert icon["type"] == "image/png"
        assert client.get(icon["src"]).status_code == 200
        with Image.open(static_path(icon["src"])) as image:
            assert image.format == "PNG"
            assert f"{image.width}x{image.height}" == icon["sizes"]
            if icon["purpose"] == "maskable":
                # Maskable icons are cropped to any shape: they must be full-bleed, with no transparent corner.
                assert image.convert("RGBA").getpixel((0, 0))[3] == 255


def test_it_serves_the_service_worker_from_the_root(db: None, client: Client) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert body(response).decode() == sw_source()
    # Served at /sw.js, its default scope is the whole site; a header is only needed for a deeper path.
    assert response.get("Service-Worker-Allowed", "/") == "/"
    registration = APP_JS.read_text(encoding="utf-8")
    assert 'const SW_URL = "/sw.js";' in registration
    assert 'scope: "/"' in registration


def test_it_precaches_only_what_exists(db: None, client: Client) -> None:
    static_urls = sw_list("PRECACHE")
    assert "/static/ntars/css/app.css" in static_urls
    assert "/static/ntars/js/app.js" in static_urls
    for url in static_urls:
        assert static_path(url).is_file()
        assert client.get(url).status_code == 200, url
    # Every module app.js imports must be precached, or the offline page runs without its scripts.
    js_dir = static_path("/static/ntars/js/app.js").parent
    for module in re.findall(r'from "\./([\w-]+\.js)"', (js_dir / "app.js").read_text(encoding="utf-8")):
        assert f"/static/ntars/js/{module}" in static_urls, module
    pages = sw_list("PRECACHE_PAGES")
    assert re.search(r'const OFFLINE_URL = "/offline/";', sw_source())
    assert "/offline/" in pages
    anonymous = Client()
    for url in pages:
        assert anonymous.get(url).status_code == 200, url


def test_it_names_the_cache_after_the_shell_files(db: None) -> None:
    expected = shell_version()
    assert sw_version() == expected, (
        f'The precached shell changed: set `const SHELL_VERSION = "{expected}";` in {SW_PATH.relative_to(settings.BASE_DIR)}'
        " so browsers install the new service worker"
    )


def test_it_keeps_the_worker_off_pages_and_api(db: None) -> None:
    source = sw_source()
    # Only two kinds of request get an answer from the worker: navigations (network, offline page as the
    # fallback) and /static/ files. Nothing else is intercepted, so nothing else can be cached.
    assert source.count("event.respondWith(") == 2
    assert 'if (request.method !== "GET") return;' in source
    assert "if (url.origin !== self.location.origin) return;" in source
    assert source.count("cache.put(") == 1
    put_in = source[: source.index("cache.put(")]
    assert put_in.rindex("async function staleWhileRevalidate") > put_in.rindex("async function navigate")
    assert 'credentials: "omit"' in source


def test_it_renders_the_offline_page_without_personal_data(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    response = client.get("/offline/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are offline" in html
    for personal in ("Alice", cast.alice.email, "csrfmiddlewaretoken", "Sign out", "Gold Street", 'aria-label="Main"'):
        assert personal not in html, personal
    page = scan(html)
    assert [s.get("src") for s in page.scripts] == ["/static/ntars/js/app.js"]


def test_it_checks_access(cast: Cast, client: Client) -> None:
    # Home needs a signed-in person; the shell files and the offline page are public.
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    for url in ("/offline/", "/manifest.webmanifest", "/sw.js"):
        assert client.get(url).status_code == 200, url
    # Someone stopped at the agreements gate still gets the shell (the worker installs on any page).
    Agreement.objects.create(kind=Agreement.Kind.CODE_OF_CONDUCT, version=2, title="Code of conduct", body="New.")
    client.force_login(cast.bob)
    assert client.get("/").status_code == 302
    for url in ("/offline/", "/manifest.webmanifest", "/sw.js"):
        assert client.get(url).status_code == 200, url

