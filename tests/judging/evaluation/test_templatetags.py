"""The evaluation pages' number filters: fixed decimals, percentages, a dash for nothing."""
from judging.templatetags.evaluation import num, pct


def test_pct_and_num_format_and_show_a_dash_for_missing_values():
    assert pct(0.657) == "65.7%" and pct("0.5", 0) == "50%" and pct(1) == "100.0%"
    assert num(2.345) == "2.3" and num(2.345, 3) == "2.345" and num(1200, 0) == "1200"
    for missing in (None, "", "n/a", [1]):
        assert pct(missing) == "—" and num(missing) == "—"
