from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("new/", views.report_new, name="new"),
    path("mine/", views.report_mine, name="mine"),
    path("inbox/", views.inbox, name="inbox"),
    path("cases/", views.case_list, name="cases"),
    path("cases/<int:case_id>/", views.case_detail, name="case"),
    path("files/<int:file_id>/<str:variant>/", views.report_file, name="file"),
    path("<int:report_id>/", views.report_detail, name="detail"),
    path("<int:report_id>/status/", views.report_status, name="status"),
    path("<int:report_id>/share/", views.report_share, name="share"),
    path("<int:report_id>/notes/", views.report_note, name="note"),
    path("<int:report_id>/case/", views.report_case, name="case_set"),
    path("<int:report_id>/evidence.pdf", views.report_evidence_pdf, name="evidence_pdf"),
]
