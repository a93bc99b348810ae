"""Numenta Anomaly Benchmark (NAB v1.1) scorer and runner.

Written from the scoring rules in the corpus README (``/work/shared/nab/README.md``) and
matching NAB's reference ``sweeper.py`` in the details the README leaves open:

* probationary period = ``min(floor(0.15 * n), 750)`` rows; nothing in it is scored;
* a point at row ``i`` of a window ``[l, r]`` (width ``w = r - l + 1``) has relative
  position ``y = -(r - i + 1) / w`` (``-1`` at the left edge, ``-1/w`` ~ 0 at the right
  edge) and would earn ``tpWeight * scaled_sigmoid(y) / scaled_sigmoid(-1)`` -- exactly
  ``tpWeight`` for a detection on the left edge; only the first (= best) detection of a
  window counts; a window without detection costs ``-fnWeight``;
* a detection outside every window costs ``fpWeight * scaled_sigmoid(y)`` (negative)
  with ``y = (i - r_prev) / (w_prev - 1)`` its distance past the end of the previous
  window, or ``-fpWeight`` (full cost) if no window precedes it;
* ``scaled_sigmoid(y) = 2 / (1 + exp(5 y)) - 1`` (and -1 for ``y > 3``);
* a detector's threshold is optimised per profile over the whole corpus (every distinct
  anomaly score is tried, as NAB's sweep does); a point is a detection when its score is
  ``>= threshold``;
* normalised score = ``100 (S - S_null) / (S_perfect - S_null)`` with ``S`` the raw score
  summed over all files, ``S_null = -fnWeight * windows`` and
  ``S_perfect = tpWeight * windows``.

``riskmon nab PATH`` runs a registered detector over the corpus (files in parallel) and
prints the normalised scores of the three profiles next to NAB's published scoreboard.

>>> labels = FileLabels(n=100, windows=[(40, 49)])
>>> labels.probation
15
>>> s = np.zeros(100); s[40] = 1.0           # detection on the left edge of the window
>>> round(score_file(s, labels, 0.5, PROFILES["standard"]), 6)
1.0
>>> s[90] = 1.0                                # plus a false positive far after it
>>> round(score_file(s, labels, 0.5, PROFILES["standard"]), 6)
0.89
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "Profile",
    "PROFILES",
    "SCOREBOARD",
    "scaled_sigmoid",
    "probation_length",
    "FileLabels",
    "NabFile",
    "load_corpus",
    "windows_from_labels",
    "check_windows",
    "score_file",
    "score_corpus",
    "optimize_threshold",
    "run_detector",
    "evaluate",
    "evaluate_scores",
    "nab_round",
    "add_arguments",
    "main",
]


class Profile(NamedTuple):
    tp: float
    fn: float
    fp: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(1.0, 1.0, 0.11),
    "reward_low_FP_rate": Profile(1.0, 1.0, 0.22),
    "reward_low_FN_rate": Profile(1.0, 2.0, 0.11),
}

#: published NAB v1.1 results (standard, reward_low_FP_rate, reward_low_FN_rate), from the corpus README
SCOREBOARD: dict[str, tuple[float, float, float]] = {
    "ARTime": (74.9, 65.1, 80.4),
    "Numenta HTM": (70.5, 62.6, 75.2),
    "CAD OSE": (69.9, 67.0, 73.2),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Random Cut Forest": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
    "Windowed Gaussian": (39.6, 20.9, 47.4),
    "Random": (11.0, 1.2, 19.5),
}

PROBATION_PERCENT = 0.15
WINDOW_SIZE = 0.10


def scaled_sigmoid(y):
    """NAB's scaled sigmoid ``2 * sigmoid(-5 y) - 1``: 1 far before, 0 at ``y = 0``, -1 far after.

    >>> [round(float(scaled_sigmoid(y)), 4) for y in (-1.0, -0.5, 0.0, 0.5, 4.0)]
    [0.9866, 0.8483, 0.0, -0.8483, -1.0]
    """
    y = np.asarray(y, dtype=float)
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    out = np.where(y >= 3.0, -1.0, out)
    return out if out.ndim else float(out)


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are not scored: 15% of the file, at most 750.

    >>> probation_length(1000), probation_length(22695)
    (150, 750)
    """
    return int(min(math.floor(percent * n), percent * 5000))


@dataclass
class FileLabels:
    """Row count and anomaly windows ``[(first row, last row), ...]`` (inclusive, sorted) of one file."""

    n: int
    windows: list[tuple[int, int]]
    probation: int = -1

    def __post_init__(self):
        if self.probation < 0:
            self.probation = probation_length(self.n)
        self.windows = [(int(a), int(b)) for a, b in self.windows]
        for (a, b), nxt in zip(self.windows, self.windows[1:] + [(self.n, self.n)]):
            if not 0 <= a <= b < nxt[0]:
                raise ValueError(f"windows must be sorted, disjoint and inside [0, {self.n}): {self.windows}")

    def terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-row ``(window id or -1, unweighted value if detected, scored?)``.

        The value is ``scaled_sigmoid(y) / scaled_sigmoid(-1)`` for rows in a window (to
        be multiplied by tpWeight) and ``scaled_sigmoid(y)`` (negative) or -1 for rows
        outside (to be multiplied by fpWeight).
        """
        n = self.n
        i = np.arange(n)
        wid = np.full(n, -1, dtype=np.int64)
        val = np.full(n, -1.0)
        prev_end, prev_width = None, None
        for k, (a, b) in enumerate(self.windows):
            width = b - a + 1
            # outside rows between the previous window and this one
            lo = 0 if prev_end is None else prev_end + 1
            if prev_end is not None and lo < a:
                # NAB divides by (width - 1); a one-row window would divide by zero there
                y = (i[lo:a] - prev_end) / float(max(prev_width - 1, 1))
                val[lo:a] = scaled_sigmoid(y)
            wid[a : b + 1] = k
            val[a : b + 1] = scaled_sigmoid(-(b - i[a : b + 1] + 1) / float(width)) / MAX_TP
            prev_end, prev_width = b, width
        if prev_end is not None and prev_end + 1 < n:
            y = (i[prev_end + 1 :] - prev_end) / float(max(prev_width - 1, 1))
            val[prev_end + 1 :] = scaled_sigmoid(y)
        scored = i >= self.probation
        return wid, val, scored

    def scorable_windows(self) -> int:
        """Windows with at least one row after the probationary period (the others never count)."""
        return sum(1 for _, b in self.windows if b >= self.probation)


def score_file(scores: Sequence[float], labels: FileLabels, threshold: float, profile: Profile) -> float:
    """Raw NAB score of one file at one threshold -- a plain, readable reference implementation.

    A row is a detection when its score is ``>= threshold``.
    """
    scores = np.asarray(scores, dtype=float)
    if len(scores) != labels.n:
        raise ValueError(f"{len(scores)} scores for {labels.n} rows")
    total = 0.0
    prev_end = prev_width = None
    window_iter = iter(labels.windows)
    nxt = next(window_iter, None)
    cur = None
    credited = False
    # walk the rows in order, as NAB does
    window_score: dict[int, float] = {}
    k = -1
    for i in range(labels.n):
        if cur is None and nxt is not None and i == nxt[0]:
            cur, nxt = nxt, next(window_iter, None)
            k += 1
            credited = False
        detected = scores[i] >= threshold and i >= labels.probation
        if cur is not None:
            if i >= labels.probation:
                window_score.setdefault(k, -profile.fn)
            if detected and not credited:  # only the first detection in a window counts
                a, b = cur
                y = -(b - i + 1) / float(b - a + 1)
                window_score[k] = profile.tp * scaled_sigmoid(y) / MAX_TP
                credited = True
        elif detected:
            if prev_end is None:
                total += -1.0 * profile.fp
            else:
                y = abs(prev_end - i) / float(max(prev_width - 1, 1))
                total += scaled_sigmoid(y) * profile.fp
        if cur is not None and i == cur[1]:
            prev_end, prev_width = cur[1], cur[1] - cur[0] + 1
            cur = None
    return total + sum(window_score.values())


# ---------------------------------------------------------------------------------------
# fast corpus-wide threshold sweep


class _Prepared(NamedTuple):
    wid: np.ndarray  # global window id or -1, scored rows only
    val: np.ndarray
    file_idx: np.ndarray
    n_windows: int


def _prepare(labels: Sequence[FileLabels]) -> _Prepared:
    wids, vals, fidx = [], [], []
    offset = 0
    for f, lab in enumerate(labels):
        wid, val, scored = lab.terms()
        wid = np.where(wid >= 0, wid + offset, -1)
        offset += len(lab.windows)
        wids.append(wid[scored])
        vals.append(val[scored])
        fidx.append(np.full(int(scored.sum()), f, dtype=np.int64))
    return _Prepared(np.concatenate(wids), np.concatenate(vals), np.concatenate(fidx), offset)


def _scored_concat(scores: Sequence[np.ndarray], labels: Sequence[FileLabels]) -> np.ndarray:
    out = []
    for s, lab in zip(scores, labels):
        s = np.asarray(s, dtype=float)
        if len(s) != lab.n:
            raise ValueError(f"{len(s)} scores for {lab.n} rows")
        out.append(s[lab.probation :])
    return np.concatenate(out) if out else np.zeros(0)


def _sweep(a: np.ndarray, prep: _Prepared, profile: Profile) -> tuple[np.ndarray, np.ndarray, float]:
    """All candidate thresholds (descending, first = "never detect") and the corpus raw score at each."""
    wid, val = prep.wid, prep.val
    in_win = wid >= 0
    null = -profile.fn * len(np.unique(wid[in_win]))
    n = len(a)
    order = np.argsort(-a, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    delta = np.zeros(n)
    # false positives: each one adds its own (negative) cost
    fp = ~in_win
    delta[rank[fp]] = val[fp] * profile.fp
    # windows: the best (= earliest) detection counts; add the increments of the running max
    w_idx = np.flatnonzero(in_win)
    if len(w_idx):
        g, r = wid[w_idx], rank[w_idx]
        o = np.lexsort((r, g))
        g, r = g[o], r[o]
        v = val[w_idx][o] * profile.tp
        big = 2.0 * (np.abs(v).max() + profile.fn) + 1.0
        run = np.maximum.accumulate(v + g * big) - g * big
        first = np.ones(len(g), dtype=bool)
        first[1:] = g[1:] != g[:-1]
        inc = np.empty(len(g))
        inc[first] = run[first] + profile.fn
        inc[~first] = run[~first] - run[np.flatnonzero(~first) - 1]
        delta[r] = inc
    total = null + np.cumsum(delta)
    a_sorted = a[order]
    ends = np.ones(n, dtype=bool)
    ends[:-1] = a_sorted[:-1] != a_sorted[1:]
    thresholds = np.concatenate([[np.inf], a_sorted[ends]])
    totals = np.concatenate([[null], total[ends]])
    return thresholds, totals, null


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows
    per_file: list[float] = field(default_factory=list)


def score_corpus(scores: Sequence[np.ndarray], labels: Sequence[FileLabels], threshold: float, profile: Profile,
                 prep: _Prepared | None = None) -> tuple[float, list[float], int, int, int]:
    """Raw score summed over files at a fixed threshold, per-file raw scores, and window TP/FN and FP counts."""
    prep = prep or _prepare(labels)
    a = _scored_concat(scores, labels)
    det = a >= threshold
    in_win = prep.wid >= 0
    per_file = np.zeros(len(labels))
    fpm = det & ~in_win
    np.add.at(per_file, prep.file_idx[fpm], prep.val[fpm] * profile.fp)
    best = np.full(prep.n_windows, -np.inf)
    wm = det & in_win
    np.maximum.at(best, prep.wid[wm], prep.val[wm] * profile.tp)
    seen = np.zeros(prep.n_windows, dtype=bool)
    seen[prep.wid[in_win]] = True
    win_file = np.zeros(prep.n_windows, dtype=np.int64)
    win_file[prep.wid[in_win]] = prep.file_idx[in_win]
    contrib = np.where(np.isfinite(best), best, -profile.fn)
    np.add.at(per_file, win_file[seen], contrib[seen])
    tp = int((seen & np.isfinite(best)).sum())
    fn = int((seen & ~np.isfinite(best)).sum())
    return float(per_file.sum()), per_file.tolist(), tp, fn, int(fpm.sum())


def optimize_threshold(scores: Sequence[np.ndarray], labels: Sequence[FileLabels], profile: Profile,
                       prep: _Prepared | None = None) -> tuple[float, float]:
    """The threshold maximising the corpus raw score (highest one among ties) and that score."""
    prep = prep or _prepare(labels)
    a = _scored_concat(scores, labels)
    thresholds, totals, _ = _sweep(a, prep, profile)
    best = int(np.argmax(totals))
    return float(thresholds[best]), float(totals[best])


def nab_round(scores: np.ndarray, digits: int = 12) -> np.ndarray:
    """Round to ``digits`` significant digits, as NAB's results files store scores.

    NAB's published results were produced under Python 2, whose ``str(float)`` keeps 12
    significant digits; a score of 1 - 2e-13 was therefore stored (and thresholded) as 1.0.
    Rounding the same way reproduces the published Windowed Gaussian figures exactly.

    >>> nab_round(np.array([0.9999999999997738, 0.123456789012345]))
    array([1.        , 0.12345679])
    """
    return np.array([float(f"{v:.{digits}g}") for v in np.asarray(scores, dtype=float).tolist()])


def evaluate_scores(scores: Sequence[np.ndarray], labels: Sequence[FileLabels],
                    profiles: Sequence[str] = tuple(PROFILES), round_digits: int | None = 12) -> dict[str, ProfileResult]:
    """Optimise the threshold and compute the normalised NAB score for each profile
    (scores first rounded as NAB stores them, see :func:`nab_round`)."""
    if round_digits:
        scores = [nab_round(s, round_digits) for s in scores]
    prep = _prepare(labels)
    n_windows = sum(len(lab.windows) for lab in labels)
    out = {}
    for name in profiles:
        prof = PROFILES[name]
        thr, best_raw = optimize_threshold(scores, labels, prof, prep)
        raw, per_file, tp, fn, fp = score_corpus(scores, labels, thr, prof, prep)
        assert abs(raw - best_raw) < 1e-6 * max(1.0, abs(raw)), (raw, best_raw)
        # NAB: the null detector's raw score (windows entirely in probation never count) and a
        # perfect detector crediting tpWeight for every labelled window
        null = -prof.fn * sum(lab.scorable_windows() for lab in labels)
        perfect = prof.tp * n_windows
        score = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
        out[name] = ProfileResult(name, thr, raw, null, perfect, score, tp, fn, fp, per_file)
    return out


# ---------------------------------------------------------------------------------------
# corpus


@dataclass
class NabFile:
    name: str  # e.g. "realKnownCause/nyc_taxi.csv"
    timestamps: list[str]
    values: np.ndarray
    labels: FileLabels
    anomalies: list[int] = field(default_factory=list)  # rows of the labelled anomaly points


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if rows[0] != ["timestamp", "value"]:
        raise ValueError(f"{path}: unexpected header {rows[0]}")
    return [r[0] for r in rows[1:]], np.array([float(r[1]) for r in rows[1:]])


def _ts(s: str) -> str:
    return s[:19]  # "2014-02-19 10:50:00.000000" -> "2014-02-19 10:50:00"


def load_corpus(root: str | os.PathLike) -> list[NabFile]:
    """Load the data files and windows (``labels/combined_windows.json``) of a NAB root directory."""
    root = Path(root)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    labels_path = root / "labels" / "combined_labels.json"
    points = json.loads(labels_path.read_text()) if labels_path.exists() else {}
    files = []
    for name in sorted(windows):
        ts, values = _read_csv(root / "data" / name)
        index = {t: i for i, t in enumerate(ts)}
        wins = sorted((index[_ts(a)], index[_ts(b)]) for a, b in windows[name])
        anomalies = [index[_ts(t)] for t in points.get(name, [])]
        files.append(NabFile(name, ts, values, FileLabels(len(ts), wins), anomalies))
    if not files:
        raise FileNotFoundError(f"no NAB windows in {root}")
    return files


def windows_from_labels(n: int, anomalies: Sequence[int]) -> list[tuple[int, int]]:
    """The README's window rule: total width 10% of the file / number of anomalies, centred on
    each anomaly, clipped to the file, overlapping windows merged (as NAB's labeller does)."""
    if not anomalies:
        return []
    width = int(WINDOW_SIZE * n / len(anomalies))
    wins = sorted((max(a - width // 2, 0), min(a + width // 2, n - 1)) for a in anomalies)
    merged = [wins[0]]
    for a, b in wins[1:]:
        if a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def check_windows(files: Sequence[NabFile]) -> list[str]:
    """Files whose ``combined_windows.json`` windows differ from :func:`windows_from_labels`."""
    return [f.name for f in files if windows_from_labels(f.labels.n, f.anomalies) != f.labels.windows]


# ---------------------------------------------------------------------------------------
# running detectors


def run_detector(detector, values: Sequence[float], timestamps: Sequence[str] | None = None) -> np.ndarray:
    """Stream ``values`` through a fresh clone of ``detector`` (score, then learn); return the scores."""
    det = detector.clone()
    step = det.score_learn_one
    return np.fromiter((step(v) for v in np.asarray(values, dtype=float).tolist()), dtype=float, count=len(values))


def _run_one(job: tuple[Any, str, np.ndarray]) -> tuple[str, np.ndarray, float]:
    detector, name, values = job
    t0 = time.perf_counter()
    scores = run_detector(detector, values)
    return name, scores, time.perf_counter() - t0


def detect_corpus(detector, files: Sequence[NabFile], jobs: int = 2) -> dict[str, np.ndarray]:
    """Scores of ``detector`` on every file, files spread over ``jobs`` processes."""
    work = sorted(((detector, f.name, f.values) for f in files), key=lambda j: -len(j[2]))
    if jobs <= 1:
        results = [_run_one(j) for j in work]
    else:
        import multiprocessing as mp

        with mp.get_context("fork" if sys.platform != "win32" else "spawn").Pool(jobs) as pool:
            results = pool.map(_run_one, work, chunksize=1)
    return {name: s for name, s, _ in results}


def evaluate(root: str | os.PathLike, detector, profiles: Sequence[str] = tuple(PROFILES), jobs: int = 2,
             files: Sequence[NabFile] | None = None):
    """Run ``detector`` on the corpus at ``root`` and score it: ``(results by profile, scores by file)``."""
    files = files if files is not None else load_corpus(root)
    scores = detect_corpus(detector, files, jobs)
    ordered = [scores[f.name] for f in files]
    return evaluate_scores(ordered, [f.labels for f in files], profiles), scores


def _format(results: dict[str, ProfileResult], label: str) -> str:
    names = list(PROFILES)
    lines = [f"{'profile':<20} {'threshold':>12} {'score':>7} {'raw':>9} {'TP':>4} {'FN':>4} {'FP':>6}"]
    for name in names:
        if name in results:
            r = results[name]
            lines.append(f"{name:<20} {r.threshold:>12.10g} {r.score:>7.1f} {r.raw:>9.2f} {r.tp:>4} {r.fn:>4} {r.fp:>6}")
    lines.append("")
    lines.append(f"{'detector':<32} {'standard':>9} {'low_FP':>9} {'low_FN':>9}")
    rows = [(k, v) for k, v in SCOREBOARD.items()]
    mine = tuple(results[n].score if n in results else float("nan") for n in names)
    rows.append((f"* {label} (this run)", mine))
    rows.sort(key=lambda kv: -kv[1][0] if not math.isnan(kv[1][0]) else 0)
    for k, v in rows:
        lines.append(f"{k:<32} " + " ".join(f"{x:>9.1f}" for x in v))
    return "\n".join(lines)


def add_arguments(p) -> None:
    """Add the ``riskmon nab`` options to an argparse (sub)parser."""
    p.add_argument("path", help="NAB root directory (with data/ and labels/)")
    p.add_argument("--detector", default="default",
                   help="registered detector name: default, range_novelty, windowed_gaussian, hst, ... (default: default)")
    p.add_argument("--profile", dest="profiles", action="append", choices=list(PROFILES),
                   help="score only this profile (repeatable; default: all three)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes, files in parallel (default 2)")
    p.add_argument("--seed", type=int, default=None, help="seed passed to the detector")
    p.add_argument("--per-file", action="store_true", help="also print the raw standard score of each file")


def main(args) -> int:
    """Entry point of ``riskmon nab PATH``; ``args`` has ``path`` and optionally ``detector``,
    ``profiles`` (list of names), ``jobs``, ``seed`` and ``per_file``."""
    import detectors.univariate  # noqa: F401 - registers the univariate detectors
    from detectors.base import get_detector

    name = getattr(args, "detector", None) or "default"
    profiles = getattr(args, "profiles", None) or list(PROFILES)
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise SystemExit(f"unknown profile(s) {sorted(unknown)}; known: {list(PROFILES)}")
    jobs = max(1, int(getattr(args, "jobs", None) or 2))
    seed = getattr(args, "seed", None)
    params = {} if seed is None else {"seed": seed}
    try:
        detector = get_detector(name, **params)
    except KeyError as exc:
        raise SystemExit(str(exc.args[0])) from None

    t0 = time.perf_counter()
    files = load_corpus(args.path)
    rows = sum(f.labels.n for f in files)
    n_windows = sum(len(f.labels.windows) for f in files)
    odd = check_windows(files)
    print(f"NAB corpus {args.path}: {len(files)} files, {rows} rows, {n_windows} windows; windows follow the "
          f"README rule in {len(files) - len(odd)} files (differing: {', '.join(odd) or 'none'})")
    print(f"detector: {detector!r}")
    results, _ = evaluate(args.path, detector, profiles, jobs, files=files)
    elapsed = time.perf_counter() - t0
    print(f"run + scoring: {elapsed:.1f} s with {jobs} job(s) ({rows / elapsed:,.0f} rows/s)\n")
    print(_format(results, name))
    if getattr(args, "per_file", False) and "standard" in results:
        print("\nraw standard score per file (windows):")
        for f, raw in zip(files, results["standard"].per_file):
            print(f"  {raw:8.3f} ({len(f.labels.windows)}) {f.name}")
    return 0


if __name__ == "__main__":  # python -m detectors.nab PATH [...]
    import argparse

    _parser = argparse.ArgumentParser(prog="python -m detectors.nab", description="score a detector on NAB")
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
