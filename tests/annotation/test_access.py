"""annotation.access: ids that cannot be ids match nothing, in every list and object lookup."""
import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotation.access import ADMIN, ANNOTATOR, PK_MAX, REVIEWER, dataset_for_user, parse_pk, role_at_least
from annotation.models import Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

HUGE = str(10**33)


@pytest.mark.parametrize("raw, expected", [("7", 7), (7, 7), ("x", -1), (None, -1), ("", -1), (HUGE, -1),
                                           (str(PK_MAX), PK_MAX), (str(PK_MAX + 1), -1)])
def test_parse_pk(raw, expected):
    assert parse_pk(raw) == expected


@pytest.mark.parametrize("url", ["/api/v1/datasets/?workspace={n}", "/api/v1/judge-jobs/?workspace={n}",
                                 "/api/v1/judges/?workspace={n}", "/api/v1/generation-jobs/?workspace={n}",
                                 "/api/v1/endpoints/?workspace={n}"])
def test_an_id_too_large_for_the_database_filters_to_nothing(url, admin_client_api, dataset):
    resp = admin_client_api.get(url.format(n=HUGE))
    assert resp.status_code == 200, resp.content[:300]
    body = resp.json()
    assert (body["results"] if isinstance(body, dict) else body) == []


@pytest.mark.parametrize("url", ["/api/v1/datasets/{n}/", "/api/v1/records/{n}/", "/api/v1/workspaces/{n}/members/"])
def test_an_object_id_too_large_for_the_database_is_not_found(url, admin_client_api):
    assert admin_client_api.get(url.format(n=HUGE)).status_code == 404


def test_a_reviewer_sits_between_annotator_and_admin(dataset):
    assert [role_at_least(REVIEWER, r) for r in (ANNOTATOR, REVIEWER, ADMIN)] == [True, True, False]
    assert [role_at_least(ANNOTATOR, r) for r in (ANNOTATOR, REVIEWER)] == [True, False]
    reviewer, annotator = UserFactory(username="rev"), UserFactory(username="ann")
    MembershipFactory(user=reviewer, workspace=dataset.workspace, role=Membership.Role.REVIEWER)
    MembershipFactory(user=annotator, workspace=dataset.workspace, role=Membership.Role.ANNOTATOR)
    assert dataset_for_user(reviewer, dataset.pk, role=REVIEWER) == dataset
    with pytest.raises(PermissionDenied):
        dataset_for_user(reviewer, dataset.pk, role=ADMIN)
    with pytest.raises(PermissionDenied):
        dataset_for_user(annotator, dataset.pk, role=REVIEWER)
    with pytest.raises(Http404):
        dataset_for_user(UserFactory(username="stranger"), dataset.pk, role=REVIEWER)
