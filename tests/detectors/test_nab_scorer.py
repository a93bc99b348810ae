"""The NAB scorer on hand-made cases, the fast threshold sweep against brute force, and
(when the corpus is present) the windows and published Windowed Gaussian figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from detectors import nab
from detectors.nab import PROFILES, FileLabels, evaluate_scores, optimize_threshold, scaled_sigmoid, score_file

STD = PROFILES["standard"]
NAB_ROOT = Path("/work/shared/nab")


def detections(n, rows):
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


# one file: 100 rows, probation 15, window [40, 49] (width 10)
LAB = FileLabels(n=100, windows=[(40, 49)])


def test_probation_length():
    assert nab.probation_length(100) == 15
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(5000) == 750
    assert nab.probation_length(22695) == 750


def test_scaled_sigmoid_shape():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.5) == pytest.approx(-scaled_sigmoid(-0.5))
    assert scaled_sigmoid(3.0) == -1.0 and scaled_sigmoid(10.0) == -1.0


def test_null_detector_costs_fn_weight_per_window_per_profile():
    null = np.zeros(100)
    for prof in PROFILES.values():
        assert score_file(null, LAB, 0.5, prof) == pytest.approx(-prof.fn)
    two = FileLabels(n=200, windows=[(40, 49), (120, 139)])
    assert score_file(np.zeros(200), two, 0.5, PROFILES["reward_low_FN_rate"]) == pytest.approx(-4.0)


def test_detection_at_left_edge_earns_full_tp_weight():
    assert score_file(detections(100, [40]), LAB, 0.5, STD) == pytest.approx(1.0)


def test_early_detection_beats_late_detection():
    early = score_file(detections(100, [41]), LAB, 0.5, STD)
    middle = score_file(detections(100, [45]), LAB, 0.5, STD)
    late = score_file(detections(100, [49]), LAB, 0.5, STD)
    assert 1.0 > early > middle > late > 0.0
    # relative position y = -(49 - i + 1) / 10
    assert middle == pytest.approx(scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0))
    assert late == pytest.approx(scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0))


def test_only_first_detection_in_window_counts():
    first = score_file(detections(100, [43]), LAB, 0.5, STD)
    assert score_file(detections(100, [43, 44, 47, 49]), LAB, 0.5, STD) == pytest.approx(first)
    assert score_file(detections(100, [47]), LAB, 0.5, STD) < first


def test_fp_before_any_window_costs_full_fp_weight():
    for prof in PROFILES.values():
        s = score_file(detections(100, [20]), LAB, 0.5, prof)
        assert s == pytest.approx(-prof.fn - prof.fp)
    s = score_file(detections(100, [20, 25, 30]), LAB, 0.5, STD)
    assert s == pytest.approx(-1.0 - 3 * 0.11)


def test_fp_after_window_cost_grows_with_distance():
    near = score_file(detections(100, [40, 50]), LAB, 0.5, STD) - 1.0
    mid = score_file(detections(100, [40, 54]), LAB, 0.5, STD) - 1.0
    far = score_file(detections(100, [40, 90]), LAB, 0.5, STD) - 1.0
    assert 0.0 > near > mid > far
    assert near == pytest.approx(0.11 * scaled_sigmoid(1 / 9))
    assert far == pytest.approx(-0.11)


def test_probationary_detections_are_ignored():
    assert score_file(detections(100, [0, 5, 14]), LAB, 0.5, STD) == pytest.approx(-1.0)
    assert score_file(detections(100, [15]), LAB, 0.5, STD) == pytest.approx(-1.11)


def test_window_partly_in_probation_only_scores_rows_after_it():
    lab = FileLabels(n=100, windows=[(10, 29)])  # probation = rows 0..14
    assert score_file(detections(100, [10]), lab, 0.5, STD) == pytest.approx(-1.0)
    y = -(29 - 15 + 1) / 20
    assert score_file(detections(100, [10, 15]), lab, 0.5, STD) == pytest.approx(scaled_sigmoid(y) / scaled_sigmoid(-1))


def test_threshold_is_inclusive():
    s = np.zeros(100)
    s[40] = 0.7
    assert score_file(s, LAB, 0.7, STD) == pytest.approx(1.0)
    assert score_file(s, LAB, 0.70001, STD) == pytest.approx(-1.0)


def _corpus():
    return [
        FileLabels(n=100, windows=[(40, 49)]),
        FileLabels(n=300, windows=[(60, 89), (200, 229)]),
        FileLabels(n=120, windows=[]),
    ]


def test_perfect_detector_scores_100_and_null_scores_0():
    labels = _corpus()
    perfect = [detections(lab.n, [a for a, _ in lab.windows]) for lab in labels]
    null = [np.zeros(lab.n) for lab in labels]
    for name in PROFILES:
        assert evaluate_scores(perfect, labels, [name])[name].score == pytest.approx(100.0)
        res = evaluate_scores(null, labels, [name])[name]
        assert res.score == pytest.approx(0.0)
        assert res.tp == 0 and res.fn == 3 and res.fp == 0


def test_optimised_threshold_trades_fp_for_tp_by_profile():
    # one window; a detection just inside the window's right edge (+ ~0.0 TP, saves the FN)
    # comes with 6 far false positives at the same score: worth it only when FPs are cheap
    lab = FileLabels(n=300, windows=[(100, 129)])
    s = np.zeros(300)
    s[[129, 200, 210, 220, 230, 240, 250]] = 0.8
    for name, prof in PROFILES.items():
        res = evaluate_scores([s], [lab], [name])[name]
        detect = score_file(s, lab, 0.8, prof)
        expect_thr = 0.8 if detect > -prof.fn else math.inf
        assert res.threshold == expect_thr
        assert res.raw == pytest.approx(max(detect, -prof.fn))


@pytest.mark.parametrize("seed", range(4))
def test_fast_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(5):
        n = int(rng.integers(80, 400))
        k = int(rng.integers(0, 4))
        starts = np.sort(rng.choice(np.arange(5, n - 20), size=k, replace=False)) if k else []
        wins, last = [], -1
        for a in starts:
            a = max(int(a), last + 2)
            b = min(a + int(rng.integers(1, 15)), n - 1)
            if a <= b and a < n:
                wins.append((a, b))
                last = b
        labels.append(FileLabels(n=n, windows=wins))
    # coarse score levels -> many ties, like saturated detectors
    scores = [np.round(rng.random(lab.n) ** 3, 2) for lab in labels]
    prep = nab._prepare(labels)
    a = nab._scored_concat(scores, labels)
    for prof in PROFILES.values():
        thresholds, totals, _ = nab._sweep(a, prep, prof)
        assert thresholds[0] == np.inf
        for thr, tot in zip(thresholds, totals):
            brute = sum(score_file(s, lab, thr, prof) for s, lab in zip(scores, labels))
            assert tot == pytest.approx(brute, abs=1e-9)
        thr, best = optimize_threshold(scores, labels, prof)
        assert best == pytest.approx(max(totals))
        raw, per_file, *_ = nab.score_corpus(scores, labels, thr, prof)
        assert raw == pytest.approx(best)
        assert per_file == pytest.approx([score_file(s, lab, thr, prof) for s, lab in zip(scores, labels)])


def test_windows_from_labels_rule():
    # width int(0.1 * 1000 / 2) = 50, centred, clipped, overlaps merged
    assert nab.windows_from_labels(1000, [100, 500]) == [(75, 125), (475, 525)]
    assert nab.windows_from_labels(1000, [10]) == [(0, 60)]
    assert nab.windows_from_labels(1000, [100, 120]) == [(75, 145)]
    assert nab.windows_from_labels(1000, []) == []


needs_corpus = pytest.mark.skipif(not (NAB_ROOT / "labels").is_dir(), reason="NAB corpus not present")


@pytest.fixture(scope="module")
def corpus():
    return nab.load_corpus(NAB_ROOT)


@needs_corpus
def test_corpus_windows_follow_readme_rule(corpus):
    files = corpus
    assert len(files) == 58
    assert sum(len(f.labels.windows) for f in files) == 116
    assert sum(f.labels.n for f in files) == 365558
    # one known NAB quirk: that file's first window is not centred on its label
    assert nab.check_windows(files) == ["realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"]
    assert all(b >= f.labels.probation for f in files for _, b in f.labels.windows)


@needs_corpus
@pytest.mark.parametrize(
    "name, published",
    # per-file raw standard scores of NAB's published windowedGaussian results (threshold 1.0)
    [("realTraffic/speed_7578.csv", 3.47059145681), ("realAdExchange/exchange-3_cpc_results.csv", 2.50266326119),
     ("realAdExchange/exchange-4_cpm_results.csv", 1.27471036268)],
)
def test_windowed_gaussian_matches_published_file_scores(corpus, name, published):
    from detectors.univariate import WindowedGaussian

    f = next(f for f in corpus if f.name == name)
    scores = nab.nab_round(nab.run_detector(WindowedGaussian(), f.values))
    assert score_file(scores, f.labels, 1.0, STD) == pytest.approx(published, abs=1e-9)
