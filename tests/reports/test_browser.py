"""In a real Chromium on a phone-sized page, against a real Daphne: report, offline outbox, triage."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from reports.models import Report, ReportFile
from reports.services import report_create
from tests.cast import Cast
from tests.reports.files import jpeg_with_gps
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

def test_it_files_a_simple_report_in_five_interactions(cast: Cast, server: DaphneProcess, signed_in: Any) -> None:
    page = signed_in(cast.alice).new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    assert page.viewport_size == {"width": 360, "height": 740}
    page.goto(f"{server.url}/reports/new/")  # 1
    page.get_by_label("Graffiti", exact=True).check()  # 2
    page.get_by_label("What happened").fill("Fresh tag on the shutter of number 14.")  # 3
    page.get_by_role("button", name="Send report").click()  # 4
    expect(page.get_by_text("Report sent. Thank you.")).to_be_visible()
    assert page.url == f"{server.url}/reports/new/"  # sent by the page's script through the API, not a form post

    report = Report.objects.get()
    assert (report.reporter, report.kind, report.street) == (cast.alice, "graffiti", cast.gold)
    # The map drew its tiles from the configured (here: routed) tile server under the strict CSP.
    expect(page.locator(".leaflet-tile-loaded").first).to_be_attached()
    assert problems == []  # no CSP violations, no script errors


def test_it_sends_a_report_saved_offline_when_the_signal_returns(
    cast: Cast, server: DaphneProcess, signed_in: Any
) -> None:
    context = signed_in(cast.bob)
    page = context.new_page()
    page.goto(f"{server.url}/reports/new/")
    expect(page.locator(".leaflet-marker-icon")).to_be_visible()
    context.set_offline(True)
    page.get_by_label("Shop theft", exact=True).check()
    page.get_by_label("What happened").fill("Two bottles of gin, man in a red cap, ran towards the market.")
    page.get_by_label("Photos or CCTV stills (optional)").set_input_files(
        [{"name": "cctv.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}]
    )
    page.get_by_role("button", name="Send report").click()
    expect(page.get_by_text("No signal: your report is saved on this phone")).to_be_visible()
    assert Report.objects.count() == 0

    context.set_offline(False)
    expect(page.get_by_text("Your saved report has been sent.")).to_be_visible()
    report = Report.objects.get()
    assert (report.reporter, report.kind) == (cast.bob, "shop_theft")
    assert ReportFile.objects.filter(report=report).count() == 1  # the photo waited in IndexedDB as a Blob
    assert page.evaluate(
        """() => new Promise((resolve) => {
            const open = indexedDB.open("ntars-reports", 1);
            open.onsuccess = () => {
                const request = open.result.transaction("outbox").objectStore("outbox").count();
                request.onsuccess = () => resolve(request.result);
            };
        })"""
    ) == 0


def test_it_shows_the_reporter_the_status_an_officer_set(cast: Cast, server: DaphneProcess, signed_in: Any) -> None:
    report = report_create(reporter=cast.alice, kind="rough_sleeping", description="Someone asleep in the doorway.").report

    officer = signed_in(cast.officer).new_page()
    officer.goto(f"{server.url}/reports/inbox/")
    officer.get_by_role("link", name=f"Rough sleeping — report {report.pk}").click()
    expect(officer.get_by_text("Rough sleeping and encampments: refer to outreach first.")).to_be_visible()
    officer.get_by_label("Status", exact=True).select_option("referred_to_outreach")
    officer.get_by_label("Reason (the reporter sees this)").fill("The outreach team will visit tonight.")
    officer.get_by_role("button", name="Change status").click()
    expect(officer.get_by_text("Status changed to referred to outreach.")).to_be_visible()

    alice = signed_in(cast.alice).new_page()
    alice.goto(f"{server.url}/reports/mine/")
    expect(alice.get_by_text("1 of your reports changed status since you last looked.")).to_be_visible()
    card = alice.locator(f'[data-report-id="{report.pk}"]')
    expect(card.get_by_text("Referred to outreach")).to_be_visible()
    expect(card.get_by_text("The outreach team will visit tonight.")).to_be_visible()
