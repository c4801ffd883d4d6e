"""Agreement measures on small tables computed by hand."""
import pytest

from annotation.agreement import (
    FIRST,
    SECOND,
    TIE,
    AnnotationRow,
    agreement_report,
    agreement_with_majority,
    dataset_agreement,
    krippendorff_alpha,
    leave_one_out_agreement,
    majority_label,
    pairwise_agreement,
    position_bias,
    ranks_from_value,
)
from annotation.models import Response, Suggestion
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory

F, S, T = FIRST, SECOND, TIE
PAIR = ("response-1", "response-2")

# 3 annotators, 4 records of a pairwise dataset (one unit per record); u3 is "simulated" below.
TABLE = {
    "r1": {"u1": F, "u2": F, "u3": S},
    "r2": {"u1": S, "u2": S, "u3": S},
    "r3": {"u1": F, "u2": F},
    "r4": {"u1": F, "u2": S, "u3": T},
}
UNITS = {(r, PAIR): labels for r, labels in TABLE.items()}


def test_majority_with_ties():
    assert majority_label([F, F, S]) == F
    assert majority_label([F, S]) is None
    assert majority_label([F, S, T]) is None
    assert majority_label([T, T, F]) == T
    assert majority_label([]) is None


LABEL_RANKS = {F: {"response-1": 1, "response-2": 2}, S: {"response-1": 2, "response-2": 1},
               T: {"response-1": 1, "response-2": 1}}
TRIPLES = [(r, who, LABEL_RANKS[label]) for r, labels in TABLE.items() for who, label in labels.items()]


def test_pairwise_agreement_by_hand():
    pw = pairwise_agreement(TRIPLES)
    # r1: (u1,u2)=1 (u1,u3)=0 (u2,u3)=0; r2: 1,1,1; r3: 1; r4: 0,0,0  -> 5 of 10
    assert pw.overall.n == 10 and pw.overall.value == pytest.approx(0.5)
    assert pw.per_annotator["u1"].value == pytest.approx(4 / 7)
    assert pw.per_annotator["u2"].value == pytest.approx(4 / 7)
    assert pw.per_annotator["u3"].value == pytest.approx(2 / 6)
    assert pw.per_pair[("u1", "u2")].value == pytest.approx(3 / 4)
    assert pw.per_pair[("u1", "u3")].value == pytest.approx(1 / 3)


def test_leave_one_out_by_hand_ties_score_half():
    loo = leave_one_out_agreement(UNITS)
    # r1: u1 vs {F,S} tied .5, u2 .5, u3 vs {F,F} 0 ; r2: 1,1,1 ; r3: 1,1 ; r4: all three tied .5
    assert loo.overall.n == 11
    assert loo.overall.total == pytest.approx(7.5)
    assert loo.overall.tied == 5
    assert loo.per_annotator["u1"].value == pytest.approx(0.75)
    assert loo.per_annotator["u2"].value == pytest.approx(0.75)
    assert loo.per_annotator["u3"].value == pytest.approx(0.5)
    # Majority of other humans only (u3 is simulated): r1 u1 vs {F}=1, u2 1, u3 vs {F,F}=0;
    # r2 1,1,1; r3 1,1; r4 u1 vs {S}=0, u2 vs {F}=0, u3 vs {F,S} tied .5
    humans = leave_one_out_agreement(UNITS, others={"u1", "u2"})
    assert humans.overall.total == pytest.approx(7.5) and humans.overall.n == 11 and humans.overall.tied == 1
    assert humans.per_annotator["u3"].value == pytest.approx(1.5 / 3)
    assert humans.per_annotator["u1"].value == pytest.approx(3 / 4)


def test_judge_vs_human_majority_by_hand():
    judge = {("r1", PAIR): F, ("r2", PAIR): F, ("r3", PAIR): F, ("r4", PAIR): S, ("r9", PAIR): F}
    rate = agreement_with_majority(judge, UNITS, voters={"u1", "u2"})
    # r1 F=F 1; r2 F vs S 0; r3 1; r4 {F,S} tied .5; r9 has no annotator: skipped
    assert rate.n == 4 and rate.value == pytest.approx(2.5 / 4) and rate.tied == 1


def test_krippendorff_alpha_nominal_by_hand():
    # Coincidences: o_FF=3, o_SS=3, o_FS=o_SF=1.5, o_FT=o_TF=o_ST=o_TS=.5; n_F=5, n_S=5, n_T=1, n=11
    # D_o = 5/11, D_e = (2*25 + 2*5 + 2*5) / (11*10) = 7/11 -> alpha = 1 - 5/7 = 2/7
    assert krippendorff_alpha(UNITS) == pytest.approx(2 / 7, abs=1e-9)
    # perfect agreement with variation -> 1; single-rated units are not pairable -> None
    assert krippendorff_alpha({("a", PAIR): {"u": F, "v": F}, ("b", PAIR): {"u": S, "v": S}}) == pytest.approx(1.0)
    assert krippendorff_alpha({("a", PAIR): {"u": F}}) is None


def test_position_bias_skips_top_ties():
    a, b, c = "a", "b", "c"
    bias = position_bias([
        ({a: 1, b: 2}, [a, b]),       # first shown chosen
        ({a: 1, b: 2}, [b, a]),       # second shown chosen
        ({a: 2, b: 1}, [b, a]),       # first shown chosen
        ({a: 1, b: 1}, [a, b]),       # tie at the top: left out
        ({a: 1, b: 2, c: 3}, [a, b, c]),  # first of three
    ])
    assert bias.choices == 4 and bias.first == 3 and bias.ties == 1
    assert bias.rate == pytest.approx(0.75)
    assert bias.chance == pytest.approx((0.5 + 0.5 + 0.5 + 1 / 3) / 4)


def test_ranks_from_value_forms():
    assert ranks_from_value([{"value": "x", "rank": 2}, {"value": "y", "rank": 1}]) == {"x": 2, "y": 1}
    assert ranks_from_value(["y", "x"]) == {"y": 1, "x": 2}
    assert ranks_from_value(1, compares=["x", "y"]) == {"x": 1, "y": 2}
    assert ranks_from_value(2, compares=["x", "y"]) == {"x": 2, "y": 1}
    assert ranks_from_value(0, compares=["x", "y"]) == {"x": 1, "y": 1}
    assert ranks_from_value("nonsense") is None


def test_three_responses_give_three_units_per_record():
    fields = ["a", "b", "c"]
    report = agreement_report([
        AnnotationRow("r", "u1", {"a": 1, "b": 2, "c": 3}),
        AnnotationRow("r", "u2", {"a": 1, "b": 3, "c": 2}),
    ], fields)
    # (a,b) F/F agree, (a,c) F/F agree, (b,c) F/S disagree
    assert len(report.units) == 3
    assert report.pairwise.overall.value == pytest.approx(2 / 3)


def _rank(first, second):
    return {"ranking": [{"value": first, "rank": 1}, {"value": second, "rank": 2}]}


@pytest.mark.django_db
def test_dataset_agreement_counts_only_submitted(workspace):
    dataset = DatasetFactory(workspace=workspace, min_submitted=3)
    users = {}
    for name, simulated in (("u1", False), ("u2", False), ("u3", True)):
        users[name] = UserFactory(username=name)
        MembershipFactory(user=users[name], workspace=workspace, is_simulated=simulated)
    records = {r: RecordFactory(dataset=dataset, external_id=r) for r in TABLE}
    label_to_value = {F: _rank("response-1", "response-2"), S: _rank("response-2", "response-1"),
                      T: {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]}}
    for r, labels in TABLE.items():
        for who, label in labels.items():
            ResponseFactory(record=records[r], user=users[who], values=label_to_value[label],
                            display_order=["response-1", "response-2"])
    # a discarded and a draft response must not count
    extra = UserFactory(username="u4")
    MembershipFactory(user=extra, workspace=workspace)
    ResponseFactory(record=records["r3"], user=extra, values=label_to_value[S], status=Response.Status.DISCARDED)
    ResponseFactory(record=records["r4"], user=extra, values=label_to_value[S], status=Response.Status.DRAFT)
    question = dataset.questions.get(name="ranking")
    for r, label in (("r1", F), ("r2", F), ("r3", F), ("r4", S)):
        Suggestion.objects.create(record=records[r], question=question, agent="judge-x",
                                  value=label_to_value[label]["ranking"])

    out = dataset_agreement(dataset)
    assert out["submitted_responses"] == 11 and out["records"] == 4
    assert out["pairwise_agreement"] == {"value": 0.5, "n": 10, "tied": 0}
    assert out["leave_one_out"]["value"] == pytest.approx(7.5 / 11, abs=1e-4)
    assert out["krippendorff_alpha"] == pytest.approx(2 / 7, abs=1e-4)
    assert out["krippendorff_alpha_ordinal"] is not None  # the dashboard's alpha over ranks (annotation.agreement.pairwise)
    by_name = {a["username"]: a for a in out["annotators"]}
    assert set(by_name) == {"u1", "u2", "u3"}
    assert by_name["u3"]["simulated"] is True and by_name["u1"]["simulated"] is False
    assert by_name["u1"]["leave_one_out"]["value"] == 0.75
    assert by_name["u3"]["human_majority"]["value"] == 0.5
    # display order always [response-1, response-2]: choices of response-1 = F labels = 5 of 10 non-tie
    assert out["position_bias"]["choices"] == 10 and out["position_bias"]["rate"] == 0.5
    assert out["position_bias"]["ties"] == 1
    judge = out["judges"][0]
    assert judge["agent"] == "judge-x" and judge["human_majority"]["value"] == 0.625
    assert judge["human_majority"]["tied"] == 1
    # competence: the one-coin Dawid-Skene fit of the same verdicts, the judge an annotator like the others
    from annotation.agreement.competence import one_coin_dawid_skene

    units = {(records[r].pk, PAIR): {users[who].pk: label for who, label in labels.items()} for r, labels in TABLE.items()}
    for r, label in (("r1", F), ("r2", F), ("r3", F), ("r4", S)):
        units[(records[r].pk, PAIR)][("judge", "judge-x")] = label
    fit = one_coin_dawid_skene(units)
    for name in ("u1", "u2", "u3"):
        assert by_name[name]["competence"] == round(fit.competence[users[name].pk], 4)
    assert [by_name[n]["competence_verdicts"] for n in ("u1", "u2", "u3")] == [4, 4, 3]
    assert judge["competence"] == round(fit.competence[("judge", "judge-x")], 4)
    assert by_name["u1"]["competence"] > by_name["u3"]["competence"]  # u3 is alone against u1, u2 and the judge on r1


@pytest.mark.django_db
def test_comparison_rating_question_agreement_and_leaderboard(workspace):
    from annotation.models import Field, Question
    from judging.evaluation.leaderboards import dataset_leaderboard
    from tests.factories import DatasetFactory as DF

    dataset = DF(workspace=workspace, min_submitted=2)
    dataset.questions.all().delete()
    Question.objects.create(dataset=dataset, name="better", kind="rating",
                            options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    assert Field.objects.filter(dataset=dataset).count() == 3
    u1, u2 = UserFactory(username="c1"), UserFactory(username="c2")
    for u in (u1, u2):
        MembershipFactory(user=u, workspace=workspace)
    meta = {"models": {"response-1": "A", "response-2": "B"}}
    votes = [(1, 1), (2, 2), (0, 0), (1, 2)]  # agree, agree, agree (tie = tie), disagree
    for v1, v2 in votes:
        rec = RecordFactory(dataset=dataset, metadata=meta)
        ResponseFactory(record=rec, user=u1, values={"better": v1})
        ResponseFactory(record=rec, user=u2, values={"better": v2})
    out = dataset_agreement(dataset)
    assert out["question"] == "better"
    assert out["pairwise_agreement"]["value"] == 0.75 and out["pairwise_agreement"]["n"] == 4
    board = {r.model: r for r in dataset_leaderboard(dataset, reference="A").rows}
    # B's scores: 0, 1, .5 (tie), (0 + 1) / 2 = .5 (split raters) -> 2 / 4
    assert board["B"].win_rate == pytest.approx(50.0)
    assert (board["B"].wins, board["B"].losses, board["B"].ties) == (1, 1, 2)


@pytest.mark.django_db
def test_judge_position_bias_from_shown_order_and_inconsistency(workspace):
    from generation.models import Endpoint
    from judging.evaluation.selectors import dataset_agreement_with_judges
    from judging.models import Judge

    dataset = DatasetFactory(workspace=workspace)
    q = dataset.questions.get(name="ranking")
    u = UserFactory(username="solo")
    MembershipFactory(user=u, workspace=workspace)
    endpoint = Endpoint.objects.create(workspace=workspace, name="e", model="m", base_url="http://x/v1")
    Judge.objects.create(workspace=workspace, name="pw", method="pairwise", endpoint=endpoint,
                         position_bias={"pairs": 10, "inconsistent": 3, "rate": 0.3, "favoured": "first"})
    for shown, best in [(["response-1", "response-2"], "response-1"),   # first shown chosen
                        (["response-2", "response-1"], "response-2"),   # first shown chosen
                        (["response-2", "response-1"], "response-1")]:  # second
        rec = RecordFactory(dataset=dataset)
        other = "response-2" if best == "response-1" else "response-1"
        ResponseFactory(record=rec, user=u, values=_rank(best, other))
        Suggestion.objects.create(record=rec, question=q, agent="uf:m", value=_rank(best, other)["ranking"],
                                  raw={"shown_order": shown})
        Suggestion.objects.create(record=rec, question=q, agent="pw:m", value=_rank(best, other)["ranking"])
    judges = {j["agent"]: j for j in dataset_agreement_with_judges(dataset)["judges"]}
    assert judges["uf:m"]["position_bias"]["rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert judges["uf:m"]["human_majority"]["value"] == 1.0
    assert judges["pw:m"]["position_bias"] is None
    assert judges["pw:m"]["judge"] == "pw" and judges["pw:m"]["inconsistency"]["rate"] == 0.3


@pytest.mark.django_db
def test_competence_is_empty_without_shared_pairs(workspace):
    """With overlap 1 nobody shares a pair with anyone: there is nothing to measure a competence against,
    so it is None (the page shows "—"), not a confident 100%."""
    dataset = DatasetFactory(workspace=workspace)
    for name, first in (("solo1", "response-1"), ("solo2", "response-2")):
        user = UserFactory(username=name)
        MembershipFactory(user=user, workspace=workspace)
        ResponseFactory(record=RecordFactory(dataset=dataset), user=user,
                        values=_rank(first, "response-2" if first == "response-1" else "response-1"))
    out = dataset_agreement(dataset)
    assert [(a["competence"], a["competence_verdicts"]) for a in out["annotators"]] == [(None, 0), (None, 0)]
