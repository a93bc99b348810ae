"""The per-firm engine on vitality records produced by the real vitality index."""

from __future__ import annotations

import json
from datetime import date, timedelta

import orjson
import pytest

from detectors.engine import Engine, EngineConfig, ModelSpec, default_models, on_day, state_size
from detectors.rules import ACTIONS, LEVELS
from streams.daily import (ELEC_N, INV_ISSUED_AMT, INV_ISSUED_N, INV_TAX_AMT, KWH, LOG_CREATED_N,
                           LOG_CREATED_VALUE, N_EVENTS, PAY_IN_AMT, PAY_IN_N, as_dict, new_day)
from streams.vitality import score_day

START = date(2025, 9, 1)  # far from the Spring Festival


def firm_records(n_days: int, industry: str = "manufacturing", level=lambda i: 1.0, elec_level=None,
                 orders_level=None, pay_level=None, missing=lambda i: False, silent=lambda i: False,
                 start: date = START, firm_id: str = "F1") -> list[dict]:
    """Vitality records of a synthetic firm: deterministic day-to-day wobble, weekends at 30%."""
    elec_level = elec_level or level
    orders_level = orders_level or level
    pay_level = pay_level or level
    out, state = [], None
    for i in range(n_days):
        d = start + timedelta(days=i)
        wk = 0.3 if d.weekday() >= 5 else 1.0
        wob = 1.0 + ((i * 7) % 5 - 2) / 40.0
        agg = new_day()
        if not silent(i):
            if not missing(i):
                agg[ELEC_N] = 96.0
                agg[KWH] = 1000.0 * wk * elec_level(i) * wob
            agg[LOG_CREATED_N] = float(round(6.0 * wk * orders_level(i) * wob))
            agg[LOG_CREATED_VALUE] = 2000.0 * agg[LOG_CREATED_N]
            agg[PAY_IN_N] = float(round(8.0 * wk * pay_level(i)))
            agg[PAY_IN_AMT] = 5000.0 * agg[PAY_IN_N] * wob
            agg[INV_ISSUED_N] = 2.0 * level(i) if d.weekday() < 5 else 0.0
            agg[INV_ISSUED_AMT] = 10000.0 * agg[INV_ISSUED_N]
            agg[INV_TAX_AMT] = 0.13 * agg[INV_ISSUED_AMT]
            agg[N_EVENTS] = agg[ELEC_N] + agg[LOG_CREATED_N] + agg[PAY_IN_N] + agg[INV_ISSUED_N]
        v, state = score_day(state, industry, d.toordinal(), agg)
        out.append({"firm_id": firm_id, "day": d.isoformat(), "industry": industry, **v, "aggregate": as_dict(agg)})
    return out


def run(records, engine=None, roundtrip=False):
    engine = engine or Engine()
    st, dets, states = None, [], []
    for r in records:
        d, st = engine.on_day(st, r)
        if roundtrip:
            st = orjson.loads(orjson.dumps(st))
        dets.append(d)
        states.append(st)
    return dets, states


ONSET = 70


def shutdown(i):
    return 1.0 if i < ONSET else (0.45 if i == ONSET else 0.06)


def first(dets, name=None, level="warning"):
    for i, ds in enumerate(dets):
        for d in ds:
            if (name is None or d["name"] == name) and LEVELS.index(d["level"]) >= LEVELS.index(level):
                return i, d
    return None, None


def test_shutdown_warned_the_day_after_onset_and_stall_on_day_three():
    recs = firm_records(ONSET + 10, elec_level=shutdown, orders_level=lambda i: 1.0 if i < ONSET else 0.0,
                        pay_level=lambda i: 1.0 if i < ONSET else 0.05)
    dets, states = run(recs)
    i, d = first(dets)
    assert i == ONSET + 1 and d["source"] == "model" and d["name"] == "firm_profile"
    assert d["action"] == "FREEZE_ADJUSTMENTS" and d["new"] is True
    top = d["reasons"][0]
    assert top["code"] == "elec_deviation" and top["observed"]["ratio"] < 0.1
    assert top["reference"]["usual_ratio"] > 0.9 and "electricity at" in top["text"]
    i, d = first(dets, "power_logistics_stall")
    assert i == ONSET + 3 and d["source"] == "rule"  # days +1, +2, +3 below 30% with no orders
    assert d["reasons"][0]["observed"]["ratio"] == [
        recs[k]["components"]["elec"]["ratio"] for k in (ONSET + 1, ONSET + 2, ONSET + 3)]
    assert not [d for ds in dets[:ONSET] for d in ds if d["level"] in ("warning", "critical")]


def test_detection_schema():
    recs = firm_records(ONSET + 6, elec_level=shutdown, orders_level=lambda i: 1.0 if i < ONSET else 0.0)
    dets, _ = run(recs)
    allds = [d for ds in dets for d in ds]
    assert allds
    for d in allds:
        assert set(d) == {"firm_id", "day", "source", "name", "level", "action", "score", "new", "reasons"}
        assert d["source"] in ("rule", "model") and d["level"] in LEVELS and d["action"] in ACTIONS
        assert 0.0 <= d["score"] <= 1.0 and d["reasons"]
        for r in d["reasons"]:
            assert set(r) == {"code", "observed", "reference", "contribution", "text"}
        json.dumps(d)


def test_normal_firm_raises_no_warning_and_state_stays_small():
    recs = firm_records(200)
    dets, states = run(recs)
    assert not [d for ds in dets for d in ds if d["level"] in ("warning", "critical")]
    sizes = [state_size(s) for s in states]
    assert max(sizes) < 5000
    assert abs(sizes[199] - sizes[120]) < 200  # bounded: no growth with history


def test_deterministic_and_json_round_trip_equivalent():
    recs = firm_records(ONSET + 20, elec_level=shutdown, orders_level=lambda i: 1.0 if i < ONSET else 0.0)
    a, sa = run(recs)
    b, sb = run(recs, Engine())
    c, sc = run(recs, roundtrip=True)  # state through JSON between every two days
    assert a == b == c
    assert sa[-1] == sb[-1] == sc[-1]
    # the module-level function and a fresh engine agree too
    st = None
    for r, expect in zip(recs, a):
        d, st = on_day(st, r)
        assert d == expect


def test_redelivered_day_is_ignored_and_state_not_mutated():
    recs = firm_records(40)
    _, states = run(recs[:30])
    st = states[-1]
    frozen = json.dumps(st, sort_keys=True)
    d, st2 = on_day(st, recs[10])
    assert d == [] and st2 is st
    on_day(st, recs[30])
    assert json.dumps(st, sort_keys=True) == frozen


def test_meter_outage_and_silent_days_raise_no_warning():
    recs = firm_records(100, missing=lambda i: 60 <= i < 67, silent=lambda i: 80 <= i < 86)
    dets, _ = run(recs)
    assert not [d for ds in dets for d in ds if d["level"] in ("warning", "critical")]
    names = {d["name"] for ds in dets for d in ds}
    assert "feed_silence" in names  # six silent days: a data check, not distress


def test_slow_slide_is_warned_by_level_slide():
    slide = lambda i: 1.0 if i < ONSET else max(0.2, 1.0 - 0.8 * (i - ONSET) / 40)  # noqa: E731
    recs = firm_records(ONSET + 40, level=slide)
    dets, _ = run(recs)
    i, d = first(dets)
    assert d is not None and d["name"] == "level_slide" and ONSET + 5 <= i <= ONSET + 21
    assert d["reasons"][0]["code"] == "level_slide" and d["reasons"][0]["observed"]["level_vs_reference"] < 0.9


def test_seasonal_dip_is_not_a_warning():
    dip = lambda i: 0.5 if ONSET <= i < ONSET + 14 else 1.0  # noqa: E731
    recs = firm_records(ONSET + 30, level=dip)
    dets, _ = run(recs)
    assert first(dets)[1] is None
    assert first(dets, level="watch")[1] is not None  # but it is seen


def test_model_warning_needs_k_days():
    # a 2-day power dip to 30% with everything else normal: watch, not warning, with k = 2 at 0.5
    cfg = EngineConfig.from_dict({"models": {"firm_profile": {"warning": [[0.5, 3]]}}})
    low = lambda i: 0.3 if ONSET <= i < ONSET + 2 else 1.0  # noqa: E731
    dets, _ = run(firm_records(ONSET + 5, elec_level=low), Engine(cfg))
    assert first(dets)[1] is None
    dets, _ = run(firm_records(ONSET + 5, elec_level=low), Engine(EngineConfig.from_dict(
        {"models": {"firm_profile": {"warning": [[0.2, 1]]}}})))
    assert first(dets)[0] == ONSET


def test_config_round_trip_and_overrides():
    cfg = EngineConfig()
    again = EngineConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    cfg2 = EngineConfig.from_dict({"models": {"level_slide": {"enabled": False},
                                              "firm_profile": {"params": {"z_half": 5.0}}},
                                   "rules": {"order_drop": {"drop": 0.5}}})
    spec = {m.name: m for m in cfg2.models}
    assert spec["level_slide"].enabled is False and spec["firm_profile"].params["z_half"] == 5.0
    assert spec["firm_profile"].params["min_scale"] == dict(default_models()[0].params)["min_scale"]
    with pytest.raises(ValueError):
        ModelSpec(name="x", detector="cusum_shift", inputs=("elec",), warning=((1.5, 1),))
    with pytest.raises(KeyError):
        Engine(EngineConfig(models=(ModelSpec(name="x", detector="nope", inputs=("elec",)),)))
