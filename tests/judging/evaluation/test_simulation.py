"""Simulated annotators: p=0 reproduces the judge, p=1 is random, seeded, same path as humans."""
import random

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Membership, Record, Response
from judging.evaluation.models import SimulatedAnnotator, SimulatedAnswer
from judging.evaluation.simulation import (
    noise_apply,
    pairs_annotate,
    samples_annotate,
    samples_to_pairs,
    simulated_annotator_create,
    simulation_job_create,
    simulation_run,
)
from tests.factories import DatasetFactory
from tests.judging.evaluation.helpers import judge_best, judge_responder, make_judge, pair_records


def _top(values):
    return next(i["value"] for i in values["ranking"] if i["rank"] == 1)


@pytest.fixture
def judge_server(llm_server):
    llm_server.responder = judge_responder
    return llm_server


def test_noise_rates_match_alpacafarm_form():
    fields = ["a", "b"]
    judge = {"a": 1, "b": 2}
    for p, expected in ((0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (1.0, 0.5)):
        rng = random.Random(123)
        flips = sum(noise_apply(judge, fields=fields, flip_probability=p, rng=rng, allow_ties=False)[0]["a"] != 1
                    for _ in range(4000))
        assert flips / 4000 == pytest.approx(expected, abs=0.03), p
    # three responses at q = 1: a uniformly random permutation -> each of the 6 orders about 1/6
    rng = random.Random(5)
    counts = {}
    for _ in range(3000):
        ranks, replaced = noise_apply({"a": 1, "b": 2, "c": 3}, fields=["a", "b", "c"], flip_probability=1.0, rng=rng,
                                      allow_ties=False)
        assert replaced and sorted(ranks.values()) == [1, 2, 3]
        key = tuple(sorted(ranks, key=ranks.get))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and all(abs(c / 3000 - 1 / 6) < 0.03 for c in counts.values())
    # judge tie kept when ties are allowed, broken when not
    tie = {"a": 1, "b": 1}
    assert noise_apply(tie, fields=fields, flip_probability=0, rng=random.Random(1), allow_ties=True)[0] == tie
    broken = noise_apply(tie, fields=fields, flip_probability=0, rng=random.Random(1), allow_ties=False)[0]
    assert sorted(broken.values()) == [1, 2]


def test_create_makes_a_flagged_simulated_member(workspace, llm_endpoint):
    judge = make_judge(workspace, llm_endpoint(), method="pairwise")
    sim = simulated_annotator_create(workspace=workspace, name="alpaca", judge=judge, flip_probability=0.25, seed=3)
    assert sim.user.username == "sim-alpaca"
    assert Membership.objects.get(user=sim.user, workspace=workspace).is_simulated is True
    with pytest.raises(ValidationError) as exc:
        simulated_annotator_create(workspace=workspace, name="alpaca", judge=judge)
    assert "name" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        simulated_annotator_create(workspace=workspace, name="bad-p", judge=judge, flip_probability=1.5)
    assert "flip_probability" in exc.value.message_dict
    clair = make_judge(workspace, llm_endpoint(), name="clair", method="clair")
    with pytest.raises(ValidationError) as exc:
        simulated_annotator_create(workspace=workspace, name="c", judge=clair)
    assert "judge" in exc.value.message_dict


def test_p0_reproduces_the_judge_exactly_pairwise(workspace, judge_server, llm_endpoint):
    dataset = DatasetFactory(workspace=workspace, min_submitted=2, shuffle_responses=True)
    records = pair_records(dataset, 30, seed=1)
    endpoint = llm_endpoint()
    a = simulated_annotator_create(workspace=workspace, name="pw", judge=make_judge(workspace, endpoint, name="pw",
                                                                                    method="pairwise"))
    b = simulated_annotator_create(workspace=workspace, name="uf", judge=make_judge(workspace, endpoint, name="uf"))
    result = simulation_run(dataset=dataset, annotators=[a, b])
    assert result.submitted == 60 and result.discarded == 0
    for record in records:
        responses = list(Response.objects.filter(record=record))
        assert len(responses) == 2
        for r in responses:
            assert r.status == "submitted"
            assert _top(r.values) == judge_best(record)
            assert sorted(r.display_order) == ["response-1", "response-2"]  # shown like to a person
    assert Record.objects.filter(dataset=dataset, completed=True).count() == 30
    # pairwise asks both orders: 2 calls per record; UltraFeedback 1
    assert judge_server.count == 30 * 2 + 30
    assert not SimulatedAnswer.objects.filter(noised=True).exists()


def test_p0_three_responses_ultrafeedback_full_ranking(workspace, judge_server, llm_endpoint):
    dataset = DatasetFactory(workspace=workspace, responses=3, allow_ties=True)
    Record.objects.create(dataset=dataset, external_id="x", fields={
        "prompt": "p", "response-1": "quality=2", "response-2": "quality=5", "response-3": "quality=2"})
    a = simulated_annotator_create(workspace=workspace, name="uf3", judge=make_judge(workspace, llm_endpoint()))
    simulation_run(dataset=dataset, annotators=[a])
    values = Response.objects.get().values["ranking"]
    assert {i["value"]: i["rank"] for i in values} == {"response-2": 1, "response-1": 2, "response-3": 2}


def test_p1_is_random_and_reproducible(workspace, judge_server, llm_endpoint):
    dataset = DatasetFactory(workspace=workspace)
    records = pair_records(dataset, 400, seed=2)
    sim = simulated_annotator_create(workspace=workspace, name="coin", judge=make_judge(workspace, llm_endpoint()),
                                     flip_probability=1.0, seed=7)
    simulation_run(dataset=dataset, annotators=[sim])
    tops = {r.record_id: _top(r.values) for r in Response.objects.filter(dataset=dataset)}
    agree = sum(tops[r.pk] == judge_best(r) for r in records) / len(records)
    assert 0.42 <= agree <= 0.58
    # the same annotator on a copy of the dataset (same external ids) answers exactly the same
    copy = DatasetFactory(workspace=workspace)
    copies = pair_records(copy, 100, seed=2)
    simulation_run(dataset=copy, annotators=[sim])
    tops_copy = {r.record_id: _top(r.values) for r in Response.objects.filter(dataset=copy)}
    assert [tops[r.pk] for r in records[:100]] == [tops_copy[c.pk] for c in copies]
    assert len(set(tops_copy.values())) == 2


def test_max_records_and_unreadable_judge_output_discards(workspace, llm_server, llm_endpoint):
    def respond(body):
        text = judge_responder(body)
        return "I'm sorry, I cannot rate these." if "Question 3?" in str(body["messages"]) else text

    llm_server.responder = respond
    dataset = DatasetFactory(workspace=workspace)
    pair_records(dataset, 6, seed=3)
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=1)
    sim = simulated_annotator_create(workspace=workspace, name="cap", judge=judge)
    first = simulation_run(dataset=dataset, annotators=[sim], max_records=2)
    assert first.submitted == 2
    rest = simulation_run(dataset=dataset, annotators=[sim])
    assert rest.submitted == 3 and rest.discarded == 1
    bad = SimulatedAnswer.objects.get(record__external_id="r3")
    assert "refused" in bad.error and len(bad.raw) == 2  # first try + one re-ask, both kept
    assert Response.objects.get(record__external_id="r3").status == "discarded"


def test_simulation_job_runs_through_the_job_mechanism(workspace, judge_server, llm_endpoint):
    from annotation.jobs import job_chunk_execute

    dataset = DatasetFactory(workspace=workspace, min_submitted=2)
    pair_records(dataset, 10, seed=4)
    judge = make_judge(workspace, llm_endpoint())
    sims = [simulated_annotator_create(workspace=workspace, name=f"s{i}", judge=judge, flip_probability=0.25, seed=i)
            for i in range(3)]
    job = simulation_job_create(dataset=dataset, annotators=sims, start=False)
    assert job.kind == "simulation" and job.chunks.count() == 3 and job.total == 20
    for chunk in job.chunks.all():
        assert job_chunk_execute(job_id=job.pk, index=chunk.index) == "ok"
    # a re-run of a chunk answers nothing twice and keeps the counts exact
    job.refresh_from_db()
    assert job.status == "succeeded" and job.done == 20 and job.failed == 0
    assert Response.objects.filter(dataset=dataset, status="submitted").count() == 20
    assert all(r.submitted_count == 2 for r in Record.objects.filter(dataset=dataset))
    assert set(job.result["annotators"]) == {"s0", "s1", "s2"}


def test_annotate_pairs_and_samples(workspace, judge_server, llm_endpoint):
    judge = make_judge(workspace, llm_endpoint(), method="pairwise")
    pool = [simulated_annotator_create(workspace=workspace, name=f"p{i}", judge=judge) for i in range(2)]
    pairs = [{"instruction": f"I{i}", "output_1": f"quality={1 + i % 3}", "output_2": "quality=2",
              "generator_1": "m1", "generator_2": "m2"} for i in range(6)]
    out = pairs_annotate(workspace=workspace, pairs=pairs, annotators=pool)
    prefs = [a["preference"] for a in out["annotations"]]
    assert prefs == [2, 1.5, 1, 2, 1.5, 1]
    assert {a["annotator"] for a in out["annotations"]} == {"p0", "p1"}  # the pool shares the work
    assert out["annotations"][0]["generator_1"] == "m1"
    assert not workspace.datasets.filter(name__startswith="scratch-").exists()  # scratch dataset removed
    with pytest.raises(ValidationError) as exc:
        pairs_annotate(workspace=workspace, pairs=[{"instruction": "x", "output_1": "a"}], annotators=pool)
    assert "[0].output_2" in exc.value.message_dict

    samples = [{"instruction": "S", "outputs": ["quality=1", "quality=4", "quality=2"], "generators": ["a", "b", "c"]}]
    assert samples_to_pairs(samples, pairs_per_instruction=2, seed=9) == samples_to_pairs(samples, pairs_per_instruction=2, seed=9)
    res = samples_annotate(workspace=workspace, samples=samples, annotators=pool, pairs_per_instruction=3, seed=9)
    assert len(res["annotations"]) == 3
    for a in res["annotations"]:
        q1, q2 = int(a["output_1"][-1]), int(a["output_2"][-1])
        assert a["preference"] == (1 if q1 > q2 else 2)
        assert {a["generator_1"], a["generator_2"]} <= {"a", "b", "c"}


@pytest.mark.parametrize("overlap, per_annotator", [(1, 4), (3, 12)])
def test_judging_ahead_wastes_no_call(workspace, judge_server, llm_endpoint, overlap, per_annotator):
    dataset = DatasetFactory(workspace=workspace, min_submitted=overlap)
    pair_records(dataset, 12, seed=6)
    judge = make_judge(workspace, llm_endpoint(max_concurrency=8))
    pool = [simulated_annotator_create(workspace=workspace, name=f"w{i}", judge=judge) for i in range(3)]
    result = simulation_run(dataset=dataset, annotators=pool)
    assert {name: t.submitted for name, t in result.per_annotator.items()} == {f"w{i}": per_annotator for i in range(3)}
    assert judge_server.count == 12 * overlap  # one UltraFeedback call per answer, none judged in vain
    assert result.rounds <= 3
    assert all(r.submitted_count == overlap for r in Record.objects.filter(dataset=dataset))


def test_workspace_deletion_and_name_reuse(workspace, llm_endpoint):
    from judging.models import Judge
    from judging.services import judge_delete

    judge = make_judge(workspace, llm_endpoint())
    sim = simulated_annotator_create(workspace=workspace, name="again", judge=judge)
    first = make_judge(workspace, llm_endpoint(), name="first")
    gone = simulated_annotator_create(workspace=workspace, name="gone", judge=first)
    judge_delete(judge=first)  # takes its simulated annotators along; their users stay
    assert not SimulatedAnnotator.objects.filter(pk=gone.pk).exists()
    assert Membership.objects.filter(user_id=gone.user_id, is_simulated=True).exists()
    sim.delete()
    # the left-over simulated user is reused; a person's user name never is
    again = simulated_annotator_create(workspace=workspace, name="again", judge=judge)
    assert again.user_id == sim.user_id
    from tests.factories import UserFactory

    UserFactory(username="sim-person")
    with pytest.raises(ValidationError) as exc:
        simulated_annotator_create(workspace=workspace, name="person", judge=judge)
    assert "taken" in exc.value.message_dict["name"][0]
    assert Judge.objects.filter(pk=judge.pk).exists()
    workspace.delete()  # takes its judges and simulated annotators along
    assert not SimulatedAnnotator.objects.exists() and not Judge.objects.exists()


def test_comparison_rating_question_is_answered(workspace, judge_server, llm_endpoint):
    from annotation.models import Question

    dataset = DatasetFactory(workspace=workspace)
    dataset.questions.all().delete()
    Question.objects.create(dataset=dataset, name="better", kind="rating",
                            options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    Question.objects.create(dataset=dataset, name="note", kind="text", required=False)
    records = pair_records(dataset, 6, seed=8)
    sim = simulated_annotator_create(workspace=workspace, name="cmp", judge=make_judge(workspace, llm_endpoint()))
    simulation_run(dataset=dataset, annotators=[sim])
    for record in records:
        value = Response.objects.get(record=record).values["better"]
        assert value == (1 if judge_best(record) == "response-1" else 2)
    Question.objects.create(dataset=dataset, name="why", kind="text", required=True)
    with pytest.raises(ValidationError) as exc:
        simulation_run(dataset=dataset, annotators=[sim])
    assert "why" in exc.value.message_dict["dataset"][0]


def test_llm_outage_interrupts_without_discarding_and_the_job_retries(workspace, llm_server, llm_endpoint):
    from annotation.jobs import job_chunk_execute
    from judging.evaluation.simulation import SimulationInterrupted

    llm_server.responder = judge_responder
    dataset = DatasetFactory(workspace=workspace)
    pair_records(dataset, 4, seed=12)
    sim = simulated_annotator_create(workspace=workspace, name="down",
                                     judge=make_judge(workspace, llm_endpoint(max_retries=0)))
    llm_server.fail("500", times=1000)
    result = simulation_run(dataset=dataset, annotators=[sim])
    assert result.submitted == 0 and result.discarded == 0
    assert "LLM call failed" in result.interrupted["down"]
    assert not Response.objects.filter(dataset=dataset).exists()  # nothing final was written

    job = simulation_job_create(dataset=dataset, annotators=[sim], start=False)
    with pytest.raises(SimulationInterrupted):
        job_chunk_execute(job_id=job.pk, index=0)  # Celery retries the chunk with backoff
    llm_server.clear_failures()
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert job.status == "succeeded" and job.done == 4
    assert Response.objects.filter(dataset=dataset, status="submitted").count() == 4


def test_simulated_and_human_annotators_share_the_distribution(workspace, annotator, judge_server, llm_endpoint):
    from annotation.services import next_record_for, response_upsert

    dataset = DatasetFactory(workspace=workspace, min_submitted=1)
    pair_records(dataset, 5, seed=13)
    mine = next_record_for(annotator, dataset)  # a person holds a lease on the first record
    sim = simulated_annotator_create(workspace=workspace, name="mate", judge=make_judge(workspace, llm_endpoint()))
    result = simulation_run(dataset=dataset, annotators=[sim])
    assert result.submitted == 4
    assert not Response.objects.filter(record=mine, user=sim.user).exists()  # leased to the person
    response_upsert(user=annotator, record=mine, values={"ranking": ["response-1", "response-2"]}, status="submitted")
    assert all(r.completed and r.submitted_count == 1 for r in Record.objects.filter(dataset=dataset))
