"""Resolving one record's answers into preference pairs (the rules are in the package docs)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PairResult:
    """One resolved pair. Its margins, each with one meaning (0.0 for a tie):
    vote_margin  (winning votes - losing votes) / voters;
    rank_margin  mean rank of the rejected field - mean rank of the chosen one;
    score_margin the voters' scores (a graded preference's strength, a judge's score), signed (+ when
                 the voter agrees with the resolved winner) and averaged; None unless every voter scored.
    `margin` is the one of them that the resolution reads (min_margin filters on it)."""

    chosen: str
    rejected: str
    agreement: float
    margin: float
    tie: bool
    vote_margin: float = 0.0
    rank_margin: float = 0.0
    score_margin: float | None = None


def record_pairs(fields: tuple[str, ...], votes: list[dict[str, int]], *, resolve: str, pairs: str,
                 include_ties: bool, scores: list[float | None] | None = None,
                 margin_by: str | None = None, voters: list | None = None, model=None) -> list[PairResult]:
    """resolve_pairs, with a short way for the common case: two fields, one annotator, no scores."""
    if len(fields) == 2 and len(votes) == 1 and scores is None and resolve != "weighted":
        return one_vote_pair(fields, votes[0], resolve=resolve, include_ties=include_ties)
    return resolve_pairs(fields, votes, resolve=resolve, pairs=pairs, include_ties=include_ties, scores=scores,
                         margin_by=margin_by, voters=voters, model=model)


def one_vote_pair(fields: tuple[str, str], vote: dict[str, int], *, resolve: str,
                  include_ties: bool) -> list[PairResult]:
    """The pair of a two-field record with a single vote (no tallies needed)."""
    a, b = fields
    ra, rb = vote.get(a), vote.get(b)
    if ra is None or rb is None:
        return []
    ranks = float(abs(ra - rb))
    margin = ranks if resolve == "mean_rank" else 1.0
    if ra < rb:
        return [PairResult(a, b, 1.0, margin, False, vote_margin=1.0, rank_margin=ranks)]
    if rb < ra:
        return [PairResult(b, a, 1.0, margin, False, vote_margin=1.0, rank_margin=ranks)]
    if include_ties:
        return [PairResult(a, b, 1.0, 0.0, True)]
    return []


def resolve_pairs(fields: tuple[str, ...], votes: list[dict[str, int]], *, resolve: str, pairs: str,
                  include_ties: bool, scores: list[float | None] | None = None,
                  margin_by: str | None = None, voters: list | None = None, model=None) -> list[PairResult]:
    """The pairs of one record, resolved across its voters (annotators or suggestion agents).
    margin_by (votes | ranks | scores) names the margin min_margin reads; by default the votes under
    majority, the ranks under mean_rank, and for scored voters (suggestions) their scores when every
    voter has one, else the ranks. Scores that are missing for a voter fall back to the ranks.
    resolve=weighted needs `voters` (who gave each ranking, as the competence model names them) and
    `model` (an annotation.agreement.competence.CompetenceFit)."""
    if not votes:
        return []
    present = [f for f in fields if any(f in v for v in votes)]
    if len(present) < 2:
        return []
    record = _RecordVotes(present, votes, resolve=resolve, include_ties=include_ties, scores=scores,
                          margin_by=margin_by, voters=voters, model=model)
    if pairs == "all":
        return [r for r in (record.pair(a, b) for a, b in record.tally) if r is not None]
    return record.best_pairs(pairs)


class _RecordVotes:
    """One record's votes: tallies per pair of fields (in field order), the resolved order of the
    fields, and each pair's winner, agreement and margin."""

    def __init__(self, present: list[str], votes: list[dict[str, int]], *, resolve: str, include_ties: bool,
                 scores: list[float | None] | None, margin_by: str | None = None, voters: list | None = None,
                 model=None):
        self.present = present
        self.votes = votes
        self.n = len(votes)
        self.index = {f: i for i, f in enumerate(present)}
        self.tally = _tally(present, votes)
        self.include_ties = include_ties
        self.scores = scores
        self.use_scores = scores is not None and len(scores) == self.n and all(s is not None for s in scores)
        self.means = _mean_ranks(present, votes)
        self.majority = resolve == "majority"
        self.weighted = _weighted_pairs(self.tally, votes, voters, model) if resolve == "weighted" else None
        if self.majority:
            score = _copeland(present, self.tally)
            self.key = {f: -score[f] for f in present}
        elif self.weighted is not None:
            score = _copeland(present, {pair: (w == pair[0], w == pair[1], 0) for pair, (w, _p) in self.weighted.items()})
            self.key = {f: -score[f] for f in present}
        else:
            self.key = self.means
        if margin_by is None:
            margin_by = "scores" if scores is not None else "ranks" if resolve == "mean_rank" else "votes"
        if margin_by == "scores" and not self.use_scores:
            margin_by = "ranks"
        self.margin_by = margin_by

    def pair(self, a: str, b: str) -> PairResult | None:
        if self.index[a] > self.index[b]:
            a, b = b, a
        wa, wb, t = self.tally[(a, b)]
        if self.majority:
            winner = a if wa > wb else b if wb > wa else None
        elif self.weighted is not None:
            winner, probability = self.weighted[(a, b)]
        else:
            winner = a if self.means[a] < self.means[b] else b if self.means[b] < self.means[a] else None
        if winner is None:
            if not self.include_ties:
                return None
            agreement = probability if self.weighted is not None else t / self.n
            return PairResult(a, b, agreement, 0.0, True, score_margin=0.0 if self.use_scores else None)
        loser = b if winner == a else a
        w_votes, l_votes = (wa, wb) if winner == a else (wb, wa)
        margins = {"votes": (w_votes - l_votes) / self.n, "ranks": float(self.means[loser] - self.means[winner]),
                   "scores": self._score_margin(winner, loser)}
        agreement = probability if self.weighted is not None else w_votes / self.n
        return PairResult(winner, loser, agreement, float(margins[self.margin_by]), False,
                          vote_margin=float(margins["votes"]), rank_margin=margins["ranks"],
                          score_margin=margins["scores"])

    def _score_margin(self, winner: str, loser: str) -> float | None:
        if not self.use_scores:
            return None
        signed = []
        for v, s in zip(self.votes, self.scores):
            rw, rl = v.get(winner), v.get(loser)
            if rw is None or rl is None or rw == rl:
                signed.append(0.0)
            else:
                signed.append(float(s) if rw < rl else -float(s))
        return sum(signed) / len(signed)

    def best_pairs(self, pairs: str) -> list[PairResult]:
        """best_worst: the best field vs the worst; best_vs_rest: the best vs each other field."""
        key, present = self.key, self.present
        best_key = min(key.values())
        worst_key = max(key.values())
        best = [f for f in present if key[f] == best_key]
        worst = [f for f in present if key[f] == worst_key]
        if (len(best) > 1 or (pairs == "best_worst" and len(worst) > 1)) and not self.include_ties:
            return []
        top = best[0]
        if pairs == "best_worst":
            bottom = worst[-1]
            if bottom == top:
                return []
            r = self.pair(top, bottom)
            return [r] if r is not None else []
        return [r for r in (self.pair(top, f) for f in present if f != top) if r is not None]


def _tally(present: list[str], votes: list[dict[str, int]]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """For each pair a < b in field order: (votes a better, votes b better, tie votes)."""
    tally: dict[tuple[str, str], tuple[int, int, int]] = {}
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            wa = wb = t = 0
            for v in votes:
                ra = v.get(a)
                rb = v.get(b)
                if ra is None or rb is None:
                    continue
                if ra < rb:
                    wa += 1
                elif rb < ra:
                    wb += 1
                else:
                    t += 1
            tally[(a, b)] = (wa, wb, t)
    return tally


def _weighted_pairs(tally, votes: list[dict[str, int]], voters: list | None, model) -> dict:
    """resolve=weighted: for each pair (a, b), the competence-weighted vote of the record's voters
    (CompetenceFit.vote): the winning field (None for a tie or an even split) and its probability."""
    from ..agreement.rankings import FIRST, SECOND, pair_label

    if model is None or voters is None or len(voters) != len(votes):
        raise ValueError("resolve=weighted needs the voters and the competence model")
    out = {}
    for a, b in tally:
        labelled = [(who, label) for who, v in zip(voters, votes) if (label := pair_label(v, a, b)) is not None]
        label, probability = model.vote(labelled)
        out[(a, b)] = ({FIRST: a, SECOND: b}.get(label), round(probability, 4))
    return out


def _copeland(present: list[str], tally: dict[tuple[str, str], tuple[int, int, int]]) -> dict[str, int]:
    """Each field's pairs won minus pairs lost (the majority resolution's order)."""
    score = dict.fromkeys(present, 0)
    for (a, b), (wa, wb, _t) in tally.items():
        if wa > wb:
            score[a] += 1
            score[b] -= 1
        elif wb > wa:
            score[b] += 1
            score[a] -= 1
    return score


def _mean_ranks(present: list[str], votes: list[dict[str, int]]) -> dict[str, float]:
    means = {}
    for f in present:
        ranks = [v[f] for v in votes if f in v]
        means[f] = sum(ranks) / len(ranks)
    return means
