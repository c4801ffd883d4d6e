"""Ratings -> ranking with ties, margin, pairwise both-orders rules, position bias, priority."""

from judging.scoring import (
    JudgeView,
    compare_value,
    margin_of,
    pair_ranking,
    pair_verdict,
    pairwise_ranking,
    pairwise_wins,
    position_bias_of,
    priority_from,
    ranking_from_ratings,
    shuffled_order,
    uncertainty_from_margin,
)


def test_ranking_from_ratings_with_ties_and_dense_ranks():
    assert ranking_from_ratings({"a": 3, "b": 5, "c": 3}) == [
        {"value": "b", "rank": 1}, {"value": "a", "rank": 2}, {"value": "c", "rank": 2}]
    assert ranking_from_ratings({"a": 4, "b": 4}) == [{"value": "a", "rank": 1}, {"value": "b", "rank": 1}]
    assert ranking_from_ratings({"x": 1.5, "y": 4.25}) == [{"value": "y", "rank": 1}, {"value": "x", "rank": 2}]


def test_margin_is_best_minus_second_best():
    assert margin_of({"a": 5, "b": 1}) == 4
    assert margin_of({"a": 5, "b": 5, "c": 1}) == 0
    assert margin_of({"a": 2, "b": 4.25, "c": 3.5}) == 0.75
    assert uncertainty_from_margin(0) == 1.0 and uncertainty_from_margin(4) == 0.0
    assert uncertainty_from_margin(1) == 0.75


def test_compare_value():
    assert compare_value({"r1": 4, "r2": 2}, ["r1", "r2"]) == 1
    assert compare_value({"r1": 4, "r2": 5}, ["r1", "r2"]) == 2
    assert compare_value({"r1": 3, "r2": 3}, ["r1", "r2"]) == 0


def test_pairwise_both_orders():
    v = pair_verdict("r1", "r2", "A", "B")  # r1 wins as A, and again as B
    assert (v.winner, v.confidence, v.consistent) == ("r1", 1.0, True)
    assert pair_ranking(v) == [{"value": "r1", "rank": 1}, {"value": "r2", "rank": 2}]
    v = pair_verdict("r1", "r2", "B", "A")
    assert v.winner == "r2" and v.confidence == 1.0
    v = pair_verdict("r1", "r2", "A", "A")  # slot A won both times: position bias
    assert (v.winner, v.confidence, v.consistent, v.favoured_position) == (None, 0.0, False, "A")
    assert pair_ranking(v) == [{"value": "r1", "rank": 1}, {"value": "r2", "rank": 1}]
    v = pair_verdict("r1", "r2", "B", "B")
    assert (v.consistent, v.favoured_position) == (False, "B")
    v = pair_verdict("r1", "r2", "tie", "A")  # tie one way, r2 the other way
    assert (v.winner, v.confidence, v.consistent) == ("r2", 0.5, True)
    v = pair_verdict("r1", "r2", "tie", "tie")
    assert (v.winner, v.confidence, v.consistent) == (None, 0.0, True)


def test_pairwise_wins_and_ranking_over_several_pairs():
    one = [pair_verdict("r1", "r2", "A", "A")]  # inconsistent: a tie
    assert pairwise_ranking(one, ["r1", "r2"]) == [{"value": "r1", "rank": 1}, {"value": "r2", "rank": 1}]
    verdicts = [pair_verdict("r1", "r2", "A", "B"),   # r1 beats r2
                pair_verdict("r1", "r3", "tie", "tie"),  # tie: 1/2 each
                pair_verdict("r2", "r3", "B", "A")]   # r3 beats r2
    assert pairwise_wins(verdicts, ["r1", "r2", "r3"]) == {"r1": 1.5, "r2": 0.0, "r3": 1.5}
    assert pairwise_ranking(verdicts, ["r1", "r2", "r3"]) == [
        {"value": "r1", "rank": 1}, {"value": "r3", "rank": 1}, {"value": "r2", "rank": 2}]


def test_position_bias_rate_and_favoured_slot():
    bias = position_bias_of([(True, None), (False, "A"), (False, "A"), (False, "B"), (True, None)])
    assert bias.as_dict() == {"pairs": 5, "inconsistent": 3, "rate": 0.6, "favoured_first": 2,
                              "favoured_second": 1, "favoured": "first"}
    assert position_bias_of([]).rate == 0.0


def test_priority_from_uncertainty_and_disagreement():
    sure = JudgeView("j1", frozenset({"a"}), 0.0)
    tie = JudgeView("j1", frozenset({"a", "b"}), 1.0)
    other = JudgeView("j2", frozenset({"b"}), 0.0)
    assert priority_from([sure]) == 0.0
    assert priority_from([tie]) == 1.0
    assert priority_from([sure, other]) == 1.0  # two sure judges disagreeing
    assert priority_from([sure, JudgeView("j2", frozenset({"a"}), 0.5)]) == 0.25
    assert priority_from([]) == 0.0


def test_shuffle_is_seeded_and_a_permutation():
    fields = ["r1", "r2", "r3", "r4"]
    assert shuffled_order(fields, "s") == shuffled_order(fields, "s")
    assert sorted(shuffled_order(fields, "s")) == fields
    assert len({tuple(shuffled_order(fields, str(i))) for i in range(30)}) > 1
