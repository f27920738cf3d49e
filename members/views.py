"""Members pages: thin adapters that parse, check access, call a service and render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allauth.account.internal.flows.login import record_authentication
from allauth.account.utils import perform_login
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from members import forms, services
from members.audit import audit_personal_data_access, audit_record, client_ip
from members.csv_import import COLUMNS, levy_rows_from_values
from members.models import Business, GroupMember, Invitation, Role, StreetGroup, User
from members.policies import InvitationUnusable, access_invitation, require_manager, require_role
from members.selectors import agreements_current, agreements_pending_for, street_group_members

PAGE_SIZE = 50


def _page(request: HttpRequest, items: Any) -> Page:
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _apply_errors(form: Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its fields where it names them, else above it."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _submit(request: HttpRequest, form: Form, change: Callable[[], Any], *, success: Callable[[Any], str],
            then: str, **then_kwargs: Any) -> HttpResponse | None:
    """For a valid form, run `change` (a service call): on success say so and redirect to `then`; on a
    ValidationError show it on the form and return None so the caller re-renders."""
    if not form.is_valid():
        return None
    try:
        result = change()
    except ValidationError as exc:
        _apply_errors(form, exc)
        return None
    messages.success(request, success(result))
    return redirect(then, **then_kwargs)


def _row_forms(cls: type[Form], objects: Any, *, failed: Any = None, failed_form: Form | None = None) -> list[Any]:
    """One small form per listed object (ids made unique), the failed one bound so its errors show."""
    rows = []
    for obj in objects:
        if failed is not None and failed_form is not None and obj.pk == failed.pk:
            rows.append((obj, failed_form))
        else:
            rows.append((obj, cls(auto_id=row_auto_id(obj.pk))))
    return rows


def row_auto_id(pk: int) -> str:
    return f"id_{pk}_%s"


def _query_string(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


# --- Agreements (every signed-in person) ----------------------------------------------------------------


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


@login_required
@require_http_methods(["GET", "POST"])
def agreement_admin(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    form = forms.AgreementPublishForm(request.POST or None)
    if request.method == "POST" and (done := _submit(
        request, form, lambda: services.agreement_publish(actor=actor, **form.cleaned_data),
        success=lambda agreement: f"Published {agreement}. Everyone is asked to accept it on their next visit.",
        then="members:agreement_admin",
    )):
        return done
    current = [(a, a.acceptances.count()) for a in agreements_current()]
    people = User.objects.filter(is_active=True).count()
    return render(request, "members/agreement_admin.html", {"form": form, "current": current, "people": people},
                  status=400 if form.errors else 200)


# --- Public application -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def apply(request: HttpRequest) -> HttpResponse:
    form = forms.ApplicationForm(request.POST or None)
    if request.method == "POST" and (done := _submit(
        request, form, lambda: services.business_apply(ip_address=client_ip(request), **form.cleaned_data),
        success=lambda business: f"Thank you: the application for {business.name} has been sent.",
        then="members:apply_done",
    )):
        return done
    return render(request, "members/apply.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
def apply_done(request: HttpRequest) -> HttpResponse:
    return render(request, "members/apply_done.html")


@login_required
@require_GET
def applications(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    return _applications_render(request, actor)


def _applications_render(request: HttpRequest, actor: User, *, failed: Business | None = None,
                         failed_form: forms.DecisionForm | None = None) -> HttpResponse:
    pending = list(Business.objects.filter(status=Business.Status.APPLIED).select_related("street")
                   .order_by("created_at"))
    rows = _row_forms(forms.DecisionForm, pending, failed=failed, failed_form=failed_form)
    decided = (Business.objects.filter(kind=Business.Kind.VOLUNTARY, decided_at__isnull=False)
               .select_related("decided_by").order_by("-decided_at")[:20])
    audit_personal_data_access(actor=actor, object_type="application_list", object_id="", request=request,
                               detail={"count": len(pending)})
    return render(request, "members/applications.html", {"rows": rows, "decided": decided},
                  status=400 if failed_form is not None else 200)


@login_required
@require_POST
def application_decide(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    business = get_object_or_404(Business, pk=pk, status=Business.Status.APPLIED)
    form = forms.DecisionForm(request.POST, auto_id=row_auto_id(business.pk))

    def decide() -> str:
        reason = form.cleaned_data["reason"]
        if form.cleaned_data["decision"] == "reject":
            services.business_reject(actor=actor, business=business, reason=reason)
            return f"Rejected {business.name}; the applicant has been told why."
        approval = services.business_approve(actor=actor, business=business, reason=reason)
        note = "" if approval.invitation else " No invitation was sent: the contact's email already has an account."
        return f"Approved {business.name}.{note}"

    if done := _submit(request, form, decide, success=str, then="members:applications"):
        return done
    return _applications_render(request, actor, failed=business, failed_form=form)


# --- Businesses -----------------------------------------------------------------------------------------


@login_required
@require_GET
def businesses(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    return _businesses_render(request, actor)


def _businesses_render(request: HttpRequest, actor: User, *, failed: Business | None = None,
                       failed_form: forms.ReasonForm | None = None) -> HttpResponse:
    items = (Business.objects.exclude(status__in=[Business.Status.APPLIED, Business.Status.REJECTED])
             .select_related("street").annotate(people_count=Count("people", filter=Q(people__is_active=True)))
             .order_by("name"))
    q, status = request.GET.get("q", "").strip(), request.GET.get("status", "")
    if q:
        items = items.filter(Q(name__icontains=q) | Q(levy_reference__icontains=q) | Q(street__name__icontains=q))
    if status in Business.Status.values:
        items = items.filter(status=status)
    page = _page(request, items)
    rows = _row_forms(forms.ReasonForm, page, failed=failed, failed_form=failed_form)
    return render(request, "members/businesses.html",
                  {"page": page, "rows": rows, "q": q, "status": status, "statuses": Business.Status.choices,
                   "query": _query_string(request)},
                  status=400 if failed_form is not None else 200)


@login_required
@require_POST
def business_status(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    business = get_object_or_404(Business, pk=pk)
    form = forms.ReasonForm(request.POST, auto_id=row_auto_id(business.pk))
    action = request.POST.get("action")
    change = {"suspend": services.business_suspend, "reinstate": services.business_reinstate}.get(action or "")
    if change is None:
        form.add_error(None, "Choose suspend or reinstate.")
    elif done := _submit(
        request, form, lambda: change(actor=actor, business=business, reason=form.cleaned_data["reason"]),
        success=lambda changed: f"{changed.name} is now {changed.get_status_display().lower()}.",
        then="members:businesses",
    ):
        return done
    return _businesses_render(request, actor, failed=business, failed_form=form)


# --- Levy roll ------------------------------------------------------------------------------------------

_LEVY_SESSION_KEY = "members_levy_preview"


@login_required
@require_http_methods(["GET", "POST"])
def levy_import(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    context: dict[str, Any] = {"columns": COLUMNS}
    if request.method == "POST" and request.POST.get("step") == "confirm":
        return _levy_confirm(request, actor, context)
    form = forms.LevyUploadForm(request.POST or None, request.FILES or None)
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        preview = services.levy_roll_preview(data=form.cleaned_data["file"].read(),
                                             create_streets=form.cleaned_data["create_streets"])
        context["preview"] = preview
        if preview.ok:
            # The session holds exactly what was previewed: confirm imports that, not a new upload.
            request.session[_LEVY_SESSION_KEY] = {
                "rows": [row.values() for row in preview.rows], "create_streets": preview.create_streets,
                "digest": preview.digest(),
            }
            context["confirm"] = forms.LevyConfirmForm(initial={"digest": preview.digest()})
        else:
            request.session.pop(_LEVY_SESSION_KEY, None)
        return render(request, "members/levy_import.html", context, status=200 if preview.ok else 400)
    return render(request, "members/levy_import.html", context, status=400 if form.errors else 200)


def _levy_confirm(request: HttpRequest, actor: User, context: dict[str, Any]) -> HttpResponse:
    stored = request.session.get(_LEVY_SESSION_KEY)
    confirm = forms.LevyConfirmForm(request.POST)
    context["form"] = forms.LevyUploadForm()
    if not stored or not confirm.is_valid() or confirm.cleaned_data["digest"] != stored["digest"]:
        context["stale"] = True
        return render(request, "members/levy_import.html", context, status=409)
    try:
        result = services.levy_roll_import(actor=actor, rows=levy_rows_from_values(stored["rows"]),
                                           create_streets=stored["create_streets"])
    except services.LevyRollInvalid as exc:
        request.session.pop(_LEVY_SESSION_KEY, None)
        context["preview"] = exc.preview
        context["changed"] = True
        return render(request, "members/levy_import.html", context, status=409)
    request.session.pop(_LEVY_SESSION_KEY, None)
    messages.success(request, f"Levy roll imported: {result.created} new, {result.updated} updated, "
                              f"{result.unchanged} unchanged, {result.streets_created} new streets.")
    return redirect("members:businesses")


# --- Invitations ----------------------------------------------------------------------------------------

_INVITATION_PROBLEMS = {
    "unknown": (404, "This invitation link is not valid", "Check that you copied the whole link from the email."),
    "accepted": (410, "This invitation has already been used",
                 "Each invitation link works once. If it was you, sign in with your email and password."),
    "revoked": (410, "This invitation was withdrawn", "Ask the person who invited you for a new invitation."),
    "expired": (410, "This invitation has expired", "Ask the person who invited you to send a new invitation."),
    "business_inactive": (410, "This business is not an active member",
                          "The invitation cannot be used while the business's membership is not active."),
}


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = access_invitation(token=token)
    except InvitationUnusable as exc:
        return _invitation_problem(request, exc.state)
    form = forms.InvitationAcceptForm(request.POST or None, initial={"full_name": invitation.full_name})
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept(token=token, full_name=form.cleaned_data["full_name"],
                                              password=form.cleaned_data["password1"], ip_address=client_ip(request))
        except InvitationUnusable as exc:
            return _invitation_problem(request, exc.state)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            if request.user.is_authenticated:
                logout(request)  # whoever was signed in on this browser is not the person just invited
            # Signed in through allauth. The password was typed in this very request, so it also counts as a
            # fresh re-authentication: setting up two-factor next does not ask for it again. The gate does the rest.
            record_authentication(request, user, method="password", email=user.email, reauthenticated=True)
            return perform_login(request, user, redirect_url="/")
    return render(request, "members/invitation_accept.html", {"form": form, "invitation": invitation},
                  status=400 if form.errors else 200)


def _invitation_problem(request: HttpRequest, state: str) -> HttpResponse:
    status, title, advice = _INVITATION_PROBLEMS.get(state, _INVITATION_PROBLEMS["unknown"])
    return render(request, "members/invitation_problem.html", {"title": title, "advice": advice}, status=status)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN, Role.MANAGER)
    scope = Invitation.objects.all() if actor.role == Role.BID_ADMIN else \
        Invitation.objects.filter(business=require_manager(actor))
    invitation = get_object_or_404(scope, pk=pk)
    try:
        services.invitation_revoke(actor=actor, invitation=invitation)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Invitation to {invitation.email} withdrawn.")
    return redirect("members:people" if actor.role == Role.BID_ADMIN else "members:team")


def _invited(issued: services.InvitationIssued) -> str:
    return f"Invitation sent to {issued.invitation.email}."


# --- Team (managers) ------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest) -> HttpResponse:
    business = require_manager(request.user)
    actor: User = request.user  # type: ignore[assignment]
    form = forms.InvitationForm(request.POST or None, actor=actor)
    if request.method == "POST" and (done := _submit(
        request, form, lambda: services.invitation_create(
            actor=actor, email=form.cleaned_data["email"], role=form.cleaned_data["role"], business=business,
            full_name=form.cleaned_data["full_name"]),
        success=_invited, then="members:team",
    )):
        return done
    return _team_render(request, business, invite_form=form)


def _team_render(request: HttpRequest, business: Business, *, invite_form: forms.InvitationForm,
                 failed: User | None = None, failed_form: forms.OptionalReasonForm | None = None) -> HttpResponse:
    people = business.people.order_by("-is_active", "full_name")
    rows = _row_forms(forms.OptionalReasonForm, people, failed=failed, failed_form=failed_form)
    invitations = [i for i in business.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True)
                   if i.state == "pending"]
    failing = invite_form.errors or failed_form is not None
    return render(request, "members/team.html",
                  {"business": business, "rows": rows, "invitations": invitations, "form": invite_form},
                  status=400 if failing else 200)


@login_required
@require_POST
def staff_remove(request: HttpRequest, pk: int) -> HttpResponse:
    business = require_manager(request.user)
    actor: User = request.user  # type: ignore[assignment]
    person = get_object_or_404(business.people.all(), pk=pk)
    form = forms.OptionalReasonForm(request.POST, auto_id=row_auto_id(person.pk))
    if done := _submit(
        request, form, lambda: services.staff_remove(actor=actor, user=person, reason=form.cleaned_data["reason"]),
        success=lambda _: f"{person.full_name} has been removed and signed out everywhere.", then="members:team",
    ):
        return done
    return _team_render(request, business, invite_form=forms.InvitationForm(actor=actor), failed=person,
                        failed_form=form)


# --- People (BID admin) ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    form = forms.InvitationForm(request.POST or None, actor=actor)
    if request.method == "POST" and (done := _submit(
        request, form, lambda: services.invitation_create(actor=actor, **form.cleaned_data),
        success=_invited, then="members:people",
    )):
        return done
    return _people_render(request, actor, invite_form=form)


def _people_render(request: HttpRequest, actor: User, *, invite_form: forms.InvitationForm,
                   failed: User | None = None, failed_form: forms.ReasonForm | None = None) -> HttpResponse:
    items = User.objects.select_related("business").order_by("full_name")
    q, role = request.GET.get("q", "").strip(), request.GET.get("role", "")
    if q:
        items = items.filter(Q(full_name__icontains=q) | Q(email__icontains=q) | Q(business__name__icontains=q))
    if role in Role.values:
        items = items.filter(role=role)
    page = _page(request, items)
    rows = _row_forms(forms.ReasonForm, page, failed=failed, failed_form=failed_form)
    invitations = [i for i in Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
                   .select_related("business", "invited_by") if i.state == "pending"]
    audit_personal_data_access(actor=actor, object_type="people_list", object_id="", request=request,
                               detail={"q": q, "role": role, "page": page.number})
    failing = invite_form.errors or failed_form is not None
    return render(request, "members/people.html",
                  {"page": page, "rows": rows, "q": q, "role": role, "roles": Role.choices, "form": invite_form,
                   "invitations": invitations, "query": _query_string(request)},
                  status=400 if failing else 200)


@login_required
@require_POST
def person_disable(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    person = get_object_or_404(User, pk=pk)
    form = forms.ReasonForm(request.POST, auto_id=row_auto_id(person.pk))
    if done := _submit(
        request, form, lambda: services.person_disable(actor=actor, user=person, reason=form.cleaned_data["reason"]),
        success=lambda _: f"{person.full_name} is disabled and signed out everywhere.", then="members:people",
    ):
        return done
    return _people_render(request, actor, invite_form=forms.InvitationForm(actor=actor), failed=person,
                          failed_form=form)


@login_required
@require_POST
def person_enable(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    person = get_object_or_404(User, pk=pk)
    try:
        services.user_enable(actor=actor, user=person)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{person.full_name} can sign in again.")
    return redirect("members:people")


# --- Street groups --------------------------------------------------------------------------------------


@login_required
@require_GET
def groups(request: HttpRequest) -> HttpResponse:
    require_role(request.user, Role.BID_ADMIN)
    items = list(StreetGroup.objects.prefetch_related("streets").annotate(seats=Count("individual_members")))
    rows = [(group, forms.retention_label(group.retention_seconds)) for group in items]
    return render(request, "members/groups.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    group = get_object_or_404(StreetGroup, pk=pk) if pk is not None else None
    initial = forms.StreetGroupForm.initial_for(group) if group else None
    form = forms.StreetGroupForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            group = services.street_group_save(
                actor=actor, group=group, name=data["name"], kind=data["kind"], description=data["description"],
                streets=data["streets"], businesses=data["businesses"],
                retention_seconds=data["retention_seconds"], archived=data["archived"])
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {group.name}.")
            return redirect("members:group_edit", pk=group.pk)
    return _group_render(request, actor, group, form=form)


def _group_render(request: HttpRequest, actor: User, group: StreetGroup | None, *, form: forms.StreetGroupForm,
                  member_form: forms.GroupMemberForm | None = None) -> HttpResponse:
    context: dict[str, Any] = {"group": group, "form": form, "member_form": member_form or forms.GroupMemberForm()}
    if group is not None:
        context["seats"] = group.individual_members.select_related("user").order_by("user__full_name")
        context["members"] = street_group_members(group=group).select_related("business").order_by(
            "business__name", "full_name")
        audit_personal_data_access(actor=actor, object_type="street_group_members", object_id=group.pk,
                                   request=request)
    failing = form.errors or (member_form is not None and member_form.errors)
    return render(request, "members/group_edit.html", context, status=400 if failing else 200)


@login_required
@require_POST
def group_member_add(request: HttpRequest, pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    group = get_object_or_404(StreetGroup, pk=pk)
    member_form = forms.GroupMemberForm(request.POST)
    if done := _submit(
        request, member_form, lambda: services.group_member_add(actor=actor, group=group, **member_form.cleaned_data),
        success=lambda member: f"{member.user.full_name} is in {group.name}.", then="members:group_edit", pk=group.pk,
    ):
        return done
    form = forms.StreetGroupForm(initial=forms.StreetGroupForm.initial_for(group))
    return _group_render(request, actor, group, form=form, member_form=member_form)


@login_required
@require_POST
def group_member_remove(request: HttpRequest, pk: int, member_pk: int) -> HttpResponse:
    actor = require_role(request.user, Role.BID_ADMIN)
    member = get_object_or_404(GroupMember.objects.select_related("user", "group"), pk=member_pk, group_id=pk)
    services.group_member_remove(actor=actor, member=member)
    messages.success(request, f"{member.user.full_name} is no longer in {member.group.name}.")
    return redirect("members:group_edit", pk=pk)


# --- Audit trail (DPO) ----------------------------------------------------------------------------------


@login_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    actor = require_role(request.user, Role.DPO)
    form = forms.AuditSearchForm(request.GET or None)
    page = None
    if not form.is_bound or form.is_valid():
        page = _page(request, form.events().select_related("actor", "subject"))
        # Looking at the trail is itself on the trail.
        audit_record(action="audit.search", actor=actor, request=request,
                     detail={**form.filters(), "page": page.number})
    return render(request, "members/audit.html", {"form": form, "page": page, "query": _query_string(request)},
                  status=400 if form.errors else 200)

