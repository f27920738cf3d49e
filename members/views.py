"""Members pages: thin adapters that parse, check access, call a service and render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from members import services
from members.audit import client_ip
from members.selectors import agreements_pending_for


@login_required
def agreements(request: HttpRequest) -> HttpResponse:
    pending = agreements_pending_for(user=request.user)  # type: ignore[arg-type]
    if request.method == "POST":
        if request.POST.get("accept") == "yes" and pending:
            services.agreements_accept(user=request.user, agreements=pending, ip_address=client_ip(request))  # type: ignore[arg-type]
            return redirect("home")
        if pending:
            return render(request, "members/agreements.html",
                          {"pending": pending, "error": "Tick the box to accept, or sign out."}, status=400)
    if not pending:
        return redirect("home")
    return render(request, "members/agreements.html", {"pending": pending})
