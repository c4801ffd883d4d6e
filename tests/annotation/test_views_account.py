"""Everyone sees their own API token on the account page and can rotate it."""
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_see_and_rotate_the_token(annotator, dataset):
    c = Client()
    c.force_login(annotator)
    page = c.get(reverse("account")).content.decode()
    token = Token.objects.get(user=annotator)
    assert f'value="{token.key}"' in page
    api = Client()
    assert api.get("/api/v1/datasets/", headers={"Authorization": f"Token {token.key}"}).status_code == 200
    r = c.post(reverse("account"), follow=True)
    new = Token.objects.get(user=annotator)
    assert new.key != token.key and f'value="{new.key}"' in r.content.decode()
    assert "the old one no longer works" in r.content.decode()
    assert api.get("/api/v1/datasets/", headers={"Authorization": f"Token {token.key}"}).status_code == 401
    assert api.get("/api/v1/datasets/", headers={"Authorization": f"Token {new.key}"}).status_code == 200


def test_the_page_needs_a_login():
    r = Client().get(reverse("account"))
    assert r.status_code == 302 and "/login/" in r["Location"]
