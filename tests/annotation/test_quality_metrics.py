"""The quality figures by hand: Wilson intervals of gold accuracy, leave-one-out agreement with the others on a
three-annotator toy, the too-fast rule, the anchoring arms with their intervals, and a query count that does
not grow with the number of annotators."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.agreement.rates import wilson_interval
from annotation.models import AnnotatorStanding, Membership, Suggestion
from annotation.quality.gold import records_gold_set
from annotation.quality.metrics import dataset_quality_report, difference_interval, median_interval
from annotation.quality.standing import standing_set
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory

R1, R2 = "response-1", "response-2"
FIRST = {"ranking": [{"value": R1, "rank": 1}, {"value": R2, "rank": 2}]}    # response-1 better
SECOND = {"ranking": [{"value": R2, "rank": 1}, {"value": R1, "rank": 2}]}   # response-2 better


def _members(workspace, *names, **flags):
    users = []
    for name in names:
        user = UserFactory(username=name)
        MembershipFactory(user=user, workspace=workspace, **flags)
        users.append(user)
    return users


def _by_name(report):
    return {a.username: a for a in report.annotators}


def test_wilson_interval_by_hand():
    # 8 of 10: z = 1.959964, z^2/n = 0.38415; centre = (0.8 + 0.19207) / 1.38415 = 0.71674;
    # half = z * sqrt(0.8 * 0.2 / 10 + z^2 / 400) / 1.38415 = 1.959964 * 0.16001 / 1.38415 = 0.22658
    low, high = wilson_interval(0.8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    # 0 of 4: centre = half = (z^2 / 8) / (1 + z^2 / 4) = 0.48018 / 1.96037 = 0.24495 -> [0, 0.4899]
    low, high = wilson_interval(0.0, 4)
    assert (low, round(high, 4)) == (0.0, 0.4899)


@pytest.mark.django_db
def test_gold_accuracy_counts_interval_and_the_pause_threshold(workspace):
    ds = DatasetFactory(workspace=workspace, gold_pause_accuracy=0.7, gold_pause_min_answers=3)
    good, poor, new = _members(workspace, "good", "poor", "new")
    golds = [RecordFactory(dataset=ds) for _ in range(10)]
    records_gold_set(dataset=ds, answers={r.pk: FIRST for r in golds})
    for i, record in enumerate(golds):
        ResponseFactory(record=record, user=good, values=FIRST if i < 8 else SECOND)      # 8 of 10
        if i < 3:
            ResponseFactory(record=record, user=poor, values=FIRST if i == 0 else SECOND)  # 1 of 3
        if i < 2:
            ResponseFactory(record=record, user=new, values=SECOND)                         # 0 of 2: too few to judge
    rows = _by_name(dataset_quality_report(dataset=ds, competence=False))
    g = rows["good"].as_dict()["gold"]
    assert (g["correct"], g["answered"], g["accuracy"], g["ci_low"], g["ci_high"]) == (8, 10, 0.8, 0.4902, 0.9433)
    assert (rows["poor"].gold.correct, rows["poor"].gold.answered) == (1, 3)
    assert rows["poor"].below_gold_threshold and not rows["good"].below_gold_threshold
    assert not rows["new"].below_gold_threshold                    # 0 of 2, but the policy waits for 3 answers
    assert rows["good"].gold_submitted == 10 and rows["good"].submitted == 10


@pytest.mark.django_db
def test_agreement_with_the_others_leave_one_out_on_three_annotators(workspace):
    """Two responses per record, so one pair verdict per record (F: response-1 better, S: response-2 better).

        record   a  b  c     a vs others        b vs others        c vs others
        r1       F  F  S     {F,S} tied: 0.5    {F,S} tied: 0.5    {F,F} -> F: 0
        r2       F  F  F     F: 1               F: 1               F: 1
        r3       F  S  .     {S}: 0             {F}: 0             -
        r4       F  .  .     (alone: not compared)
        r5       F  S  F     {S,F} tied: 0.5    {F,F} -> F: 0      {F,S} tied: 0.5
        gold     F  S  S     gold records are measured against their answer, not the others

    a: (0.5 + 1 + 0 + 0.5) / 4 = 0.5, 2 tied; b: (0.5 + 1 + 0 + 0) / 4 = 0.375, 1 tied; c: (0 + 1 + 0.5) / 3 = 0.5, 1 tied.
    """
    ds = DatasetFactory(workspace=workspace, min_submitted=3)
    a, b, c = _members(workspace, "a", "b", "c")
    table = {"r1": (FIRST, FIRST, SECOND), "r2": (FIRST, FIRST, FIRST), "r3": (FIRST, SECOND, None),
             "r4": (FIRST, None, None), "r5": (FIRST, SECOND, FIRST), "gold": (FIRST, SECOND, SECOND)}
    records = {}
    for name, answers in table.items():
        records[name] = record = RecordFactory(dataset=ds, external_id=name)
        for user, values in zip((a, b, c), answers):
            if values is not None:
                ResponseFactory(record=record, user=user, values=values)
    records_gold_set(dataset=ds, answers={records["gold"].pk: FIRST})
    rows = _by_name(dataset_quality_report(dataset=ds))
    got = {name: (r.agreement.total, r.agreement.n, r.agreement.tied) for name, r in rows.items()}
    assert got == {"a": (2.0, 4, 2), "b": (1.5, 4, 1), "c": (1.5, 3, 1)}
    assert rows["b"].agreement.value == 0.375
    # the interval is the Wilson interval of the mean score over the compared pairs
    low, high = wilson_interval(0.5, 4)
    assert rows["a"].as_dict()["agreement"] == {"value": 0.5, "n": 4, "tied": 2, "ci_low": round(low, 4),
                                                "ci_high": round(high, 4), "ci_method": "wilson-95"}
    assert (rows["a"].submitted, rows["b"].submitted, rows["c"].submitted) == (6, 5, 4)
    assert [(r.gold.correct, r.gold.answered) for r in (rows["a"], rows["b"], rows["c"])] == [(1, 1), (0, 1), (0, 1)]
    # everyone shares records: the competence model scores all three, a (with the majority most often) highest
    assert all(rows[n].competence is not None and rows[n].competence_verdicts > 0 for n in "abc")
    assert rows["a"].competence > rows["b"].competence


@pytest.mark.django_db
def test_too_fast_rule_median_below_the_threshold_gold_included(workspace):
    ds = DatasetFactory(workspace=workspace, too_fast_seconds=5)
    x, y = _members(workspace, "x", "y")
    recs = [RecordFactory(dataset=ds) for _ in range(4)]
    records_gold_set(dataset=ds, answers={recs[0].pk: FIRST})
    for record, seconds in zip(recs, (2.0, 3.0, 10.0)):           # x: 2 s on the gold record, 3 s, 10 s
        ResponseFactory(record=record, user=x, values=FIRST, duration=seconds)
    for record, seconds in zip(recs, (4.0, 6.0, 7.0, 0.0)):       # y: 4, 6, 7 s and one without a recorded time
        ResponseFactory(record=record, user=y, values=FIRST, duration=seconds)
    rows = _by_name(dataset_quality_report(dataset=ds, competence=False))
    # x: median of 2, 3, 10 = 3 s < 5 s -> flagged; 2 of 3 timed answers under 5 s
    assert (rows["x"].median_seconds, rows["x"].too_fast, rows["x"].too_fast_count, rows["x"].timed) == (3.0, True, 2, 3)
    assert rows["x"].as_dict()["too_fast_share"] == 0.6667
    # y: the untimed answer is left out; median of 4, 6, 7 = 6 s -> not flagged, 1 of 3 under 5 s
    assert (rows["y"].median_seconds, rows["y"].too_fast, rows["y"].too_fast_count, rows["y"].timed) == (6.0, False, 1, 3)
    assert rows["y"].submitted == 4
    ds.too_fast_seconds = 0                                        # 0: no threshold, no flag
    ds.save()
    rows = _by_name(dataset_quality_report(dataset=ds, competence=False))
    assert not rows["x"].too_fast and rows["x"].too_fast_count == 0


def test_median_interval_order_statistics_by_hand():
    # n = 10: P(Bin(10, 1/2) <= 1) = 11/1024 = 0.0107 <= 0.025 < P(<= 2) = 56/1024, so j = 2: [x_(2), x_(9)]
    assert median_interval([float(v) for v in range(10, 0, -1)]) == (2.0, 9.0)
    # n = 6: P(<= 0) = 1/64 = 0.0156 <= 0.025 < P(<= 1) = 7/64, so j = 1: [x_(1), x_(6)]
    assert median_interval([5.0, 1.0, 3.0, 2.0, 9.0, 4.0]) == (1.0, 9.0)
    # n = 5: P(<= 0) = 1/32 = 0.031 > 0.025: no interval reaches 95%
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (None, None)


def test_difference_interval_newcombe_by_hand():
    # Wilson(3/4) = [0.30064, 0.95441], Wilson(1/4) = [0.04559, 0.69936];
    # low = 0.5 - sqrt(0.44936^2 + 0.44936^2) = -0.13550, high = 0.5 + sqrt(0.20441^2 + 0.20441^2) = 0.78908
    low, high = difference_interval(0.75, 4, 0.25, 4)
    assert (round(low, 4), round(high, 4)) == (-0.1355, 0.7891)
    assert difference_interval(0.5, 4, None, 0) == (None, None)


@pytest.mark.django_db
def test_anchoring_arms_by_hand(workspace):
    """Every record's shown suggestion says response-1 is better (r2 has two: the better scored one is shown).

        record  a               b                c
        r1      F shown 10 s    F shown 20 s     S hidden 5 s
        r2      F shown 30 s    S shown 40 s     F hidden 15 s
        r3      S hidden 25 s   S hidden 35 s    F no suggestion shown (None): left out

    shown:  4 answers, agree with the judge 3 of 4; annotators agree on r1 (1), not on r2 (0): 1 of 2;
            median time of 10, 20, 30, 40 = 25 s.
    hidden: 4 answers, agree with the judge 1 of 4 (c on r2); a and b agree on r3: 1 of 1 (c is alone in
            the hidden arm on r1 and r2); median time of 5, 15, 25, 35 = 20 s.
    """
    ds = DatasetFactory(workspace=workspace, min_submitted=3, suggestion_share=0.5)
    a, b, c = _members(workspace, "a", "b", "c")
    question = ds.questions.get(name="ranking")
    r1, r2, r3 = (RecordFactory(dataset=ds, external_id=f"r{i}") for i in (1, 2, 3))
    for record in (r1, r2, r3):
        Suggestion.objects.create(record=record, question=question, value=FIRST["ranking"], agent="judge", score=0.9)
    Suggestion.objects.create(record=r2, question=question, value=SECOND["ranking"], agent="weak-judge", score=0.2)
    answers = [(r1, a, FIRST, True, 10), (r1, b, FIRST, True, 20), (r1, c, SECOND, False, 5),
               (r2, a, FIRST, True, 30), (r2, b, SECOND, True, 40), (r2, c, FIRST, False, 15),
               (r3, a, SECOND, False, 25), (r3, b, SECOND, False, 35), (r3, c, FIRST, None, 50)]
    for record, user, values, shown, seconds in answers:
        ResponseFactory(record=record, user=user, values=values, suggestion_shown=shown, duration=seconds)
    anchoring = dataset_quality_report(dataset=ds).anchoring
    shown, hidden = anchoring.shown, anchoring.hidden
    assert (shown.responses, hidden.responses, anchoring.left_out) == (4, 4, 1)
    assert (shown.judge.total, shown.judge.n, hidden.judge.total, hidden.judge.n) == (3.0, 4, 1.0, 4)
    assert (shown.inter_annotator.total, shown.inter_annotator.n) == (1.0, 2)
    assert (hidden.inter_annotator.total, hidden.inter_annotator.n) == (1.0, 1)
    assert (shown.median_seconds, hidden.median_seconds, anchoring.median_seconds_difference) == (25.0, 20.0, 5.0)
    assert shown.median_interval == (None, None)                  # 4 timed answers: too few for a 95% interval
    out = anchoring.as_dict()
    assert out["shown"]["agreement_with_judge"]["value"] == 0.75
    assert (out["shown"]["agreement_with_judge"]["ci_low"], out["shown"]["agreement_with_judge"]["ci_high"]) == (0.3006, 0.9544)
    assert out["difference"]["agreement_with_judge"] == {"value": 0.5, "ci_low": -0.1355, "ci_high": 0.7891}
    assert out["difference"]["inter_annotator_agreement"]["value"] == -0.5
    assert out["difference"]["median_seconds"] == 5.0


@pytest.mark.django_db
def test_kinds_former_members_and_standing_are_flagged(workspace, admin_user):
    ds = DatasetFactory(workspace=workspace)
    (human,) = _members(workspace, "human")
    (sim,) = _members(workspace, "sim", is_simulated=True)
    (imp,) = _members(workspace, "imp", is_imported=True)
    former = UserFactory(username="former")
    quiet, = _members(workspace, "quiet")                          # no answer, but paused: still listed
    for user in (human, sim, imp, former):
        ResponseFactory(record=RecordFactory(dataset=ds), user=user, values=FIRST)
    standing_set(dataset=ds, user=quiet, paused=True, reason="checking", by=admin_user)
    standing_set(dataset=ds, user=former, excluded=True, by=admin_user)
    standing_set(dataset=ds, user=human, paused=True, by=admin_user)
    rows = _by_name(dataset_quality_report(dataset=ds))
    assert {n: (r.kind, r.member) for n, r in rows.items()} == {
        "human": ("human", True), "sim": ("simulated", True), "imp": ("imported", True),
        "former": ("human", False), "quiet": ("human", True)}
    assert (rows["quiet"].paused, rows["quiet"].pause_reason, rows["quiet"].submitted) == (True, "checking", 0)
    assert rows["human"].pause_reason == "An admin of this dataset paused you."
    assert rows["former"].excluded and not rows["former"].paused
    assert AnnotatorStanding.objects.filter(dataset=ds).count() == 3
    # nobody shares a record: no competence to show
    assert all(r.competence is None for r in rows.values())


def _campaign(workspace, n_annotators: int):
    ds = DatasetFactory(workspace=workspace, min_submitted=n_annotators, too_fast_seconds=3, gold_pause_accuracy=0.5)
    users = _members(workspace, *[f"ann-{ds.pk}-{i}" for i in range(n_annotators)])
    users[-1].memberships.update(is_simulated=True)
    question = ds.questions.get(name="ranking")
    records = [RecordFactory(dataset=ds) for _ in range(3)]
    records_gold_set(dataset=ds, answers={records[0].pk: FIRST})
    for record in records:
        Suggestion.objects.create(record=record, question=question, value=FIRST["ranking"], agent="judge")
        for i, user in enumerate(users):
            ResponseFactory(record=record, user=user, values=FIRST if i % 2 else SECOND, duration=2 + i,
                            suggestion_shown=bool(i % 2))
    standing_set(dataset=ds, user=users[0], paused=True)
    return ds


@pytest.mark.django_db
def test_the_report_takes_as_many_queries_for_8_annotators_as_for_2(workspace):
    small, big = _campaign(workspace, 2), _campaign(workspace, 8)
    with CaptureQueriesContext(connection) as q_small:
        report_small = dataset_quality_report(dataset=small)
    with CaptureQueriesContext(connection) as q_big:
        report_big = dataset_quality_report(dataset=big)
    assert (len(report_small.annotators), len(report_big.annotators)) == (2, 8)
    assert report_big.anchoring.shown.responses == 8 and report_big.competence_fitted
    assert len(q_small.captured_queries) == len(q_big.captured_queries)
    assert Membership.objects.filter(workspace=workspace, is_simulated=True).count() == 2


@pytest.mark.django_db
def test_a_graded_preference_question_is_read_as_pair_votes(workspace):
    """A preference question (compares response-1, response-2): strength is not scored, "both bad" is a vote of
    its own. The judge prefers response-1 on the record; the suggestion is shown to p and q, hidden from r.

        p: response-1 strongly (shown)   q: response-1 slightly (shown)   r: both bad (hidden)
    judge agreement: shown 2 of 2, hidden 0 of 1. Agreement with the others (pair verdicts): p and q say
    "first" and r says nothing about the pair (both bad has no ranks), so p vs {q} = 1, q vs {p} = 1.
    """
    from annotation.models import Question
    from annotation.validation import question_specs_validate

    ds = DatasetFactory(workspace=workspace, min_submitted=3)
    Question.objects.filter(dataset=ds).delete()
    [spec] = question_specs_validate([{"name": "graded", "kind": "preference", "options": {
        "compares": [R1, R2], "both_bad": True}}], {"prompt", R1, R2})
    question = Question.objects.create(dataset=ds, **spec)
    p, q, r = _members(workspace, "p", "q", "r")
    record = RecordFactory(dataset=ds)
    Suggestion.objects.create(record=record, question=question, value={"preferred": R1, "strength": 1}, agent="judge")
    ResponseFactory(record=record, user=p, values={"graded": {"preferred": R1, "strength": 3}}, suggestion_shown=True)
    ResponseFactory(record=record, user=q, values={"graded": {"preferred": R1, "strength": 1}}, suggestion_shown=True)
    ResponseFactory(record=record, user=r, values={"graded": {"both_bad": True}}, suggestion_shown=False)
    report = dataset_quality_report(dataset=ds)
    assert report.question == "graded"
    a = report.anchoring
    assert (a.shown.judge.total, a.shown.judge.n, a.hidden.judge.total, a.hidden.judge.n) == (2.0, 2, 0.0, 1)
    assert (a.shown.inter_annotator.total, a.shown.inter_annotator.n) == (1.0, 1)
    rows = _by_name(report)
    assert [(rows[n].agreement.total, rows[n].agreement.n) for n in "pqr"] == [(1.0, 1), (1.0, 1), (0.0, 0)]


@pytest.mark.django_db
def test_a_dataset_without_a_ranked_question_still_counts_time_and_gold(workspace):
    from annotation.models import Question

    ds = DatasetFactory(workspace=workspace, too_fast_seconds=10)
    Question.objects.filter(dataset=ds).update(kind=Question.Kind.TEXT, options={})
    (u,) = _members(workspace, "writer")
    ResponseFactory(record=RecordFactory(dataset=ds), user=u, values={"ranking": "free text"}, duration=4,
                    suggestion_shown=True)
    report = dataset_quality_report(dataset=ds)
    assert report.question is None and not report.anchoring.has_data
    row = _by_name(report)["writer"]
    assert (row.submitted, row.median_seconds, row.too_fast, row.agreement.n) == (1, 4.0, True, 0)
