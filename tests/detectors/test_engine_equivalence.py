"""The optimised engine gives exactly the output of the straightforward one.

The engine's hot path (``Engine._run``, ``StatefulDetector.advance``, copy-on-write rule states)
is checked three ways on a small deterministic synthetic population (eight firms covering every
rule, model, data gap and the Spring Festival):

* against :func:`reference_run`, the engine written the plain way on the detectors' object API
  (``load_state`` / ``score_learn_one`` / ``state_dict``, a fresh copy of every state);
* against a golden digest of the detections and states that the engine produced *before* the
  optimisation (``GOLDEN``; recompute it with :func:`population_digest` only for an intended
  change of the engine's output);
* each model's :meth:`advance` against its object methods on adversarial streams.

Equality is bit-for-bit: floats compared through orjson bytes, key order included.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import random
from datetime import date, timedelta
from typing import Any, Callable

import orjson
import pytest

from detectors.engine import STATE_VERSION, Engine, EngineConfig, _festival_table, _model_reasons, features
from detectors.firm_models import CusumShift, FirmProfile, LevelSlide, StatefulDetector
from detectors.rules import LEVEL_RANK, Day, reason

#: sha256 of the synthetic population's detections and states (see population_digest), as
#: produced by the engine before its optimisation (computed with that code on this population;
#: the only platform dependence is the last bit of libm's log / exp, the same on every machine
#: of this project's kind). Updated deliberately for engine "detect-2" (festival profile in the
#: features, level_slide scoring/learning on usable festival days with h = 7, electricity_growth
#: months of >= 10 observed days and the rule's "lv" state), then for "detect-3" (festival level
#: relative to the firm's own festival depth, estimated on its first 3 deep festival days).
GOLDEN = "211a32c77e4d1d15ba9d0ef4d8554872377dbd21c00d65e76bce2a34123f2d32"

FESTIVAL = (date(2026, 2, 10), date(2026, 2, 27))  # around the 2026 Spring Festival (Feb 17)


# --------------------------------------------------------------------------------------------
# A deterministic synthetic population (no dependency on the vitality index)
# --------------------------------------------------------------------------------------------


def _one(i: int) -> float:
    return 1.0


def synthetic_firm(firm_id: str, industry: str, start: date, n_days: int, seed: int, *,
                   elec: Callable[[int], float] = _one, orders: Callable[[int], float] = _one,
                   pay: Callable[[int], float] = _one, inv: Callable[[int], float] = _one,
                   missing: range = range(0), silent: range = range(0), partial: range = range(0)
                   ) -> list[dict[str, Any]]:
    """Vitality-shaped records of one firm: levels scaled by the given day -> factor functions,
    weekends lower, seeded noise, warming-up band for 14 days, Spring Festival flags."""
    rng = random.Random(seed)
    out = []
    level = None
    for i in range(n_days):
        d = start + timedelta(days=i)
        wk = 0.4 if d.weekday() >= 5 else 1.0
        holiday = FESTIVAL[0] <= d <= FESTIVAL[1]
        hf = 0.5 if holiday else 1.0
        is_silent, is_missing = i in silent, i in missing or i in silent
        flags = (["silent"] if is_silent else []) + (["elec_missing"] if is_missing else []) + (
            ["elec_partial"] if i in partial else [])
        e_exp = 1000.0 * wk * hf
        kwh = 0.0 if is_missing else round(e_exp * elec(i) * (1.0 + rng.gauss(0.0, 0.05)), 3)
        if i in partial:
            kwh = round(kwh * 0.5, 3)
        lvl_today = kwh / (wk * hf)
        if not is_missing:
            level = lvl_today if level is None else round(0.95 * level + 0.05 * lvl_today, 4)
        o_exp = 6.0 * wk * hf
        n_orders = 0.0 if is_silent else float(max(0, round(o_exp * orders(i) * (1.0 + rng.gauss(0.0, 0.2)))))
        p_exp = 40000.0 * wk * hf
        pay_n = 0.0 if is_silent else float(max(0, round(8.0 * wk * hf * pay(i))))
        pay_amt = 0.0 if is_silent else round(5000.0 * pay_n * (1.0 + rng.gauss(0.0, 0.1)), 2)
        inv_n = 0.0 if (is_silent or d.weekday() >= 5) else float(max(0, round(3.0 * inv(i) + rng.random())))
        inv_amt = round(10000.0 * inv_n * (1.0 + rng.gauss(0.0, 0.1)), 2)
        act = None if i < 3 else round(orders(i) * pay(i) ** 0.5 * (1.0 + rng.gauss(0.0, 0.1)), 4)
        inv_ratio = None if i < 7 else round(inv(i) * (1.0 + rng.gauss(0.0, 0.15)), 4)
        out.append({
            "firm_id": firm_id,
            "day": d.isoformat(),
            "industry": industry,
            "score": 80.0,
            "band": "warming_up" if i < 14 else "healthy",
            "components": {
                "elec": {"value": kwh, "baseline": e_exp if i else 0.0, "missing": is_missing,
                         "ratio": None if (is_missing or i == 0) else round(kwh / e_exp, 4)},
                "logistics": {"value": n_orders, "baseline": o_exp if i else 0.0, "ratio": None},
                "payments": {"value": pay_amt, "baseline": p_exp if i else None, "ratio": None},
                "activity_3d": {"value": None, "baseline": None, "ratio": act},
                "invoice_amt": {"value": inv_amt, "baseline": None, "ratio": inv_ratio},
            },
            "baselines": {"kwh": level},
            "history_days": i + 1,
            "holiday": holiday,
            "flags": flags,
            "aggregate": {"n_events": 0.0 if is_silent else 50.0, "kwh": kwh, "log_created_n": n_orders,
                          "log_created_value": 2500.0 * n_orders, "pay_in_n": pay_n, "pay_in_amt": pay_amt,
                          "inv_issued_n": inv_n, "inv_issued_amt": inv_amt,
                          "inv_tax_amt": round(0.13 * inv_amt, 2)},
        })
    return out


def population() -> list[list[dict[str, Any]]]:
    """Eight firms, 160 days each: one scenario per rule and model, plus gaps and the festival."""
    s = date(2025, 6, 1)
    return [
        synthetic_firm("S0", "manufacturing", s, 160, 10, missing=range(60, 67), silent=range(80, 87),
                       partial=range(90, 92)),
        synthetic_firm("S1", "manufacturing", s, 160, 11, elec=lambda i: 1.0 if i < 100 else 0.06,
                       orders=lambda i: 1.0 if i < 100 else 0.0, pay=lambda i: 1.0 if i < 100 else 0.05),
        synthetic_firm("S2", "logistics_trade", s, 160, 12,
                       elec=lambda i: 1.0 if i < 90 else max(0.3, 1.0 - 0.02 * (i - 90))),
        synthetic_firm("S3", "restaurant_retail", date(2025, 12, 1), 160, 13,
                       pay=lambda i: 1.0 if i < 110 else 0.35, orders=lambda i: 1.0 if i < 110 else 0.6),
        # growing: electricity_growth from October, suppressed after a power-dip warning on Oct 4-5
        synthetic_firm("S4", "wholesale", s, 160, 14,
                       elec=lambda i: 1.08 ** (i / 30.0) * (0.2 if i in (125, 126) else 1.0),
                       inv=lambda i: 1.2 ** (i / 30.0), orders=lambda i: 1.2 ** (i / 30.0)),
        synthetic_firm("S5", "wholesale", s, 160, 15, inv=lambda i: 1.0 if i < 70 else 0.25),
        # a seasonal dip whose first days decouple (payments up while power is down)
        synthetic_firm("S6", "manufacturing", date(2025, 12, 1), 160, 16,
                       elec=lambda i: 0.3 if 100 <= i < 104 else 0.5 if 104 <= i < 114 else 1.0,
                       pay=lambda i: 3.0 if 100 <= i < 104 else 1.0),
        synthetic_firm("S7", "services", date(2025, 12, 1), 160, 17,
                       elec=lambda i: 0.25 if i in (40, 41) else 1.0, silent=range(120, 123)),
    ]


def run_engine(step: Callable[[dict | None, dict], tuple[list, dict]], firms, roundtrip: bool = False
               ) -> tuple[list[list[dict]], list[dict]]:
    dets, states = [], []
    for recs in firms:
        st = None
        for r in recs:
            d, st = step(st, r)
            if roundtrip:
                st = orjson.loads(orjson.dumps(st))
            dets.append(d)
            states.append(st)
    return dets, states


def digest(dets, states) -> str:
    h = hashlib.sha256()
    for obj in (*dets, *states):
        h.update(orjson.dumps(obj))
        h.update(b"\n")
    return h.hexdigest()


def population_digest(engine: Engine | None = None) -> str:
    return digest(*run_engine((engine or Engine()).on_day, population()))


# --------------------------------------------------------------------------------------------
# The straightforward engine, on the detectors' object API
# --------------------------------------------------------------------------------------------


def reference_run(engine: Engine, state: dict | None, record: dict) -> tuple[list[dict], dict]:
    """One firm-day the plain way: every state copied in and out of detector objects."""
    cfg = engine.config
    day = Day.from_record(record)
    if state is not None:
        assert state["v"] == STATE_VERSION
        if day.ordinal <= state["d"]:
            return [], state
        rstates, mstates, counters, levels = state["r"], state["m"], state["k"], state["e"]
        fstate, last_warn = state["f"], state["lw"]
    else:
        rstates, mstates, counters, levels, fstate, last_warn = {}, {}, {}, {}, None, None
    rstates, mstates, fstate = copy.deepcopy(rstates), copy.deepcopy(mstates), copy.deepcopy(fstate)
    new_r, new_m, new_k, new_e, dets, growth = {}, {}, {}, {}, [], []
    base = {"firm_id": day.firm_id, "day": day.day}
    for rule in cfg.rules:
        if rule.applies(day.industry):
            hit, st = rule.step(rstates.get(rule.id), day)
            new_r[rule.id] = copy.deepcopy(st)
            if hit is not None:
                dets.append({**base, "source": "rule", **hit})
                if hit["action"] == "INCREASE_ELIGIBLE":
                    growth.append(dets[-1])
    feats, new_f = features(day, fstate, cfg.payment_prior, _festival_table(
        cfg.festival_profile, cfg.festival_depth_spread, cfg.festival_max_tolerance),
        cfg.festival_anchor_days)
    skip_all = day.warming_up or day.no_evidence
    for spec in (m for m in cfg.models if m.enabled):
        det = engine._dets[spec.name]
        det.load_state(mstates.get(spec.name))
        cnt = list(counters.get(spec.name) or [0] * len(spec.warning))
        lvl = levels.get(spec.name, -1)
        if spec.multivariate:
            x: Any = {f: feats[f] for f in spec.inputs if feats.get(f) is not None}
            has_x = bool(x)
        else:
            x = feats.get(spec.inputs[0])
            has_x = x is not None
        if has_x and not skip_all and (spec.score_on_holiday or not day.holiday):
            s = det.score_one(x) if day.holiday and not spec.learn_on_holiday else det.score_learn_one(x)
            cnt = [c + 1 if s >= t else 0 for c, (t, _) in zip(cnt, spec.warning)]
            warn = any(c >= k for c, (_, k) in zip(cnt, spec.warning))
            level = "warning" if warn else (
                "watch" if spec.watch_threshold is not None and s >= spec.watch_threshold else None)
            if level is not None:
                dets.append({**base, "source": "model", "name": spec.name, "level": level,
                             "action": spec.action if warn else spec.watch_action, "score": round(s, 4),
                             "new": LEVEL_RANK[level] > lvl,
                             "reasons": _model_reasons(spec, det, x, max(cnt or [0]))})
                lvl = LEVEL_RANK[level]
            else:
                lvl = -1
        new_m[spec.name] = det.state_dict()
        new_k[spec.name] = cnt
        new_e[spec.name] = lvl
    if any(LEVEL_RANK[d["level"]] >= LEVEL_RANK["warning"] for d in dets):
        last_warn = day.ordinal
    if growth and last_warn is not None and day.ordinal - last_warn <= cfg.suppress_increase_days:
        for d in growth:
            d["action"] = "NONE"
            d["reasons"] = d["reasons"] + [reason(
                "suppressed_by_warning", {"last_warning_days_ago": day.ordinal - last_warn},
                {"suppress_increase_days": cfg.suppress_increase_days}, 0.0,
                f"credit increase suppressed: a warning was raised within {cfg.suppress_increase_days} days")]
    return dets, {"v": STATE_VERSION, "d": day.ordinal, "r": new_r, "m": new_m, "k": new_k, "e": new_e,
                  "f": copy.deepcopy(new_f), "lw": last_warn}


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def firms():
    return population()


def test_population_covers_every_rule_and_model(firms):
    dets, _ = run_engine(Engine().on_day, firms)
    names = {(d["name"], d["level"]) for ds in dets for d in ds}
    for rule in ("power_logistics_stall", "tax_decline_weekly", "order_drop", "electricity_growth",
                 "feed_silence"):
        assert any(n == rule for n, _ in names), rule
    for model in ("firm_profile", "elec_shift", "level_slide"):
        assert any(n == model for n, _ in names), model
    assert ("firm_profile", "warning") in names and ("level_slide", "warning") in names


@pytest.mark.parametrize("config", [EngineConfig(), EngineConfig.from_dict(
    {"models": {"firm_profile": {"warning": [[0.3, 1]], "learn_on_holiday": True},
                "elec_shift": {"params": {"direction": "both"}, "warning": [[0.5, 1]]},
                "level_slide": {"params": {"direction": "both"}, "score_on_holiday": True}},
     "rules": {"order_drop": {"drop": 0.2}}})], ids=["default", "variant"])
def test_engine_equals_the_straightforward_reference(firms, config):
    engine = Engine(config)
    ref_engine = Engine(config)  # its own detector objects: the reference loads states into them
    ref = run_engine(lambda st, r: reference_run(ref_engine, st, r), firms)
    assert sum(len(d) for d in ref[0]) > 50
    fast = run_engine(engine.on_day, firms)
    assert orjson.dumps(fast) == orjson.dumps(ref)
    assert orjson.dumps(run_engine(engine.on_day, firms, roundtrip=True)) == orjson.dumps(ref)


def test_engine_output_is_unchanged_by_the_optimisation(firms):
    """Golden digest of the pre-optimisation engine (a change here is a change of output)."""
    assert digest(*run_engine(Engine().on_day, firms)) == GOLDEN


def test_step_reports_scores_and_features(firms):
    engine = Engine()
    st = None
    for r in firms[1][:40]:
        res = engine.step(st, r)
        d, st2 = engine.on_day(st, r)
        assert orjson.dumps(res.detections) == orjson.dumps(d) and res.state == st2
        assert set(res.scores) == {m.name for m in engine.config.models if m.enabled}
        assert set(res.features) == {"elec", "level", "activity", "payments", "invoice"}
        st = res.state


def test_states_are_never_mutated_later(firms):
    """Copy-on-write: a state handed out stays exactly as it was while the firm goes on."""
    engine = Engine()
    for recs in firms:
        st, kept = None, []
        for r in recs:
            _, st = engine.on_day(st, r)
            kept.append((st, orjson.dumps(st)))
        assert all(orjson.dumps(s) == frozen for s, frozen in kept)


def test_day_view_sets_every_field(firms):
    for r in (firms[0][0], firms[0][61], {"firm_id": "F", "day": "2026-01-05"}):
        day = Day.from_record(r)
        for f in dataclasses.fields(Day):
            getattr(day, f.name)  # an unset slot would raise AttributeError
    assert Day.from_record({"firm_id": "F", "day": "2026-01-05"}).industry == "default"


# --- each model: advance == the object methods ------------------------------------------------


def _stream(seed: int, n: int, multivariate: bool) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(n):
        v = rng.gauss(0.0, 0.1) - (0.8 if 60 <= i < 70 else 0.0) - 0.01 * max(0, i - 100)
        if multivariate:
            x: dict[str, Any] = {"pay": rng.gauss(0.0, 0.3), "elec": v}  # unsorted on purpose
            if i >= 20:
                x["inv"] = rng.gauss(0.0, 0.2) + (1.5 if 61 <= i < 63 else 0.0)  # a feature that starts late
            if i % 17 == 0:
                x["elec"] = None
            if i % 23 == 0:
                x["pay"] = float("nan")
            if i == 45:
                x["inv"] = float("inf")
            out.append(x)
        else:
            out.append(float("nan") if i % 31 == 0 else float("inf") if i == 77 else v)
    return out


@pytest.mark.parametrize("make, multivariate", [
    (lambda: CusumShift(direction="down", min_scale=0.05, protected=True, protect_threshold=0.5), False),
    (lambda: CusumShift(direction="both", k=0.3, h=4.0), False),
    (lambda: CusumShift(direction="up", min_scale=0, z_cap=2.0), False),
    (lambda: LevelSlide(direction="down"), False),
    (lambda: LevelSlide(direction="both", suppress=3, warmup=5, protected=True, protect_threshold=0.6),
     False),
    (lambda: FirmProfile(signs={"elec": -1, "pay": 1}, pairs=[["elec", "pay"], ["elec", "inv"]], warmup=5,
                         min_scale={"elec": 0.2, "pay": 0.3}, protected=True, protect_threshold=0.5), True),
    (lambda: FirmProfile(min_scale=0.1, warmup=3, second_weight=0.7), True),
], ids=["cusum_down", "cusum_both", "cusum_up", "slide_down", "slide_both", "profile_pairs", "profile_plain"])
def test_advance_equals_the_object_methods(make, multivariate):
    for seed in range(3):
        xs = _stream(seed, 160, multivariate)
        learn = [i % 11 != 5 for i in range(len(xs))]  # some score-only (festival) days
        obj, fn = make(), make()
        state: dict | None = None
        for x, ln in zip(xs, learn):
            s_obj = obj.score_learn_one(x) if ln else obj.score_one(x)
            s_fn, new = fn.advance(state, x, ln)
            assert orjson.dumps(s_fn) == orjson.dumps(s_obj)
            assert orjson.dumps(new) == orjson.dumps(obj.state_dict())
            state = orjson.loads(orjson.dumps(new)) if seed == 1 else new  # JSON in between, or not
        assert fn.initial_state() == make().state_dict()


def test_generic_advance_uses_the_object_api():
    class Plain(CusumShift):  # a stateful detector without its own advance / initial_state
        advance = StatefulDetector.advance
        initial_state = StatefulDetector.initial_state

    det, ref = Plain(warmup=2), CusumShift(warmup=2)
    state = None
    for x in [0.1, 0.2, 0.0, -3.0, 0.1]:
        s, state = det.advance(state, x)
        assert s == ref.score_learn_one(x) and state == ref.state_dict()
    assert Plain().initial_state() == CusumShift().state_dict()
    assert not math.isnan(s)
