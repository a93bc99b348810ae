"""Behaviour of the univariate detectors on synthetic streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.base import REGISTRY
from detectors.univariate import DefaultDetector, HalfSpaceTreesDetector, RangeNoveltyDetector, WindowedGaussian


def seasonal(n=1500, seed=1, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 2 * np.sin(2 * np.pi * t / 96) + rng.normal(0, noise, n)


def run(det, xs):
    return np.array([det.score_learn_one(float(v)) for v in xs])


def test_range_novelty_flags_a_spike_above_every_normal_point():
    xs = seasonal()
    xs[1000] += 8.0
    s = run(RangeNoveltyDetector(), xs)
    normal = np.delete(s[200:], 1000 - 200)
    assert s[1000] > 0.5
    assert s[1000] > normal.max()


def test_range_novelty_flags_a_level_shift_at_its_onset():
    xs = seasonal()
    xs[1000:] += 6.0  # the level leaves its band for good
    s = run(RangeNoveltyDetector(), xs)
    assert s[1000] > s[200:1000].max()
    assert s[1000] > 0.3
    # reported once: later points of the new level do not raise new alerts
    assert (s[1001:1075] < s[1000]).all()


def test_range_novelty_flags_a_drop_inside_the_global_range():
    # the series once visited low values, long ago; a later drop is outside the recent band
    xs = seasonal(n=3000)
    xs[150:160] = 2.0
    xs[2500:] -= 5.0
    s = run(RangeNoveltyDetector(), xs)
    assert s[2500] > s[300:2500].max()


@pytest.mark.parametrize("seed", range(3))
def test_range_novelty_quiet_on_normal_data(seed):
    s = run(RangeNoveltyDetector(), seasonal(seed=seed))
    assert s[:100].max() == 0.0  # warm-up
    # noise occasionally sets a new record (a mild score), nothing like a real anomaly
    assert np.mean(s[100:] > 0.05) < 0.01
    assert s[100:].max() < 0.4


def test_range_novelty_is_deterministic_and_in_range():
    xs = seasonal()
    xs[700] = 1e9
    a, b = run(RangeNoveltyDetector(), xs), run(RangeNoveltyDetector(), xs)
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()


def test_range_novelty_suppresses_repeats_but_reports_a_worse_one():
    xs = seasonal()
    xs[1000] += 8.0
    xs[1010] += 8.0  # same size again, soon after: suppressed
    xs[1020] += 60.0  # much worse: reported
    s = run(RangeNoveltyDetector(), xs)
    assert s[1000] > 0.5 and s[1010] == 0.0 and s[1020] > s[1000]

    # a level shift keeps setting small new records as the new level's noise unfolds:
    # suppression reports its onset only
    xs = seasonal()
    xs[1000:] += 6.0
    plain, rested = run(RangeNoveltyDetector(rest=0), xs), run(RangeNoveltyDetector(), xs)
    assert plain[1000] == rested[1000] > 0.3
    assert (plain[1001:1075] > 0.05).sum() > (rested[1001:1075] > 0.05).sum() == 0


def test_range_novelty_protection_keeps_flagging_a_level_shift():
    xs = seasonal()
    xs[1000:] += 6.0
    plain = run(RangeNoveltyDetector(), xs)
    guarded = run(RangeNoveltyDetector(protected=True, protect_threshold=0.2, rest=0), xs)
    # unprotected: learns the new level and calms down; protected: the shift is never learned
    assert plain[1200:].max() < 0.2
    assert guarded[1200:].min() > 0.2


def test_range_novelty_accepts_dict_input_and_explains():
    det = RangeNoveltyDetector(warmup=10)
    for v in seasonal(300):
        det.learn_one({"value": float(v)})
    parts = det.surprises({"value": 30.0})
    assert parts["global_range"] > 1.0 and parts["recent_range"] > 1.0 and parts["gauss_z"] > 10
    assert det.score_one(30.0) == det.score_one({"kwh": 30.0})


def test_windowed_gaussian_matches_definition():
    xs = seasonal(300)
    det = WindowedGaussian(window_size=100, step_size=10)
    s = run(det, xs)
    # point 250: the window holds values 0..99 then slid by 10s; last slide after value 249
    window = xs[150:250]
    z = abs(xs[250] - window.mean()) / window.std()
    assert s[250] == pytest.approx(1 - 0.5 * math.erfc(z / math.sqrt(2)))
    assert s[0] == 0.0


def test_windowed_gaussian_spike():
    xs = seasonal(800)
    xs[600] += 10
    s = run(WindowedGaussian(), xs)
    assert s[600] > np.delete(s[100:], 500).max()


def test_hst_runs_and_is_seeded():
    xs = seasonal(600)
    a = run(HalfSpaceTreesDetector(seed=3), xs)
    b = run(HalfSpaceTreesDetector(seed=3), xs)
    assert np.array_equal(a, b) and ((a >= 0) & (a <= 1)).all()


# ---------------------------------------------------------------------------------------
# DefaultDetector: range novelty + run-length novelty + repeat suppression


def square(n=1500, seed=1, noise=0.3, period=48):
    """A noisy square wave: ``period // 2`` steps near 0, then as many near 10."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.where(t % period < period // 2, 0.0, 10.0) + rng.normal(0, noise, n)


def test_default_is_registered_and_the_previous_one_kept():
    assert REGISTRY["default"] is DefaultDetector
    assert REGISTRY["range_novelty"] is RangeNoveltyDetector


def test_default_flags_a_spike_above_every_normal_point():
    xs = seasonal()
    xs[1000] += 8.0
    s = run(DefaultDetector(), xs)
    normal = np.delete(s[200:], 1000 - 200)
    assert s[1000] > 0.5
    assert s[1000] > 2 * normal.max()


def test_default_flags_a_level_shift_once_at_its_onset():
    xs = seasonal()
    xs[1000:] += 6.0
    s = run(DefaultDetector(), xs)
    assert s[1000] > 0.5
    assert s[1000] > 2 * s[200:1000].max()
    assert s[1001:].max() < 0.05  # the new level is learned; the shift is not reported again


@pytest.mark.parametrize("seed", range(3))
def test_default_flags_a_flat_middle_inside_the_range(seed):
    # the square wave gets stuck half-way for a period: every value is inside the normal
    # range, so range novelty is blind to it; the (level, run length) pair is new
    xs = square(seed=seed)
    xs[1200:1248] = 5.0 + np.random.default_rng(99).normal(0, 0.3, 48)
    det = DefaultDetector()
    s = run(det, xs)
    assert run(RangeNoveltyDetector(), xs)[1200:1248].max() < 0.05
    assert s[1200:1205].max() >= det.novelty_weight
    assert s[1205:1248].max() == 0.0  # reported once


def test_default_flags_a_missing_jump():
    # the low half of the cycle lasts twice as long as ever before (32 steps is a new
    # run-length class): flagged when the run reaches 32 steps, i.e. at step 1231
    xs = square()
    xs[1224:1248] = xs[1200:1224]
    det = DefaultDetector()
    s = run(det, xs)
    assert run(RangeNoveltyDetector(), xs)[1200:1260].max() < 0.05
    assert s[1231] == det.novelty_weight
    assert s[1200:1231].max() == 0.0 and s[1232:1260].max() == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_default_quiet_on_normal_data(seed):
    for xs in (seasonal(seed=seed), square(seed=seed)):
        s = run(DefaultDetector(), xs)
        assert s[:50].max() == 0.0  # warm-up
        # noise occasionally sets a mild record; rarely, and nothing like a real anomaly
        assert np.mean(s[200:] > 0) < 0.015
        assert s[200:].max() < 0.4


def test_default_quiet_on_a_flat_line():
    assert run(DefaultDetector(), np.full(3000, 3.0)).max() == 0.0


def test_default_is_deterministic_and_in_range():
    xs = square()
    xs[700], xs[900], xs[1100] = 1e12, -1e12, 0.0
    a, b = run(DefaultDetector(), xs), run(DefaultDetector(), xs)
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()
    assert a[700] > 0.8 and a[900] > 0.8


def test_default_clone_is_fresh():
    xs = square()
    xs[1200:1248] = 5.0
    det = DefaultDetector(hysteresis=0.2)
    first = run(det, xs[:1300])
    clone = det.clone()
    assert clone.hysteresis == 0.2 and not clone._shape.seen and clone._range._n == 0
    assert np.array_equal(run(clone, xs[:1300]), first)
    # the trained detector carries state (it scores a replay differently); the clone did not
    assert not np.array_equal(run(det, xs[:1300]), first)


def test_default_explains_its_score():
    det = DefaultDetector()
    for v in square(1200):
        det.learn_one({"value": float(v)})
    mid, spike = det.components(5.0), det.components({"kwh": 40.0})
    assert mid["range"] < 0.01 and mid["shape"] == det.novelty_weight
    assert spike["range"] > 0.9
    assert det.score_one(40.0) == det.score_one({"kwh": 40.0}) == max(spike.values())


def test_default_has_no_lookahead():
    # the scores of a prefix do not depend on what follows it
    xs = square()
    xs[1200:1248] = 5.0
    full = run(DefaultDetector(), xs)
    assert np.array_equal(run(DefaultDetector(), xs[:1210]), full[:1210])
