"""Street-chat pages: my groups, one group's thread, and my devices with the members' safety numbers.

The pages are shells: messages are end-to-end encrypted, so the browser (chat-*.js) fetches, decrypts and
renders them. The server only hands each page what it already knows: the groups this person may see.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from chat.selectors import group_last_seq
from members.models import StreetGroup, User
from members.selectors import street_groups_of_user, user_is_group_moderator

# How many events of a thread's stream the page asks the hub to replay when it opens.
THREAD_HISTORY_EVENTS = 300


def retention_text(seconds: int) -> str:
    """A retention period in words: "7 days", "1 day", "12 hours", "30 minutes"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 or seconds >= size * 2:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _groups(user: User) -> QuerySet[StreetGroup]:
    return street_groups_of_user(user=user).order_by("name", "pk")


def _config(request: HttpRequest, groups: list[StreetGroup], **extra: Any) -> dict[str, Any]:
    """What every chat page's script starts from (rendered with json_script: data, never code)."""
    user = _user(request)
    return {
        "user": {"id": user.pk, "name": user.full_name},
        "groups": [
            {"id": g.pk, "name": g.name, "last_seq": group_last_seq(group_id=g.pk),
             "retention_seconds": g.retention_seconds, "url": reverse("chat:thread", args=[g.pk])}
            for g in groups
        ],
        "api": "/chat/api/",
        "ws": "/ws/",
        "devices_url": reverse("chat:devices"),
        "groups_url": reverse("chat:groups"),
        **extra,
    }


@login_required
def groups(request: HttpRequest) -> HttpResponse:
    mine = list(_groups(_user(request)))
    return render(request, "chat/groups.html", {"groups": mine, "config": _config(request, mine)})


@login_required
def thread(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = get_object_or_404(_groups(user), pk=group_id)  # 404 for groups this person is not in
    mine = list(_groups(user))
    config = _config(
        request, mine, group={"id": group.pk, "name": group.name, "retention_seconds": group.retention_seconds},
        moderator=user_is_group_moderator(user=user, group_id=group.pk),
        history=THREAD_HISTORY_EVENTS, report_url="/reports/new/",
    )
    context = {"group": group, "config": config, "retention": retention_text(group.retention_seconds)}
    return render(request, "chat/thread.html", context)


@login_required
def devices(request: HttpRequest) -> HttpResponse:
    mine = list(_groups(_user(request)))
    return render(request, "chat/devices.html", {"groups": mine, "config": _config(request, mine)})
