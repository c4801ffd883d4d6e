"""REST API: workspaces, members, authentication and the OpenAPI schema."""
import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from annotation.models import Membership, Workspace
from tests.conftest import client_for
from tests.factories import MembershipFactory, RecordFactory, TokenFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_anonymous_gets_401_everywhere(api_client, dataset):
    for url in ["/api/v1/workspaces/", f"/api/v1/workspaces/{dataset.workspace_id}/members/",
                "/api/v1/datasets/", f"/api/v1/datasets/{dataset.pk}/", f"/api/v1/datasets/{dataset.pk}/next/",
                f"/api/v1/datasets/{dataset.pk}/records/"]:
        assert api_client.get(url).status_code == 401, url
    assert api_client.post("/api/v1/workspaces/", {"name": "x"}, format="json").status_code == 401
    record = RecordFactory(dataset=dataset)
    assert api_client.get(f"/api/v1/records/{record.pk}/").status_code == 401
    resp = api_client.post(f"/api/v1/records/{record.pk}/responses/",
                           {"values": {"ranking": ["response-1", "response-2"]}, "status": "submitted"}, format="json")
    assert resp.status_code == 401
    assert api_client.post(f"/api/v1/datasets/{dataset.pk}/suggestions/", [], format="json").status_code == 401
    assert not record.responses.exists()


def test_bad_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api_client.get("/api/v1/workspaces/").status_code == 401


def test_session_auth_works(workspace, annotator):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(annotator)
    body = client.get("/api/v1/workspaces/").json()
    assert [w["name"] for w in body] == [workspace.name]


def test_staff_creates_workspace_and_becomes_admin():
    staff = UserFactory(is_staff=True)
    resp = client_for(staff).post("/api/v1/workspaces/", {"name": "research"}, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["name"] == "research" and resp.json()["role"] == "admin"
    assert Membership.objects.get(workspace__name="research").user == staff


def test_non_staff_cannot_create_workspace(admin_client_api):
    resp = admin_client_api.post("/api/v1/workspaces/", {"name": "mine"}, format="json")
    assert resp.status_code == 403
    assert not Workspace.objects.filter(name="mine").exists()


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "ok", "colour": "red"}, "colour"),
])
def test_workspace_create_bad_input(body, field):
    staff = UserFactory(is_staff=True)
    resp = client_for(staff).post("/api/v1/workspaces/", body, format="json")
    assert resp.status_code == 400 and field in resp.json()


def test_duplicate_workspace_name_is_400(workspace):
    staff = UserFactory(is_staff=True)
    resp = client_for(staff).post("/api/v1/workspaces/", {"name": workspace.name}, format="json")
    assert resp.status_code == 400 and "exists" in resp.json()["name"][0]


def test_workspace_list_shows_only_memberships_with_role(workspace, annotator):
    other = WorkspaceFactory()
    MembershipFactory(user=annotator, workspace=other, role=Membership.Role.ADMIN)
    WorkspaceFactory(name="hidden")
    body = client_for(annotator).get("/api/v1/workspaces/").json()
    assert {(w["name"], w["role"]) for w in body} == {(workspace.name, "annotator"), (other.name, "admin")}
    staff_body = client_for(UserFactory(is_staff=True)).get("/api/v1/workspaces/").json()
    assert "hidden" in {w["name"] for w in staff_body}


def test_admin_adds_new_member_and_token_works(workspace, admin_client_api):
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                                 {"username": "alice", "role": "annotator", "password": "long-enough-pw"},
                                 format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["username"] == "alice" and body["role"] == "annotator" and body["created"] is True
    assert body["token"] == Token.objects.get(user__username="alice").key
    assert User.objects.get(username="alice").check_password("long-enough-pw")
    alice = {"HTTP_AUTHORIZATION": f"Token {body['token']}"}
    from rest_framework.test import APIClient

    listed = APIClient().get("/api/v1/workspaces/", **alice).json()
    assert [w["name"] for w in listed] == [workspace.name]


def test_admin_changes_role_of_existing_member(workspace, admin_client_api, annotator):
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                                 {"username": annotator.username, "role": "admin"}, format="json")
    assert resp.status_code == 200
    assert resp.json()["created"] is False
    assert Membership.objects.get(user=annotator, workspace=workspace).role == "admin"


def test_existing_users_token_and_password_are_not_handed_to_a_workspace_admin(workspace, admin_client_api):
    victim = UserFactory(username="boss", is_staff=True)
    TokenFactory(user=victim)
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                                 {"username": "boss", "role": "annotator", "password": "take-over-123"},
                                 format="json")
    assert resp.status_code == 400 and "password" in resp.json()
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/",
                                 {"username": "boss", "role": "annotator"}, format="json")
    assert resp.status_code == 202 and resp.json()["token"] is None and resp.json()["invited"] is True
    assert not Membership.objects.filter(user=victim, workspace=workspace).exists()  # invited, not added
    victim.refresh_from_db()
    assert victim.check_password("pw-12345678")


@pytest.mark.parametrize("body,field", [
    ({"username": "bob", "role": "owner"}, "role"),
    ({"role": "annotator"}, "username"),
    ({"username": "bob", "role": "annotator", "password": "short"}, "password"),
    ({"username": "bob", "role": "annotator", "email": "x@y"}, "email"),
])
def test_member_bad_input(workspace, admin_client_api, body, field):
    resp = admin_client_api.post(f"/api/v1/workspaces/{workspace.pk}/members/", body, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content
    assert not User.objects.filter(username="bob").exists()


def test_member_list_and_delete(workspace, admin_client_api, annotator, admin_user):
    listed = admin_client_api.get(f"/api/v1/workspaces/{workspace.pk}/members/").json()
    assert {(m["username"], m["role"]) for m in listed} == {("ws-admin", "admin"), ("annotator-1", "annotator")}
    resp = admin_client_api.delete(f"/api/v1/workspaces/{workspace.pk}/members/annotator-1/")
    assert resp.status_code == 204
    assert not Membership.objects.filter(user=annotator).exists()
    assert admin_client_api.delete(f"/api/v1/workspaces/{workspace.pk}/members/annotator-1/").status_code == 404
    # the removed user no longer sees the workspace (404, not 403)
    assert client_for(annotator).get(f"/api/v1/workspaces/{workspace.pk}/members/").status_code == 404


def test_annotator_cannot_manage_members(workspace, annotator_client_api):
    url = f"/api/v1/workspaces/{workspace.pk}/members/"
    assert annotator_client_api.get(url).status_code == 403
    assert annotator_client_api.post(url, {"username": "x", "role": "admin"}, format="json").status_code == 403
    assert annotator_client_api.delete(url + "ws-admin/").status_code == 403


def test_other_workspace_is_404(admin_client_api):
    other = WorkspaceFactory()
    url = f"/api/v1/workspaces/{other.pk}/members/"
    assert admin_client_api.get(url).status_code == 404
    assert admin_client_api.post(url, {"username": "x", "role": "admin"}, format="json").status_code == 404
    assert admin_client_api.get("/api/v1/workspaces/999999/members/").status_code == 404


def test_staff_manages_any_workspace():
    other = WorkspaceFactory()
    staff = client_for(UserFactory(is_staff=True))
    resp = staff.post(f"/api/v1/workspaces/{other.pk}/members/", {"username": "carol", "role": "admin"},
                      format="json")
    assert resp.status_code == 201 and resp.json()["token"]


def test_openapi_schema_renders(admin_client_api):
    resp = admin_client_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    import json

    schema = json.loads(resp.content)
    paths = schema["paths"]
    for path in ["/api/v1/workspaces/", "/api/v1/datasets/{dataset_id}/next/",
                 "/api/v1/records/{record_id}/responses/", "/api/v1/datasets/{dataset_id}/records/",
                 "/api/v1/datasets/{dataset_id}/suggestions/"]:
        assert path in paths, path
    assert "post" in paths["/api/v1/datasets/{dataset_id}/records/"]
    assert "get" in paths["/api/v1/datasets/{dataset_id}/records/"]
