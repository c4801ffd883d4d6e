"""resolve=weighted: the triplet export weighs each vote by its annotator's competence (one-coin
Dawid-Skene fitted on the dataset), on a campaign where a third of the annotators answer at random."""
import random

import pytest

from annotation.agreement.competence import one_coin_dawid_skene
from annotation.agreement.rankings import FIRST, SECOND
from annotation.exports import triplets_export
from annotation.models import Record, Response
from tests.factories import DatasetFactory, SuggestionFactory, UserFactory

pytestmark = pytest.mark.django_db

PAIR = ("response-1", "response-2")
RANKING = {FIRST: [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}],
           SECOND: [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]}


def _campaign(dataset, *, n_records=300, per_record=5, seed=11):
    """4 careful annotators (right 80% of the time) and 2 who answer at random; 5 of the 6 answer each
    record. Returns the truth per record id and the votes as competence-model units."""
    rng = random.Random(seed)
    users = [UserFactory(username=f"careful{i}") for i in range(4)] + [UserFactory(username=f"coin{i}") for i in range(2)]
    records = Record.objects.bulk_create(
        Record(dataset=dataset, external_id=f"r{i}", fields={"prompt": f"Q{i}", "response-1": "a", "response-2": "b"})
        for i in range(n_records))
    truth, units, responses = {}, {}, []
    for rec in records:
        z = rng.choice((FIRST, SECOND))
        truth[rec.pk] = z
        units[(rec.pk, PAIR)] = {}
        for user in rng.sample(users, per_record):
            p = 0.8 if user.username.startswith("careful") else 0.5
            label = z if rng.random() < p else (SECOND if z == FIRST else FIRST)
            units[(rec.pk, PAIR)][user.pk] = label
            responses.append(Response(record=rec, dataset=dataset, user=user, status=Response.Status.SUBMITTED,
                                      values={"ranking": RANKING[label]}))
    Response.objects.bulk_create(responses)
    return truth, units


def _right(rows, truth):
    chosen = {row["record_id"]: (FIRST if row["chosen_field"] == "response-1" else SECOND) for row in rows}
    return sum(chosen.get(rid) == z for rid, z in truth.items()) / len(truth)


def test_weighted_export_recovers_the_truth_more_often_than_the_majority():
    dataset = DatasetFactory(min_submitted=5)
    truth, units = _campaign(dataset)
    majority = list(triplets_export(dataset=dataset, resolve="majority"))
    weighted = list(triplets_export(dataset=dataset, resolve="weighted"))
    right_majority, right_weighted = _right(majority, truth), _right(weighted, truth)
    print(f"majority {right_majority:.3f} right, weighted {right_weighted:.3f} right")
    assert right_weighted >= right_majority + 0.025
    # every row's agreement is the fitted model's probability of its label (the weighted agreement)
    fit = one_coin_dawid_skene(units)
    for row in weighted[:50]:
        label = FIRST if row["chosen_field"] == "response-1" else SECOND
        assert fit.weighted_label((row["record_id"], PAIR)) == label
        assert row["agreement"] == pytest.approx(fit.weighted_agreement((row["record_id"], PAIR)), abs=1e-4)
        assert row["annotators"] == 5 and row["vote_margin"] in (-0.2, 0.2, 0.6, 1.0)


def test_a_competent_minority_outvotes_coins():
    """Two annotators who agreed with everyone else all along outweigh three who never agreed with anyone."""
    dataset = DatasetFactory(min_submitted=1)
    good = [UserFactory(username=f"g{i}") for i in range(2)]
    coins = [UserFactory(username=f"c{i}") for i in range(3)]
    rng = random.Random(3)
    rows = []
    for i in range(40):  # history: the good two agree, the coins answer at random
        rec = Record.objects.create(dataset=dataset, external_id=f"h{i}", fields={"prompt": "p", "response-1": "a",
                                                                                 "response-2": "b"})
        for user in good:
            rows.append(Response(record=rec, dataset=dataset, user=user, status="submitted", values={"ranking": RANKING[FIRST]}))
        for user in coins:
            rows.append(Response(record=rec, dataset=dataset, user=user, status="submitted",
                                 values={"ranking": RANKING[rng.choice((FIRST, SECOND))]}))
    disputed = Record.objects.create(dataset=dataset, external_id="disputed",
                                     fields={"prompt": "p", "response-1": "a", "response-2": "b"})
    rows += [Response(record=disputed, dataset=dataset, user=u, status="submitted", values={"ranking": RANKING[SECOND]})
             for u in good]
    rows += [Response(record=disputed, dataset=dataset, user=u, status="submitted", values={"ranking": RANKING[FIRST]})
             for u in coins]
    Response.objects.bulk_create(rows)
    by = {r["external_id"]: r for r in triplets_export(dataset=dataset, resolve="majority")}
    assert by["disputed"]["chosen_field"] == "response-1"  # three against two
    by = {r["external_id"]: r for r in triplets_export(dataset=dataset, resolve="weighted")}
    assert by["disputed"]["chosen_field"] == "response-2" and by["disputed"]["agreement"] > 0.5


def test_weighted_suggestions_weigh_judges_too():
    """source=suggestions: the judges are voters of the same model, named as the agreement page names them."""
    dataset = DatasetFactory()
    rec = Record.objects.create(dataset=dataset, external_id="s", fields={"prompt": "p", "response-1": "a",
                                                                         "response-2": "b"})
    question = dataset.questions.get(name="ranking")
    SuggestionFactory(record=rec, question=question, agent="judge-a", value=RANKING[FIRST], score=1.0)
    rows = list(triplets_export(dataset=dataset, resolve="weighted", source="suggestions"))
    assert [(r["chosen_field"], r["source"]) for r in rows] == [("response-1", "suggestions")]


def test_weighted_is_an_option_of_the_api(dataset, admin_client_api):
    resp = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/triplets/?resolve=weighted")
    assert resp.status_code == 200
    bad = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/triplets/?resolve=competence")
    assert bad.status_code == 400 and "resolve" in bad.content.decode()


def test_the_exports_array_fit_gives_the_dashboards_competences(dataset):
    """dataset_competence_votes (the export's fit, votes as arrays, no posteriors) against dataset_competence
    (units as dicts): the same annotators and judges, competences, priors and weighted votes."""
    from annotation.agreement.datasets import dataset_competence, dataset_competence_votes

    _truth, units = _campaign(dataset, n_records=120)
    question = dataset.questions.get(name="ranking")
    for i, rec in enumerate(Record.objects.filter(dataset=dataset).order_by("id")[:80]):
        SuggestionFactory(record=rec, question=question, agent="judge-a", value=RANKING[FIRST if i % 3 else SECOND])
        if i % 2:
            SuggestionFactory(record=rec, question=question, agent="", value=RANKING[SECOND])
    SuggestionFactory(record=Record.objects.create(dataset=dataset, external_id="unanswered", fields={}),
                      question=question, agent="judge-only-here", value=RANKING[FIRST])
    full, arrays = dataset_competence(dataset, question), dataset_competence_votes(dataset, question)
    assert set(arrays.competence) == set(full.competence) and len(full.competence) == 6 + 2  # no judge-only-here
    for who, p in full.competence.items():
        assert arrays.competence[who] == pytest.approx(p, abs=1e-12), who
        assert arrays.votes[who] == full.votes[who]
    assert arrays.labels == full.labels and arrays.priors == pytest.approx(full.priors, abs=1e-12)
    assert arrays.iterations == full.iterations and arrays.posterior == {}
    for votes in list(units.values())[:40]:
        label, p = full.vote(list(votes.items()))
        assert arrays.vote(list(votes.items())) == (label, pytest.approx(p, abs=1e-9))
