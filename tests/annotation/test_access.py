"""annotation.access: ids that cannot be ids match nothing, in every list and object lookup."""
import pytest

from annotation.access import PK_MAX, parse_pk

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
