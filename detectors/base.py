"""The detector protocol shared by every riskmon anomaly detector.

Detectors follow River's online-learning conventions: they see one observation at a
time, never look ahead and never use labels.

* ``score_one(x)`` returns an anomaly score in ``[0, 1]`` (higher = more anomalous)
  and must not change the detector's state;
* ``learn_one(x)`` updates the model with ``x``;
* ``score_learn_one(x)`` does both in the only safe order (score *before* learning)
  and returns the score -- this is what a streaming pipeline calls for each event;
* ``clone()`` returns a fresh, unfitted detector with the same parameters.

``x`` is a ``float`` or a ``dict[str, float]`` of features. Univariate detectors accept a
plain number or a one-entry dict (or a dict with a ``"value"`` key).

**Protection.** With ``protected=True``, a point whose score is above
``protect_threshold`` is not learned, so that a burst of anomalies does not teach the
model that anomalies are normal. Protection lives in :meth:`Detector.learn_one`, so it
holds whichever way the detector is driven.

**Randomness.** Detectors that use randomness take a ``seed``; the same seed and the
same stream give the same scores.

Writing a detector means implementing :meth:`Detector._score` and :meth:`Detector._learn`
and storing every ``__init__`` argument under an attribute of the same name (so that
``clone`` and ``repr`` work), then registering the class::

    >>> @register("example_mean")
    ... class RunningMean(Detector):
    ...     '''Scores |x - running mean| squashed into [0, 1].'''
    ...     def __init__(self, *, seed=None, protected=False, protect_threshold=0.9):
    ...         super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
    ...         self.n, self.mean = 0, 0.0
    ...     def _score(self, x):
    ...         v = as_value(x)
    ...         return 0.0 if self.n == 0 else 1.0 - 1.0 / (1.0 + abs(v - self.mean))
    ...     def _learn(self, x, score):
    ...         self.n += 1
    ...         self.mean += (as_value(x) - self.mean) / self.n
    >>> det = RunningMean(protected=True, protect_threshold=0.8)
    >>> [round(det.score_learn_one(v), 3) for v in [1.0, 1.0, 1.2, 50.0, 1.0]]
    [0.0, 0.0, 0.167, 0.98, 0.062]
    >>> det.n          # the 50.0 scored 0.98 > 0.8 and was not learned
    4
    >>> det.clone()
    RunningMean(seed=None, protected=True, protect_threshold=0.8)
    >>> det.clone().n
    0
    >>> _ = REGISTRY.pop("example_mean")
"""

from __future__ import annotations

import abc
import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union

__all__ = ["Detector", "REGISTRY", "register", "as_value", "get_detector", "load_all", "Input"]

Input = Union[float, Mapping[str, float]]

#: name -> detector class, filled by :func:`register` when a detector module is imported.
REGISTRY: dict[str, type["Detector"]] = {}

D = TypeVar("D", bound=type["Detector"])


def register(name: str):
    """Class decorator adding a detector class to :data:`REGISTRY` under ``name``."""

    def deco(cls: D) -> D:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"detector name {name!r} already registered by {REGISTRY[name].__qualname__}")
        REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def as_value(x: Input) -> float:
    """The single number in a univariate input.

    >>> as_value(3), as_value({"kwh": 2.5}), as_value({"value": 1.0, "hour": 13.0})
    (3.0, 2.5, 1.0)
    """
    if isinstance(x, Mapping):
        if "value" in x:
            return float(x["value"])
        if len(x) == 1:
            return float(next(iter(x.values())))
        raise ValueError(f"univariate detector got a dict with {len(x)} keys and no 'value': {sorted(x)}")
    return float(x)


class Detector(abc.ABC):
    """Base class of streaming anomaly detectors (River-style, score-before-learn).

    Parameters
    ----------
    seed
        Seed of the detector's random generator, for detectors that use randomness.
    protected
        When true, points scoring above ``protect_threshold`` are not learned.
    protect_threshold
        Score above which a protected detector refuses to learn a point.
    """

    #: registry name, set by :func:`register`
    name: ClassVar[str] = ""
    #: "univariate" (float inputs) or "multivariate" (dict inputs); used by generic tests
    input_kind: ClassVar[str] = "univariate"

    def __init__(self, *, seed: int | None = None, protected: bool = False, protect_threshold: float = 0.9):
        if not 0.0 <= protect_threshold <= 1.0:
            raise ValueError("protect_threshold must be in [0, 1]")
        self.seed = seed
        self.protected = protected
        self.protect_threshold = protect_threshold

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _score(self, x: Input) -> float:
        """Anomaly score of ``x`` given what was learned so far. Must not change state."""

    @abc.abstractmethod
    def _learn(self, x: Input, score: float) -> None:
        """Learn ``x``; ``score`` is ``x``'s score just computed by :meth:`_score`."""

    # -- public protocol ----------------------------------------------------------------
    def score_one(self, x: Input) -> float:
        """Anomaly score of ``x`` in ``[0, 1]``; does not change the detector."""
        return _clip01(self._score(x))

    def learn_one(self, x: Input) -> None:
        """Learn ``x`` (skipped when protected and ``x`` scores above the threshold)."""
        self._learn_scored(x, _clip01(self._score(x)))

    def score_learn_one(self, x: Input) -> float:
        """Score ``x``, then learn it (honouring protection); return the score."""
        s = _clip01(self._score(x))
        self._learn_scored(x, s)
        return s

    def flags(self, score: float) -> bool:
        """Whether a protected detector would refuse to learn a point with this score."""
        return self.protected and score > self.protect_threshold

    def _learn_scored(self, x: Input, score: float) -> None:
        if not self.flags(score):
            self._learn(x, score)

    # -- parameters ---------------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        params = {}
        for cls in type(self).__mro__:
            init = cls.__dict__.get("__init__")
            if init is None or cls is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if p.name not in params:
                    params[p.name] = getattr(self, p.name)
            break  # the most derived __init__ defines the parameters
        return params

    def clone(self, **overrides: Any):
        """A fresh, unfitted detector with the same parameters (some may be overridden)."""
        params = {k: copy.deepcopy(v) for k, v in self._get_params().items()}
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"


def _clip01(s: float) -> float:
    s = float(s)
    if math.isnan(s):
        return 0.0
    return 0.0 if s < 0.0 else 1.0 if s > 1.0 else s


def load_all() -> dict[str, type[Detector]]:
    """Import every ``detectors.*`` module so that their detectors register; return REGISTRY."""
    import importlib
    import pkgutil

    import detectors

    for mod in pkgutil.iter_modules(detectors.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"detectors.{mod.name}")
    return REGISTRY


def get_detector(name: str, **params: Any) -> Detector:
    """Instantiate a registered detector by name.

    >>> get_detector("windowed_gaussian")
    WindowedGaussian(window_size=6400, step_size=100, seed=None, protected=False, protect_threshold=0.9)
    """
    if name not in REGISTRY:
        load_all()
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}") from None
    return cls(**params)
