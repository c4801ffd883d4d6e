"""The members page keeps a workspace administrable: its last admin can be neither demoted nor removed."""
import pytest
from django.urls import reverse

from annotation.models import Membership
from tests.factories import UserFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db



def test_the_last_admin_stays_admin(admin_user, workspace, annotator):
    c = login(admin_user)
    url = reverse("members", args=[workspace.pk])
    r = c.post(url, {"username": admin_user.username, "role": "annotator"})
    assert r.status_code == 422 and "is the only admin of" in r.content.decode()
    assert Membership.objects.get(workspace=workspace, user=admin_user).role == "admin"
    # with a second admin, demoting oneself works (and removing the other admin too)
    c.post(url, {"username": annotator.username, "role": "admin"})
    assert Membership.objects.get(workspace=workspace, user=annotator).role == "admin"
    r = c.post(url, {"username": admin_user.username, "role": "annotator"})
    assert r.status_code == 302 and r["Location"] == reverse("home")  # not to a page now refused
    assert Membership.objects.get(workspace=workspace, user=admin_user).role == "annotator"


def test_staff_cannot_remove_the_last_admin(admin_user, workspace):
    staff = UserFactory(is_staff=True, is_superuser=True)
    r = login(staff).post(reverse("member-remove", args=[workspace.pk, admin_user.pk]), follow=True)
    assert "is the only admin of" in r.content.decode()
    assert Membership.objects.filter(workspace=workspace, user=admin_user, role="admin").exists()


def test_the_api_keeps_the_rule(admin_client_api, admin_user, workspace):
    r = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                              {"username": admin_user.username, "role": "annotator"}, format="json")
    assert r.status_code == 400 and "only admin" in str(r.json())
    assert Membership.objects.get(workspace=workspace, user=admin_user).role == "admin"
