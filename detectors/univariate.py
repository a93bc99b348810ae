"""Univariate streaming anomaly detectors (one number per step).

* :class:`WindowedGaussian` -- NAB's "Windowed Gaussian" baseline, reproduced exactly;
* :class:`HalfSpaceTreesDetector` -- River's HalfSpaceTrees on min-max scaled values;
* :class:`DefaultDetector` -- riskmon's default: see its docstring.
"""

from __future__ import annotations

import math

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
