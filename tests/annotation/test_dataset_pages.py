"""annotation.selectors.dataset_pages: one dataset's rows in id order, a page at a time, from its first row."""
import pytest

from annotation.models import Record, Response
from annotation.selectors import dataset_pages
from tests.factories import DatasetFactory, RecordFactory, ResponseFactory

pytestmark = pytest.mark.django_db


def test_pages_hold_only_the_datasets_rows_in_id_order_between_older_and_newer_ones():
    older, ds, newer = DatasetFactory(), DatasetFactory(), DatasetFactory()
    ours = []
    for i in range(5):  # created in turns: the three datasets' ids interleave
        for dataset in (older, ds, newer):
            record = RecordFactory(dataset=dataset, metadata={"keep": True} if i != 2 else {})
            if dataset is ds:
                ours.append(record)
    pages = list(dataset_pages(Record.objects.filter(dataset=ds).values_list("id", "external_id"),
                               dataset_id=ds.pk, size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [row for p in pages for row in p] == [(r.pk, r.external_id) for r in ours]
    kept = Record.objects.filter(dataset=ds, metadata__has_key="keep").values_list("id", flat=False)
    assert [row[0] for p in dataset_pages(kept, dataset_id=ds.pk, size=2) for row in p] == [
        r.pk for i, r in enumerate(ours) if i != 2]


def test_a_dataset_without_rows_gives_no_page_and_a_short_page_ends_the_walk(django_assert_num_queries):
    ds = DatasetFactory()
    assert list(dataset_pages(Record.objects.filter(dataset=ds).values_list("id"), dataset_id=ds.pk, size=3)) == []
    records = [RecordFactory(dataset=ds) for _ in range(5)]
    for record in records:
        ResponseFactory(record=record)
    with django_assert_num_queries(4):  # the first id, two full pages, the short last one (no query after it)
        pages = list(dataset_pages(Response.objects.filter(dataset_id=ds.pk).values_list("id", "record_id"),
                                   dataset_id=ds.pk, size=2))
    assert [[row[1] for row in p] for p in pages] == [[r.pk for r in records[:2]], [r.pk for r in records[2:4]],
                                                       [records[4].pk]]
