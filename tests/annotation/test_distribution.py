"""next_record_for and response_upsert: the rules of task distribution."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation.models import Lease, Record
from annotation.services import next_record_for, response_upsert
from tests.factories import DatasetFactory, RecordFactory, UserFactory

RANK_1_FIRST = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


@pytest.mark.django_db
def test_priority_first_then_never_twice_then_none():
    ds = DatasetFactory(min_submitted=1)
    low = RecordFactory(dataset=ds, priority=0)
    high = RecordFactory(dataset=ds, priority=5)
    user = UserFactory()
    first = next_record_for(user, ds)
    assert first == high
    # asking again without answering resumes the same record (its lease)
    assert next_record_for(user, ds) == high
    response_upsert(user=user, record=first, values=RANK_1_FIRST, status="submitted")
    assert next_record_for(user, ds) == low
    response_upsert(user=user, record=low, values={}, status="discarded")
    assert next_record_for(user, ds) is None
    assert Record.objects.get(pk=high.pk).completed is True
    assert Record.objects.get(pk=low.pk).completed is False  # a discard does not complete a record


@pytest.mark.django_db
def test_leases_count_towards_min_submitted_and_expire():
    ds = DatasetFactory(min_submitted=1)
    rec = RecordFactory(dataset=ds)
    a, b = UserFactory(), UserFactory()
    assert next_record_for(a, ds) == rec
    assert next_record_for(b, ds) is None  # the only slot is leased to a
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert next_record_for(b, ds) == rec  # a's lease expired: b gets it


@pytest.mark.django_db
def test_over_submission_is_stored_and_flagged():
    ds = DatasetFactory(min_submitted=1)
    rec = RecordFactory(dataset=ds)
    a, b = UserFactory(), UserFactory()
    assert next_record_for(b, ds) == rec
    response_upsert(user=b, record=rec, values={}, status="draft")
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # b's lease expires while b works
    assert next_record_for(a, ds) == rec
    response_upsert(user=a, record=rec, values=RANK_1_FIRST, status="submitted")
    result = response_upsert(user=b, record=rec, values=RANK_1_FIRST, status="submitted")  # b's draft: admitted
    assert result.over_assigned and "stored" in result.warnings[0]
    rec.refresh_from_db()
    assert rec.submitted_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("values,reason", [
    ({"ranking": [{"value": "response-1", "rank": 1}]}, "missing"),
    ({"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-1", "rank": 2}]}, "twice"),
    ({"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]}, "ties"),
    ({"ranking": [{"value": "response-1", "rank": 1}, {"value": "nope", "rank": 2}]}, "not one of"),
    ({"other": 1}, "unknown questions"),
    ({}, "required"),
])
def test_invalid_rankings_are_rejected_and_change_nothing(values, reason):
    ds = DatasetFactory(min_submitted=1)
    rec = RecordFactory(dataset=ds)
    user = UserFactory()
    with pytest.raises(ValidationError) as exc:
        response_upsert(user=user, record=rec, values=values, status="submitted")
    assert reason in str(exc.value.message_dict)
    rec.refresh_from_db()
    assert rec.submitted_count == 0 and not rec.responses.exists()


@pytest.mark.django_db
def test_ties_allowed_when_the_dataset_says_so():
    ds = DatasetFactory(min_submitted=1, allow_ties=True)
    rec = RecordFactory(dataset=ds)
    tie = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]}
    result = response_upsert(user=UserFactory(), record=rec, values=tie, status="submitted")
    assert result.response.values["ranking"][0]["rank"] == result.response.values["ranking"][1]["rank"] == 1
