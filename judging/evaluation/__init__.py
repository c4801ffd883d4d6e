"""Evaluation: what the judged and annotated data says about annotators, judges and models.

A package of the `judging` app, not an app of its own: its models (simulated annotators and their
answers) are judging models — they point at judging.Judge, live in judging's migrations and are
imported by judging/models.py. The usual file names:

    models.py          SimulatedAnnotator, SimulatedAnswer
    selectors.py       reads (agreement with the judges' position bias)
    simulation.py      simulated annotators (AlpacaFarm's pool), the "simulation" job kind, annotate_pairs
    leaderboards.py    win rates against a reference model (AlpacaEval), the leaderboard chart
    bestofn.py         best-of-n SFT rows
    apis.py            REST API, routed by urls_api.py (mounted at /api/v1/)
    views.py           pages, routed by urls.py (mounted at /evaluation/)

Methods named as their sources name them, pure computation (no Django):

    winrates.py        AlpacaEval's win rate, standard error and discrete win rate
    length_control.py  AlpacaEval's length-controlled win rate (length_controlled_v1 and its variants)
    l1_logistic.py     the L1-regularised logistic fit on soft labels that length control uses
    arena.py           Chatbot Arena's Bradley–Terry ratings with bootstrap intervals

The template filters stay in judging/templatetags/evaluation.py (Django finds template tags in an
app's templatetags/), the pages' templates in templates/evaluation/, the commands (simulate,
annotate_pairs, leaderboard, best_of_n) in judging/management/commands/.
"""
