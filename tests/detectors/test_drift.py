"""Drift (PSI / CSI) and the circuit breaker."""

from __future__ import annotations

import json
import math

import pytest

from detectors.drift import (SCORE_BINS, BreakerConfig, CircuitBreaker, DriftConfig, DriftMonitor, bin_counts,
                             psi, quantile_edges)


def test_psi_hand_computed():
    # sum (a - e) ln(a / e)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2), abs=1e-12)
    assert psi([25, 25, 25, 25], [10, 20, 30, 40]) == pytest.approx(
        -0.15 * math.log(0.4) - 0.05 * math.log(0.8) + 0.05 * math.log(1.2) + 0.15 * math.log(1.6), abs=1e-12)
    assert psi([25, 25, 25, 25], [10, 20, 30, 40]) == pytest.approx(0.228217, abs=1e-6)
    assert psi([1, 2, 3], [2, 4, 6]) == 0.0  # counts are normalised
    # an empty bin is floored at eps instead of making PSI infinite
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], eps=1e-4) == pytest.approx(
        -0.1 * math.log(0.8) + (0.1 - 1e-4) * math.log(0.1 / 1e-4), abs=1e-12)
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


def test_bins_and_quantile_edges():
    assert bin_counts([0.0, 0.049, 0.05, 0.5, 0.99, 1.0], SCORE_BINS) == [2, 1, 0, 0, 0, 1, 0, 2]
    edges = quantile_edges([float(i) for i in range(1000)], 10)
    assert edges == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0]
    assert bin_counts(range(1000), edges) == [100] * 10
    assert quantile_edges([1.0] * 50, 10) == [1.0]  # ties collapse


def rows(day_i: int, n: int, score, feat, industry="manufacturing", holiday=False):
    return [(f"F{k:04d}", industry, holiday, {"m": score(k, day_i)}, {"x": feat(k, day_i)}) for k in range(n)]


def test_drift_monitor_reference_then_events():
    cfg = DriftConfig(reference_days=5, window_days=2, min_daily=10, min_count=100)
    mon = DriftMonitor(cfg)
    uniform = lambda k, d: (k % 100) / 100.0  # noqa: E731
    events = []
    for d in range(5):  # reference
        events += mon.on_day(f"2026-01-{d + 1:02d}", rows(d, 100, uniform, uniform))
    assert events == [] and not mon.daily
    # same distributions: PSI ~ 0, no event
    ev = mon.on_day("2026-01-06", rows(5, 100, uniform, uniform))
    assert ev == [] and mon.daily[("2026-01-06", "manufacturing", "psi", "m")][0] == pytest.approx(0.0, abs=1e-12)
    # scores shift up (every firm at 0.95), the feature keeps its distribution
    shifted = lambda k, d: 0.95  # noqa: E731
    ev = mon.on_day("2026-01-07", rows(6, 100, shifted, uniform))
    assert [(e["kind"], e["name"], e["event"]) for e in ev] == [("psi", "m", "retrain")]
    assert ev[0]["n"] == 200 and ev[0]["action"] == "retrain_marked" and ev[0]["holiday"] is False
    # the window mixes day 6 (reference-like) and day 7 (shifted): hand-computed PSI
    ref = bin_counts([k / 100 for k in range(100)], SCORE_BINS)
    act = [a + b for a, b in zip(ref, bin_counts([0.95] * 100, SCORE_BINS))]
    assert ev[0]["value"] == round(psi(ref, act), 4)
    # a festival day in the window: reported, no action
    ev = mon.on_day("2026-01-08", rows(7, 100, shifted, uniform, holiday=True))
    assert ev and all(e["holiday"] and e["action"] == "none" for e in ev)
    json.dumps(mon.state_dict())


def test_drift_monitor_is_per_segment_and_needs_enough_data():
    cfg = DriftConfig(reference_days=2, window_days=1, min_daily=10, min_count=50)
    mon = DriftMonitor(cfg)
    u = lambda k, d: (k % 10) / 10.0  # noqa: E731
    for d in range(2):
        mon.on_day(f"2026-01-0{d + 1}", rows(d, 60, u, u) + rows(d, 60, u, u, industry="agriculture"))
    # agriculture shifts, manufacturing does not; a tiny segment is skipped
    ev = mon.on_day("2026-01-03", rows(2, 60, u, u) + rows(2, 60, lambda k, d: 0.99, u, industry="agriculture")
                    + rows(2, 5, lambda k, d: 0.99, u, industry="logistics_trade"))
    assert {e["segment"] for e in ev} == {"agriculture"}


def breaker_day(cb, day, n_firms, warned):
    scored = {"m": [f"F{k:03d}" for k in range(n_firms)]}
    dets = [{"firm_id": f, "day": day, "source": "model", "name": "m", "level": "warning", "new": True,
             "action": "FREEZE_ADJUSTMENTS", "reasons": []} for f in warned]
    return cb.observe(day, scored, dets)


WEEK1 = ["2026-01-05", "2026-01-06"]  # Mondays: 2026-01-05, -12, -19, -26
WEEK2 = ["2026-01-12", "2026-01-13"]
WEEK3 = ["2026-01-19"]
WEEK4 = ["2026-01-26"]


def test_breaker_opens_after_two_bad_periods_not_one():
    cb = CircuitBreaker(BreakerConfig(threshold=0.05, periods=2, min_firms=20))
    breaker_day(cb, WEEK1[0], 100, [f"F{k:03d}" for k in range(10)])  # 10% of firms warned: bad week
    breaker_day(cb, WEEK2[0], 100, [])  # a good week resets the run
    ev = breaker_day(cb, WEEK3[0], 100, [f"F{k:03d}" for k in range(8)])
    assert ev == [] and not cb.is_paused("m")
    ev = breaker_day(cb, WEEK4[0], 100, [f"F{k:03d}" for k in range(8)])  # week 3 bad: only one in a row
    assert ev == [] and not cb.is_paused("m")
    ev = breaker_day(cb, "2026-02-02", 100, [])  # week 4 was bad too: opens when it closes
    assert [e["event"] for e in ev] == ["breaker_open"] and cb.is_paused("m")
    d = {"firm_id": "F001", "day": "2026-02-02", "source": "model", "name": "m", "level": "warning",
         "action": "FREEZE_ADJUSTMENTS", "new": True, "reasons": [{"code": "x"}]}
    rule = {**d, "source": "rule", "name": "power_logistics_stall"}
    out = cb.apply([d, rule])
    assert out[0]["level"] == "watch" and out[0]["action"] == "HUMAN_REVIEW" and out[0]["paused"] is True
    assert out[0]["reasons"][-1]["code"] == "breaker_open" and out[1] == rule  # rules keep their authority
    assert d["level"] == "warning"  # input not mutated
    cb.reenable("m", "2026-02-03")
    assert not cb.is_paused("m") and cb.apply([d]) == [d]
    json.dumps(cb.state_dict())


def test_breaker_false_alarm_rate_uses_outcomes():
    bad = {"F000", "F001"}
    cb = CircuitBreaker(BreakerConfig(metric="false_alarm_rate", threshold=0.5, min_firms=5),
                        outcome=lambda f: f in bad)
    breaker_day(cb, WEEK1[0], 50, ["F000", "F001", "F002"])  # 1 of 3 false: 0.33, fine
    breaker_day(cb, WEEK2[0], 50, ["F002", "F003", "F004", "F000"])  # 3 of 4 false: bad
    breaker_day(cb, WEEK3[0], 50, ["F005"])  # 1 of 1 false: bad
    assert not cb.is_paused("m")
    breaker_day(cb, WEEK4[0], 50, [])
    assert cb.is_paused("m")
    closed = [e for e in cb.history if e["event"] == "period_closed"]
    assert [e["value"] for e in closed] == [round(1 / 3, 4), 0.75, 1.0]
    with pytest.raises(ValueError):
        CircuitBreaker(BreakerConfig(metric="false_alarm_rate"))


def test_breaker_ignores_small_periods():
    cb = CircuitBreaker(BreakerConfig(threshold=0.05, min_firms=20))
    for day in (WEEK1[0], WEEK2[0], WEEK3[0], WEEK4[0], "2026-02-02"):
        breaker_day(cb, day, 10, ["F000", "F001"])  # 20% but only 10 firms scored
    assert not cb.is_paused("m")


def test_docstring_examples():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("detectors.drift"), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
