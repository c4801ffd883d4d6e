"""User names shown in lists: control and text-direction characters are refused wherever an account
is created or named (members page and API, simulated annotators, createsuperuser), with a clear
error, and nothing is created."""
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.models import Membership
from annotation.validation import display_name_validate
from judging.evaluation.simulation import simulated_annotator_create
from tests.factories import JudgeFactory, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()

UNSAFE = ["eve\u202egpj.exe", "a\u202ab", "a\u202db", "a\u2066b", "a\u2069b", "a\u200eb", "a\u200fb",
          "a\x00b", "a\x1bb", "a\nb", "a\x7fb", "a\x85b", "a\x9fb"]


@pytest.mark.parametrize("name", UNSAFE)
def test_the_validator_refuses_control_and_direction_characters(name):
    with pytest.raises(ValidationError) as exc:
        display_name_validate(name, field="username")
    assert "control or text-direction" in exc.value.message_dict["username"][0]


@pytest.mark.parametrize("name", ["alice", "José-García", "李雷", "ann.o+tator@example.org", "مريم"])
def test_the_validator_lets_ordinary_names_through(name):
    assert display_name_validate(name, field="username") == name


@pytest.mark.parametrize("name", ["eve\u202egpj.exe", "bob\x1b[31m", "x\u2067y"])
def test_members_api_refuses_unsafe_usernames(workspace, admin_client_api, name):
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                                 {"username": name, "role": "annotator", "password": "long-enough-pw"}, format="json")
    assert resp.status_code == 400, resp.content
    assert "control or text-direction" in resp.json()["username"][0]
    assert not User.objects.filter(username=name).exists()


def test_members_page_refuses_unsafe_usernames(workspace, admin_user):
    c = Client()
    c.force_login(admin_user)
    r = c.post(reverse("members", args=[workspace.pk]),
               {"username": "eve\u202egpj.exe", "role": "annotator", "password": "long-enough-pw"})
    assert r.status_code == 422 and "control or text-direction" in r.content.decode()
    assert not User.objects.filter(username__startswith="eve").exists()


def test_simulated_annotator_names_are_checked(workspace):
    judge = JudgeFactory(workspace=workspace, method="pairwise")
    with pytest.raises(ValidationError) as exc:
        simulated_annotator_create(workspace=workspace, name="sim\u202eannotator", judge=judge)
    assert "name" in exc.value.message_dict
    assert not Membership.objects.filter(is_simulated=True).exists()


def test_createsuperuser_refuses_unsafe_usernames(capsys):
    for name in ("root\u202e", "root\x1b"):
        with pytest.raises(CommandError):
            call_command("createsuperuser", "--noinput", username=name, email="r@example.org")
    assert not User.objects.filter(is_superuser=True).exists()
    UserFactory(username="plain")  # ordinary names still work everywhere
