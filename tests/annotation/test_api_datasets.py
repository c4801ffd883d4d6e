"""REST API: datasets (create, list, read, update, delete, publish)."""
import pytest

from annotation.models import Dataset, Membership, Record
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def _body(workspace, **over):
    body = {
        "workspace": workspace.pk, "name": "helpfulness", "guidelines": "Pick the **more helpful** answer.",
        "min_submitted": 2, "allow_ties": False, "show_suggestions": True, "shuffle_responses": True,
        "prompt_field": "prompt",
        "fields": [{"name": "prompt", "kind": "text"}, {"name": "response-1", "kind": "markdown"},
                   {"name": "response-2", "kind": "markdown"}],
        "questions": [{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}},
                      {"name": "note", "kind": "text", "required": False}],
    }
    body.update(over)
    return body


def test_create_dataset(workspace, admin_client_api):
    resp = admin_client_api.post("/api/v1/datasets/", _body(workspace), format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["name"] == "helpfulness" and body["status"] == "draft" and body["min_submitted"] == 2
    assert [f["name"] for f in body["fields"]] == ["prompt", "response-1", "response-2"]
    assert body["questions"][0]["options"] == {"values": ["response-1", "response-2"]}
    assert body["questions"][1]["required"] is False
    assert body["progress"] == {"records": 0, "completed": 0, "submitted_responses": 0}
    ds = Dataset.objects.get(pk=body["id"])
    assert ds.workspace == workspace and ds.shuffle_responses is True


@pytest.mark.parametrize("over,field,reason", [
    ({"name": ""}, "name", "blank"),
    ({"min_submitted": 0}, "min_submitted", "greater than or equal to 1"),
    ({"allow_ties": "maybe"}, "allow_ties", "valid boolean"),
    ({"fields": []}, "fields", ""),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"fields": [{"name": "prompt", "type": "text"}]}, "fields", "unknown field"),
    ({"fields": [{"name": "prompt"}, {"name": "prompt"}]}, "fields[1].name", "duplicate"),
    ({"fields": [{"name": "bad name!"}]}, "fields[0].name", "letters"),
    ({"questions": [{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "nope"]}}]},
     "questions[0].options.values", "not fields"),
    ({"questions": [{"name": "r", "kind": "rating", "options": {"values": ["a"]}}]},
     "questions[0].options.values", "integers"),
    ({"questions": [{"name": "r", "kind": "poll"}]}, "questions", "valid choice"),
    ({"prompt_field": "question"}, "prompt_field", "not a field"),
])
def test_create_dataset_bad_input_names_field(workspace, admin_client_api, over, field, reason):
    resp = admin_client_api.post("/api/v1/datasets/", _body(workspace, **over), format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()
    assert reason in str(resp.json()[field])
    assert not Dataset.objects.filter(workspace=workspace).exists()


def test_duplicate_dataset_name_is_400(workspace, admin_client_api):
    assert admin_client_api.post("/api/v1/datasets/", _body(workspace), format="json").status_code == 201
    resp = admin_client_api.post("/api/v1/datasets/", _body(workspace), format="json")
    assert resp.status_code == 400 and "exists" in str(resp.json()["name"])


def test_create_dataset_needs_workspace_admin(workspace, annotator_client_api):
    resp = annotator_client_api.post("/api/v1/datasets/", _body(workspace), format="json")
    assert resp.status_code == 403
    other = WorkspaceFactory()
    resp = annotator_client_api.post("/api/v1/datasets/", _body(other), format="json")
    assert resp.status_code == 404
    assert not Dataset.objects.exists()


def test_list_datasets_of_my_workspaces_with_progress(workspace, annotator_client_api, annotator):
    mine = DatasetFactory(workspace=workspace, min_submitted=1)
    a = RecordFactory(dataset=mine)
    RecordFactory(dataset=mine)
    ResponseFactory(record=a, user=annotator)
    Record.objects.filter(pk=a.pk).update(submitted_count=1, completed=True)
    second_ws = WorkspaceFactory()
    MembershipFactory(user=annotator, workspace=second_ws)
    second = DatasetFactory(workspace=second_ws)
    DatasetFactory()  # another workspace: invisible
    body = annotator_client_api.get("/api/v1/datasets/").json()
    assert {d["id"] for d in body} == {mine.pk, second.pk}
    by_id = {d["id"]: d for d in body}
    assert by_id[mine.pk]["progress"] == {"records": 2, "completed": 1, "submitted_responses": 1}
    filtered = annotator_client_api.get(f"/api/v1/datasets/?workspace={second_ws.pk}").json()
    assert [d["id"] for d in filtered] == [second.pk]
    assert annotator_client_api.get("/api/v1/datasets/?workspace=abc").status_code == 400


def test_get_dataset_member_and_404_for_others(dataset, annotator_client_api):
    resp = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/")
    assert resp.status_code == 200 and resp.json()["questions"][0]["kind"] == "ranking"
    outsider = client_for(UserFactory())
    assert outsider.get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    assert outsider.get("/api/v1/datasets/987654/").status_code == 404


def test_patch_dataset(dataset, admin_client_api):
    resp = admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/",
                                  {"guidelines": "new", "min_submitted": 3, "allow_ties": True}, format="json")
    assert resp.status_code == 200, resp.content
    dataset.refresh_from_db()
    assert (dataset.guidelines, dataset.min_submitted, dataset.allow_ties) == ("new", 3, True)


def test_patch_min_submitted_recomputes_completion(dataset, admin_client_api):
    rec = RecordFactory(dataset=dataset)
    Record.objects.filter(pk=rec.pk).update(submitted_count=1, completed=True)
    admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", {"min_submitted": 2}, format="json")
    rec.refresh_from_db()
    assert rec.completed is False


@pytest.mark.parametrize("body,field", [
    ({"min_submitted": 500}, "min_submitted"),
    ({"status": "frozen"}, "status"),
    ({"fields": []}, "fields"),
    ({"prompt_field": "nope"}, "prompt_field"),
])
def test_patch_bad_input_changes_nothing(dataset, admin_client_api, body, field):
    resp = admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", body, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content
    dataset.refresh_from_db()
    assert dataset.min_submitted == 1 and dataset.status == "published"


def test_write_needs_admin(dataset, annotator_client_api):
    assert annotator_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", {"guidelines": "x"},
                                      format="json").status_code == 403
    assert annotator_client_api.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 403
    assert annotator_client_api.post(f"/api/v1/datasets/{dataset.pk}/publish/").status_code == 403
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_other_workspace_admin_gets_404(dataset):
    other_admin = UserFactory()
    MembershipFactory(user=other_admin, role=Membership.Role.ADMIN)
    client = client_for(other_admin)
    assert client.patch(f"/api/v1/datasets/{dataset.pk}/", {"guidelines": "x"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    assert client.post(f"/api/v1/datasets/{dataset.pk}/publish/").status_code == 404


def test_delete_dataset(dataset, admin_client_api):
    rec = RecordFactory(dataset=dataset)
    ResponseFactory(record=rec)
    assert admin_client_api.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not Record.objects.filter(pk=rec.pk).exists()


def test_publish(workspace, admin_client_api):
    created = admin_client_api.post("/api/v1/datasets/", _body(workspace), format="json").json()
    resp = admin_client_api.post(f"/api/v1/datasets/{created['id']}/publish/")
    assert resp.status_code == 200 and resp.json()["status"] == "published"
    assert Dataset.objects.get(pk=created["id"]).status == "published"


def test_delete_of_a_large_dataset_answers_202_and_a_job_deletes_it(dataset, admin_client_api, settings,
                                                                     django_capture_on_commit_callbacks):
    """The API follows the page's one rule: above PREFLAB_DELETE_IN_REQUEST_MAX records the dataset is
    archived at once and a background job deletes it; the answer says so instead of holding the request."""
    from annotation.models import Job
    from preflab.celery import app as celery_app

    settings.PREFLAB_DELETE_IN_REQUEST_MAX = 2
    for _ in range(3):
        RecordFactory(dataset=dataset)
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            resp = admin_client_api.delete(f"/api/v1/datasets/{dataset.pk}/")
    finally:
        celery_app.conf.task_always_eager = False
    job = Job.objects.get(kind="dataset_delete")
    assert resp.status_code == 202 and resp.json()["id"] == job.pk and resp["Location"] == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 3)
    assert not Dataset.objects.filter(pk=dataset.pk).exists() and not Record.objects.filter(dataset_id=dataset.pk).exists()
