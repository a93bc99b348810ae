"""Per-firm online models on synthetic series: they catch a collapse and a slow slide, not noise."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detectors.base import REGISTRY
from detectors.firm_models import CusumShift, FirmProfile, LevelSlide, squash


def noise(n: int, sd: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_registered_for_the_contract_test():
    assert REGISTRY["cusum_shift"] is CusumShift
    assert REGISTRY["firm_profile"] is FirmProfile and FirmProfile.input_kind == "multivariate"
    assert REGISTRY["level_slide"] is LevelSlide


def test_squash_is_the_common_calibration():
    assert squash(0.0, 4.0) == 0.0 and squash(4.0, 4.0) == 0.5
    assert math.isclose(squash(8.0, 4.0), 1 - 2 ** -4)
    assert squash(float("nan"), 1.0) == 0.0 and squash(1e9, 1.0) == 1.0


# --- CUSUM -----------------------------------------------------------------------------------


def test_cusum_flags_a_collapse_at_once_and_not_normal_noise():
    for seed in range(5):
        det = CusumShift(direction="down", min_scale=0.05, protected=True, protect_threshold=0.5)
        xs = noise(200, 0.07, seed)  # log electricity ratio of a normal firm
        normal = [det.score_learn_one(float(x)) for x in xs]
        assert max(normal) < 0.5
        collapse = [det.score_learn_one(math.log(0.08)) for _ in range(3)]
        # one step of a capped z (6 - k = 5.5 < h = 8) is below the decision point, two are above;
        # protected, a flagged point is not learned (not even by the accumulator): the alarm holds
        assert 0.2 < collapse[0] < 0.5 < collapse[1] == collapse[2]
        unprotected = CusumShift(direction="down", min_scale=0.05)
        for x in xs:
            unprotected.learn_one(float(x))
        assert [unprotected.score_learn_one(math.log(0.08)) > 0.9 for _ in range(3)] == [False, False, True]


def test_cusum_direction_up_ignores_drops():
    det = CusumShift(direction="up")
    for x in noise(60, 0.05, 1):
        det.learn_one(float(x))
    assert det.score_one(-2.0) == 0.0 and det.score_one(2.0) > 0.2


# --- multivariate profile ----------------------------------------------------------------------


def profile(**kw) -> FirmProfile:
    params = dict(signs={"elec": -1, "payments": -1, "activity": -1}, pairs=[["elec", "payments"]],
                  min_scale={"elec": 0.35, "payments": 0.7, "activity": 0.5}, z_half=4.0, warmup=10)
    params.update(kw)
    return FirmProfile(**params)


def normal_days(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {"elec": float(rng.normal(0, 0.07)), "payments": float(rng.normal(0, 0.4)),
               "activity": float(rng.normal(0, 0.2))}


def test_profile_quiet_on_normal_days_and_loud_on_a_collapse():
    det = profile()
    scores = [det.score_learn_one(x) for x in normal_days(150, 3)]
    assert max(scores[10:]) < 0.2
    s = det.score_one({"elec": math.log(0.08), "payments": math.log(0.05), "activity": math.log(0.1)})
    assert s > 0.95
    # a 30% dip of electricity alone is below the decision point (materiality floor)
    assert det.score_one({"elec": math.log(0.7), "payments": 0.0, "activity": 0.0}) < 0.2


def test_profile_catches_payments_up_while_power_collapses():
    det = profile()
    for x in normal_days(60, 4):
        det.learn_one(x)
    x = {"elec": math.log(0.35), "payments": math.log(2.5), "activity": 0.0}
    alone = det.score_one({"elec": math.log(0.35), "payments": 0.0, "activity": 0.0})
    both = det.score_one(x)
    assert both > 0.5 > alone  # the decoupling is the extra evidence
    top = det.explain(x)
    assert top[0]["feature"] == "elec>payments" and top[0]["contribution"] > 0.5
    # payments up alone is not a risk signal (sign -1)
    assert det.score_one({"elec": 0.0, "payments": math.log(3.0), "activity": 0.0}) < 0.01


def test_profile_skips_missing_features_and_protects_its_baseline():
    det = profile(protected=True, protect_threshold=0.5)
    for x in normal_days(40, 5):
        det.learn_one(x)
    before = json.dumps(det.state_dict())
    det.learn_one({"elec": math.log(0.05), "payments": None, "activity": math.log(0.05)})  # flagged: not learned
    assert json.dumps(det.state_dict()) == before
    det.learn_one({"elec": None, "payments": 0.1})  # partial vector: only payments learned
    st = det.state_dict()["f"]
    assert st["payments"][0] == 41 and st["elec"][0] == 40


# --- slow slide ------------------------------------------------------------------------------


def series_then(after: list[float], seed: int, n0: int = 60, sd: float = 0.06) -> list[float]:
    base = noise(n0 + len(after), sd, seed)
    return [float(b) for b in base[:n0]] + [float(b + a) for b, a in zip(base[n0:], after)]


def first_at(det, xs, thr=0.5, start=0):
    for i, x in enumerate(xs):
        s = det.score_learn_one(x)
        if i >= start and s >= thr:
            return i - start
    return None


@pytest.mark.parametrize("length", [60, 30])  # the simulator's slides: 100% -> 20% in 30-60 days
def test_slide_is_detected_within_three_weeks(length):
    for seed in range(5):
        xs = series_then([math.log(1 - 0.8 * min(t, length) / length) for t in range(40)], seed)
        days = first_at(LevelSlide(direction="down"), xs, start=60)
        assert days is not None and days <= 21, (length, seed, days)


def test_slide_ignores_noise_and_a_seasonal_dip():
    for seed in range(5):
        assert first_at(LevelSlide(direction="down"), series_then([0.0] * 60, seed)) is None
        dip = [math.log(0.75)] + [math.log(0.5)] * 20 + [math.log(0.95)] + [0.0] * 20  # down at once, flat, back
        assert first_at(LevelSlide(direction="down"), series_then(dip, seed)) is None


# --- state -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make,xs", [
    (lambda: CusumShift(direction="down", protected=True, protect_threshold=0.5),
     [float(v) for v in noise(50, 0.05, 1)] + [-1.0] * 5 + [0.0] * 10),
    (lambda: profile(protected=True, protect_threshold=0.5),
     list(normal_days(50, 2)) + [{"elec": -2.0, "payments": -2.0, "activity": -2.0}] * 3 + list(normal_days(10, 3))),
    (lambda: LevelSlide(direction="down"), series_then([math.log(1 - 0.02 * t) for t in range(30)], 4)),
])
def test_state_json_round_trip_continues_identically(make, xs):
    ref = make()
    ref_scores = [ref.score_learn_one(x) for x in xs]
    det = make()
    scores = []
    for x in xs:
        scores.append(det.score_learn_one(x))
        state = json.loads(json.dumps(det.state_dict()))
        det = make().load_state(state)  # a fresh object restored from JSON, every step
    assert scores == ref_scores
    assert make().load_state(None).state_dict() == make().state_dict()


def test_docstring_examples():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("detectors.firm_models"), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
