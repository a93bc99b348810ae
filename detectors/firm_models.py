"""Per-firm online models on the River-style :class:`~detectors.base.Detector` protocol.

Each model here learns one firm's own history, holds a small JSON state (:meth:`state_dict`,
:meth:`load_state`; floats survive a JSON round trip exactly, so a restored model continues
bit-identically) and scores in ``[0, 1]`` with a *calibrated* scale: every model squashes its
statistic ``T`` as ``score = 1 - 2 ** -((T / T_half) ** 2)``, so that ``0.5`` is the model's
decision point (``T == T_half``), ``0.8`` is ``T ~ 1.5 T_half`` and ``0.94`` is ``T == 2 T_half``.
``T`` is always measured in units of the firm's own noise (robust, decayed), floored by a
*materiality* scale so that a very regular firm is not flagged for a business-irrelevant wobble.
Scores of different models therefore mean the same thing and share thresholds in the engine;
:mod:`detectors.evaluate` reports the rate at which healthy firm-days pass each level.

**Functional form.** :meth:`StatefulDetector.advance` ``(state, x, learn) -> (score, new_state)``
is ``load_state`` + ``score_learn_one`` (or ``score_one``) + ``state_dict`` in one call, without
touching the detector object: the engine holds each firm's state and calls it once per model per
firm-day. The three models below implement it directly on the JSON state (one pass over the
maths instead of score and learn each recomputing it, no copies of unchanged lists) with the same
helpers as their object methods, so both forms give bit-identical scores and states
(``tests/detectors/test_engine_equivalence.py``). The new state may share unchanged lists with
the old one; neither is mutated.

All models are score-before-learn, deterministic (no randomness: ``seed`` is accepted for the
protocol) and honour protection: a protected model does not learn a point scoring above
``protect_threshold`` -- not its baseline, not its accumulators.

* :class:`CusumShift` (``"cusum_shift"``) -- a change detector (two-sided standardized CUSUM, the
  Page-Hinkley family) on one series, e.g. a firm's log electricity ratio or log invoice ratio.
* :class:`FirmProfile` (``"firm_profile"``) -- a multivariate anomaly score on the daily feature
  vector: robust z-scores of each feature vs the firm's decayed history, signed (a drop is what
  matters for most), plus *decoupling* terms (payments up while power collapses), combined as
  ``max + w * second``.
* :class:`LevelSlide` (``"level_slide"``) -- a slow-slide detector: a CUSUM of the firm's
  deseasonalised level against its older reference, switched off by abrupt steps. A seasonal dip
  (down at once, then flat) is a step, never a slide; a slide never moves much in two days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detectors.base import Detector, Input, _clip01, as_value, register

__all__ = ["StatefulDetector", "CusumShift", "FirmProfile", "LevelSlide", "squash", "DIRECTIONS"]

DIRECTIONS = ("down", "up", "both")
_LN2 = math.log(2.0)
_MAD_TO_SD = 1.2533141373155003  # sqrt(pi / 2): E|X - mu| * this = sd for a Gaussian


def squash(t: float, t_half: float) -> float:
    """The common calibration ``1 - 2 ** -((t / t_half) ** 2)`` for ``t >= 0``.

    >>> squash(0.0, 3.0), squash(3.0, 3.0), round(squash(6.0, 3.0), 4)
    (0.0, 0.5, 0.9375)
    """
    if not t > 0.0:  # also NaN
        return 0.0
    q = t / t_half
    if q > 8.0:
        return 1.0
    return 1.0 - math.exp(-_LN2 * q * q)


_finite = math.isfinite  # a C call instead of two (was: not (isnan(x) or isinf(x)), same truth)
_SQRT2 = math.sqrt(2.0)

# Speed note. The maths below run for every model on every closed firm-day, and in CPython 3.11
# a call to the builtin ``min`` / ``max`` costs about ten times a comparison (it parses its
# arguments generically). The hot paths therefore spell them as conditional expressions with
# exactly the builtins' semantics -- ``max(a, b)`` is ``b if b > a else a`` and ``min(a, b)`` is
# ``b if b < a else a`` (the first argument wins ties and NaN comparisons), so results are
# bit-identical, signed zeros included.


class StatefulDetector(Detector):
    """A detector whose learned state is a small JSON-serialisable dict."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: Mapping[str, Any] | None) -> "StatefulDetector":
        raise NotImplementedError

    def initial_state(self) -> dict[str, Any]:
        """The state of an unfitted detector (a new object each call)."""
        return self.clone().state_dict()

    def advance(self, state: Mapping[str, Any] | None, x: Input, learn: bool = True
                ) -> tuple[float, dict[str, Any]]:
        """``(score, new_state)`` of ``x`` against ``state`` (None: unfitted): the score of
        :meth:`score_learn_one` (``learn``) or :meth:`score_one`, and the state after it, as
        ``load_state(state)`` then ``state_dict()`` would give. Subclasses override this with a
        direct implementation; this generic one uses the detector object as scratch space."""
        self.load_state(state)
        s = self.score_learn_one(x) if learn else self.score_one(x)
        return s, self.state_dict()

    def _check_direction(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


# --------------------------------------------------------------------------------------------
# CUSUM change detector
# --------------------------------------------------------------------------------------------


@register("cusum_shift")
class CusumShift(StatefulDetector):
    """Two-sided standardized CUSUM on one series against its own decayed mean and scale.

    ``z = (x - m) / max(sd, min_scale)`` with ``m``, ``sd`` decayed (``half_life`` steps)
    estimates; ``g_down <- max(0, g_down - z - k)``, ``g_up <- max(0, g_up + z - k)`` (``z``
    clipped at ``z_cap`` so one freak point cannot trip it alone); ``T = g`` of the watched
    ``direction`` and ``T_half = h``: the score is 0.5 when the CUSUM reaches its classical
    decision interval ``h``. Nothing is scored in the first ``warmup`` learned points. The
    baseline learns winsorised points (at ``m +- z_cap * scale``).

    >>> det = CusumShift(direction="down", warmup=5, h=5.0)
    >>> normal = [det.score_learn_one(1.0 + 0.05 * ((i * 7) % 5 - 2)) for i in range(40)]
    >>> max(normal) < 0.05
    True
    >>> [round(det.score_learn_one(0.5), 2) for _ in range(3)]   # a drop of ~7 sd (z capped at 6)
    [0.57, 0.92, 0.99]
    """

    input_kind = "univariate"

    def __init__(self, half_life: float = 30.0, k: float = 0.5, h: float = 8.0, direction: str = "both",
                 min_scale: float = 0.0, warmup: int = 7, z_cap: float = 6.0, *, seed: int | None = None,
                 protected: bool = False, protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.half_life = half_life
        self.k = k
        self.h = h
        self.direction = direction
        self.min_scale = min_scale
        self.warmup = warmup
        self.z_cap = z_cap
        self._check_direction()
        self._d = 0.5 ** (1.0 / half_life)
        # n learned, W decayed weight, m mean, S decayed sum of squares, g_down, g_up
        self._s = [0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def state_dict(self) -> dict[str, Any]:
        return {"s": list(self._s)}

    def load_state(self, state: Mapping[str, Any] | None) -> "CusumShift":
        self._s = [0, 0.0, 0.0, 0.0, 0.0, 0.0] if not state else list(state["s"])
        return self

    def initial_state(self) -> dict[str, Any]:
        return {"s": [0, 0.0, 0.0, 0.0, 0.0, 0.0]}

    # The maths take the state list ``s`` explicitly, so that the object methods (on ``self._s``)
    # and :meth:`advance` (on a JSON state) share one implementation.

    def _scale_of(self, s: list) -> float:
        W, m, S = s[1], s[2], s[3]
        scale = math.sqrt(S / W) if W > 0 else 0.0
        # max(sd, min_scale, 1e-9 * (1 + |m|)), see the speed note
        floor = self.min_scale
        if floor > scale:
            scale = floor
        floor = 1e-9 * (1.0 + abs(m))
        if floor > scale:
            scale = floor
        return scale

    def _scale(self) -> float:
        return self._scale_of(self._s)

    def _step_of(self, s: list, x: float, scale: float) -> tuple[float, float, float]:
        """(z, g_down, g_up) after x from state list ``s`` (not changed) of scale ``scale``."""
        n, W, m, S, gd, gu = s
        if n < self.warmup:
            return 0.0, 0.0, 0.0
        z = (x - m) / scale
        cap = self.z_cap
        if not _finite(z):
            z = math.copysign(cap, z) if not math.isnan(z) else 0.0
        z = z if z < cap else cap  # max(-cap, min(cap, z)), see the speed note
        z = z if z > -cap else -cap
        gd = gd - z - self.k
        gu = gu + z - self.k
        return z, (gd if gd > 0.0 else 0.0), (gu if gu > 0.0 else 0.0)  # max(0.0, .)

    def _step(self, x: float) -> tuple[float, float, float]:
        """(z, g_down, g_up) after x (does not change state)."""
        return self._step_of(self._s, x, self._scale())

    def _stat(self, gd: float, gu: float) -> float:
        d = self.direction
        return gd if d == "down" else gu if d == "up" else (gu if gu > gd else gd)  # max(gd, gu)

    def _learned(self, s: list, v: float, gd: float, gu: float, scale: float) -> list:
        """The state list after learning the finite value ``v`` (CUSUMs ``gd``, ``gu`` of ``v``;
        ``scale`` of ``s``)."""
        n, W, m, S = s[0], s[1], s[2], s[3]
        if n >= self.warmup:  # winsorise at m +- z_cap * scale: max(m - c, min(m + c, v))
            c = self.z_cap * scale
            hi = m + c
            v = v if v < hi else hi
            lo = m - c
            v = v if v > lo else lo
        d = self._d
        W2 = d * W + 1.0
        m2 = m + (v - m) / W2
        S2 = d * S + (v - m) * (v - m2)
        return [n + 1, W2, m2, S2, gd, gu]

    def statistic(self, x: Input) -> float:
        _, gd, gu = self._step(as_value(x))
        return self._stat(gd, gu)

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.h)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not _finite(v):
            return
        scale = self._scale()
        _, gd, gu = self._step_of(self._s, v, scale)
        self._s = self._learned(self._s, v, gd, gu, scale)

    def advance(self, state: Mapping[str, Any] | None, x: Input, learn: bool = True
                ) -> tuple[float, dict[str, Any]]:
        s = state["s"] if state else [0, 0.0, 0.0, 0.0, 0.0, 0.0]
        v = x if type(x) is float else as_value(x)  # as_value(float) is the float itself
        scale = self._scale_of(s)
        _, gd, gu = self._step_of(s, v, scale)  # once: score_learn_one would compute it twice
        d = self.direction  # T: the watched CUSUM (= _stat, inlined)
        score = squash(gd if d == "down" else gu if d == "up" else (gu if gu > gd else gd), self.h)
        if not 0.0 <= score <= 1.0:  # NaN: what score_one's clip does (squash is in [0, 1] otherwise)
            score = _clip01(score)
        if learn and not (self.protected and score > self.protect_threshold) and _finite(v):
            return score, {"s": self._learned(s, v, gd, gu, scale)}
        return score, {"s": s}

    def explain(self, x: Input) -> dict[str, float]:
        """The numbers behind the score of ``x`` (no state change)."""
        v = as_value(x)
        z, gd, gu = self._step(v)
        return {"x": v, "mean": self._s[2], "scale": self._scale(), "z": z, "g_down": gd, "g_up": gu,
                "h": self.h}


# --------------------------------------------------------------------------------------------
# Multivariate per-firm profile
# --------------------------------------------------------------------------------------------


@register("firm_profile")
class FirmProfile(StatefulDetector):
    """Robust z-scores of each feature vs the firm's decayed history, combined.

    For each feature ``f`` (any keys; a feature missing from ``x`` or None is skipped that
    day): decayed mean ``m_f`` and mean absolute deviation ``a_f`` (``half_life`` steps),
    ``z_f = (x_f - m_f) / max(1.2533 a_f, min_scale[f])``, then the *deviation* ``d_f``:
    ``max(0, -z_f)`` if ``signs[f] == -1`` (only drops matter), ``max(0, z_f)`` if ``+1``,
    ``|z_f|`` if 0 (default). Each pair ``(a, b)`` of ``pairs`` adds a decoupling deviation
    ``(z_b - z_a) / sqrt 2`` when ``z_a <= -pair_min`` and ``z_b >= pair_min`` (``b`` up while
    ``a`` down, each by at least ``pair_min`` robust sd: payments up while power collapses).
    ``T = d(1) + second_weight * d(2)`` (the two largest deviations) and ``T_half = z_half``.
    A feature is scored after ``warmup`` learned values.

    ``min_scale`` (a number or ``{feature: number}``) is the materiality floor of the scale:
    with log-ratio features, 0.35 means "a 30% move is one unit however regular the firm is".

    >>> det = FirmProfile(signs={"elec": -1, "pay": 0}, pairs=[["elec", "pay"]], warmup=5)
    >>> for i in range(30):
    ...     _ = det.score_learn_one({"elec": 0.02 * (i % 3 - 1), "pay": 0.1 * (i % 5 - 2)})
    >>> det.score_one({"elec": 0.0, "pay": 0.0}) < 0.01
    True
    >>> det.score_one({"elec": -1.5, "pay": 0.0}) > 0.99     # power collapses
    True
    >>> det.score_one({"elec": 1.5, "pay": 0.0}) < 0.001     # power up: not a risk signal
    True
    >>> [c["feature"] for c in det.explain({"elec": -0.3, "pay": 0.5})[:2]]   # both > 1 sd
    ['elec', 'elec>pay']
    """

    input_kind = "multivariate"

    def __init__(self, half_life: float = 30.0, warmup: int = 10, z_half: float = 3.0,
                 min_scale: float | Mapping[str, float] = 0.0, signs: Mapping[str, int] | None = None,
                 pairs: list | None = None, second_weight: float = 0.5, clip: float = 4.0,
                 pair_min: float = 1.0, *,
                 seed: int | None = None, protected: bool = False, protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.half_life = half_life
        self.warmup = warmup
        self.z_half = z_half
        self.min_scale = min_scale
        self.signs = signs
        self.pairs = pairs
        self.second_weight = second_weight
        self.clip = clip
        self.pair_min = pair_min
        self._d = 0.5 ** (1.0 / half_life)
        # the materiality floor per feature, resolved once (an isinstance check against the
        # Mapping ABC per feature per step was a visible cost); parameters are fixed after
        # construction, like _d
        if isinstance(min_scale, Mapping):
            self._floors: dict[str, float] = {k: float(v) for k, v in min_scale.items()}
            self._floor_default = 0.0
        else:
            self._floors = {}
            self._floor_default = float(min_scale)
        self._f: dict[str, list] = {}  # feature -> [n, W, mean, mean abs deviation]

    def state_dict(self) -> dict[str, Any]:
        return {"f": {k: list(v) for k, v in self._f.items()}}

    def load_state(self, state: Mapping[str, Any] | None) -> "FirmProfile":
        self._f = {} if not state else {k: list(v) for k, v in state["f"].items()}
        return self

    def initial_state(self) -> dict[str, Any]:
        return {"f": {}}

    @staticmethod
    def _items(x: Input) -> list[tuple[str, float]]:
        """``(feature, value)`` of ``x`` in name order, None and NaN values left out."""
        if type(x) is dict or isinstance(x, Mapping):  # the exact-type test skips the ABC check
            out = []
            for k in sorted(x):
                v = x[k]
                if v is not None:
                    v = float(v)
                    if v == v:  # not NaN
                        out.append((k, v))
            return out
        return [("value", float(x))]

    def _pass(self, f: Mapping[str, list], x: Input
              ) -> tuple[dict[str, tuple[float, float, float, float]], dict[str, list], float]:
        """One pass over the features of ``x`` against the feature state ``f`` (not changed):
        ``(zs, learned, T)`` with ``zs`` = feature -> (x, mean, scale, z) for the features that
        are scored, ``learned`` the feature state after learning ``x`` (a new dict: learned
        features get new entry lists, the others are shared with ``f``) and ``T`` the
        statistic (the largest deviation + ``second_weight`` x the second largest).

        Scoring and learning share the pass (the learned value is clipped at the scale the
        score used); :meth:`advance` keeps ``learned`` only when the point is learned. The
        features are visited in ``x``'s order, not sorted: nothing computed here depends on the
        order (``T`` only takes the two largest values: a tie between features does not change
        it; deviations are never NaN, z being finite or +-1e6) except where *new* features land
        in the state dict, so those are then moved into name order (where learning in name
        order inserts them)."""
        if type(x) is not dict:
            x = dict(self._items(x))  # another Mapping, or a number ("value")
        zs = {}
        learned = dict(f)
        new_features = []
        warmup, d, clip = self.warmup, self._d, self.clip
        floors, floor_default = self._floors, self._floor_default
        signs = self.signs or {}
        top = second = 0.0  # the two largest deviations of the nd seen
        nd = 0
        isinf = math.isinf
        for k, v in x.items():
            if type(v) is not float:  # the engine passes floats: no conversion call then
                if v is None:
                    continue
                v = float(v)
            if v != v:  # NaN: skipped, like None
                continue
            st = f.get(k)
            if st is None:
                if not isinf(v):
                    learned[k] = [1, 1.0, v, 0.0]
                    new_features.append(k)
                continue
            n, W, m, a = st
            if n >= warmup:
                # the robust scale: MAD as an sd, floored by materiality and numerically --
                # max(1.2533 a, floor, 1e-9 (1 + |m|)), see the speed note
                s = _MAD_TO_SD * a
                fl = floors.get(k, floor_default)
                if fl > s:
                    s = fl
                fl = 1e-9 * (1.0 + abs(m))
                if fl > s:
                    s = fl
                z = (v - m) / s
                if not _finite(z):
                    z = math.copysign(1e6, z)
                zs[k] = (v, m, s, z)
                sg = signs.get(k, 0)
                # = _deviation(z, sg), inlined with max(0.0, .) spelled out (see the speed note)
                dv = (-z if -z > 0.0 else 0.0) if sg < 0 else (z if z > 0.0 else 0.0) if sg > 0 else abs(z)
                nd += 1
                if nd == 1 or dv > top:
                    top, second = dv, top
                elif nd == 2 or dv > second:
                    second = dv
                if isinf(v):
                    continue
                c = clip * s  # winsorise: max(m - c, min(m + c, v))
                hi = m + c
                v = v if v < hi else hi
                lo = m - c
                v = v if v > lo else lo
            elif isinf(v):
                continue
            W2 = d * W + 1.0
            dev = abs(v - m)
            m2 = m + (v - m) / W2
            a2 = a + (dev - a) / W2 if n >= 1 else 0.0
            learned[k] = [n + 1, W2, m2, a2]
        if len(new_features) > 1:
            for k in sorted(new_features):
                learned[k] = learned.pop(k)
        for a, b in self.pairs or ():  # decoupling deviations
            if a in zs and b in zs:
                za, zb = zs[a][3], zs[b][3]
                if za <= -self.pair_min and zb >= self.pair_min:
                    dv = (zb - za) / _SQRT2
                    nd += 1
                    if nd == 1 or dv > top:
                        top, second = dv, top
                    elif nd == 2 or dv > second:
                        second = dv
        t = 0.0 if nd == 0 else top if nd == 1 else top + self.second_weight * second
        return zs, learned, t

    def _zs(self, x: Input) -> dict[str, tuple[float, float, float, float]]:
        """feature -> (x, mean, scale, z) for the features that are scored."""
        return self._pass(self._f, x)[0]

    def _deviations(self, zs) -> list[tuple[float, str]]:
        """The deviations ``(d, name)``, largest first (ties by name)."""
        signs = self.signs or {}
        devs = []
        for k, (_, _, _, z) in zs.items():
            devs.append((_deviation(z, signs.get(k, 0)), k))
        for a, b in self.pairs or ():
            if a in zs and b in zs:
                za, zb = zs[a][3], zs[b][3]
                if za <= -self.pair_min and zb >= self.pair_min:
                    devs.append(((zb - za) / _SQRT2, f"{a}>{b}"))
        devs.sort(key=lambda t: (-t[0], t[1]))
        return devs

    def statistic(self, x: Input) -> float:
        return self._pass(self._f, x)[2]

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.z_half)

    def _learn(self, x: Input, score: float) -> None:
        self._f = self._pass(self._f, x)[1]

    def advance(self, state: Mapping[str, Any] | None, x: Input, learn: bool = True
                ) -> tuple[float, dict[str, Any]]:
        f = state["f"] if state else {}
        _, learned, t = self._pass(f, x)  # once: score_learn_one would do it twice
        score = squash(t, self.z_half)
        if not 0.0 <= score <= 1.0:  # NaN: what score_one's clip does (squash is in [0, 1] otherwise)
            score = _clip01(score)
        if learn and not (self.protected and score > self.protect_threshold):
            return score, {"f": learned}
        return score, {"f": f}

    def explain(self, x: Input) -> list[dict[str, Any]]:
        """Deviations behind the score, largest first: ``{"feature", "x", "mean", "scale",
        "z", "deviation", "contribution"}`` (contribution: share of ``T``)."""
        zs = self._zs(x)
        devs = self._deviations(zs)
        t = self.statistic(x)
        out = []
        for i, (dv, k) in enumerate(devs):
            w = 1.0 if i == 0 else self.second_weight if i == 1 else 0.0
            row: dict[str, Any] = {"feature": k, "deviation": dv,
                                   "contribution": (w * dv / t) if t > 0 else 0.0}
            if k in zs:
                v, m, s, z = zs[k]
                row.update(x=v, mean=m, scale=s, z=z)
            else:
                a, b = k.split(">")
                row.update(z_down=zs[a][3], z_up=zs[b][3])
            out.append(row)
        return out


# --------------------------------------------------------------------------------------------
# Slow slide
# --------------------------------------------------------------------------------------------


def _deviation(z: float, sign: int) -> float:
    """A feature's deviation: only drops count (sign -1), only rises (+1) or both (0)."""
    return max(0.0, -z) if sign < 0 else max(0.0, z) if sign > 0 else abs(z)


def _median3(a: float, b: float, c: float) -> float:
    """The median of three numbers by comparisons (no list, no sort: the slide detector takes
    three medians per step). A pure selection: the same value as ``sorted([a, b, c])[1]`` for
    non-NaN inputs (the ring only holds finite values)."""
    if a <= b:
        if b <= c:
            return b
        return c if a <= c else a
    if a <= c:
        return a
    return c if b <= c else b


@register("level_slide")
class LevelSlide(StatefulDetector):
    """A *gradual* shift of a firm's level: a CUSUM against the firm's older reference level
    that an abrupt step switches off.

    * ``ref``: decayed mean (``half_life`` values) of the level, learned only while the CUSUM is
      below ``h / 2`` and not within 3 values of a step (a slide does not teach the reference
      that sliding is normal);
    * ``noise``: the firm's day-to-day noise, a decayed mean absolute successive difference
      (as a standard deviation), floored at ``min_scale`` (materiality);
    * ``z = (ref - x) / noise`` (clipped at ``z_cap``) and ``g_down <- max(0, g_down + z - k)``
      (``g_up`` mirrors it); scored after ``warmup`` values;
    * a **step** -- the median of the last 3 values differs from the median of the 3 before by
      at least ``max(jump, jump_sd * noise)`` -- resets both CUSUMs and holds them at 0 for ``suppress`` values. A
      seasonal dip, a shutdown or an outage (down at once, then flat) is therefore never a
      slide: other models and rules own abrupt changes. A slide never moves ``jump`` in 3 days,
      and a single freak value moves neither median. While a step is not yet confirmed (today
      alone is ``jump`` away from the median of the 3 days before), ``z`` is clipped at
      ``jump_z_cap`` instead of ``z_cap``.

    ``T = g`` of the watched ``direction``, ``T_half = h``.

    >>> det = LevelSlide(direction="down")
    >>> flat = [det.score_learn_one(0.02 * ((i * 7) % 5 - 2)) for i in range(40)]
    >>> max(flat)
    0.0
    >>> slide = [det.score_learn_one(-0.02 * i + 0.02 * ((i * 7) % 5 - 2)) for i in range(20)]
    >>> next(i for i, s in enumerate(slide) if s >= 0.5)     # days into a 2%/day slide
    8
    >>> det = LevelSlide(direction="down")
    >>> _ = [det.score_learn_one(0.02 * ((i * 7) % 5 - 2)) for i in range(40)]
    >>> max(det.score_learn_one(-0.6 + 0.02 * ((i * 7) % 5 - 2)) for i in range(20)) < 0.2   # a dip
    True
    """

    input_kind = "univariate"

    def __init__(self, k: float = 1.0, h: float = 8.0, half_life: float = 60.0, min_scale: float = 0.04,
                 jump: float = 0.25, jump_sd: float = 4.0, suppress: int = 21, warmup: int = 14,
                 z_cap: float = 4.0, jump_z_cap: float = 1.5, direction: str = "both", *,
                 seed: int | None = None, protected: bool = False, protect_threshold: float = 0.9):
        super().__init__(seed=seed, protected=protected, protect_threshold=protect_threshold)
        self.k = k
        self.h = h
        self.half_life = half_life
        self.min_scale = min_scale
        self.jump = jump
        self.jump_sd = jump_sd
        self.suppress = suppress
        self.warmup = warmup
        self.z_cap = z_cap
        self.jump_z_cap = jump_z_cap
        self.direction = direction
        self._check_direction()
        self._d = 0.5 ** (1.0 / half_life)
        # [n, since step, g_down, g_up, ref mean, ref W, noise mean, noise W, last], ring of 6
        self._s: list = [0, 10**6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None]
        self._ring: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        return {"s": list(self._s), "r": list(self._ring)}

    def load_state(self, state: Mapping[str, Any] | None) -> "LevelSlide":
        if not state:
            self._s = [0, 10**6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None]
            self._ring = []
        else:
            self._s = list(state["s"])
            self._ring = list(state["r"])
        return self

    def initial_state(self) -> dict[str, Any]:
        return {"s": [0, 10**6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None], "r": []}

    # The maths take the state (list ``s``, ring) explicitly, so that the object methods and
    # :meth:`advance` share one implementation; the noise is computed once per step and passed.

    def _noise_of(self, s: list) -> float:
        nm, nw = s[6], s[7]
        noise = _MAD_TO_SD * nm / _SQRT2 if nw > 0 else 0.0
        # max(sd, min_scale, 1e-9 * (1 + |ref|)), see the speed note
        floor = self.min_scale
        if floor > noise:
            noise = floor
        floor = 1e-9 * (1.0 + abs(s[4]))
        if floor > noise:
            noise = floor
        return noise

    def _noise(self) -> float:
        return self._noise_of(self._s)

    def _step_of(self, s: list, ring0: list, v: float, noise: float
                 ) -> tuple[list, int, float, float, float, float | None, bool]:
        """(ring, since, z, g_down, g_up, step, pending) after the finite value ``v`` from state
        ``s``, ``ring0`` with noise ``noise`` (nothing is changed)."""
        n, since, gd, gu, ref, refw = s[0], s[1], s[2], s[3], s[4], s[5]
        ring = ring0[-5:] + [v]  # the last 6 values
        jump = self.jump_sd * noise
        if not jump > self.jump:  # max(jump, jump_sd * noise), see the speed note
            jump = self.jump
        step = None
        nr = len(ring)
        if nr == 6:
            step = _median3(ring[3], ring[4], ring[5]) - _median3(ring[0], ring[1], ring[2])
            if not _finite(step) or abs(step) >= jump:
                since = 0
            else:
                since += 1
        else:
            since += 1
        # today alone jumped from the last 3 days: a step may be starting (confirmed or not by
        # the medians in the next days); it adds at most jump_z_cap to the CUSUM meanwhile
        pending = nr >= 4 and abs(v - _median3(ring[-4], ring[-3], ring[-2])) >= jump
        z = 0.0
        if n >= self.warmup and refw > 0:
            cap = self.jump_z_cap if pending else self.z_cap
            z = (ref - v) / noise
            if _finite(z):  # max(-cap, min(cap, z)), see the speed note
                z = z if z < cap else cap
                z = z if z > -cap else -cap
            else:
                z = 0.0
            gd = gd + z - self.k
            gd = gd if gd > 0.0 else 0.0  # max(0.0, .)
            gu = gu - z - self.k
            gu = gu if gu > 0.0 else 0.0
        if since < self.suppress:
            gd = gu = 0.0
        return ring, since, z, gd, gu, step, pending

    def _step(self, v: float) -> dict[str, Any]:
        ring, since, z, gd, gu, step, pending = self._step_of(self._s, self._ring, v, self._noise())
        return {"ring": ring, "since": since, "z": z, "g_down": gd, "g_up": gu, "step": step, "pending": pending}

    def _stat(self, gd: float, gu: float) -> float:
        if self.direction == "down":
            return gd
        if self.direction == "up":
            return gu
        return gu if gu > gd else gd  # max(gd, gu)

    def _learned(self, s: list, v: float, noise: float, since: int, gd: float, gu: float) -> list:
        """The state list after learning the finite value ``v`` (``since``, ``gd``, ``gu``: its
        step results, ``noise``: the noise of ``s``)."""
        n, ref, refw, nm, nw, last = s[0], s[4], s[5], s[6], s[7], s[8]
        d = self._d
        if last is not None:
            w = d * nw + 1.0
            diff, cap = abs(v - last), 10.0 * noise
            nm += ((cap if cap < diff else diff) - nm) / w  # min(|v - last|, 10 noise)
            nw = w
        g = gu if gu > gd else gd  # max(gd, gu)
        if refw == 0.0 or (g < self.h / 2.0 and since >= 3):
            w = d * refw + 1.0
            ref += (v - ref) / w
            refw = w
        return [n + 1, since, gd, gu, ref, refw, nm, nw, v]

    def statistic(self, x: Input) -> float:
        v = as_value(x)
        if not _finite(v):
            return 0.0
        p = self._step(v)
        return self._stat(p["g_down"], p["g_up"])

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.h)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not _finite(v):
            return
        noise = self._noise()
        ring, since, _, gd, gu, _, _ = self._step_of(self._s, self._ring, v, noise)
        self._s = self._learned(self._s, v, noise, since, gd, gu)
        self._ring = ring

    def advance(self, state: Mapping[str, Any] | None, x: Input, learn: bool = True
                ) -> tuple[float, dict[str, Any]]:
        if state:
            s, ring0 = state["s"], state["r"]
        else:
            s, ring0 = [0, 10**6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None], []
        v = x if type(x) is float else as_value(x)  # as_value(float) is the float itself
        if not _finite(v):  # scores 0 and is not learned (statistic and _learn skip it)
            return 0.0, {"s": s, "r": ring0}
        noise = self._noise_of(s)
        ring, since, _, gd, gu, _, _ = self._step_of(s, ring0, v, noise)  # once, not twice
        d = self.direction  # T: the watched CUSUM (= _stat, inlined)
        score = squash(gd if d == "down" else gu if d == "up" else (gu if gu > gd else gd), self.h)
        if not 0.0 <= score <= 1.0:  # NaN: what score_one's clip does (squash is in [0, 1] otherwise)
            score = _clip01(score)
        if learn and not (self.protected and score > self.protect_threshold):
            return score, {"s": self._learned(s, v, noise, since, gd, gu), "r": ring}
        return score, {"s": s, "r": ring0}

    def explain(self, x: Input) -> dict[str, Any] | None:
        v = as_value(x)
        if not _finite(v):
            return None
        p = self._step(v)
        return {"x": v, "ref": self._s[4], "noise": self._noise(), "z": p["z"], "g_down": p["g_down"],
                "g_up": p["g_up"], "h": self.h, "days_since_step": p["since"]}
