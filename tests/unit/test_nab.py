"""NAB scorer: rewards, penalties, probation, normalisation and threshold choice, pinned by hand.

Notation in the comments: S(p) = 2 * sigmoid(-5 p) - 1 = tanh(-5 p / 2), NAB's scaled sigmoid.
A row inside a window [L, R] (width W = R - L + 1) earns tp * S(-(R - i + 1) / W) / S(-1); a false
positive j rows after a window of width W costs fp * S(j / (W - 1)); any other false positive costs fp.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from anomstream.offline.nab import (
    PROFILES,
    CostProfile,
    Series,
    corpus_score,
    corpus_score_alarms,
    load_windows,
    probation_rows,
    score_alarms,
    score_series,
)
from anomstream.offline.nab_sweep import SweepPoints, threshold_table

NAB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"
STANDARD = PROFILES["standard"]
N = 100  # probationary period: floor(0.15 * 100) = 15 rows
T0 = np.datetime64("2024-01-01T00:00", "us")


def make_series(
    n: int = N,
    windows: tuple[tuple[int, int], ...] = ((40, 50),),
    scores: dict[int, float] | None = None,
    name: str = "s",
) -> Series:
    ts = T0 + np.arange(n) * np.timedelta64(1, "m")
    values = np.zeros(n)
    for row, value in (scores or {}).items():
        values[row] = value
    return Series(name, ts, values, [(ts[a], ts[b]) for a, b in windows])


def alarms_at(*rows: int, n: int = N) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[list(rows)] = True
    return flags


def test_profiles_match_nab_config() -> None:
    """The three profiles carry NAB's config/profiles.json weights."""
    assert PROFILES["standard"] == CostProfile(tp=1.0, fp=0.11, fn=1.0, tn=1.0)
    assert PROFILES["reward_low_FP_rate"] == CostProfile(tp=1.0, fp=0.22, fn=1.0, tn=1.0)
    assert PROFILES["reward_low_FN_rate"] == CostProfile(tp=1.0, fp=0.11, fn=2.0, tn=1.0)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0), (7, 1), (100, 15), (101, 15), (4999, 749), (5000, 750), (22695, 750)],
)
def test_probation_rows(n: int, expected: int) -> None:
    """Probation is min(floor(0.15 n), 750) rows."""
    assert probation_rows(n) == expected


@pytest.mark.parametrize("tp", [1.0, 2.0])
def test_detection_at_window_start_earns_full_tp(tp: float) -> None:
    """An alarm on a window's first row earns exactly the tp weight."""
    # Window rows 40..50, W = 11; alarm at i = 40: p = -(50 - 40 + 1) / 11 = -1,
    # reward = tp * S(-1) / S(-1) = tp (S(-1) = tanh(2.5) = 0.98661).
    profile = CostProfile(tp=tp, fp=0.11, fn=1.0)
    result = score_alarms(make_series(), alarms_at(40), profile)
    assert result.score == pytest.approx(tp, abs=1e-12)
    assert (result.tp, result.fp, result.windows_detected) == (1, 0, 1)


def test_detection_at_window_end_earns_little() -> None:
    """An alarm on a window's last row earns S(-1/W) / S(-1) of tp."""
    # i = 50: p = -(50 - 50 + 1) / 11 = -1/11; S(-1/11) = tanh(5/22) = 0.223439;
    # reward = 0.223439 / 0.986614 = 0.226470.
    result = score_alarms(make_series(), alarms_at(50), STANDARD)
    assert result.score == pytest.approx(math.tanh(5 / 22) / math.tanh(2.5), rel=1e-12)
    assert result.score == pytest.approx(0.226470, abs=1e-6)


def test_only_the_earliest_alarm_in_a_window_counts() -> None:
    """Several alarms in one window score as the earliest one; NAB still counts every row as a tp."""
    result = score_alarms(make_series(), alarms_at(40, 45, 50), STANDARD)
    assert result.score == pytest.approx(1.0, abs=1e-12)
    assert (result.tp, result.windows_detected) == (3, 1)


def test_false_positive_right_after_window_costs_less() -> None:
    """A false positive just after a window costs fp * S(j / (W - 1)); one far away costs fp."""
    series = make_series()
    # Missed window: -fn = -1. Alarm at row 51: p = |50 - 51| / (11 - 1) = 0.1,
    # S(0.1) = -tanh(0.25) = -0.244919, cost 0.11 * -0.244919 = -0.026941.
    late = score_alarms(series, alarms_at(51), STANDARD)
    assert late.score == pytest.approx(-1.0 - 0.11 * math.tanh(0.25), rel=1e-12)
    assert late.score == pytest.approx(-1.026941, abs=1e-6)
    # Row 20 precedes every window: full cost, -1 - 0.11 = -1.11.
    before = score_alarms(series, alarms_at(20), STANDARD)
    assert before.score == pytest.approx(-1.11, rel=1e-12)
    # Row 90: p = 40 / 10 = 4 > 3, so S is pinned to -1: again -1.11.
    far_after = score_alarms(series, alarms_at(90), STANDARD)
    assert far_after.score == pytest.approx(-1.11, rel=1e-12)
    assert (late.fp, before.fp, far_after.fp) == (1, 1, 1)


def test_false_positive_after_one_row_window_costs_full_fp() -> None:
    """After a one-row window (where NAB divides by zero) a false positive costs the full fp."""
    result = score_alarms(make_series(windows=((40, 40),)), alarms_at(41), STANDARD)
    assert result.score == pytest.approx(-1.0 - 0.11, rel=1e-12)


def test_probationary_alarm_is_ignored() -> None:
    """Alarms on the first floor(0.15 n) rows change nothing; the next row is scored."""
    series = make_series()
    ignored = score_alarms(series, alarms_at(0, 10, 14), STANDARD)
    assert ignored.score == -1.0  # only the missed window: -fn
    assert (ignored.tp, ignored.fp) == (0, 0)
    first_scored = score_alarms(series, alarms_at(15), STANDARD)
    assert first_scored.score == pytest.approx(-1.11, rel=1e-12)  # -1 - 0.11


def test_window_reaching_into_probation_keeps_its_full_width() -> None:
    """A window starting in the probationary period keeps its full width in the reward."""
    # Window rows 10..20, W = 11, probation 15 rows. Alarm at 15: p = -(20 - 15 + 1) / 11 = -6/11,
    # reward = S(-6/11) / S(-1) = tanh(15/11) / tanh(2.5) = 0.889135.
    series = make_series(windows=((10, 20),))
    result = score_alarms(series, alarms_at(15), STANDARD)
    assert result.score == pytest.approx(math.tanh(15 / 11) / math.tanh(2.5), rel=1e-12)
    assert result.score == pytest.approx(0.889135, abs=1e-6)


def test_threshold_selects_rows_at_or_above_it() -> None:
    """A fixed threshold alarms on rows scoring >= it, including thresholds between scores."""
    series = make_series(scores={40: 0.9, 45: 0.6})
    assert score_series(series, 0.9, STANDARD).score == pytest.approx(1.0, abs=1e-12)
    assert score_series(series, 0.75, STANDARD).score == pytest.approx(1.0, abs=1e-12)
    assert score_series(series, 0.95, STANDARD).score == -1.0  # nothing fires: -fn
    # Every other row scores 0: at threshold 0 all 85 scored rows fire, 74 of them outside the window.
    assert score_series(series, 0.0, STANDARD).fp == 85 - 11


def test_series_score_counts_rows_like_nab() -> None:
    """tp/tn/fp/fn count scored rows (past probation), as NAB's ThresholdScore does."""
    result = score_alarms(make_series(), alarms_at(5, 20, 41, 42), STANDARD)
    # 85 scored rows: 11 in the window (2 alarmed), 74 outside (1 alarmed; row 5 is probationary).
    assert (result.tp, result.fn, result.fp, result.tn) == (2, 9, 1, 73)


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_null_and_perfect_detectors_normalise_to_0_and_100(profile_name: str) -> None:
    """Never firing scores 0 and one alarm per window start scores 100, on every profile."""
    profile = PROFILES[profile_name]
    corpus = [
        make_series(windows=((30, 40), (60, 70)), name="two"),
        make_series(n=200, windows=((100, 119),), name="one"),
        make_series(windows=(), name="none"),
    ]
    null = corpus_score_alarms(corpus, [alarms_at(), alarms_at(n=200), alarms_at()], profile)
    perfect_alarms = [alarms_at(30, 60), alarms_at(100, n=200), alarms_at()]
    perfect = corpus_score_alarms(corpus, perfect_alarms, profile)
    # 3 windows: null = -3 fn, perfect = 3 tp.
    assert (null.null, null.perfect) == (-3 * profile.fn, 3 * profile.tp)
    assert null.score == 0.0
    assert perfect.score == pytest.approx(100.0, abs=1e-9)
    assert math.isnan(perfect.threshold)


def test_constant_detector_scores_zero_at_its_optimal_threshold() -> None:
    """NAB's null detector (a constant score) is best off never firing and normalises to 0."""
    series = make_series()
    constant = Series("c", series.timestamps, np.full(N, 0.5), series.windows)
    result = corpus_score([constant], STANDARD)
    # Candidates: 1.1 (no alarm: -1) or 0.5 (all 85 rows: +1 - 74 * 0.11-ish): no alarm wins.
    assert (result.threshold, result.score) == (1.1, 0.0)


def test_optimisation_finds_threshold_separating_a_clear_anomaly() -> None:
    """The optimal shared threshold sits at the anomaly's score, above all the noise."""
    rng = np.random.default_rng(7)
    noisy = make_series()
    scores = rng.uniform(0.0, 0.3, N)
    scores[40] = 0.9  # the only high score, on the window's first row
    anomalous = Series("a", noisy.timestamps, scores, noisy.windows)
    quiet = Series("q", noisy.timestamps, rng.uniform(0.0, 0.3, N), [])
    result = corpus_score([anomalous, quiet], STANDARD)
    # At 0.9: +1 and no false positive, raw 1 = perfect; any lower threshold adds noise alarms.
    assert result.threshold == 0.9
    assert result.score == pytest.approx(100.0, abs=1e-9)
    assert corpus_score([anomalous, quiet], STANDARD, threshold=0.15).score < result.score


def test_optimisation_ties_go_to_the_highest_threshold() -> None:
    """When two thresholds score the same, NAB's stable sort keeps the higher one."""
    # 0.9 (row 40) and 0.8 (row 45) sit in the same window: both thresholds give +1.
    series = make_series(scores={40: 0.9, 45: 0.8})
    assert corpus_score([series], STANDARD).threshold == 0.9


def test_threshold_table_reproduces_nab_sweeper_test() -> None:
    """The sweep reproduces the hand-made table of NAB's own sweeper test."""
    # NAB's testCalcScoreByThresholdReturnsExpectedScores, probationary rows already dropped;
    # windows A = 0, B = 1; fn = 5.
    points = SweepPoints(
        scores=np.array([0.0, 0.2, 0.3, 0.5, 0.5]),
        sweep=np.array([-3.0, 20.0, 10.0, 5.0, -3.0]),
        window=np.array([-1, 0, 0, 1, -1], dtype=np.int64),
        n_windows=2,
    )
    table = threshold_table(points, fn_weight=5.0)
    assert table.thresholds.tolist() == [1.1, 0.5, 0.3, 0.2, 0.0]
    assert table.totals.tolist() == [-10.0, 5 - 3 - 5, 5 - 3 + 10, 5 - 3 + 20, 5 - 3 + 20 - 3]
    assert table.tp.tolist() == [0, 1, 2, 3, 3]
    assert table.tn.tolist() == [2, 1, 1, 1, 0]
    assert table.fp.tolist() == [0, 1, 1, 1, 2]
    assert table.fn.tolist() == [3, 2, 1, 0, 0]


def test_window_end_points_must_match_exactly_one_row() -> None:
    """A window whose end point is not a row of the series is refused."""
    ts = T0 + np.arange(N) * np.timedelta64(1, "m")
    with pytest.raises(ValueError, match="matches 0 rows"):
        Series("x", ts, np.zeros(N), [(ts[40], ts[50] + np.timedelta64(30, "s"))])
    with pytest.raises(ValueError, match="overlapping or out of order"):
        Series("x", ts, np.zeros(N), [(ts[40], ts[50]), (ts[45], ts[60])])


def test_load_windows_of_the_nab_subset() -> None:
    """The shared NAB subset's combined_windows.json holds 24 files and 39 windows."""
    path = NAB_DIR / "labels" / "combined_windows.json"
    if not path.exists():
        pytest.skip(f"NAB subset not present at {path}")
    windows = load_windows(path)
    assert len(windows) == 24
    assert sum(len(w) for w in windows.values()) == 39
    start, end = windows["artificialWithAnomaly/art_daily_flatmiddle.csv"][0]
    assert (start.isoformat(), end.isoformat()) == ("2014-04-10T07:15:00", "2014-04-11T16:45:00")
