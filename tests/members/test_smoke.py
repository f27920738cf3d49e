from django.test import Client

from tests.cast import Cast


def test_it_serves_home_to_a_member(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    response = client.get("/")
    assert response.status_code == 200
    assert b"Gold Street" in response.content


def test_it_reports_health(db: None, client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}
