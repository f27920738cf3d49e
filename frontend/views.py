from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from members.selectors import street_groups_of_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    groups = street_groups_of_user(user=request.user)  # type: ignore[arg-type]
    return render(request, "frontend/home.html", {"groups": groups})


def offline(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/offline.html")
