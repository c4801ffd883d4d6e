"""Adding an account of the installation to a workspace: staff add it directly; a workspace admin
invites it (page or API) and it joins only once it accepts on its account page. The admin's answer
is the same whether the account exists or not, and says nothing about its other workspaces."""
import pytest
from django.urls import reverse

from annotation.models import Invitation, Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db



@pytest.fixture
def elsewhere():
    """An account that belongs to another workspace only."""
    user = UserFactory(username="carol", email="carol@example.org")
    MembershipFactory(user=user, workspace=WorkspaceFactory(name="secret-project"), role=Membership.Role.ADMIN)
    return user


def _invite_api(api, workspace, username, role="annotator"):
    return api.post(f"/api/v1/workspaces/{workspace.pk}/members/", {"username": username, "role": role}, format="json")


def test_api_invites_instead_of_adding_and_answers_alike_for_any_name(workspace, admin_client_api, elsewhere):
    existing = _invite_api(admin_client_api, workspace, "carol")
    missing = _invite_api(admin_client_api, workspace, "nobody-here")
    assert existing.status_code == missing.status_code == 202
    a, b = existing.json(), missing.json()
    assert a["invited"] is b["invited"] is True and a["token"] is b["token"] is None and a["created"] is b["created"] is False
    assert a["detail"].replace("carol", "X") == b["detail"].replace("nobody-here", "X")
    assert "secret-project" not in existing.content.decode()
    assert not Membership.objects.filter(user=elsewhere, workspace=workspace).exists()
    assert set(Invitation.objects.filter(workspace=workspace).values_list("invitee", flat=True)) == {"carol", "nobody-here"}
    # the member list shows members only
    listed = admin_client_api.get(f"/api/v1/workspaces/{workspace.pk}/members/").json()
    assert "carol" not in {m["username"] for m in listed}


def test_page_invites_with_the_same_message_whether_the_account_exists_or_not(workspace, admin_user, elsewhere):
    c = login(admin_user)
    texts = []
    for name in ("carol", "nobody-here"):
        r = c.post(reverse("members", args=[workspace.pk]), {"username": name, "role": "annotator"}, follow=True)
        assert r.status_code == 200
        [message] = [str(m) for m in r.context["messages"]]
        texts.append(message.replace(name, "X"))
        assert "secret-project" not in r.content.decode()
    assert texts[0] == texts[1] and "invited" in texts[0]
    assert not Membership.objects.filter(user=elsewhere, workspace=workspace).exists()
    page = c.get(reverse("members", args=[workspace.pk])).content.decode()
    assert 'data-invitee="carol"' in page and 'data-member="carol"' not in page


def test_the_account_accepts_on_its_account_page(workspace, admin_client_api, elsewhere):
    assert _invite_api(admin_client_api, workspace, "carol", role="admin").status_code == 202
    c = login(elsewhere)
    page = c.get(reverse("account")).content.decode()
    invitation = Invitation.objects.get(invitee="carol")
    assert f'data-invitation="{invitation.pk}"' in page and workspace.name in page
    r = c.post(reverse("invitation-answer", args=[invitation.pk, "accept"]), follow=True)
    assert r.status_code == 200 and f"You joined {workspace.name}" in r.content.decode()
    assert Membership.objects.get(user=elsewhere, workspace=workspace).role == "admin"
    assert not Invitation.objects.exists()


def test_an_invitation_by_email_reaches_the_account_and_can_be_declined(workspace, admin_client_api, elsewhere):
    assert _invite_api(admin_client_api, workspace, "Carol@Example.org").status_code == 202
    c = login(elsewhere)
    invitation = Invitation.objects.get()
    assert f'data-invitation="{invitation.pk}"' in c.get(reverse("account")).content.decode()
    c.post(reverse("invitation-answer", args=[invitation.pk, "decline"]))
    assert not Invitation.objects.exists()
    assert not Membership.objects.filter(user=elsewhere, workspace=workspace).exists()


def test_nobody_else_can_answer_an_invitation(workspace, admin_client_api, admin_user, elsewhere, annotator):
    _invite_api(admin_client_api, workspace, "carol")
    invitation = Invitation.objects.get()
    for intruder in (annotator, admin_user):
        r = login(intruder).post(reverse("invitation-answer", args=[invitation.pk, "accept"]))
        assert r.status_code == 404
    assert Invitation.objects.filter(pk=invitation.pk).exists()
    assert not Membership.objects.filter(user=elsewhere, workspace=workspace).exists()
    assert login(elsewhere).post(reverse("invitation-answer", args=[invitation.pk, "join"])).status_code == 404


def test_staff_add_an_existing_account_directly(workspace, elsewhere):
    staff = UserFactory(username="root", is_staff=True)
    r = client_for(staff).post(f"/api/v1/workspaces/{workspace.pk}/members/",
                               {"username": "carol", "role": "annotator"}, format="json")
    assert r.status_code == 200 and r.json()["invited"] is False
    assert Membership.objects.filter(user=elsewhere, workspace=workspace).exists()
    c = login(staff)
    other = UserFactory(username="dave")
    assert c.post(reverse("members", args=[workspace.pk]), {"username": "dave", "role": "annotator"}).status_code == 302
    assert Membership.objects.filter(user=other, workspace=workspace).exists()


def test_a_workspace_admin_still_makes_new_accounts_and_changes_roles(workspace, admin_client_api, annotator):
    r = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                              {"username": "newbie", "role": "annotator", "password": "long-enough-pw"}, format="json")
    assert r.status_code == 201 and r.json()["created"] is True and r.json()["token"]
    r = _invite_api(admin_client_api, workspace, annotator.username, role="admin")
    assert r.status_code == 200 and Membership.objects.get(user=annotator, workspace=workspace).role == "admin"
    assert not Invitation.objects.exists()
