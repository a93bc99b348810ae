"""Univariate streaming anomaly detectors (one number per step).

* :class:`WindowedGaussian` -- NAB's "Windowed Gaussian" baseline, reproduced exactly;
* :class:`HalfSpaceTreesDetector` -- River's HalfSpaceTrees on min-max scaled values;
* :class:`DefaultDetector` -- riskmon's default: see its docstring.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from detectors.base import Detector, Input, as_value, register

__all__ = ["WindowedGaussian", "HalfSpaceTreesDetector", "DefaultDetector"]

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


@register("default")
class DefaultDetector(Detector):
    """riskmon's default univariate detector: *range novelty* with a Gaussian backstop and
    new-peak suppression. One pass, O(1) time and O(window) memory per step, no lookahead.

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

    >>> det = DefaultDetector(warmup=20)
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

    def _score(self, x: Input) -> float:
        raw = self._raw_score(x)
        if self.rest > 0 and len(self._raw) and raw <= self._raw.max:
            return 0.0
        return raw

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not math.isfinite(v):
            return
        raw = self._raw_score(v)
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
        if self.rest > 0:
            self._raw.push(raw)
