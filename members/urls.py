from django.urls import path

from members import security_views, views

app_name = "members"

urlpatterns = [
    path("security/", security_views.security, name="security"),
    path("agreements/", views.agreements, name="agreements"),
    # Public: applying for voluntary membership, accepting an invitation.
    path("apply/", views.apply, name="apply"),
    path("apply/thanks/", views.apply_done, name="apply_done"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    # Business managers.
    path("team/", views.team, name="team"),
    path("team/<int:pk>/remove/", views.staff_remove, name="staff_remove"),
    path("invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    # BID admins.
    path("bid/applications/", views.applications, name="applications"),
    path("bid/applications/<int:pk>/decide/", views.application_decide, name="application_decide"),
    path("bid/businesses/", views.businesses, name="businesses"),
    path("bid/businesses/<int:pk>/status/", views.business_status, name="business_status"),
    path("bid/levy-roll/", views.levy_import, name="levy_import"),
    path("bid/people/", views.people, name="people"),
    path("bid/people/<int:pk>/disable/", views.person_disable, name="person_disable"),
    path("bid/people/<int:pk>/enable/", views.person_enable, name="person_enable"),
    path("bid/groups/", views.groups, name="groups"),
    path("bid/groups/new/", views.group_edit, name="group_create"),
    path("bid/groups/<int:pk>/", views.group_edit, name="group_edit"),
    path("bid/groups/<int:pk>/members/", views.group_member_add, name="group_member_add"),
    path("bid/groups/<int:pk>/members/<int:member_pk>/remove/", views.group_member_remove,
         name="group_member_remove"),
    path("bid/agreements/", views.agreement_admin, name="agreement_admin"),
    # The data protection officer.
    path("audit/", views.audit, name="audit"),
]
