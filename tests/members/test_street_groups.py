"""Street groups: BID admins define them; businesses join through their street; the hub hears every change."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from members import services
from members.models import AuditEvent, Business, GroupMember, Role, StreetGroup
from members.selectors import street_group_members, street_groups_of_user
from tests.cast import Cast, make_user
from tests.members.layer import recording_layer


def group_form(cast: Cast, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Night-time economy", "kind": "custom", "description": "Pubs and clubs",
                            "streets": [cast.gold.pk, cast.abington.pk], "retention_value": "7",
                            "retention_unit": "days"}
    data.update(overrides)
    return data


@pytest.fixture
def admin_client(cast: Cast, client: Client) -> Client:
    client.force_login(cast.admin)
    return client


def test_it_creates_a_group_that_businesses_join_through_their_street(
    cast: Cast, admin_client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    page = admin_client.get(reverse("members:group_create"))
    assert page.status_code == 200 and b'value="7"' in page.content  # 7 days by default
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("members:group_create"), group_form(cast))
    group = StreetGroup.objects.get(name="Night-time economy")
    assert response.status_code == 302 and response["Location"] == reverse("members:group_edit", args=[group.pk])
    assert (group.kind, group.retention_seconds, group.archived_at) == ("custom", 7 * 86400, None)
    assert set(street_group_members(group=group)) == {cast.alice, cast.bob, cast.charlie}
    assert layer.membership_changes() == {(u.pk, group.pk, True) for u in (cast.alice, cast.bob, cast.charlie)}
    assert AuditEvent.objects.get(action="group.create").detail["retention_seconds"] == 7 * 86400
    listing = admin_client.get(reverse("members:groups"))
    assert b"Night-time economy" in listing.content and b"7 days" in listing.content


def test_it_keeps_retention_between_an_hour_and_ninety_days(cast: Cast, admin_client: Client) -> None:
    cases = [("1", "hours", True), ("90", "days", True), ("2160", "hours", True),
             ("0", "hours", False), ("91", "days", False), ("2161", "hours", False), ("x", "days", False)]
    for n, (value, unit, ok) in enumerate(cases):
        name = f"Retention {n}"
        response = admin_client.post(reverse("members:group_create"),
                                     group_form(cast, name=name, retention_value=value, retention_unit=unit))
        assert StreetGroup.objects.filter(name=name).exists() is ok, (value, unit)
        if not ok:
            assert response.status_code == 400
            assert b'id="id_retention_value_error"' in response.content
            assert b'value="Pubs and clubs"' in response.content  # what was typed is kept
    with pytest.raises(ValidationError):
        services.street_group_save(actor=cast.admin, group=None, name="Direct", kind="area", retention_seconds=60)


def test_it_refuses_a_second_group_with_the_same_name(cast: Cast, admin_client: Client) -> None:
    response = admin_client.post(reverse("members:group_create"), group_form(cast, name="gold street"))
    assert response.status_code == 400 and b"Another group already has this name" in response.content
    assert StreetGroup.objects.count() == 2


def test_it_computes_membership_from_streets_and_extra_businesses(cast: Cast) -> None:
    newcomer = Business.objects.create(name="Gold Gifts", trading_address="20 Gold Street", street=cast.gold,
                                       kind="voluntary", status="applied")
    gina = make_user("gina@gifts.example", "Gina Gift", Role.MANAGER, newcomer)
    assert list(street_groups_of_user(user=gina)) == []  # not yet a member business
    newcomer.status = Business.Status.ACTIVE
    newcomer.save(update_fields=["status"])
    assert list(street_groups_of_user(user=gina)) == [cast.gold_group]
    assert list(street_groups_of_user(user=cast.charlie)) == [cast.abington_group]
    assert set(street_group_members(group=cast.gold_group)) == {cast.alice, cast.bob, gina, cast.warden}
    # An extra business joins a group for a street it is not on.
    services.street_group_save(actor=cast.admin, group=cast.gold_group, name="Gold Street", kind="street",
                               streets=[cast.gold], businesses=[cast.bakery], retention_seconds=86400)
    assert set(street_groups_of_user(user=cast.charlie)) == {cast.gold_group, cast.abington_group}


def test_it_tells_the_hub_who_joined_and_left_when_streets_change(
    cast: Cast, admin_client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    url = reverse("members:group_edit", args=[cast.gold_group.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and b"Alice Archer" in page.content and b"Wendy Warden" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, group_form(cast, name="Gold Street", kind="street",
                                                     streets=[cast.abington.pk], retention_value="12",
                                                     retention_unit="hours"))
    assert response.status_code == 302
    cast.gold_group.refresh_from_db()
    assert cast.gold_group.retention_seconds == 12 * 3600
    group = cast.gold_group.pk
    assert layer.membership_changes() == {(cast.alice.pk, group, False), (cast.bob.pk, group, False),
                                          (cast.charlie.pk, group, True)}
    assert AuditEvent.objects.filter(action="group.update", object_id=str(group)).exists()
    # Viewing who is in a group is a look at personal data.
    assert AuditEvent.objects.filter(action="personal_data.view", object_type="street_group_members").exists()


def test_it_seats_wardens_and_officers_with_a_moderator_flag(
    cast: Cast, admin_client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    group = cast.abington_group
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("members:group_member_add", args=[group.pk]),
                                     {"user": cast.officer.pk, "is_moderator": "on"})
    assert response.status_code == 302
    seat = GroupMember.objects.get(group=group, user=cast.officer)
    assert (seat.is_moderator, seat.added_by) == (True, cast.admin)
    assert layer.membership_changes() == {(cast.officer.pk, group.pk, True)}
    assert AuditEvent.objects.filter(action="group.member_add", subject=cast.officer).exists()

    layer.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("members:group_member_add", args=[group.pk]), {"user": cast.officer.pk})
    seat.refresh_from_db()
    assert not seat.is_moderator
    assert layer.membership_changes() == set()  # still a member: nothing for the hub

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("members:group_member_remove", args=[group.pk, seat.pk]))
    assert response.status_code == 302
    assert not GroupMember.objects.filter(pk=seat.pk).exists()
    assert layer.membership_changes() == {(cast.officer.pk, group.pk, False)}
    assert AuditEvent.objects.filter(action="group.member_remove", subject=cast.officer).exists()


def test_it_seats_only_authority_people(cast: Cast, admin_client: Client) -> None:
    for person in (cast.bob, cast.dpo):
        response = admin_client.post(reverse("members:group_member_add", args=[cast.gold_group.pk]),
                                     {"user": person.pk})
        assert response.status_code == 400 and b'id="id_user_error"' in response.content
    with pytest.raises(ValidationError):
        services.group_member_add(actor=cast.admin, group=cast.gold_group, user=cast.charlie)
    assert GroupMember.objects.filter(group=cast.gold_group).count() == 1


def test_it_archives_a_group(
    cast: Cast, admin_client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("members:group_edit", args=[cast.gold_group.pk]),
                          group_form(cast, name="Gold Street", streets=[cast.gold.pk], archived="on"))
    cast.gold_group.refresh_from_db()
    assert cast.gold_group.archived_at is not None
    assert cast.gold_group not in street_groups_of_user(user=cast.alice)
    assert layer.membership_changes() == {(u.pk, cast.gold_group.pk, False)
                                          for u in (cast.alice, cast.bob, cast.warden)}


def test_it_only_removes_seats_of_the_group_in_the_address(cast: Cast, admin_client: Client) -> None:
    seat = GroupMember.objects.get(group=cast.gold_group, user=cast.warden)
    response = admin_client.post(reverse("members:group_member_remove", args=[cast.abington_group.pk, seat.pk]))
    assert response.status_code == 404
    assert GroupMember.objects.filter(pk=seat.pk).exists()


def test_it_checks_access(cast: Cast, client: Client) -> None:
    seat = GroupMember.objects.get(group=cast.gold_group, user=cast.warden)
    gets = [reverse("members:groups"), reverse("members:group_create"),
            reverse("members:group_edit", args=[cast.gold_group.pk])]
    posts = [(reverse("members:group_create"), group_form(cast)),
             (reverse("members:group_edit", args=[cast.gold_group.pk]), group_form(cast, name="Renamed")),
             (reverse("members:group_member_add", args=[cast.gold_group.pk]), {"user": cast.officer.pk}),
             (reverse("members:group_member_remove", args=[cast.gold_group.pk, seat.pk]), {})]
    for url in gets:
        assert client.get(url).status_code == 302
    for person in (cast.alice, cast.bob, cast.charlie, cast.warden, cast.officer, cast.police, cast.realm, cast.dpo):
        client.force_login(person)
        for url in gets:
            assert client.get(url).status_code == 403, (person, url)
        for url, data in posts:
            assert client.post(url, data).status_code == 403, (person, url)
    assert list(StreetGroup.objects.values_list("name", flat=True)) == ["Abington Street", "Gold Street"]
    assert GroupMember.objects.count() == 1
