"""The fixed parameters of a feature's series views (``Config``) and what one peek computes (``Peek``).

Kept apart from ``views`` so the views module holds only the computation; snapshots taken before the split
name ``anomstream.detect.views.Config``, which ``views`` re-exports, so they still restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from anomstream.detect.season import DAY, WEEK

VIEWS = ("level", "diff", "varratio", "lag", "profile")
# Visits per profile slot, as unsigned 16-bit counts (a third of a seasonal key's state was float64
# counts). Past 1 / profile_alpha visits the count no longer changes the weight, so saturating at
# MAX_COUNT gives the same profile for any profile_alpha >= 1 / MAX_COUNT (Config checks it).
COUNT_TYPE = "H"
MAX_COUNT = 65_535
# Slot values (one period ago, per-slot profile) as single-precision offsets from the key's level.
SLOT_TYPE = "f"


@dataclass(frozen=True)
class Config:
    """Fixed parameters (see RESULTS.md for the reason behind each default)."""

    alpha: float = 1.0 / 128  # per-point EW factor of every view's mean/variance (span ≈ 255 points)
    short_alpha: float = 1.0 / 8  # short variance of the first difference (span ≈ 15 points)
    ma_window: int = 3  # Numenta likelihood: moving average of the raw deviation
    lik_alpha: float = 1.0 / 8640  # Numenta likelihood: long-run EW Gaussian (8640 = NAB's window)
    lik_min: int = 20  # samples before a likelihood reports anything but p = 1
    lik_sd_floor: float = 0.05  # floor of the long-run sd of the moving average (raw units)
    warmup: int = 100  # rows before views / range rule may alarm
    view_warmup: int = 10  # residual statistics' samples before a view feeds its likelihood
    z_cap: float = 20.0  # raw deviations are capped (bounded influence on the long-run Gaussian)
    log_raw: bool = True  # feed log1p(raw) to the calibrator (tames heavy tails)
    range_widen: float = 0.02  # range rule widening, fraction of the range seen so far
    profile_alpha: float = 0.1  # per-slot profile EW factor per visit (≈ 10 periods of memory)
    # candidate seasonal periods (seconds); slot arrays span the largest
    periods: tuple[float, ...] = (DAY, WEEK)
    period_gate: str = "acf"  # "acf": causal autocorrelation evidence; "always"; "off"
    max_slot_step: float = 3600.0  # seasonal views only when sampling step ≤ 1 h
    max_slots: int = 2016  # slots per period (a week of 5-minute slots)
    rel_floor: float = 1e-3  # scale floor as a fraction of the range seen so far
    views: tuple[str, ...] = VIEWS  # ablation switch
    range_rule: bool = True
    # Event time a sub-hourly key must span before the range rule applies: a daily metric shows its full
    # range only after a day (measured: no change on NAB, where the probation period covers it).
    range_after_s: float = DAY
    bonferroni: bool = True  # the min over views times their number, so the result is a probability
    # Jump rule: a single-point jump of at least ``jump_min`` sds, ``jump_widen`` beyond every recent
    # ordinary (sub-``jump_min``) difference, on a key where such jumps are rare (< ``jump_rate`` of the
    # last ``jump_window`` rows; a spike and its return count once), is anomalous whatever the smoothed
    # views say (they dilute one point over ``ma_window``). jump_widen 0.25 was chosen over 0 and 0.5 by
    # leave-one-category-out: it wins in every held-out category (docs/evaluation.md).
    jump_min: float = 4.0
    jump_widen: float = 0.25
    jump_window: float = 1000.0  # rows: the envelope's half-life and the rate's window
    jump_rate: float = 0.01

    def __post_init__(self) -> None:
        if not 1.0 / MAX_COUNT <= self.profile_alpha <= 1.0:
            raise ValueError(f"profile_alpha must be in [1/{MAX_COUNT}, 1], got {self.profile_alpha}")


class Peek(NamedTuple):
    """Everything one record would change in a ``SeriesViews`` (computed without mutation)."""

    raws: tuple[float, ...]  # raw deviation per view (NaN: view not computable yet)
    log10ps: tuple[float, ...]  # per view log10 tail probability (0 when inactive)
    d: float
    lag_r: float
    prof_r: float
    slot: int
    short_var: float
    in_range: bool
    log10p: float  # combined: min over active views / range rule
    winner: str
    z_diff: float  # single-point |z| of the first difference (NaN before the second row)
    jumped: bool  # the jump rule fired
