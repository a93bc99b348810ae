"""Behaviour of the univariate detectors on synthetic streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.univariate import DefaultDetector, HalfSpaceTreesDetector, WindowedGaussian


def seasonal(n=1500, seed=1, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 2 * np.sin(2 * np.pi * t / 96) + rng.normal(0, noise, n)


def run(det, xs):
    return np.array([det.score_learn_one(float(v)) for v in xs])


def test_default_flags_a_spike_above_every_normal_point():
    xs = seasonal()
    xs[1000] += 8.0
    s = run(DefaultDetector(), xs)
    normal = np.delete(s[200:], 1000 - 200)
    assert s[1000] > 0.5
    assert s[1000] > normal.max()


def test_default_flags_a_level_shift_at_its_onset():
    xs = seasonal()
    xs[1000:] += 6.0  # the level leaves its band for good
    s = run(DefaultDetector(), xs)
    assert s[1000] > s[200:1000].max()
    assert s[1000] > 0.3
    # reported once: later points of the new level do not raise new alerts
    assert (s[1001:1075] < s[1000]).all()


def test_default_flags_a_drop_inside_the_global_range():
    # the series once visited low values, long ago; a later drop is outside the recent band
    xs = seasonal(n=3000)
    xs[150:160] = 2.0
    xs[2500:] -= 5.0
    s = run(DefaultDetector(), xs)
    assert s[2500] > s[300:2500].max()


@pytest.mark.parametrize("seed", range(3))
def test_default_quiet_on_normal_data(seed):
    s = run(DefaultDetector(), seasonal(seed=seed))
    assert s[:100].max() == 0.0  # warm-up
    # noise occasionally sets a new record (a mild score), nothing like a real anomaly
    assert np.mean(s[100:] > 0.05) < 0.01
    assert s[100:].max() < 0.4


def test_default_is_deterministic_and_in_range():
    xs = seasonal()
    xs[700] = 1e9
    a, b = run(DefaultDetector(), xs), run(DefaultDetector(), xs)
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()


def test_default_suppresses_repeats_but_reports_a_worse_one():
    xs = seasonal()
    xs[1000] += 8.0
    xs[1010] += 8.0  # same size again, soon after: suppressed
    xs[1020] += 60.0  # much worse: reported
    s = run(DefaultDetector(), xs)
    assert s[1000] > 0.5 and s[1010] == 0.0 and s[1020] > s[1000]

    # a level shift keeps setting small new records as the new level's noise unfolds:
    # suppression reports its onset only
    xs = seasonal()
    xs[1000:] += 6.0
    plain, rested = run(DefaultDetector(rest=0), xs), run(DefaultDetector(), xs)
    assert plain[1000] == rested[1000] > 0.3
    assert (plain[1001:1075] > 0.05).sum() > (rested[1001:1075] > 0.05).sum() == 0


def test_default_protection_keeps_flagging_a_level_shift():
    xs = seasonal()
    xs[1000:] += 6.0
    plain = run(DefaultDetector(), xs)
    guarded = run(DefaultDetector(protected=True, protect_threshold=0.2, rest=0), xs)
    # unprotected: learns the new level and calms down; protected: the shift is never learned
    assert plain[1200:].max() < 0.2
    assert guarded[1200:].min() > 0.2


def test_default_accepts_dict_input_and_explains():
    det = DefaultDetector(warmup=10)
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
