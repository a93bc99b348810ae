"""Behaviour of the business vitality index (streams/vitality.py) on synthetic firms.

The firms are generated here (seeded, weekly cycle, Poisson counts, noisy amounts); expectations
are stated as behaviour (bands, timing, bounds), not as recorded scores.
"""

from __future__ import annotations

import copy
import math
import random
from datetime import date
from typing import Any, Callable

import orjson
import pytest

from streams.daily import (
    ELEC_N,
    INV_ISSUED_AMT,
    INV_ISSUED_N,
    INV_TAX_AMT,
    KWH,
    LOG_CREATED_N,
    N_EVENTS,
    PAY_IN_AMT,
    PAY_IN_N,
    REFUND_AMT,
    REFUND_N,
    new_day,
)
from streams.vitality import (
    BANDS,
    COMPONENTS,
    DEFAULT,
    DEFAULT_WEIGHTS,
    INDUSTRIES,
    VitalityConfig,
    score_day,
)

ALL_INDUSTRIES = (*INDUSTRIES, "something_else")

# Weekly shapes, Monday..Sunday: (electricity, sales = orders and payments)
WEEK = {
    "manufacturing": ((1, 1, 1, 1, 1, 0.55, 0.3), (1.1, 1.1, 1.1, 1.1, 1.1, 0.4, 0.2)),
    "restaurant_retail": ((0.9, 0.9, 0.9, 0.95, 1.05, 1.2, 1.15), (0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.25)),
    "agriculture": ((1, 1, 1, 1, 1, 0.95, 0.85), (1.05, 1.05, 1.05, 1.05, 1.05, 0.8, 0.6)),
    "logistics_trade": ((1, 1, 1, 1, 1, 0.8, 0.6), (1.1, 1.1, 1.1, 1.1, 1.1, 0.6, 0.35)),
}
START = date(2025, 9, 1).toordinal()  # a Monday, far from any Spring Festival
SHUTDOWN = {"elec": 0.1, "logi": 0.0, "pay": 0.2}


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_day(
    rng: random.Random,
    industry: str,
    day: int,
    level: float = 1.0,
    elec: float | None = None,
    logi: float | None = None,
    pay: float | None = None,
    inv: float | None = None,
    elec_missing: bool = False,
    silent: bool = False,
    noise: float = 0.12,
) -> list[float]:
    """One firm-day aggregate of a small firm; ``level`` scales everything, the named levels
    override it per stream."""
    agg = new_day()
    if silent:
        return agg
    wd = date.fromordinal(day).weekday()
    ew, sw = WEEK.get(industry, WEEK["manufacturing"])
    le = level if elec is None else elec
    ll = level if logi is None else logi
    lp = level if pay is None else pay
    li = level if inv is None else inv
    if not elec_missing:
        agg[ELEC_N] = 96.0
        agg[KWH] = max(0.0, 800.0 * ew[wd] * le * (1.0 + rng.gauss(0.0, noise)))
    agg[LOG_CREATED_N] = float(_poisson(rng, 5.0 * sw[wd] * ll))
    n_pay = _poisson(rng, 20.0 * sw[wd] * lp)
    agg[PAY_IN_N] = float(n_pay)
    agg[PAY_IN_AMT] = sum(rng.expovariate(1 / 500.0) for _ in range(n_pay))
    n_ref = _poisson(rng, 0.4 * sw[wd] * lp)
    agg[REFUND_N] = float(n_ref)
    agg[REFUND_AMT] = sum(rng.expovariate(1 / 500.0) for _ in range(n_ref))
    month_end = 2.5 if date.fromordinal(day).day >= 27 and wd < 5 else 1.0
    n_inv = _poisson(rng, 2.0 * month_end * (1.2 if wd < 5 else 0.2) * li)
    agg[INV_ISSUED_N] = float(n_inv)
    agg[INV_ISSUED_AMT] = sum(rng.expovariate(1 / 8000.0) for _ in range(n_inv))
    agg[INV_TAX_AMT] = 0.13 * agg[INV_ISSUED_AMT]
    agg[N_EVENTS] = agg[ELEC_N] + agg[LOG_CREATED_N] + n_pay + n_ref + n_inv
    return agg


Scenario = Callable[[int, int], dict[str, Any]]  # (day index, day ordinal) -> make_day kwargs


def run(
    industry: str,
    days: int,
    scenario: Scenario = lambda i, d: {},
    seed: int = 0,
    start: int = START,
    cfg: VitalityConfig = DEFAULT,
    roundtrip: bool = False,
    data_industry: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """Score a synthetic firm (its data shaped like ``data_industry``, by default ``industry``);
    returns (vitality per day, state after each day)."""
    rng = random.Random(seed)
    state: dict | None = None
    outs, states = [], []
    for i in range(days):
        day = start + i
        agg = make_day(rng, data_industry or industry, day, **scenario(i, day))
        if roundtrip and state is not None:
            state = orjson.loads(orjson.dumps(state))
        v, state = score_day(state, industry, day, agg, cfg)
        outs.append(v)
        states.append(state)
    return outs, states


def bands(outs: list[dict]) -> str:
    return "".join(v["band"][0] for v in outs)


def thresholds(industry: str, cfg: VitalityConfig = DEFAULT) -> tuple[float, float]:
    return cfg.bands.get(industry, cfg.bands["default"])


# --- healthy firms -----------------------------------------------------------------------------


@pytest.mark.parametrize("industry", ALL_INDUSTRIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_healthy_firm_stays_healthy_after_warmup(industry: str, seed: int) -> None:
    outs, _ = run(industry, 120, seed=seed)
    warm = DEFAULT.warmup_days
    assert all(v["band"] == "warming_up" for v in outs[:warm])
    after = outs[warm:]
    assert bands(after) == "h" * len(after)
    watch, _ = thresholds(industry)
    scores = sorted(v["score"] for v in after)
    assert scores[0] >= watch + 3.0, scores[:5]
    assert scores[len(scores) // 2] >= 90.0  # a normal, noisy day costs (almost) nothing


def test_warmup_is_the_first_days_then_a_band() -> None:
    cfg = VitalityConfig(warmup_days=5)
    outs, _ = run("manufacturing", 8, cfg=cfg)
    assert [v["band"] for v in outs[:5]] == ["warming_up"] * 5
    assert all(v["band"] != "warming_up" for v in outs[5:])
    assert [v["history_days"] for v in outs] == list(range(1, 9))
    first = outs[0]
    assert first["score"] == 100.0 and all(c["ratio"] is None for c in first["components"].values())


# --- shutdown ----------------------------------------------------------------------------------

ONSET = 65  # a Wednesday (START is a Monday)


def shutdown_from(onset: int) -> Scenario:
    return lambda i, d: SHUTDOWN if i >= onset else {}


@pytest.mark.parametrize("industry", ["manufacturing", "logistics_trade", "something_else"])
@pytest.mark.parametrize("seed", [3, 4])
def test_shutdown_reaches_distress_within_two_days_and_stays(industry: str, seed: int) -> None:
    outs, _ = run(industry, ONSET + 40, shutdown_from(ONSET), seed=seed)
    assert outs[ONSET - 1]["band"] == "healthy"
    after = bands(outs[ONSET:])
    first = after.find("d")
    assert 0 <= first <= 1, after  # distress on the first or second day
    assert after[first:] == "d" * len(after[first:]), after  # and for the 40 days observed
    elec = outs[ONSET + 25]["components"]["elec"]
    assert elec["ratio"] < 0.2 and elec["points"] < -10.0


@pytest.mark.parametrize("industry", ["restaurant_retail", "agriculture"])
def test_shutdown_distress_other_industries(industry: str) -> None:
    outs, _ = run(industry, ONSET + 40, shutdown_from(ONSET), seed=5)
    after = bands(outs[ONSET:])
    first = after.find("d")
    assert 0 <= first <= 2, after
    assert after[first : first + 25] == "d" * 25, after


def test_baseline_is_protected_during_a_collapse() -> None:
    outs, states = run("manufacturing", ONSET + 30, shutdown_from(ONSET), seed=6)
    before = outs[ONSET - 1]["baselines"]
    after = outs[ONSET + 29]["baselines"]
    # 30 days at 10% power: an unprotected 30-day-half-life mean would have lost ~45%
    assert after["kwh"] > 0.8 * before["kwh"]
    assert after["pay_in_amt"] > 0.7 * before["pay_in_amt"]
    assert after["log_created_n"] > 0.7 * before["log_created_n"]


def test_recovery_after_a_temporary_outage_returns_to_healthy() -> None:
    outs, _ = run("manufacturing", 120, lambda i, d: SHUTDOWN if 60 <= i < 70 else {}, seed=7)
    assert "d" in bands(outs[60:70])
    assert bands(outs[80:]) == "h" * 40


# --- gradual decline ---------------------------------------------------------------------------


@pytest.mark.parametrize("industry", ["manufacturing", "restaurant_retail"])
def test_gradual_decline_passes_through_watch_into_distress(industry: str) -> None:
    onset, span = 60, 40

    def decline(i: int, d: int) -> dict[str, Any]:
        return {"level": 1.0 - 0.85 * min(max(i - onset, 0), span) / span}

    outs, _ = run(industry, onset + span + 5, decline, seed=8)
    seq = bands(outs[onset:])
    assert seq[0] == "h"
    assert seq.endswith("ddddd"), seq
    first_d = seq.find("d")
    assert seq[:first_d].count("w") >= 3, seq  # warned before distress
    assert seq.find("w") < first_d
    assert "h" not in seq[first_d:], seq  # no relapse into healthy once in distress


# --- Spring Festival ---------------------------------------------------------------------------

CNY = date(2026, 2, 17).toordinal()


@pytest.mark.parametrize("industry", ALL_INDUSTRIES)
def test_spring_festival_dip_at_the_holiday_factor_is_not_distress(industry: str) -> None:
    start = CNY - 100

    def festival(i: int, d: int) -> dict[str, Any]:
        return {"level": DEFAULT.holiday_factor(industry, d)}

    outs, _ = run(industry, 140, festival, seed=9, start=start)
    window = [v for v in outs if v["holiday"]]
    assert len(window) == 18  # -7..+10 days
    assert all(v["band"] == "healthy" for v in outs[DEFAULT.warmup_days :]), bands(outs)
    # the dip did not poison the baselines: back to normal right after the window
    before = outs[CNY - start - 8]["baselines"]
    after = outs[CNY - start + 11]["baselines"]
    assert after["kwh"] == pytest.approx(before["kwh"], rel=0.1)


def test_the_same_dip_without_the_holiday_calendar_is_flagged() -> None:
    # control for the test above: without the calendar the dip is a collapse
    industry, start = "manufacturing", CNY - 100
    cfg = VitalityConfig(holidays=())
    outs, _ = run(industry, 140, lambda i, d: {"level": DEFAULT.holiday_factor(industry, d)}, 9, start, cfg)
    assert not any(v["holiday"] for v in outs)
    assert "d" in bands(outs)


# --- data gaps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("industry", ALL_INDUSTRIES)
def test_meter_outage_with_normal_business_is_not_distress(industry: str) -> None:
    outs, _ = run(industry, 90, lambda i, d: {"elec_missing": 60 <= i < 67}, seed=10)
    gap = outs[60:67]
    assert all("elec_missing" in v["flags"] and v["components"]["elec"]["missing"] for v in gap)
    assert all(v["components"]["elec"]["ratio"] is None for v in gap)  # neutral, not zero
    assert all(v["components"]["elec"]["points"] == 0.0 for v in gap)
    assert "d" not in bands(outs[14:]), bands(outs)
    assert outs[59]["baselines"]["kwh"] == outs[66]["baselines"]["kwh"]  # not learned from


def test_total_silence_is_a_signal() -> None:
    # control for the meter outage: every feed silent (as after a shutdown) is distress
    outs, _ = run("manufacturing", 90, lambda i, d: {"silent": 60 <= i < 67}, seed=10)
    assert "silent" in outs[60]["flags"]
    assert "d" in bands(outs[60:67])
    assert outs[62]["components"]["elec"]["ratio"] == 0.0


def test_partial_meter_day_is_scaled_and_flagged() -> None:
    rng = random.Random(11)
    state = None
    for i in range(30):
        agg = make_day(rng, "manufacturing", START + i, noise=0.0)
        _, state = score_day(state, "manufacturing", START + i, agg)
    day = START + 30
    agg = make_day(rng, "manufacturing", day, noise=0.0)
    full, _ = score_day(state, "manufacturing", day, agg)
    agg[ELEC_N] *= 0.75
    agg[KWH] *= 0.75
    part, _ = score_day(state, "manufacturing", day, agg)
    assert "elec_partial" in part["flags"] and "elec_partial" not in full["flags"]
    ratio = full["components"]["elec"]["ratio"]
    assert part["components"]["elec"]["ratio"] == pytest.approx(ratio, abs=1e-3)


# --- weekday awareness -------------------------------------------------------------------------


def test_weekend_power_at_30_percent_is_not_penalised() -> None:
    outs, _ = run("manufacturing", 84, seed=12)  # weekend kWh at 55% / 30% of weekdays
    weekend = [v for i, v in enumerate(outs) if i >= 21 and date.fromordinal(START + i).weekday() >= 5]
    weekday = [v for i, v in enumerate(outs) if i >= 21 and date.fromordinal(START + i).weekday() < 5]
    assert len(weekend) == 18
    for v in weekend:
        elec = v["components"]["elec"]
        assert 0.6 < elec["ratio"] < 1.5
    mean = lambda vs, key: sum(key(v) for v in vs) / len(vs)  # noqa: E731
    assert mean(weekend, lambda v: v["components"]["elec"]["points"]) > -2.0
    assert abs(mean(weekend, lambda v: v["score"]) - mean(weekday, lambda v: v["score"])) < 5.0
    # a Sunday's expectation is about 30% of a Monday's
    sunday = next(v for i, v in enumerate(outs) if i >= 70 and date.fromordinal(START + i).weekday() == 6)
    monday = next(v for i, v in enumerate(outs) if i >= 70 and date.fromordinal(START + i).weekday() == 0)
    ratio = sunday["components"]["elec"]["baseline"] / monday["components"]["elec"]["baseline"]
    assert 0.2 < ratio < 0.4


# --- determinism, state, output ----------------------------------------------------------------


def test_same_inputs_give_identical_outputs_and_state() -> None:
    a_out, a_states = run("restaurant_retail", 70, shutdown_from(50), seed=13)
    b_out, b_states = run("restaurant_retail", 70, shutdown_from(50), seed=13)
    assert orjson.dumps(a_out) == orjson.dumps(b_out)
    assert orjson.dumps(a_states) == orjson.dumps(b_states)
    c_out, _ = run("restaurant_retail", 70, shutdown_from(50), seed=14)
    assert orjson.dumps(a_out) != orjson.dumps(c_out)  # the comparison can fail


@pytest.mark.parametrize("industry", ["manufacturing", "agriculture"])
def test_state_json_roundtrip_continues_identically(industry: str) -> None:
    def scenario(i: int, d: int) -> dict[str, Any]:
        return SHUTDOWN if i >= 45 else ({"elec_missing": True} if i % 17 == 3 else {})

    plain_out, plain_states = run(industry, 60, scenario, seed=15)
    rt_out, rt_states = run(industry, 60, scenario, seed=15, roundtrip=True)
    assert orjson.dumps(plain_out) == orjson.dumps(rt_out)
    assert orjson.dumps(plain_states) == orjson.dumps(rt_states)
    final = plain_states[-1]
    assert orjson.loads(orjson.dumps(final)) == final


def test_state_passed_in_is_not_mutated_and_stays_bounded() -> None:
    _, states = run("logistics_trade", 200, seed=16)
    size = len(orjson.dumps(states[-1]))
    assert size == pytest.approx(len(orjson.dumps(states[100])), rel=0.1)
    assert size < 4000
    assert len(states[-1]["ring"]) == 7
    before = copy.deepcopy(states[-1])
    rng = random.Random(0)
    score_day(states[-1], "logistics_trade", START + 200, make_day(rng, "logistics_trade", START + 200))
    assert states[-1] == before


def test_days_must_increase_and_gaps_are_tolerated() -> None:
    outs, states = run("manufacturing", 30, seed=17)
    rng = random.Random(1)
    agg = make_day(rng, "manufacturing", START + 29)
    with pytest.raises(ValueError):
        score_day(states[-1], "manufacturing", START + 29, agg)
    v, st = score_day(states[-1], "manufacturing", START + 35, agg)  # 5 days never scored
    assert st["day"] == START + 35 and len(st["ring"]) == 7 and v["history_days"] == 31


def _json_types_only(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _json_types_only(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_json_types_only(v) for v in obj)
    if isinstance(obj, float):
        return math.isfinite(obj)
    return obj is None or isinstance(obj, (str, int, bool))


def test_output_schema() -> None:
    outs, states = run("agriculture", 40, seed=18)
    v = outs[-1]
    assert set(v) == {"score", "band", "components", "baselines", "history_days", "holiday", "flags"}
    assert list(v["components"]) == list(COMPONENTS)
    for name, comp in v["components"].items():
        assert {"value", "baseline", "ratio", "points"} <= set(comp)
        assert comp["points"] <= 0.0
    assert v["score"] == pytest.approx(100.0 + sum(c["points"] for c in v["components"].values()), abs=1e-3)
    assert all(_json_types_only(o) for o in outs) and all(_json_types_only(s) for s in states)
    # floats are rounded to 4 decimals
    ratios = [c["ratio"] for c in v["components"].values() if c["ratio"] is not None]
    assert ratios and all(round(r, 4) == r for r in ratios)


@pytest.mark.parametrize("seed", range(6))
def test_score_stays_within_0_and_100_on_wild_input(seed: int) -> None:
    rng = random.Random(seed)
    industry = ALL_INDUSTRIES[seed % len(ALL_INDUSTRIES)]
    state = None
    day = date(2026, 1, 20).toordinal()  # crosses the 2026 Spring Festival
    for i in range(150):
        mode = rng.random()
        if mode < 0.1:
            agg = new_day()
        elif mode < 0.2:
            agg = make_day(rng, industry, day, level=rng.choice([0.0, 50.0, 1e4]))
        else:
            agg = make_day(rng, industry, day, level=rng.uniform(0.0, 2.0), elec_missing=rng.random() < 0.1)
        if rng.random() < 0.05:
            agg[ELEC_N] = rng.choice([1.0, 30.0, 500.0])
        v, state = score_day(state, industry, day, agg)
        assert 0.0 <= v["score"] <= 100.0
        assert v["band"] in BANDS
        assert all(c["points"] <= 0.0 for c in v["components"].values())
        assert _json_types_only(v) and _json_types_only(state)
        day += 1 if rng.random() < 0.97 else rng.randint(2, 9)


# --- industry thresholds -----------------------------------------------------------------------


def test_industry_thresholds_differ_and_drive_the_band() -> None:
    assert len({tuple(DEFAULT.bands[i]) for i in (*INDUSTRIES, "default")}) > 1
    # same weights everywhere, so every industry gets the same score; only thresholds differ
    cfg = VitalityConfig(weights={"default": DEFAULT_WEIGHTS["default"]})

    def slow_decline(i: int, d: int) -> dict[str, Any]:
        return {"level": 1.0 - 0.8 * min(max(i - 40, 0), 80) / 80, "noise": 0.0}

    per_industry = {
        ind: run(ind, 125, slow_decline, seed=19, cfg=cfg, data_industry="manufacturing")[0]
        for ind in ALL_INDUSTRIES
    }
    scores = {ind: [v["score"] for v in outs] for ind, outs in per_industry.items()}
    assert all(s == scores["manufacturing"] for s in scores.values())
    differ = 0
    for ind, outs in per_industry.items():
        watch, distress = thresholds(ind, cfg)
        for v in outs[cfg.warmup_days :]:
            expected = "distress" if v["score"] < distress else "watch" if v["score"] < watch else "healthy"
            assert v["band"] == expected
    for a, b in zip(per_industry["manufacturing"], per_industry["agriculture"]):
        differ += a["band"] != b["band"]
    assert differ > 0
    # an unknown industry is scored exactly like "default"
    default = run("default", 125, slow_decline, seed=19, cfg=cfg, data_industry="manufacturing")[0]
    assert orjson.dumps(default) == orjson.dumps(per_industry["something_else"])


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        VitalityConfig(bands={"manufacturing": (60.0, 40.0)})  # no default
    with pytest.raises(ValueError):
        VitalityConfig(weights={"default": {"no_such_component": 1.0}})
    with pytest.raises(ValueError):
        VitalityConfig(holiday_factors={"default": 0.0})
    with pytest.raises(ValueError):
        VitalityConfig(ratio_zero=0.9, ratio_full=0.5)


def test_firm_without_a_meter_is_scored_on_its_other_streams() -> None:
    outs, states = run("restaurant_retail", 60, lambda i, d: {"elec_missing": True}, seed=20)
    assert all(v["components"]["elec"]["ratio"] is None for v in outs)
    assert all("elec_missing" not in v["flags"] for v in outs)  # nothing is missing: never had one
    assert bands(outs[14:]) == "h" * 46
    assert outs[-1]["baselines"]["kwh"] is None
    # and its collapse still shows, through payments and orders
    def no_meter_then_shutdown(i: int, d: int) -> dict[str, Any]:
        return {"elec_missing": True, **(SHUTDOWN if i >= 60 else {})}

    outs, _ = run("restaurant_retail", 80, no_meter_then_shutdown, seed=20)
    assert "d" in bands(outs[60:65])
