"""Leaderboards: AlpacaEval-format import and dataset leaderboards with known win rates."""
import math

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Response, Suggestion
from judging.evaluation.difficulty import difficulty_parse
from judging.evaluation.leaderboards import (
    Comparison,
    alpaca_eval_leaderboard,
    dataset_leaderboard,
    leaderboard_compute,
    leaderboard_csv,
    leaderboard_svg,
    record_models,
)
from judging.evaluation.length_control import lc_win_rate
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    RecordFactory,
    ResponseFactory,
    UserFactory,
)
from tests.judging.evaluation import alpaca_data


def _item(g1, g2, pref, o1="x" * 10, o2="y" * 20, instruction="do it"):
    return {"instruction": instruction, "output_1": o1, "output_2": o2, "generator_1": g1, "generator_2": g2,
            "preference": pref}


ALPACA = [
    _item("ref", "X", 2, o2="y" * 30),        # X wins            -> 1
    _item("X", "ref", 1, o1="x" * 10),        # X (output_1) wins -> 1
    _item("ref", "X", 1.5, o2="y" * 20),      # tie               -> .5
    _item("ref", "X", 0, o2="y" * 20),        # tie (0)           -> .5
    _item("X", "ref", 1.75, o1="x" * 20),     # ref .75           -> .25
    _item("ref", "X", 1, o2="y" * 20),        # X loses           -> 0
    _item("Y", "ref", 2, o1="z" * 7),         # Y loses           -> 0
    _item("X", "Y", 2),                       # no reference: skipped
]


def test_alpaca_eval_import_known_win_rates_and_se():
    board = alpaca_eval_leaderboard(ALPACA, reference="ref")
    rows = {r.model: r for r in board.rows}
    x = rows["X"]
    scores = [1, 1, .5, .5, .25, 0]
    mean = sum(scores) / 6
    se = math.sqrt(sum((s - mean) ** 2 for s in scores) / 5 / 6)
    assert x.win_rate == pytest.approx(100 * 3.25 / 6, abs=1e-3)   # 54.1667
    assert x.standard_error == pytest.approx(100 * se, abs=1e-3)     # 16.3512
    assert x.standard_error == pytest.approx(16.3512, abs=1e-3)
    assert (x.n, x.wins, x.losses, x.ties) == (6, 2, 2, 2)
    assert x.avg_length == pytest.approx((30 + 10 + 20 + 20 + 20 + 20) / 6, abs=0.1)
    y = rows["Y"]
    assert y.win_rate == 0 and y.standard_error is None and y.n == 1 and y.losses == 1
    assert rows["ref"].is_reference and rows["ref"].win_rate == 50.0
    assert board.skipped == 1 and board.comparisons == 8
    assert [r.model for r in board.rows] == ["X", "Y", "ref"]


@pytest.mark.parametrize("bad, key", [
    ({"preference": 0.5}, "[0].preference"),
    ({"preference": 2.5}, "[0].preference"),
    ({"preference": "2"}, "[0].preference"),
    ({"generator_2": ""}, "[0].generator_2"),
    ({"output_1": None}, "[0].output_1"),
])
def test_alpaca_eval_bad_items_name_index_and_field(bad, key):
    item = {**_item("ref", "X", 2), **bad}
    with pytest.raises(ValidationError) as exc:
        alpaca_eval_leaderboard([_item("ref", "X", 1), item][1:], reference="ref")
    assert key in exc.value.message_dict


def test_alpaca_eval_null_preference_left_out_and_reported():
    board = alpaca_eval_leaderboard(ALPACA + [{**_item("ref", "X", 2), "preference": None}], reference="ref")
    assert board.unannotated == 1 and "[8]" in board.notes[0]
    assert {r.model: r for r in board.rows}["X"].n == 6
    with pytest.raises(ValidationError) as exc:
        alpaca_eval_leaderboard([{**_item("ref", "X", 2), "preference": None}], reference="ref")
    assert "annotations" in exc.value.message_dict


def test_alpaca_eval_reports_every_bad_item():
    with pytest.raises(ValidationError) as exc:
        alpaca_eval_leaderboard([_item("ref", "X", 1), _item("ref", "X", 7), {"instruction": "x"}], reference="ref")
    assert set(exc.value.message_dict) == {"[1].preference", "[2].output_1"}


def test_length_controlled_column_is_alpaca_evals_glm_named_with_its_se():
    records, _ = alpaca_data.annotations(seed=3, n_instructions=40)
    board = alpaca_eval_leaderboard(records, reference="ref", length_controlled=True, bootstrap=20)
    direct = lc_win_rate(records, reference="ref", bootstrap=20)
    assert board.lc_variant == "alpaca_eval_length_controlled_noreg" and board.difficulty_source == "joint"
    assert board.lc_se_method == "bootstrap-instructions"
    rows = {r.model: r for r in board.rows}
    for model, result in direct.items():
        assert rows[model].lc_win_rate == pytest.approx(result.length_controlled_win_rate, abs=1e-4)
        assert rows[model].lc_standard_error == pytest.approx(result.se, abs=1e-4) and result.se > 0
        assert rows[model].discrete_win_rate == pytest.approx(result.discrete_win_rate, abs=1e-4)
        assert rows[model].n == result.n_total
    assert rows["ref"].lc_win_rate == 50.0
    # with the reference's length-gamed copies, true v1
    gamed = alpaca_data.gamed_annotations(n_instructions=40)
    board = alpaca_eval_leaderboard(records, reference="ref", length_controlled=True, bootstrap=0, gamed=gamed)
    assert board.lc_variant == "alpaca_eval_length_controlled_v1"
    assert "lc_variant" in leaderboard_csv(board).splitlines()[0]
    assert ",alpaca_eval_length_controlled_v1," in leaderboard_csv(board).splitlines()[1]


def test_length_controlled_with_a_difficulty_file_by_instruction_or_by_position():
    records, difficulty = alpaca_data.annotations(seed=4, n_instructions=30)
    by_name = {alpaca_data.instruction(i): float(d) for i, d in enumerate(difficulty)}
    direct = lc_win_rate(records, reference="ref", instruction_difficulty=by_name, bootstrap=0)
    for data in (by_name, [float(d) for d in difficulty],
                 difficulty_parse("instruction_difficulty\n" + "\n".join(str(float(d)) for d in difficulty))):
        board = alpaca_eval_leaderboard(records, reference="ref", length_controlled=True, bootstrap=0,
                                        instruction_difficulty=data)
        assert board.difficulty_source == "supplied"
        for row in board.rows[:-1]:
            assert row.lc_win_rate == pytest.approx(direct[row.model].length_controlled_win_rate, abs=1e-4)
    with pytest.raises(ValidationError) as exc:
        alpaca_eval_leaderboard(records, reference="ref", length_controlled=True, instruction_difficulty=[1.0, 2.0])
    assert "instruction_difficulty" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        alpaca_eval_leaderboard(records, reference="ref", length_controlled=True, bootstrap=0,
                                instruction_difficulty={alpaca_data.instruction(0): 1.0})
    assert "no value" in exc.value.message_dict["instruction_difficulty"][0]


def test_reference_row_as_alpaca_eval_lists_it_and_a_self_comparison_file():
    board = alpaca_eval_leaderboard(ALPACA, reference="ref")
    ref = board.rows[-1]
    assert (ref.model, ref.win_rate, ref.standard_error, ref.discrete_win_rate) == ("ref", 50.0, 0.0, 50.0)
    assert ref.n == ref.ties == 1  # one instruction ("do it") compared
    selfs = [_item("ref", "ref", 1.5, instruction=f"i{k}") for k in range(4)]
    board = alpaca_eval_leaderboard(selfs, reference="ref")
    assert [(r.model, r.win_rate, r.standard_error, r.n, r.ties) for r in board.rows] == [("ref", 50.0, 0.0, 4, 4)]


def test_discrete_win_rate_rounds_soft_preferences():
    board = alpaca_eval_leaderboard(ALPACA, reference="ref")
    x = {r.model: r for r in board.rows}["X"]
    assert x.discrete_win_rate == pytest.approx(100 * (1 + 1 + .5 + .5 + 0 + 0) / 6, abs=1e-3)


def test_record_models_both_metadata_forms():
    fields = ["response-1", "response-2"]
    assert record_models({"response-1": {"model": "a", "endpoint": "e"}, "response-2": {"model": "b"}}, fields) == \
        {"response-1": "a", "response-2": "b"}
    assert record_models({"models": {"response-1": "a", "response-2": "b"}}, fields) == \
        {"response-1": "a", "response-2": "b"}
    assert record_models({"models": "junk"}, fields) == {}


def _rank(best, worst):
    return {"ranking": [{"value": best, "rank": 1}, {"value": worst, "rank": 2}]}


@pytest.mark.django_db
def test_dataset_leaderboard_human_suggestions_both(workspace):
    dataset = DatasetFactory(workspace=workspace, min_submitted=2)
    u1, u2 = UserFactory(username="h1"), UserFactory(username="h2")
    for u in (u1, u2):
        MembershipFactory(user=u, workspace=workspace)
    q = dataset.questions.get(name="ranking")
    meta_a = {"response-1": {"model": "base", "endpoint": "e"}, "response-2": {"model": "new", "endpoint": "e"}}
    meta_b = {"models": {"response-1": "new", "response-2": "base"}}
    r1 = RecordFactory(dataset=dataset, metadata=meta_a, fields={"prompt": "p", "response-1": "aa", "response-2": "bbbb"})
    r2 = RecordFactory(dataset=dataset, metadata=meta_b, fields={"prompt": "p", "response-1": "cccccc", "response-2": "dd"})
    r3 = RecordFactory(dataset=dataset, metadata=meta_a, fields={"prompt": "p", "response-1": "aa", "response-2": "bb"})
    RecordFactory(dataset=dataset, metadata={}, fields={"prompt": "p", "response-1": "a", "response-2": "b"})
    # r1: both humans prefer new (response-2) -> new scores 1
    ResponseFactory(record=r1, user=u1, values=_rank("response-2", "response-1"))
    ResponseFactory(record=r1, user=u2, values=_rank("response-2", "response-1"))
    # r2: humans split -> .5 ; a discarded response is ignored
    ResponseFactory(record=r2, user=u1, values=_rank("response-1", "response-2"))
    ResponseFactory(record=r2, user=u2, values=_rank("response-2", "response-1"))
    u3 = UserFactory(username="h3")
    ResponseFactory(record=r2, user=u3, values=_rank("response-2", "response-1"), status=Response.Status.DISCARDED)
    ResponseFactory(record=r3, user=u3, values=_rank("response-2", "response-1"), status=Response.Status.DRAFT)
    # r3: no human response; the judge prefers base
    Suggestion.objects.create(record=r3, question=q, agent="j", value=_rank("response-1", "response-2")["ranking"])
    Suggestion.objects.create(record=r1, question=q, agent="j", value=_rank("response-1", "response-2")["ranking"])

    human = {r.model: r for r in dataset_leaderboard(dataset, reference="base", source="human").rows}
    assert human["new"].win_rate == pytest.approx(75.0) and human["new"].n == 2
    assert (human["new"].wins, human["new"].ties, human["new"].losses) == (1, 1, 0)
    assert human["new"].avg_length == pytest.approx((4 + 6) / 2)
    assert human["base"].avg_length == pytest.approx((2 + 2) / 2)
    judged = {r.model: r for r in dataset_leaderboard(dataset, reference="base", source="suggestions").rows}
    assert judged["new"].win_rate == 0.0 and judged["new"].n == 2
    both = {r.model: r for r in dataset_leaderboard(dataset, reference="base", source="both").rows}
    # humans override on r1 (1) and r2 (.5), the judge fills r3 (0) -> 1.5 / 3
    assert both["new"].win_rate == pytest.approx(50.0) and both["new"].n == 3
    # default reference = most frequent model (a tie between base and new -> alphabetical)
    assert dataset_leaderboard(dataset).reference == "base"
    csv_text = leaderboard_csv(dataset_leaderboard(dataset, reference="base"))
    assert csv_text.splitlines()[0].startswith("model,win_rate,standard_error")
    assert "new,75.0" in csv_text


def test_csv_model_names_are_formula_safe():
    board = leaderboard_compute([Comparison("ref", "=HYPERLINK(1)", 1.0), Comparison("ref", "@x", 0.0)], reference="ref")
    text = leaderboard_csv(board)
    assert "\n'=HYPERLINK(1),100.0," in text and "\n'@x,0.0," in text and "\nref,50.0," in text


def test_svg_escapes_model_names_and_draws_error_bars():
    comps = [Comparison("ref", "<script>m</script>", s) for s in (1, 0, 1, 1)]
    svg = leaderboard_svg(leaderboard_compute(comps, reference="ref"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="error-bar"' in svg
