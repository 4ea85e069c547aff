"""Leave-one-category-out: is a threshold chosen on some categories of a benchmark good on the rest.

A score that only holds on the data it was tuned on is not a result; this is the protocol that says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import IO

from anomstream.offline import nab
from anomstream.offline.backtest import SeriesRun


@dataclasses.dataclass(frozen=True, slots=True)
class Fold:
    """One held-out category: the threshold chosen without it and the scores it got."""

    category: str
    threshold: float  # NAB-optimal on the other categories
    held_out: float  # normalised score of the category at that threshold
    own_optimum: float  # the category's score at its own optimal threshold (what tuning on it would claim)
    live: float  # the category's score from the live alarms (nothing tuned)
    false_alarms: int  # at the chosen threshold (the only number for a category without windows)


@dataclasses.dataclass(frozen=True, slots=True)
class Loco:
    """Every fold of one profile, the out-of-fold corpus score and the all-data score."""

    profile: str
    folds: tuple[Fold, ...]
    out_of_fold: float  # every file scored at its own fold's threshold, normalised over the corpus
    all_data: float  # one threshold optimised over everything (the usual NAB number)


def category(run: SeriesRun) -> str:
    """The category of a run: the first folder of its key (NAB's ``realKnownCause/nyc_taxi.csv``)."""
    head, sep, _ = run.name.partition("/")
    return head if sep else "."


def loco(runs: Sequence[SeriesRun], profile_name: str = "standard") -> Loco:
    """Leave each category out in turn: choose the threshold on the others, score the one left out.

    Examples
    --------
    >>> loco([], "standard").folds
    ()
    """
    profile = nab.PROFILES[profile_name]
    groups: dict[str, list[SeriesRun]] = {}
    for run in runs:
        groups.setdefault(category(run), []).append(run)
    folds: list[Fold] = []
    files: list[nab.SeriesScore] = []
    for held, test in sorted(groups.items()):
        train = [r.nab_series() for c, rs in groups.items() if c != held for r in rs]
        chosen = nab.corpus_score(train, profile).threshold if train else math.inf
        series = [r.nab_series() for r in test]
        result = nab.corpus_score(series, profile, chosen)
        files.extend(result.files)
        live = nab.corpus_score_alarms(series, [r.alarms for r in test], profile).score
        own = nab.corpus_score(series, profile).score
        fp = sum(f.fp for f in result.files)
        folds.append(Fold(held, chosen, result.score, own, live, fp))
    everything = [r.nab_series() for r in runs]
    all_data = nab.corpus_score(everything, profile).score if runs else math.nan
    oof = nab.normalise(files, profile, math.nan).score if files else math.nan
    return Loco(profile_name, tuple(folds), oof, all_data)


def print_loco(results: Sequence[Loco], out: IO[str]) -> None:
    """One table per profile: per category, then out-of-fold and all-data rows."""
    for res in results:
        out.write(f"leave-one-category-out, NAB {res.profile}\n")
        head = ("held-out category", "threshold", "held-out", "own-opt", "live", "FP")
        out.write(f"  {head[0]:<26}" + "".join(f"{h:>10}" for h in head[1:]) + "\n")
        for f in res.folds:
            cells = (f"{f.threshold:.4f}", f"{f.held_out:.1f}", f"{f.own_optimum:.1f}", f"{f.live:.1f}")
            out.write(f"  {f.category:<26}" + "".join(f"{c:>10}" for c in cells) + f"{f.false_alarms:>10}\n")
        out.write(f"  {'out-of-fold (corpus)':<26}{'':>10}{res.out_of_fold:>10.1f}\n")
        out.write(f"  {'all data, one threshold':<26}{'':>10}{res.all_data:>10.1f}\n")
