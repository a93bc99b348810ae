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

from detectors.base import Detector, Input, as_value, register

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


def _finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


class StatefulDetector(Detector):
    """A detector whose learned state is a small JSON-serialisable dict."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: Mapping[str, Any] | None) -> "StatefulDetector":
        raise NotImplementedError

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

    def _scale(self) -> float:
        n, W, m, S, _, _ = self._s
        sd = math.sqrt(S / W) if W > 0 else 0.0
        return max(sd, self.min_scale, 1e-9 * (1.0 + abs(m)))

    def _step(self, x: float) -> tuple[float, float, float]:
        """(z, g_down, g_up) after x (does not change state)."""
        n, W, m, S, gd, gu = self._s
        if n < self.warmup:
            return 0.0, 0.0, 0.0
        z = (x - m) / self._scale()
        if not _finite(z):
            z = math.copysign(self.z_cap, z) if not math.isnan(z) else 0.0
        z = max(-self.z_cap, min(self.z_cap, z))
        return z, max(0.0, gd - z - self.k), max(0.0, gu + z - self.k)

    def statistic(self, x: Input) -> float:
        _, gd, gu = self._step(as_value(x))
        return gd if self.direction == "down" else gu if self.direction == "up" else max(gd, gu)

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.h)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not _finite(v):
            return
        _, gd, gu = self._step(v)
        n, W, m, S, _, _ = self._s
        if n >= self.warmup:
            c = self.z_cap * self._scale()
            v = max(m - c, min(m + c, v))
        W2 = self._d * W + 1.0
        m2 = m + (v - m) / W2
        S2 = self._d * S + (v - m) * (v - m2)
        self._s = [n + 1, W2, m2, S2, gd, gu]

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
        self._f: dict[str, list] = {}  # feature -> [n, W, mean, mean abs deviation]

    def state_dict(self) -> dict[str, Any]:
        return {"f": {k: list(v) for k, v in self._f.items()}}

    def load_state(self, state: Mapping[str, Any] | None) -> "FirmProfile":
        self._f = {} if not state else {k: list(v) for k, v in state["f"].items()}
        return self

    def _floor(self, name: str) -> float:
        ms = self.min_scale
        if isinstance(ms, Mapping):
            return float(ms.get(name, 0.0))
        return float(ms)

    def _scale(self, name: str, st: list) -> float:
        return max(_MAD_TO_SD * st[3], self._floor(name), 1e-9 * (1.0 + abs(st[2])))

    @staticmethod
    def _items(x: Input):
        if isinstance(x, Mapping):
            for k in sorted(x):
                v = x[k]
                if v is not None:
                    v = float(v)
                    if not math.isnan(v):
                        yield k, v
        else:
            yield "value", float(x)

    def _zs(self, x: Input) -> dict[str, tuple[float, float, float, float]]:
        """feature -> (x, mean, scale, z) for the features that are scored."""
        out = {}
        for k, v in self._items(x):
            st = self._f.get(k)
            if st is None or st[0] < self.warmup:
                continue
            s = self._scale(k, st)
            z = (v - st[2]) / s
            if not _finite(z):
                z = math.copysign(1e6, z)
            out[k] = (v, st[2], s, z)
        return out

    def _deviations(self, zs) -> list[tuple[float, str]]:
        signs = self.signs or {}
        devs = []
        for k, (_, _, _, z) in zs.items():
            sg = signs.get(k, 0)
            d = max(0.0, -z) if sg < 0 else max(0.0, z) if sg > 0 else abs(z)
            devs.append((d, k))
        for a, b in self.pairs or ():
            if a in zs and b in zs:
                za, zb = zs[a][3], zs[b][3]
                if za <= -self.pair_min and zb >= self.pair_min:
                    devs.append(((zb - za) / math.sqrt(2.0), f"{a}>{b}"))
        devs.sort(key=lambda t: (-t[0], t[1]))
        return devs

    def statistic(self, x: Input) -> float:
        devs = self._deviations(self._zs(x))
        if not devs:
            return 0.0
        t = devs[0][0]
        if len(devs) > 1:
            t += self.second_weight * devs[1][0]
        return t

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.z_half)

    def _learn(self, x: Input, score: float) -> None:
        d = self._d
        for k, v in self._items(x):
            if math.isinf(v):
                continue
            st = self._f.get(k)
            if st is None:
                self._f[k] = [1, 1.0, v, 0.0]
                continue
            n, W, m, a = st
            if n >= self.warmup:
                c = self.clip * self._scale(k, st)
                v = max(m - c, min(m + c, v))
            W2 = d * W + 1.0
            dev = abs(v - m)
            m2 = m + (v - m) / W2
            a2 = a + (dev - a) / W2 if n >= 1 else 0.0
            self._f[k] = [n + 1, W2, m2, a2]

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


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    n = len(ys)
    h = n // 2
    return ys[h] if n % 2 else 0.5 * (ys[h - 1] + ys[h])


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

    def _noise(self) -> float:
        nm, nw = self._s[6], self._s[7]
        sd = _MAD_TO_SD * nm / math.sqrt(2.0) if nw > 0 else 0.0
        return max(sd, self.min_scale, 1e-9 * (1.0 + abs(self._s[4])))

    def _step(self, v: float) -> dict[str, Any]:
        n, since, gd, gu, ref, refw = self._s[:6]
        ring = (self._ring + [v])[-6:]
        jump = max(self.jump, self.jump_sd * self._noise())
        step = None
        if len(ring) == 6:
            step = _median(ring[3:]) - _median(ring[:3])
            if not _finite(step) or abs(step) >= jump:
                since = 0
            else:
                since += 1
        else:
            since += 1
        # today alone jumped from the last 3 days: a step may be starting (confirmed or not by
        # the medians in the next days); it adds at most jump_z_cap to the CUSUM meanwhile
        pending = len(ring) >= 4 and abs(v - _median(ring[-4:-1])) >= jump
        z = 0.0
        if n >= self.warmup and refw > 0:
            cap = self.jump_z_cap if pending else self.z_cap
            z = (ref - v) / self._noise()
            z = max(-cap, min(cap, z)) if _finite(z) else 0.0
            gd = max(0.0, gd + z - self.k)
            gu = max(0.0, gu - z - self.k)
        if since < self.suppress:
            gd = gu = 0.0
        return {"ring": ring, "since": since, "z": z, "g_down": gd, "g_up": gu, "step": step, "pending": pending}

    def statistic(self, x: Input) -> float:
        v = as_value(x)
        if not _finite(v):
            return 0.0
        p = self._step(v)
        if self.direction == "down":
            return p["g_down"]
        if self.direction == "up":
            return p["g_up"]
        return max(p["g_down"], p["g_up"])

    def _score(self, x: Input) -> float:
        return squash(self.statistic(x), self.h)

    def _learn(self, x: Input, score: float) -> None:
        v = as_value(x)
        if not _finite(v):
            return
        p = self._step(v)
        n, _, _, _, ref, refw, nm, nw, last = self._s
        d = self._d
        if last is not None:
            w = d * nw + 1.0
            nm += (min(abs(v - last), 10.0 * self._noise()) - nm) / w
            nw = w
        g = max(p["g_down"], p["g_up"])
        if refw == 0.0 or (g < self.h / 2.0 and p["since"] >= 3):
            w = d * refw + 1.0
            ref += (v - ref) / w
            refw = w
        self._s = [n + 1, p["since"], p["g_down"], p["g_up"], ref, refw, nm, nw, v]
        self._ring = p["ring"]

    def explain(self, x: Input) -> dict[str, Any] | None:
        v = as_value(x)
        if not _finite(v):
            return None
        p = self._step(v)
        return {"x": v, "ref": self._s[4], "noise": self._noise(), "z": p["z"], "g_down": p["g_down"],
                "g_up": p["g_up"], "h": self.h, "days_since_step": p["since"]}
