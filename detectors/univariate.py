"""Univariate streaming anomaly detectors (one number per step).

* :class:`WindowedGaussian` -- NAB's "Windowed Gaussian" baseline, reproduced exactly;
* :class:`HalfSpaceTreesDetector` -- River's HalfSpaceTrees on min-max scaled values;
* :class:`RangeNoveltyDetector` -- range novelty with a Gaussian backstop (the previous default);
* :class:`DefaultDetector` -- riskmon's default: range novelty plus run-length novelty of the
  quantised signal, with repeat suppression; see its docstring.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from detectors.base import Detector, Input, as_value, register

__all__ = ["WindowedGaussian", "HalfSpaceTreesDetector", "RangeNoveltyDetector", "DefaultDetector"]

_SQRT2 = math.sqrt(2.0)


def normal_tail(x: float, mean: float, std: float) -> float:
    """Two-sided-folded Gaussian tail ``P(X > |x - mean| + mean)`` (NAB's ``normalProbability``).

    >>> normal_tail(0.0, 0.0, 1.0), round(normal_tail(-2.0, 0.0, 1.0), 4)
    (0.5, 0.0228)
    """
    z = abs(x - mean) / std
    return 0.5 * math.erfc(z / _SQRT2)


@register("windowed_gaussian")
class WindowedGaussian(Detector):
    """NAB's Windowed Gaussian baseline: score ``1 - Q(|x - mean| / std)`` against a sliding
    window of the last ``window_size`` values, refreshed every ``step_size`` values.

    >>> det = WindowedGaussian(window_size=50, step_size=10)
    >>> scores = [det.score_learn_one(v) for v in [1.0, 2.0, 1.5, 1.2, 1.8] * 10]
    >>> det.score_one(1.5) < 0.7 < det.score_one(9.0)
    True
    """

    def __init__(self, window_size: int = 6400, step_size: int = 100, *, seed: int | None = None,
                 protected: bool = False, protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.window_size = window_size
        self.step_size = step_size
        self._window: list[float] = []
        self._step: list[float] = []
        self._mean = 0.0
        self._std = 1.0

    def _score(self, x: Input) -> float:
        if not self._window:
            return 0.0
        return 1.0 - normal_tail(as_value(x), self._mean, self._std)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if len(self._window) < self.window_size:
            self._window.append(v)
            self._update()
        else:
            self._step.append(v)
            if len(self._step) == self.step_size:
                self._window = self._window[self.step_size :] + self._step
                self._step = []
                self._update()

    def _update(self) -> None:
        w = np.asarray(self._window)
        self._mean = float(w.mean())
        self._std = float(w.std()) or 0.000001


@register("hst")
class HalfSpaceTreesDetector(Detector):
    """River's ``HalfSpaceTrees`` on values min-max scaled online (untuned reference).

    >>> det = HalfSpaceTreesDetector(seed=1, window_size=50)
    >>> _ = [det.score_learn_one(v) for v in np.sin(np.arange(300) / 5.0)]
    >>> 0.0 <= det.score_one(0.2) <= 1.0
    True
    """

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, *, seed: int | None = None,
                 protected: bool = False, protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        from river import anomaly, preprocessing

        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self._model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )

    def _score(self, x: Input) -> float:
        return self._model.score_one({"x": as_value(x)})

    def _learn(self, x: Input, score: float) -> None:
        self._model.learn_one({"x": as_value(x)})


class _SlidingExtrema:
    """Max and min of the last ``size`` values pushed (monotone deques, O(1) amortised)."""

    __slots__ = ("size", "t", "_max", "_min")

    def __init__(self, size: int):
        self.size = size
        self.t = 0
        self._max: deque[tuple[int, float]] = deque()
        self._min: deque[tuple[int, float]] = deque()

    def push(self, v: float) -> None:
        t = self.t
        mx, mn = self._max, self._min
        while mx and mx[-1][1] <= v:
            mx.pop()
        mx.append((t, v))
        while mn and mn[-1][1] >= v:
            mn.pop()
        mn.append((t, v))
        self.t = t + 1
        lo = self.t - self.size
        while mx[0][0] < lo:
            mx.popleft()
        while mn[0][0] < lo:
            mn.popleft()

    @property
    def max(self) -> float:
        return self._max[0][1]

    @property
    def min(self) -> float:
        return self._min[0][1]

    def __len__(self) -> int:
        return min(self.t, self.size)


class _WindowMoments:
    """Mean and standard deviation of the last ``size`` values (shifted sums, O(1))."""

    __slots__ = ("size", "buf", "i", "n", "k", "s", "ss")

    def __init__(self, size: int):
        self.size = size
        self.buf = [0.0] * size
        self.i = self.n = 0
        self.k = None  # shift (first value) against cancellation
        self.s = self.ss = 0.0

    def push(self, v: float) -> None:
        if self.k is None:
            self.k = v
        d = v - self.k
        if self.n == self.size:
            old = self.buf[self.i]
            self.s -= old
            self.ss -= old * old
        else:
            self.n += 1
        self.buf[self.i] = d
        self.s += d
        self.ss += d * d
        self.i = (self.i + 1) % self.size

    def mean_std(self) -> tuple[float, float]:
        m = self.s / self.n
        return m + self.k, math.sqrt(max(self.ss / self.n - m * m, 0.0))


class _RepeatSuppression:
    """Report a raw score (``_raw_score``) only when it beats every raw score of the previous
    ``rest`` steps (kept in ``_raw``, a :class:`_SlidingExtrema`): an anomaly is reported once,
    at its onset, and again only if it gets worse."""

    rest: int
    _raw: _SlidingExtrema

    def _raw_score(self, x: Input) -> float:  # pragma: no cover - provided by the detector
        raise NotImplementedError

    def _score(self, x: Input) -> float:
        raw = self._raw_score(x)
        if self.rest > 0 and len(self._raw) and raw <= self._raw.max:
            return 0.0
        return raw

    def _remember(self, raw: float) -> None:
        if self.rest > 0:
            self._raw.push(raw)


@register("range_novelty")
class RangeNoveltyDetector(_RepeatSuppression, Detector):
    """*Range novelty* with a Gaussian backstop and new-peak suppression (riskmon's default
    detector before :class:`DefaultDetector`, which builds on it; NAB 62.1 / 56.3 / 65.5).
    One pass, O(1) time and O(window) memory per step, no lookahead.

    Three surprise measures of the incoming value ``v`` against what came before it:

    * **global range novelty** ``e_all``: how far ``v`` falls outside the range of *every*
      value seen so far, as a fraction of that range (the "spatial anomaly" rule of NAB's
      HTM detector, made continuous);
    * **recent range novelty** ``e_win``: the same against the last ``window`` values --
      catches a level that leaves its recent band (drops, surges, stalls after a change);
    * **Gaussian z** ``z``: ``|v - mean| / std`` over the last ``gauss_window`` values, a
      backstop for extreme outliers inside the historical range.

    They are combined as ``s = max(global_weight * e_all, window_weight * e_win,
    gauss_weight * z)`` and squashed to ``s / (s + scale)`` in ``[0, 1)``. Nothing is
    scored during the first ``warmup`` values. Finally, a score that does not exceed every
    raw score of the previous ``rest`` steps is reported as 0: an anomaly is reported once,
    at its onset, and again only if it gets worse (alerts are not repeated every step, and
    on NAB only the first detection in a window earns credit while the others cost).

    The weights were tuned on the NAB corpus (standard profile), as NAB detectors are.

    >>> det = RangeNoveltyDetector(warmup=20)
    >>> stream = [10.0 + (i % 7) * 0.5 for i in range(200)]
    >>> normal = [det.score_learn_one(v) for v in stream]
    >>> max(normal[20:]) < 0.05
    True
    >>> spike = det.score_learn_one(25.0)
    >>> round(spike, 3), det.score_learn_one(25.5) == 0.0   # the repeat is suppressed
    (0.952, True)
    """

    def __init__(self, global_weight: float = 20.0, window: int = 1500, window_weight: float = 2.5,
                 gauss_window: int = 6400, gauss_weight: float = 0.01, scale: float = 4.0, rest: int = 75,
                 warmup: int = 100, *, seed: int | None = None, protected: bool = False,
                 protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.global_weight = global_weight
        self.window = window
        self.window_weight = window_weight
        self.gauss_window = gauss_window
        self.gauss_weight = gauss_weight
        self.scale = scale
        self.rest = rest
        self.warmup = warmup
        self._n = 0
        self._max = -math.inf
        self._min = math.inf
        self._recent = _SlidingExtrema(window)
        self._moments = _WindowMoments(gauss_window)
        self._welford = (0, 0.0, 0.0)  # count, mean, M2 of every value (scale reference)
        self._raw = _SlidingExtrema(max(rest, 1))  # raw scores of the last `rest` steps

    def surprises(self, x: Input) -> dict[str, float]:
        """The three surprise measures of ``x`` (for explanations); does not change state."""
        v = as_value(x)
        out = {"global_range": 0.0, "recent_range": 0.0, "gauss_z": 0.0}
        if self._n == 0:
            return out
        rng = self._max - self._min
        if rng > 0:
            out["global_range"] = max(v - self._max, self._min - v, 0.0) / rng
        rng = self._recent.max - self._recent.min
        if rng > 0:
            out["recent_range"] = max(v - self._recent.max, self._recent.min - v, 0.0) / rng
        if self._moments.n >= 20:
            m, sd = self._moments.mean_std()
            n, _, m2 = self._welford
            floor = 1e-3 * math.sqrt(m2 / n) + 1e-12
            out["gauss_z"] = abs(v - m) / (sd + floor)
        return out

    def _raw_score(self, x: Input) -> float:
        if self._n < self.warmup:
            return 0.0
        s = self.surprises(x)
        z = max(self.global_weight * s["global_range"], self.window_weight * s["recent_range"],
                self.gauss_weight * s["gauss_z"])
        return z / (z + self.scale)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not math.isfinite(v):
            return
        if self.rest > 0:  # (inside DefaultDetector rest is 0: nothing to remember, nothing to score)
            self._remember(self._raw_score(v))
        self._n += 1
        self._max = max(self._max, v)
        self._min = min(self._min, v)
        self._recent.push(v)
        self._moments.push(v)
        n, mean, m2 = self._welford
        n += 1
        d = v - mean
        mean += d / n
        self._welford = (n, mean, m2 + d * (v - mean))


class _RunLengthNovelty:
    """Novelty of the *shape* of a signal: value level and how long it has stayed there.

    The value is quantised into ``bins`` equal levels of the range seen so far (the same
    coarse 3-bit quantisation as NAB's CAD OSE detector), with a hysteresis of
    ``hysteresis`` level widths so that noise at a level boundary does not flicker. Each step
    yields the key ``(level, run-length class)`` where the run length is the number of steps
    spent at the current level and its class is ``floor(log2(run length))``. A key never seen
    before is *novel*: the signal visits a level it never visited, or stays at a level longer
    (by a factor of two) than it ever did -- a flat stretch, a missing daily jump, a stall, a
    plateau at an unusual height, a burst of spikes at a new density. Keys are learned only
    after ``warmup`` values (the range needs a few values to mean anything), and a run is
    only judged once ``history`` times its length has been observed (a signal that has been
    flat for most of its life is not surprised to stay flat).
    """

    __slots__ = ("bins", "hysteresis", "warmup", "history", "n", "lo", "hi", "level", "run", "seen")

    def __init__(self, bins: int, hysteresis: float, warmup: int, history: float):
        self.bins = bins
        self.history = history
        self.hysteresis = hysteresis
        self.warmup = warmup
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.level = -1  # current level, -1 before the first keyed step
        self.run = 0  # steps spent at the current level
        self.seen: set[tuple[int, int]] = set()

    def _step(self, v: float) -> tuple[int, int]:
        """``(level, run length)`` after ``v`` (does not change state)."""
        rng = self.hi - self.lo
        p = 0.0 if not rng > 0 else min(max((v - self.lo) / rng * self.bins, 0.0), self.bins - 1e-9)
        lvl, h = self.level, self.hysteresis
        if lvl < 0 or p < lvl - h or p >= lvl + 1 + h:
            return int(p), 1
        return lvl, self.run + 1

    @staticmethod
    def _key(level: int, run: int) -> tuple[int, int]:
        return level, run.bit_length() - 1  # floor(log2(run))

    def novel(self, v: float) -> bool:
        if self.n < self.warmup or not self.hi > self.lo:  # no levels in a constant signal
            return False
        lvl, run = self._step(v)
        if run * self.history > self.n:
            return False
        return self._key(lvl, run) not in self.seen

    def learn(self, v: float) -> None:
        if self.n >= self.warmup:
            self.level, self.run = self._step(v)
            self.seen.add(self._key(self.level, self.run))
        self.n += 1
        self.lo = min(self.lo, v)
        self.hi = max(self.hi, v)


@register("default")
class DefaultDetector(_RepeatSuppression, Detector):
    """riskmon's default univariate detector: *range novelty* (:class:`RangeNoveltyDetector`)
    plus *run-length novelty* of the quantised signal, with repeat suppression. One pass,
    O(1) time and O(window) memory per step, no lookahead, no randomness.

    * **range novelty** (the raw score of :class:`RangeNoveltyDetector`, in ``[0, 1)``): how
      far the value falls outside the range of everything seen so far and of the last
      ``window`` values, with a Gaussian z-score backstop -- spikes, drops, level shifts;
    * **run-length novelty** (see :class:`_RunLengthNovelty`): the value is quantised into
      ``bins`` levels of the range seen so far (hysteresis ``hysteresis``) and the pair
      (level, ``floor(log2)`` of the time spent at that level) has never occurred before --
      contextual anomalies *inside* the normal range: a flat middle, a missing daily jump,
      a plateau lasting twice as long as any before, spikes at a new density. It scores
      ``novelty_weight``.

    The raw score is the larger of the two. A raw score that does not exceed every raw
    score of the previous ``rest`` steps is reported as 0: an anomaly is reported once, at
    its onset, and again only if it gets worse (on NAB only the first detection in a window
    earns credit and later ones cost).

    The constants were tuned on the NAB corpus (one parameter set for every file, as NAB
    detectors are; ``riskmon nab ../shared/nab``): NAB 73.5 standard, 63.1
    reward_low_FP_rate, 78.9 reward_low_FN_rate. The level count (8 levels, as CAD OSE's
    3 bits) and the hysteresis were picked among a few values on the corpus itself, so the
    figure is optimistic: in a two-fold split of the files, picking them on one half scored
    66.3 and 72.7 on the other half (range novelty alone: 63.4 and 62.8). The score is also
    sensitive to where the level boundaries fall: shifting the grid by 1/4, 1/2 or 3/4 of a
    level (instead of anchoring it at the running minimum) gives 69.6, 68.0 and 66.3.

    >>> det = DefaultDetector()
    >>> day = [0.0] * 12 + [10.0] * 12          # a square "daily" wave, period 24
    >>> stream = [v + 0.1 * (i % 3) for i, v in enumerate(day * 20)]
    >>> normal = [det.score_learn_one(v) for v in stream]
    >>> max(normal[200:])
    0.0
    >>> flat = [det.score_learn_one(5.0) for _ in range(6)]     # stuck mid-way: in range, but new
    >>> flat[0] == det.novelty_weight, max(flat[1:])
    (True, 0.0)
    >>> round(det.score_learn_one(40.0), 3)                     # a spike above everything
    0.936
    """

    def __init__(self, global_weight: float = 20.0, window: int = 1500, window_weight: float = 2.5,
                 gauss_window: int = 6400, gauss_weight: float = 0.01, scale: float = 4.0, warmup: int = 100,
                 bins: int = 8, hysteresis: float = 0.1, novelty_weight: float = 0.1, novelty_warmup: int = 50,
                 history: float = 2.0, rest: int = 100, *, seed: int | None = None, protected: bool = False,
                 protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.global_weight = global_weight
        self.window = window
        self.window_weight = window_weight
        self.gauss_window = gauss_window
        self.gauss_weight = gauss_weight
        self.scale = scale
        self.warmup = warmup
        self.bins = bins
        self.hysteresis = hysteresis
        self.novelty_weight = novelty_weight
        self.novelty_warmup = novelty_warmup
        self.history = history
        self.rest = rest
        self._range = RangeNoveltyDetector(global_weight, window, window_weight, gauss_window, gauss_weight,
                                           scale, rest=0, warmup=warmup)
        self._shape = _RunLengthNovelty(bins, hysteresis, novelty_warmup, history)
        self._raw = _SlidingExtrema(max(rest, 1))  # raw scores of the last `rest` steps

    def components(self, x: Input) -> dict[str, float]:
        """The two raw component scores of ``x`` (for explanations); does not change state."""
        v = as_value(x)
        return {"range": self._range._raw_score(v),
                "shape": self.novelty_weight if math.isfinite(v) and self._shape.novel(v) else 0.0}

    def _raw_score(self, x: Input) -> float:
        v = as_value(x)
        r = self._range._raw_score(v)
        if math.isfinite(v) and self._shape.novel(v):
            return max(r, self.novelty_weight)
        return r

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not math.isfinite(v):
            return
        raw = self._raw_score(v)
        self._range._learn(v, raw)
        self._shape.learn(v)
        self._remember(raw)
