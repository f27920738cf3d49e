from django.test import Client

from tests.cast import Cast


def test_it_keeps_signed_in_pages_out_of_shared_caches(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    response = client.get("/")
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_it_leaves_public_pages_cacheable(db: None, client: Client) -> None:
    response = client.get("/offline/")
    assert "no-store" not in response.get("Cache-Control", "")
