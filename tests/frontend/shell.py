"""Helpers for the shell tests: what sw.js precaches, its version hash, and an HTML scan of rendered pages."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders

DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}
SW_PATH = Path(settings.WHITENOISE_ROOT) / "sw.js"


def sw_source() -> str:
    return SW_PATH.read_text(encoding="utf-8")


def sw_list(name: str) -> list[str]:
    """The string array `const <name> = [...]` in sw.js."""
    match = re.search(rf"const {name} = \[(.*?)\];", sw_source(), re.S)
    assert match, f"sw.js has no `const {name} = [...]`"
    return re.findall(r'"([^"]+)"', match.group(1))


def sw_version() -> str:
    match = re.search(r'const SHELL_VERSION = "([0-9a-f]+)";', sw_source())
    assert match, "sw.js has no SHELL_VERSION"
    return match.group(1)


def static_path(url: str) -> Path:
    assert url.startswith(settings.STATIC_URL), url
    found = finders.find(url.removeprefix(settings.STATIC_URL))
    assert found, f"{url} is precached by sw.js but is not a static file"
    return Path(found)


def shell_version() -> str:
    """Hash of every precached static file: sw.js must carry it, so changing the shell updates the worker."""
    digest = hashlib.sha256()
    for url in sw_list("PRECACHE"):
        digest.update(url.encode() + b"\0")
        digest.update(static_path(url).read_bytes())
    return digest.hexdigest()[:12]


class PageScan(HTMLParser):
    """Collects what the CSP and accessibility tests check in one pass over a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.data_scripts = 0
        self.inline_script_text: list[str] = []
        self.style_elements = 0
        self.style_attributes: list[str] = []
        self.handler_attributes: list[str] = []
        self.javascript_urls: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self._in_script = False
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        for name, value in attrs:
            if name == "style":
                self.style_attributes.append(f"<{tag} style={value!r}>")
            if name.startswith("on"):
                self.handler_attributes.append(f"<{tag} {name}=...>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.javascript_urls.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            # JSON data blocks (allauth's passkey forms use one) are never executed, so CSP does not apply.
            if (a.get("type") or "").lower() in DATA_SCRIPT_TYPES:
                self.data_scripts += 1
            else:
                self.scripts.append(a)
                self._in_script = True
        elif tag == "style":
            self.style_elements += 1
        elif tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        elif tag in {"input", "select", "textarea"}:
            kind = (a.get("type") or "text").lower() if tag == "input" else tag
            if kind not in {"hidden", "submit", "button", "reset", "image"}:
                self.controls.append({**a, "_tag": tag, "_wrapped": "yes" if self._label_depth else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag == "label":
            self._label_depth = max(0, self._label_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script_text.append(data.strip()[:60])

    def unnamed_controls(self) -> list[str]:
        """Form controls with no accessible name: no <label for>, no wrapping label, no aria-label(ledby)."""
        missing = []
        for control in self.controls:
            if control.get("aria-label") or control["_wrapped"]:
                continue
            if control.get("id") and control["id"] in self.label_for:
                continue
            labelledby = (control.get("aria-labelledby") or "").split()
            if labelledby and all(i in self.ids for i in labelledby):
                continue
            missing.append(f"<{control['_tag']} name={control.get('name')!r} id={control.get('id')!r}>")
        return missing


def scan(html: str) -> PageScan:
    page = PageScan()
    page.feed(html)
    page.close()
    return page


def manifest_json(content: bytes) -> dict[str, object]:
    return json.loads(content)
