"""AlpacaEval's win rates and length-controlled win rate, checked against alpaca_eval's own
functions (alpaca_eval 0.6.6) on generated annotations: several models, some longer than the reference and some
shorter, ties (1.5 and the legacy 0), soft preferences from a weighted judge, and judge failures (None).

Agreement: win_rate, standard_error and discrete_win_rate to 1e-9 points; length-controlled win rates to 0.05
points (percent; measured up to 0.013), joint instruction difficulties to 5e-3 (measured up to 1.1e-3). The
remaining gap is liblinear's stopping tolerance (tol=1e-4): our L1 fits are solved to float precision and reach a
lower objective than liblinear's on the same design matrix (checked below).
"""
import math
import warnings
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest
import sklearn
from alpaca_eval.metrics import get_winrate, glm_winrate

from judging.evaluation.l1_logistic import l1_logistic, l1_objective
from judging.evaluation.length_control import GLMS, joint_instruction_difficulty, lc_win_rate
from judging.evaluation.winrates import alpaca_eval_win_rates
from tests.judging.evaluation.alpaca_data import GAMED, MODELS, REFERENCE, annotations, gamed_annotations, instruction

LC_TOLERANCE = 0.05  # percentage points
DIFFICULTY_TOLERANCE = 5e-3
N = 80


@pytest.fixture(scope="module")
def data():
    records, difficulty = annotations(seed=0, n_instructions=N)
    return records, difficulty, gamed_annotations(seed=1, n_instructions=N)


def _by_model(records):
    out = {}
    for r in records:
        out.setdefault(r["generator_2"], []).append(r)
    return out


def _write_df_gamed(path, gamed, difficulty):
    """AlpacaEval's df_gamed.csv: the gamed baselines' rows (instruction index, preference in [0, 1], standardised
    length difference) and the instruction difficulty, which alpaca_eval reads from it for every GLM."""
    frames = []
    for name, rows in _by_model(gamed).items():
        df = pd.DataFrame(rows)
        delta = df["output_1"].str.len() - df["output_2"].str.len()
        frames.append(pd.DataFrame({
            "model": name, "index": range(len(df)),
            "preference": df["preference"].astype(float).replace({0.0: 1.5}) - 1,
            "std_delta_len": delta / delta.std(), "instruction_difficulty": difficulty, "not_gamed_baseline": False}))
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)


@pytest.fixture
def alpaca_lc(monkeypatch, tmp_path):
    """alpaca_eval's get_length_controlled_winrate per model, reading our generated df_gamed.csv instead of the Hub."""
    def run(records, difficulty, gamed, glm):
        path = tmp_path / "df_gamed.csv"
        _write_df_gamed(path, gamed, difficulty)
        monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kwargs: str(path))
        with sklearn.config_context(), warnings.catch_warnings():  # it switches on sklearn's metadata routing
            warnings.simplefilter("ignore")
            return {model: glm_winrate.get_length_controlled_winrate(
                        pd.DataFrame(rows), glm_name=glm, save_weights_dir=None, is_warn_extreme_changes=False)
                    for model, rows in _by_model(records).items()}
    return run


def _assert_lc_agrees(ours, theirs):
    assert set(ours) == set(theirs) == set(MODELS)
    for model, result in ours.items():
        assert result.length_controlled_win_rate == pytest.approx(
            theirs[model]["length_controlled_winrate"], abs=LC_TOLERANCE), model
        assert result.lc_standard_error == pytest.approx(theirs[model]["lc_standard_error"], abs=LC_TOLERANCE)


# --- win_rate, standard_error, discrete_win_rate -------------------------------------------------------------------

def test_win_rates_match_alpaca_eval_get_winrate(data):
    records, _, _ = data
    for model, rows in _by_model(records).items():
        prefs = [r["preference"] for r in rows]
        assert any(p in (0, 1.5) for p in prefs) and any(p is not None and p % 0.5 for p in prefs)
        theirs = get_winrate(pd.DataFrame({"preference": [np.nan if p is None else p for p in prefs]}))
        ours = alpaca_eval_win_rates(prefs)
        for key in ("win_rate", "standard_error", "discrete_win_rate"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9), (model, key)
        for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
            assert ours[key] == theirs[key], (model, key)


def test_discrete_win_rate_rounds_soft_preferences_and_keeps_exact_ties():
    prefs = [1, 2, 1.5, 0, 1.49, 1.51, 1.73, None]
    ours = alpaca_eval_win_rates(prefs)
    # hard: 0, 1, .5, .5, 0, 1, 1 (None left out)
    assert ours["discrete_win_rate"] == pytest.approx(100 * 4 / 7)
    assert ours["win_rate"] == pytest.approx(100 * (0 + 1 + .5 + .5 + .49 + .51 + .73) / 7)
    assert (ours["n_wins"], ours["n_wins_base"], ours["n_draws"], ours["n_total"]) == (3, 2, 2, 7)
    theirs = get_winrate(pd.DataFrame({"preference": [np.nan if p is None else p for p in prefs]}))
    assert ours["discrete_win_rate"] == pytest.approx(theirs["discrete_win_rate"])


def test_win_rates_reject_a_preference_outside_1_2():
    with pytest.raises(ValueError, match=r"preference \[1\]: 2.5 is outside \[1, 2\]"):
        alpaca_eval_win_rates([1, 2.5])


# --- length-controlled win rate against alpaca_eval -----------------------------------------------------------------

@pytest.mark.parametrize("glm", ["length_controlled_v1", "length_controlled_noreg", "length_controlled_minimal"])
def test_lc_matches_alpaca_eval_with_supplied_difficulty(data, alpaca_lc, glm):
    records, difficulty, gamed = data
    mapping = {instruction(i): float(d) for i, d in enumerate(difficulty)}
    ours = lc_win_rate(records, reference=REFERENCE, instruction_difficulty=mapping,
                       gamed_annotations=gamed if glm == "length_controlled_v1" else None, glm=glm, bootstrap=0)
    _assert_lc_agrees(ours, alpaca_lc(records, difficulty, gamed, glm))
    for result in ours.values():
        assert result.variant == f"alpaca_eval_{glm}"
        assert result.difficulty_source == (None if glm == "length_controlled_minimal" else "supplied")
        assert list(result.weights)[-1] == "not_gamed_baseline.astype(float)"


def test_our_l1_fit_reaches_at_least_liblinears_optimum_on_alpaca_evals_design(data, monkeypatch, tmp_path):
    records, difficulty, gamed = data
    path = tmp_path / "df_gamed.csv"
    _write_df_gamed(path, gamed, difficulty)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kwargs: str(path))
    for model, rows in _by_model(records).items():
        with sklearn.config_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train, _, weight = glm_winrate._get_featurized_data(
                pd.DataFrame(rows), formula=GLMS["length_controlled_v1"]["formula"], regularize_to_baseline_lambda=0.2)
            keep = train["preference"].notna().to_numpy()
            train, weight = train[keep], weight.to_numpy()[keep]
            fitted = glm_winrate.fit_LogisticRegressionCV(train, "preference", sample_weight=weight)
        X, p, C = train.drop(columns="preference").to_numpy(), train["preference"].to_numpy(), fitted.C_[0]
        ours = l1_logistic(X, p, weight, C)
        assert l1_objective(X, p, weight, C, ours) <= l1_objective(X, p, weight, C, fitted.coef_[0]) + 1e-9
        assert np.abs(ours - fitted.coef_[0]).max() < 0.01, model


def _alpaca_joint_difficulty(records, gamed):
    """The joint fit of alpaca_eval's notebooks/instruction_difficulty.ipynb, with alpaca_eval's own functions."""
    df = pd.DataFrame(records + gamed)
    df = df[df["preference"].notna()].reset_index(drop=True)
    df["index"] = df["instruction"].map({instruction(i): i for i in range(N)})
    df["preference"] = df["preference"].astype(float).replace({0.0: 1.5}) - 1
    df["delta"] = df["output_1"].str.len() - df["output_2"].str.len()
    df["std_delta_len"] = df["delta"] / df.groupby("generator_2")["delta"].transform("std")
    df["not_gamed_baseline"] = ~df["generator_2"].isin(list(GAMED))
    formula = ("C(generator_2):np.tanh(std_delta_len) + C(generator_2) + C(index) "
               "+ not_gamed_baseline.astype(float) - 1")
    with sklearn.config_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, _ = glm_winrate.make_dmatrix_for_model(df, df.head(1), formula=formula)
        model = glm_winrate.fit_LogisticRegressionCV(train, "preference", is_ytrue_proba=True, n_splits=5)
    weights = dict(zip(model.feature_names_in_, model.coef_[0], strict=True))
    return np.array([0.0] + [weights[f"C(index)[T.{i}]"] for i in range(1, N)])


def test_lc_matches_alpaca_eval_with_jointly_estimated_difficulty(data, alpaca_lc):
    records, true_difficulty, gamed = data
    theirs_difficulty = _alpaca_joint_difficulty(records, gamed)
    ours_difficulty = joint_instruction_difficulty(records, reference=REFERENCE, gamed_annotations=gamed)
    ours_array = np.array([ours_difficulty[instruction(i)] for i in range(N)])
    assert np.abs(ours_array - theirs_difficulty).max() < DIFFICULTY_TOLERANCE
    assert np.count_nonzero(ours_array) > 0

    ours = lc_win_rate(iter(records), reference=REFERENCE, gamed_annotations=iter(gamed), bootstrap=0)
    _assert_lc_agrees(ours, alpaca_lc(records, theirs_difficulty, gamed, "length_controlled_v1"))
    assert {r.difficulty_source for r in ours.values()} == {"joint"}
    assert {r.variant for r in ours.values()} == {"alpaca_eval_length_controlled_v1"}


def test_joint_difficulty_without_gamed_rows_matches_and_tracks_the_true_difficulty(data):
    records, true_difficulty, _ = data
    ours = joint_instruction_difficulty(records, reference=REFERENCE)
    theirs = _alpaca_joint_difficulty(records, [])
    ours_array = np.array([ours[instruction(i)] for i in range(N)])
    assert np.abs(ours_array - theirs).max() < DIFFICULTY_TOLERANCE
    # a dummy's weight is how much easier the instruction is for the models: minus the generated difficulty
    assert np.corrcoef(ours_array, -true_difficulty)[0, 1] > 0.6


# --- behaviour --------------------------------------------------------------------------------------------------

def test_length_control_discounts_length_and_defaults_to_noreg_without_gamed_rows(data):
    records, difficulty, _ = data
    mapping = {instruction(i): float(d) for i, d in enumerate(difficulty)}
    results = lc_win_rate(records, reference=REFERENCE, instruction_difficulty=mapping, bootstrap=0)
    assert {r.variant for r in results.values()} == {"alpaca_eval_length_controlled_noreg"}
    longer, shorter = results["long_strong"], results["concise_strong"]
    assert longer.length_controlled_win_rate < longer.win_rate - 5  # its wins were partly bought with length
    assert shorter.length_controlled_win_rate > shorter.win_rate + 5


def test_records_with_the_reference_second_and_comparison_objects_give_the_same_result(data):
    records, difficulty, _ = data
    mapping = {instruction(i): float(d) for i, d in enumerate(difficulty)}
    flipped = [{**r, "generator_1": r["generator_2"], "generator_2": r["generator_1"], "output_1": r["output_2"],
                "output_2": r["output_1"], "preference": None if r["preference"] is None
                else 3 - (1.5 if r["preference"] == 0 else r["preference"])} for r in records]
    Comparison = namedtuple("Comparison", "model_1 model_2 score length_1 length_2 key")  # preflab's attributes
    comparisons = [Comparison(REFERENCE, r["generator_2"], None if r["preference"] is None
                              else (0.5 if r["preference"] == 0 else r["preference"] - 1),
                              len(r["output_1"]), len(r["output_2"]), r["instruction"]) for r in records]
    runs = [lc_win_rate(x, reference=REFERENCE, instruction_difficulty=mapping, bootstrap=5)
            for x in (records, flipped, comparisons)]
    for model in MODELS:
        values = {(round(run[model].length_controlled_win_rate, 9), round(run[model].se, 9), run[model].n_total)
                  for run in runs}
        assert len(values) == 1, (model, values)


def test_bootstrap_se_is_seeded_named_and_close_to_the_spread_across_datasets():
    one = {"plain": (0.3, 1.3)}
    lcs, ses = [], []
    for seed in range(14):
        records, difficulty = annotations(seed=100 + seed, n_instructions=N, models=one)
        mapping = {instruction(i): float(d) for i, d in enumerate(difficulty)}
        result = lc_win_rate(records, reference=REFERENCE, instruction_difficulty=mapping, bootstrap=60,
                             seed=seed)["plain"]
        lcs.append(result.length_controlled_win_rate)
        ses.append(result.se)
    assert result.se_method == "bootstrap-instructions" and result.n_bootstrap == 60
    assert result.ci_low < result.length_controlled_win_rate < result.ci_high
    spread = float(np.std(lcs, ddof=1))
    assert 0.6 < np.mean(ses) / spread < 1.6, (np.mean(ses), spread)
    again = lc_win_rate(records, reference=REFERENCE, instruction_difficulty=mapping, bootstrap=60, seed=13)["plain"]
    other = lc_win_rate(records, reference=REFERENCE, instruction_difficulty=mapping, bootstrap=60, seed=14)["plain"]
    assert again.se == result.se and other.se != result.se


# --- bad input --------------------------------------------------------------------------------------------------

def test_v1_without_gamed_rows_is_refused_with_the_way_out(data):
    records, _, _ = data
    with pytest.raises(ValueError, match="length_controlled_noreg"):
        lc_win_rate(records, reference=REFERENCE, glm="length_controlled_v1")
    with pytest.raises(ValueError, match="glm must be one of"):
        lc_win_rate(records, reference=REFERENCE, glm="length_controlled_v2")
    assert set(GLMS) == set(glm_winrate.GLM_INFO)
    for name, info in GLMS.items():
        assert info["formula"] == glm_winrate.GLM_INFO[name]["formula"]
        assert info["regularize_to_baseline_lambda"] == glm_winrate.GLM_INFO[name]["regularize_to_baseline_lambda"]


def test_bad_records_name_the_record():
    good = {"instruction": "q", "generator_1": "ref", "generator_2": "m", "output_1": "a", "output_2": "bb",
            "preference": 2}
    with pytest.raises(ValueError, match=r"annotations\[1\]: neither generator"):
        lc_win_rate([good, {**good, "generator_1": "x"}], reference="ref")
    with pytest.raises(ValueError, match=r"annotations\[0\].preference: 3.0 is outside"):
        lc_win_rate([{**good, "preference": 3}], reference="ref")
    with pytest.raises(ValueError, match=r"annotations\[0\]: needs output_2"):
        lc_win_rate([{k: v for k, v in good.items() if k != "output_2"}], reference="ref")
    with pytest.raises(ValueError, match="estimating instruction difficulties needs at least 5"):
        lc_win_rate([good] * 4, reference="ref")
    with pytest.raises(ValueError, match="instruction_difficulty has no value for 1 instruction"):
        lc_win_rate([good] * 6, reference="ref", instruction_difficulty={"other": 0.0})


def test_a_model_with_too_few_rows_gets_win_rates_and_a_note():
    rows = [{"instruction": f"q{i}", "generator_1": "ref", "generator_2": "m", "length_1": 10, "length_2": 12 + i,
             "preference": 2 if i % 2 else 1} for i in range(4)]
    result = lc_win_rate(rows, reference="ref", instruction_difficulty={f"q{i}": 0.0 for i in range(4)})["m"]
    assert result.win_rate == 50 and result.length_controlled_win_rate is None
    assert "needs at least 5" in result.note
    assert math.isfinite(result.discrete_win_rate)


# --- end to end: the leaderboard a user downloads --------------------------------------------------------------------

@pytest.mark.django_db
def test_the_api_leaderboard_matches_alpaca_eval_v1_with_a_positional_difficulty_file(data, alpaca_lc, admin_user):
    """POST /api/v1/leaderboards/alpaca-eval/ with AlpacaEval's CSV difficulty file (by position) and the gamed
    annotations: every row's win rate, SE, discrete win rate and counts equal get_winrate's, and its LC win rate
    equals get_length_controlled_winrate's (length_controlled_v1)."""
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import client_for

    records, difficulty, gamed = data
    csv_text = "instruction_difficulty\n" + "\n".join(repr(float(d)) for d in difficulty)
    response = client_for(admin_user).post(
        "/api/v1/leaderboards/alpaca-eval/?length_controlled=true&bootstrap=0",
        {"reference": REFERENCE, "annotations": SimpleUploadedFile("a.json", json.dumps(records).encode()),
         "instruction_difficulty": SimpleUploadedFile("instruction_difficulty.csv", csv_text.encode()),
         "gamed_annotations": SimpleUploadedFile("gamed.json", json.dumps(gamed).encode())}, format="multipart")
    assert response.status_code == 200, response.content[:500]
    board = response.json()
    assert board["lc_variant"] == "alpaca_eval_length_controlled_v1" and board["difficulty_source"] == "supplied"
    theirs_lc = alpaca_lc(records, difficulty, gamed, "length_controlled_v1")
    rows = {row["model"]: row for row in board["rows"]}
    worst = 0.0
    for model, model_rows in _by_model(records).items():
        prefs = [np.nan if r["preference"] is None else r["preference"] for r in model_rows]
        theirs = get_winrate(pd.DataFrame({"preference": prefs}))
        row = rows[model]
        for ours_key, their_key in (("win_rate", "win_rate"), ("standard_error", "standard_error"),
                                    ("discrete_win_rate", "discrete_win_rate")):
            assert row[ours_key] == pytest.approx(theirs[their_key], abs=1e-4), (model, ours_key)
        assert (row["n"], row["wins"], row["losses"], row["ties"]) == (
            theirs["n_total"], theirs["n_wins"], theirs["n_wins_base"], theirs["n_draws"])
        gap = abs(row["lc_win_rate"] - theirs_lc[model]["length_controlled_winrate"])
        worst = max(worst, gap)
        print(f"{model}: LC preflab {row['lc_win_rate']:.4f} alpaca_eval "
              f"{theirs_lc[model]['length_controlled_winrate']:.4f}; win rate {row['win_rate']:.4f} "
              f"alpaca_eval {theirs['win_rate']:.4f}")
    print(f"largest LC gap: {worst:.4f} points")
    assert worst < LC_TOLERANCE
    assert rows[REFERENCE]["win_rate"] == 50.0 and rows[REFERENCE]["standard_error"] == 0.0
