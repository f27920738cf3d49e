"""The shell's pages: home (per role), the offline page the service worker keeps, and the web app manifest."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static

from frontend.context_processors import home_tiles
from members.selectors import street_groups_of_user

THEME_COLOUR = "#123d5c"  # also <meta name="theme-color"> in base.html
BACKGROUND_COLOUR = "#f4f6f8"  # app.css --bg, so the splash screen fades into the first page


@login_required
def home(request: HttpRequest) -> HttpResponse:
    groups = street_groups_of_user(user=request.user)  # type: ignore[arg-type]
    return render(request, "frontend/home.html", {"groups": groups, "tiles": home_tiles(request)})


def offline(request: HttpRequest) -> HttpResponse:
    # The service worker stores this page on shared phones: it must carry nothing about whoever is signed in
    # (no name, menu, messages or CSRF token), even when a signed-in browser asks for it.
    return render(request, "frontend/offline.html", {"shell_only": True})


def manifest(request: HttpRequest) -> JsonResponse:
    icons = [
        {"src": static(f"ntars/icons/{kind}-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
         "purpose": purpose}
        for kind, purpose in (("icon", "any"), ("maskable", "maskable"))
        for size in (192, 512)
    ]
    data = {
        "id": "/",
        "name": "NTARS: Northampton town centre safety",
        "short_name": "NTARS",
        "description": "Crime and anti-social behaviour intelligence for the town centre BID.",
        "lang": "en-GB",
        "dir": "ltr",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOUR,
        "background_color": BACKGROUND_COLOUR,
        "icons": icons,
        "categories": ["business", "utilities"],
        "prefer_related_applications": False,
    }
    return JsonResponse(data, content_type="application/manifest+json")
