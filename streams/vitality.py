"""Business vitality index (经营活力指数): one 0-100 score per firm per closed local day.

Pure arithmetic (stdlib + :mod:`math`, no I/O), ~30 us per call. The stream processor calls
:func:`score_day` once per firm per consecutive closed day, in day order, *including* days with no
events at all (an all-zero aggregate of :mod:`streams.daily`), and keeps the returned state.

Model
=====
Every signal is compared with the firm's **own** baseline, learned online.

* **Baselines are time-decayed means**: weights halve every ``half_life_days`` (30) days, so the
  last month weighs most. Each keeps a mean ``m`` and a total weight ``W``; a day with update
  gain ``g`` does ``W <- d*W + g; m <- m + g/W * (x - m)`` with ``d = 2**(-1/half_life)``. This is
  the exact decayed mean from the first day on (bias-corrected: no prior, no warm-up artefact).
* **Weekday-aware streams** (kWh, new logistics orders, payment inflow): level x weekday factor.
  The level is the decayed mean of the deseasonalised ``x / f[weekday]``; each of the seven
  factors is a decayed mean (per-weekday half-life ``weekday_half_life_days``) of ``x / level`` on
  its weekday; factors are kept at mean 1. Today's expectation is ``level * f[weekday]``, so a
  factory whose weekend power is 30% of its weekday power expects 30% at weekends. A weekday on
  which the firm never works learns a factor near 0 and its zero expectation carries no weight.
* **Invoices** (issued count and amount) are lumpy (month-end spikes): no weekday profile. The
  baseline is the decayed 30-day mean per day; "today" is a *recent* decayed mean (half-life
  ``fast_half_life_days`` = 7 days) which smooths the spikes.
* **Baseline protection.** A collapse must not teach the baseline that collapse is normal. A
  stream far below expectation updates with gain ``protect_gain`` (0.1: the day counts as a tenth
  of a normal day) instead of 1: electricity when today's ratio is below ``protect_below`` (0.6);
  logistics and payments when both today's and the 3-day (shrunk, see below) ratios are; invoices
  when the recent/baseline ratio is. A shut-down firm thus stays visibly collapsed for weeks
  (after 20 days at 10% power its electricity baseline has lost ~10%), while a lasting change of
  level is still absorbed, in about three half-lives, as the old evidence decays. Weekday-aware
  updates are winsorised at ``ratio_cap`` x expectation (one freak day cannot inflate a baseline).
* **Short windows** make a collapse visible fast: 3-day windows are recency-weighted (today 1,
  yesterday 2/3, the day before 1/3), 7-day windows unweighted, both from a ring buffer of the
  last 7 days. Count-like windows pool values and expectations (sum over sum); electricity
  windows average the daily ratios (each capped at ``ratio_cap``), so that a quiet weekend day
  weighs as much as a weekday.
* **Count noise.** Counts and amounts of a small firm are noisy: an expected 1.2 orders a day is
  often 0. Count-like ratios are scored on a *shrunk* ratio ``(x + k) / (e + k)`` (``k`` =
  ``count_prior`` events; for amounts ``k`` events of the firm's average ticket, times
  ``amount_dispersion``) and weighted by a *confidence* ``n / (n + k)``, ``n`` being the expected
  number of events in the window. A firm expected to ship 0.2 parcels today is not punished for
  shipping none, one expected to ship 20 and shipping 0 is.
* **Spring Festival.** Within ``holiday_window`` days of each date of ``holidays`` the expectation
  of every stream is multiplied by ``1 - (1 - holiday_factors[industry]) * shape``; ``shape``
  ramps 0->1 up to ``holiday_core[0]``, is 1 in the core and ramps back to 0 at the window end.
  The factors sit at the low end of what firms do (many small firms close altogether), since
  being above expectation costs nothing. No baseline is updated on holiday days (the recent
  invoice means are fed ``x / factor``), so the dip is neither distress nor baseline poison.
* **Electricity data gaps.** A day with fewer than half the firm's usual meter readings (none at
  all: ``elec_n == 0``) is *missing*: flagged, never learned from. Choice: if the other streams
  look normal (logistics orders + payments in count units reach ``others_ok_ratio`` of
  expectation, shrunk, over the shortest of today / 3 days / 7 days expected to hold
  ``others_min_events`` events) it is taken for a meter or data outage and the electricity
  components are *neutral* (ratio None, no weight; the day is left out of the 3/7-day
  electricity windows). Otherwise the day counts as 0 kWh: silence after a shutdown is a signal.
  With too little other activity to judge, the first ``elec_missing_grace_days`` missing days are
  neutral and later ones count as zero. A partial day (50-95% of the usual readings) is scaled up
  by the shortfall for scoring (flag ``elec_partial``) and not learned from. A firm that never
  had a reading has no electricity components (all None) and is scored on its other streams.

Components
==========
``vitality["components"][name] = {"value", "baseline", "ratio", "points"}`` (``elec`` adds
``"missing"``: bool). ``ratio = value / baseline`` (raw, unshrunk; None when the component has no
information: no baseline yet, zero expectation, a neutral missing day). ``points`` (<= 0) is the
component's deduction from 100: ``score == 100 + sum(points)`` (to float rounding), so an
explanation like "invoice amount down 42% (-18 points)" reads ``1 - ratio`` and ``points``.

============  ======================================================================================
name          value / baseline
============  ======================================================================================
elec          today's kWh / expected kWh (level x weekday factor x holiday factor)
elec_3d       kWh / expected kWh over 3 days, recency-weighted (missing-neutral days left out);
              ratio = the recency-weighted mean of the daily ratios (not value / baseline)
elec_7d       the same over 7 days, unweighted
logistics     today's new logistics orders (``log_created_n``) / expected (weekday-aware)
payments      today's payment inflow (``pay_in_amt``, CNY) / expected (weekday-aware)
activity_3d   value, baseline None; ratio = confidence-weighted mean of the shrunk 3-day logistics
              and payment ratios (each capped at ``ratio_cap``; mixed as the industry's
              ``logistics`` and ``payments`` weights)
activity_7d   the same over 7 days
invoice_n     recent (7-day half-life) mean issued invoices per day / 30-day baseline mean
invoice_amt   the same for the issued amount (CNY before tax)
refund        7-day refund ratio ``refund_amt / (pay_in_amt + refund_amt)`` / the firm's baseline
              refund ratio (None if that is 0). Scored on the excess ``value - baseline``: free up to
              ``refund_tolerance`` (5 pts), all marks lost at ``refund_tolerance + refund_span``
volatility    recent (7-day half-life) RMS of the daily electricity residual ``kwh/expected - 1`` /
              the firm's 30-day RMS (floored at ``vol_floor``); free up to ``vol_ok`` (2x), all
              marks lost at ``vol_bad`` (5x)
============  ======================================================================================

Marks of a ratio component: ``s = clamp((r - ratio_zero) / (ratio_full - ratio_zero), 0, 1) **
score_exponent`` with ``r`` the (shrunk) ratio: full marks from 90% of normal (ordinary noise
costs nothing), none at 10%; the exponent 1.5 makes a half-collapsed signal cost more than half.

**Score** ``= 100 - sum_i 100 * w_i * c_i * (1 - s_i) / sum_i w_i * c_i`` (each term is
``-points_i``) with ``w_i`` the industry's weight (:data:`DEFAULT_WEIGHTS`) and ``c_i`` in [0, 1]
the confidence: 1 for electricity with a positive expectation, ``n / (n + count_prior)`` for the
count-like ones, ``n / (n + refund_prior)`` for refunds (``n`` payments in 7 days), 1 for
volatility once known. With no informative component the score is 100 (band ``warming_up``).

**Band**: ``warming_up`` for the first ``warmup_days`` days (the score is computed anyway) or
without any informative component; else by the industry's ``(watch_below, distress_below)``
(:data:`DEFAULT_BANDS`; unknown industries use ``"default"``): ``distress`` below the second,
``watch`` below the first, else ``healthy``.

Output
======
``{"score", "band", "components", "baselines", "history_days", "holiday", "flags"}``.
``baselines`` (after today's update, None while unknown): ``kwh``, ``log_created_n``,
``pay_in_amt`` (deseasonalised daily levels), ``inv_issued_n``, ``inv_issued_amt`` (daily means),
``refund_ratio``, ``kwh_volatility`` (RMS residual). ``history_days`` counts the days scored,
today included. ``holiday`` is True inside a Spring Festival window. ``flags`` lists
``"elec_missing"``, ``"elec_partial"`` and ``"silent"`` (no event at all today, e.g. every feed
down: detectors may want to treat it apart). Floats are rounded half-up to 4 decimals. Only
str/float/int/bool/None/list/dict: JSON-serialisable.

State (JSON, lists only, ~140 numbers, bounded; ``W`` = decayed total weight)
==============================================================================
``{"v": 1, "n": days scored, "day": last day ordinal, "miss": consecutive missing-electricity days,
"elec" | "logi" | "pay": [level, W, f_mon..f_sun, fw_mon..fw_sun] (fw = factor weights),
"inv": [count base, W, count recent, W, amount base, W, amount recent, W],
"refund": [decayed refund_amt, decayed pay_in_amt + refund_amt], "vol": [base mean z^2, W,
recent mean z^2, W], "ticket": [mean pay_in_amt per payment, W], "elec_n": [usual readings per
day, W], "ring": last <= 7 days of [kwh, expected, orders, expected, pay_in, expected, pay_in,
refund_amt, kwh ratio, 1 if the kwh ratio counts else 0] (a value is 0 when its expectation
is)}``. The state passed in is never mutated.
Same inputs give bit-identical outputs and state, and a state that went through JSON (orjson)
continues exactly like the original.

Example: a factory (weekends at 30% power) works normally for 5 weeks, then shuts down.

>>> from datetime import date
>>> from streams.daily import new_day, N_EVENTS, ELEC_N, KWH, LOG_CREATED_N, PAY_IN_N, PAY_IN_AMT
>>> def factory(day, level):
...     agg, weekend = new_day(), date.fromordinal(day).weekday() >= 5
...     agg[ELEC_N], agg[KWH] = 96.0, (300.0 if weekend else 1000.0) * level * (1 + (day % 5 - 2) / 40)
...     agg[LOG_CREATED_N] = round((1.0 if weekend else 6.0) * level)
...     agg[PAY_IN_N], agg[PAY_IN_AMT] = 4.0, 40000.0 * level
...     agg[N_EVENTS] = agg[ELEC_N] + agg[LOG_CREATED_N] + agg[PAY_IN_N]
...     return agg
>>> state, start = None, date(2026, 3, 2).toordinal()
>>> for day in range(start, start + 35):
...     v, state = score_day(state, "manufacturing", day, factory(day, 1.0))
>>> v["band"], v["score"] > 90, v["history_days"]
('healthy', True, 35)
>>> for day in range(start + 35, start + 38):
...     v, state = score_day(state, "manufacturing", day, factory(day, 0.08))
...     elec = v["components"]["elec"]
...     print(v["band"], elec["ratio"] < 0.1, elec["points"] < -10)
distress True True
distress True True
distress True True
>>> round(100 + sum(c["points"] for c in v["components"].values()), 4) == v["score"]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from operator import mul as _mul
from types import MappingProxyType
from typing import Any, Mapping

from streams.daily import (
    ELEC_N,
    INV_ISSUED_AMT,
    INV_ISSUED_N,
    KWH,
    LOG_CREATED_N,
    N_EVENTS,
    PAY_IN_AMT,
    PAY_IN_N,
    REFUND_AMT,
)

__all__ = [
    "COMPONENTS",
    "INDUSTRIES",
    "BANDS",
    "DEFAULT_BANDS",
    "DEFAULT_WEIGHTS",
    "DEFAULT_HOLIDAY_FACTORS",
    "SPRING_FESTIVAL_DATES",
    "STATE_VERSION",
    "VitalityConfig",
    "DEFAULT",
    "score_day",
]

STATE_VERSION = 1

#: Industries with their own thresholds and weights; anything else uses ``"default"``.
INDUSTRIES: tuple[str, ...] = ("manufacturing", "restaurant_retail", "agriculture", "logistics_trade")
BANDS: tuple[str, ...] = ("healthy", "watch", "distress", "warming_up")

#: Component names, in the order they appear in ``vitality["components"]``.
COMPONENTS: tuple[str, ...] = (
    "elec",
    "elec_3d",
    "elec_7d",
    "logistics",
    "payments",
    "activity_3d",
    "activity_7d",
    "invoice_n",
    "invoice_amt",
    "refund",
    "volatility",
)

#: (watch_below, distress_below) per industry. Manufacturing power data is the most reliable
#: signal, so its thresholds are the strictest; agriculture is seasonal and noisy.
DEFAULT_BANDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "manufacturing": (65.0, 45.0),
        "restaurant_retail": (62.0, 45.0),
        "agriculture": (58.0, 42.0),
        "logistics_trade": (64.0, 46.0),
        "default": (62.0, 45.0),
    }
)


def _w(*values: float) -> Mapping[str, float]:
    return MappingProxyType(dict(zip(COMPONENTS, values)))


#: Component weights per industry (normalised at use). Manufacturing leans on electricity and
#: logistics (the study's power-and-logistics stall rule), restaurants and retail on payment
#: inflow and refunds, logistics/trade firms on order flow.
DEFAULT_WEIGHTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        #                     elec  e3d   e7d   logi  pay   a3d   a7d   invn  inva  refd  vol
        "manufacturing": _w(0.24, 0.18, 0.05, 0.12, 0.04, 0.10, 0.04, 0.04, 0.06, 0.04, 0.09),
        "restaurant_retail": _w(0.15, 0.11, 0.04, 0.03, 0.14, 0.17, 0.10, 0.03, 0.05, 0.10, 0.08),
        "agriculture": _w(0.18, 0.13, 0.05, 0.09, 0.09, 0.13, 0.07, 0.05, 0.08, 0.05, 0.08),
        "logistics_trade": _w(0.16, 0.12, 0.04, 0.14, 0.06, 0.18, 0.08, 0.05, 0.08, 0.04, 0.05),
        "default": _w(0.18, 0.13, 0.05, 0.10, 0.09, 0.13, 0.07, 0.05, 0.07, 0.06, 0.07),
    }
)

#: Expected activity at the depth of the Spring Festival, as a fraction of normal.
DEFAULT_HOLIDAY_FACTORS: Mapping[str, float] = MappingProxyType(
    {
        "manufacturing": 0.15,
        "restaurant_retail": 0.45,
        "agriculture": 0.3,
        "logistics_trade": 0.12,
        "default": 0.25,
    }
)

#: Chinese New Year's day (Spring Festival) in the years the monitor covers.
SPRING_FESTIVAL_DATES: tuple[str, ...] = ("2025-01-29", "2026-02-17", "2027-02-06")


@dataclass(frozen=True)
class VitalityConfig:
    """Parameters of the vitality index; every field has a default from the domain brief.

    >>> cfg = VitalityConfig(warmup_days=7)
    >>> cfg.bands["manufacturing"], cfg.half_life_days
    ((65.0, 45.0), 30.0)
    >>> VitalityConfig(bands={"default": (60.0, 40.0), "manufacturing": (40.0, 60.0)})
    Traceback (most recent call last):
    ...
    ValueError: bands['manufacturing']: need 0 <= distress_below <= watch_below <= 100, got (40.0, 60.0)
    """

    #: Half-life of the baselines (behaviour decay): weights halve every 30 days.
    half_life_days: float = 30.0
    #: Half-life of the weekday factors (the weekly shape changes more slowly than the level).
    weekday_half_life_days: float = 56.0
    #: Half-life of the "recent" means (invoices, volatility).
    fast_half_life_days: float = 7.0
    #: Days scored as ``warming_up`` before a real band is given (two of each weekday).
    warmup_days: int = 14
    #: Per industry ``(watch_below, distress_below)``; must contain ``"default"``.
    bands: Mapping[str, tuple[float, float]] = field(default_factory=lambda: DEFAULT_BANDS)
    #: Per industry component weights (see :data:`COMPONENTS`); must contain ``"default"``.
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    #: A ratio at or above this earns full marks ...
    ratio_full: float = 0.9
    #: ... and at or below this none.
    ratio_zero: float = 0.1
    #: Curvature of the ratio -> marks mapping: marks = linear**score_exponent (> 1 makes
    #: half-collapsed signals cost more than half their weight).
    score_exponent: float = 1.5
    #: Ratios are capped here when combined or learned from (one spike is not a trend).
    ratio_cap: float = 3.0
    #: A stream this far below expectation updates its baseline with a protected gain ...
    protect_below: float = 0.6
    #: ... the day counting as this fraction of a normal day.
    protect_gain: float = 0.1
    #: Pseudo-count of the confidence ``n / (n + count_prior)`` of count-like components.
    count_prior: float = 2.0
    #: Amount signals (payments, invoice amounts) count as this many times fewer events than
    #: their count, since amounts vary (1 + CV^2 of the ticket size; 2 for exponential tickets).
    amount_dispersion: float = 2.0
    #: Pseudo-count (payments) of the refund component's confidence.
    refund_prior: float = 5.0
    #: Refund-ratio excess over baseline that costs nothing ...
    refund_tolerance: float = 0.05
    #: ... and the further excess at which the full refund weight is lost.
    refund_span: float = 0.30
    #: Floor of the baseline volatility (RMS residual) in the volatility ratio.
    vol_floor: float = 0.1
    #: Volatility ratio (recent / baseline) that costs nothing ...
    vol_ok: float = 2.0
    #: ... and at which the full volatility weight is lost.
    vol_bad: float = 5.0
    #: On a missing-electricity day, other activity at least this (shrunk ratio) => meter outage ...
    others_ok_ratio: float = 0.5
    #: ... judged on the shortest window expected to hold this many events (orders + payments).
    others_min_events: float = 4.0
    #: Missing-electricity days treated as an outage when nothing else can tell.
    elec_missing_grace_days: int = 2
    #: Spring Festival dates (ISO) ...
    holidays: tuple[str, ...] = SPRING_FESTIVAL_DATES
    #: ... the window around each, in days (inclusive) ...
    holiday_window: tuple[int, int] = (-7, 10)
    #: ... and its core, where the full holiday factor applies (linear ramps outside it).
    holiday_core: tuple[int, int] = (-2, 6)
    #: Expected activity at the depth of the holiday, per industry; must contain ``"default"``.
    holiday_factors: Mapping[str, float] = field(default_factory=lambda: DEFAULT_HOLIDAY_FACTORS)

    # derived, precomputed in __post_init__
    _params: dict = field(init=False, repr=False, compare=False)
    _hol: dict = field(init=False, repr=False, compare=False)
    _k: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if min(self.half_life_days, self.weekday_half_life_days, self.fast_half_life_days) <= 0:
            raise ValueError("half-lives must be positive")
        if self.warmup_days < 0:
            raise ValueError("warmup_days must be >= 0")
        if not 0.0 <= self.ratio_zero < self.ratio_full:
            raise ValueError("need 0 <= ratio_zero < ratio_full")
        if not (self.ratio_cap >= 1.0 and 0.0 <= self.protect_gain <= 1.0 and self.count_prior > 0):
            raise ValueError("need ratio_cap >= 1, 0 <= protect_gain <= 1, count_prior > 0")
        if not (self.refund_span > 0 and self.vol_bad > self.vol_ok and self.vol_floor > 0):
            raise ValueError("need refund_span > 0, vol_bad > vol_ok, vol_floor > 0")
        for name in ("bands", "weights", "holiday_factors"):
            if "default" not in getattr(self, name):
                raise ValueError(f"{name} must contain a 'default' entry")
        for ind, wb in self.bands.items():
            watch, distress = wb
            if not 0.0 <= distress <= watch <= 100.0:
                raise ValueError(
                    f"bands[{ind!r}]: need 0 <= distress_below <= watch_below <= 100, got {tuple(wb)}"
                )
        for ind, ws in self.weights.items():
            unknown = set(ws) - set(COMPONENTS)
            if unknown:
                raise ValueError(f"weights[{ind!r}]: unknown components {sorted(unknown)}")
            if any(v < 0 for v in ws.values()) or sum(ws.values()) <= 0:
                raise ValueError(f"weights[{ind!r}]: need non-negative weights with a positive sum")
        for ind, f in self.holiday_factors.items():
            if not 0.0 < f <= 1.0:
                raise ValueError(f"holiday_factors[{ind!r}] must be in (0, 1]")
        w0, w1 = self.holiday_window
        c0, c1 = self.holiday_core
        if not w0 <= c0 <= c1 <= w1:
            raise ValueError("need holiday_window[0] <= core[0] <= core[1] <= holiday_window[1]")

        params: dict[str, tuple] = {}
        for ind in set(self.bands) | set(self.weights) | set(self.holiday_factors):
            ws = self.weights.get(ind, self.weights["default"])
            wvec = tuple(float(ws.get(c, 0.0)) for c in COMPONENTS)
            watch, distress = self.bands.get(ind, self.bands["default"])
            hf = float(self.holiday_factors.get(ind, self.holiday_factors["default"]))
            params[ind] = (wvec, float(watch), float(distress), hf, wvec[3], wvec[4])
        hol: dict[int, float] = {}
        for iso in self.holidays:
            center = date.fromisoformat(iso).toordinal()
            for off in range(w0, w1 + 1):
                if off < c0:
                    shape = (off - w0 + 1) / (c0 - w0 + 1)
                elif off > c1:
                    shape = (w1 - off + 1) / (w1 - c1 + 1)
                else:
                    shape = 1.0
                hol[center + off] = max(hol.get(center + off, 0.0), shape)
        d = 0.5 ** (1.0 / self.half_life_days)
        df = 0.5 ** (1.0 / self.fast_half_life_days)
        qf = 0.5 ** (7.0 / self.weekday_half_life_days)
        k = (d, df, qf, 1.0 / (1.0 - df))
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_hol", hol)
        object.__setattr__(self, "_k", k)

    def industry_params(self, industry: str) -> tuple:
        """(weights in :data:`COMPONENTS` order, watch_below, distress_below, holiday factor, ...)."""
        p = self._params.get(industry)
        return p if p is not None else self._params["default"]

    def holiday_factor(self, industry: str, day: int) -> float:
        """Expected-activity multiplier of a day for an industry (1.0 outside the holidays).

        >>> DEFAULT.holiday_factor("manufacturing", date(2026, 2, 18).toordinal())
        0.15
        >>> DEFAULT.holiday_factor("manufacturing", date(2026, 3, 18).toordinal())
        1.0
        """
        shape = self._hol.get(day)
        if shape is None:
            return 1.0
        hf = self.industry_params(industry)[3]
        return hf + (1.0 - hf) * (1.0 - shape)


DEFAULT = VitalityConfig()


def _fresh_wk() -> list[float]:
    # [level, W, f_mon..f_sun, fw_mon..fw_sun] (fw: decayed weight behind each factor)
    return [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def _update_wk(s: list[float], wd: int, x: float, g: float, dg: float, qf: float, cap: float) -> None:
    """One level x weekday-factor update of a copied stream state (in place).

    The factors are renormalised to mean 1 (level rescaled, expectations unchanged) only when
    their mean drifts by more than 2%, which keeps the update cheap."""
    level = s[0]
    fi = 2 + wd
    f = s[fi]
    if level > 0.0:
        if f > 0.25 and x > cap * level * f:  # winsorise (not on rarely-worked weekdays)
            x = cap * level * f
        cw = qf * s[fi + 7] + g
        s[fi + 7] = cw
        f += (g / cw) * (x / level - f)
        s[fi] = f
    w = dg * s[1] + g
    s[1] = w
    if f > 1e-9 and w > 0.0:
        level += (g / w) * (x / f - level)
    m = sum(s[2:9])
    if (m > 7.14 or m < 6.86) and m > 0.0:
        m /= 7.0
        s[2:9] = [v / m for v in s[2:9]]
        level *= m
    s[0] = level


# recency weights of the 3-day windows: today 1, yesterday 2/3, the day before 1/3
_W2 = 2.0 / 3.0
_W3 = 1.0 / 3.0


def _comp(v: float | None, b: float | None, r: float | None, pt: float) -> dict[str, Any]:
    # one component's output; floats >= 0 rounded half-up to 4 decimals (4x faster than round);
    # pt = points x -1e4, already rounded
    return {
        "value": None if v is None else (v * 10000.0 + 0.5) // 1.0 / 10000.0,
        "baseline": None if b is None else (b * 10000.0 + 0.5) // 1.0 / 10000.0,
        "ratio": None if r is None else (r * 10000.0 + 0.5) // 1.0 / 10000.0,
        "points": -pt / 10000.0 if pt else 0.0,
    }


def _r(x: float) -> float:
    # round half up to 4 decimals for x >= 0; ~3x faster than round(x, 4)
    return (x * 10000.0 + 0.5) // 1.0 / 10000.0


def _count(x: float, e: float, k: float) -> tuple[float | None, float | None, float]:
    """(raw ratio, shrunk ratio, confidence) of a count-like signal with expectation ``e`` and
    pseudo-count ``k`` (in the signal's units); (None, None, 0.0) without an expectation."""
    if e > 0.0:
        return x / e, (x + k) / (e + k), e / (e + k)
    return None, None, 0.0


def _mix(
    rl: float | None, cl: float, rp: float | None, cp: float, wl: float, wp: float, cap: float
) -> tuple[float | None, float]:
    """Confidence-weighted mean of the logistics and payment ratios (each capped) and its
    confidence; (None, 0.0) when neither is informative."""
    a = wl * cl
    b = wp * cp
    wa = a + b
    if wa <= 0.0:
        return None, 0.0
    v = 0.0
    if a > 0.0:
        v += a * (rl if rl < cap else cap)
    if b > 0.0:
        v += b * (rp if rp < cap else cap)
    return v / wa, wa / (wl + wp)


def score_day(
    state: dict | None,
    industry: str,
    day: int,
    agg: list[float],
    cfg: VitalityConfig = DEFAULT,
) -> tuple[dict, dict]:
    """Score one closed firm-day. ``day`` is the local date as a proleptic Gregorian ordinal
    (``date.toordinal()``). ``state`` is the firm's baseline state from the previous call (None for
    the firm's first day). Returns ``(vitality, new_state)``; see the module docstring for both.

    Days must come in increasing order (a repeated or earlier day raises :class:`ValueError`);
    skipped days are treated as unknown (no data, only time decay), not as silent days.

    >>> from streams.daily import new_day, N_EVENTS, ELEC_N, KWH, PAY_IN_N, PAY_IN_AMT, LOG_CREATED_N
    >>> def shop(level, elec_n=24.0):
    ...     agg = new_day()
    ...     agg[ELEC_N], agg[KWH] = elec_n, 80.0 * level if elec_n else 0.0
    ...     agg[PAY_IN_N], agg[PAY_IN_AMT], agg[LOG_CREATED_N] = 50.0, 3000.0 * level, 2.0
    ...     agg[N_EVENTS] = elec_n + 52.0
    ...     return agg
    >>> state, day = None, date(2026, 4, 1).toordinal()
    >>> v, state = score_day(state, "restaurant_retail", day, shop(1.0))
    >>> v["band"], v["score"], v["history_days"], v["components"]["elec"]["ratio"]
    ('warming_up', 100.0, 1, None)
    >>> for i in range(1, 20):
    ...     v, state = score_day(state, "restaurant_retail", day + i, shop(1.0 + (i % 3) / 20))
    >>> v["band"], v["score"] >= 95
    ('healthy', True)

    A meter outage while sales go on is flagged but not distress:

    >>> v, state = score_day(state, "restaurant_retail", day + 20, shop(1.0, elec_n=0.0))
    >>> v["flags"], v["components"]["elec"]["ratio"], v["band"]
    (['elec_missing'], None, 'healthy')

    Sales and power collapsing to 10% is distress at once:

    >>> v, state = score_day(state, "restaurant_retail", day + 21, shop(0.1))
    >>> pay = v["components"]["payments"]
    >>> v["band"], round(pay["ratio"], 1), pay["points"]
    ('distress', 0.1, -14.5795)
    """
    d, df, qf, recent_days = cfg._k
    p = cfg._params.get(industry)
    if p is None:
        p = cfg._params["default"]
    wts, watch_below, distress_below, hfac, wl, wp = p
    cap = cfg.ratio_cap
    kc = cfg.count_prior
    disp = cfg.amount_dispersion
    pb = cfg.protect_below
    pg = cfg.protect_gain

    if state is None:
        n_prev = 0
        gap = 1
        E, LG, PY = _fresh_wk(), _fresh_wk(), _fresh_wk()
        inv = [0.0] * 8
        ref = [0.0, 0.0]
        vol = [0.0, 0.0, 0.0, 0.0]
        tk = [0.0, 0.0]
        en = [0.0, 0.0]
        ring: list[list[float]] = []
        miss = 0
    else:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unknown vitality state version {state.get('v')!r}")
        gap = day - state["day"]
        if gap < 1:
            raise ValueError(f"day {day} is not after the state's last day {state['day']}")
        n_prev = state["n"]
        E = list(state["elec"])
        LG = list(state["logi"])
        PY = list(state["pay"])
        inv = list(state["inv"])
        ref = list(state["refund"])
        vol = list(state["vol"])
        tk = list(state["ticket"])
        en = list(state["elec_n"])
        ring = state["ring"][-6:]
        miss = state["miss"]
        if gap > 1:  # days never scored: unknown, left out of the windows
            pad = min(gap - 1, 6)
            ring = (ring[pad - 6 :] if pad < 6 else []) + [[0.0] * 10 for _ in range(pad)]
    if gap == 1:
        dg, dfg = d, df
    else:
        dg, dfg = d**gap, df**gap

    wd = (day + 6) % 7
    shape = cfg._hol.get(day)
    if shape is None:
        hol = 1.0
        holiday = False
    else:
        hol = hfac + (1.0 - hfac) * (1.0 - shape)
        holiday = True

    kwh = agg[KWH]
    elec_n = agg[ELEC_N]
    lg = agg[LOG_CREATED_N]
    pin = agg[PAY_IN_AMT]
    pn = agg[PAY_IN_N]
    rf = agg[REFUND_AMT]
    flags: list[str] = []

    # --- expectations (before today's updates) ---------------------------------------------
    fi = 2 + wd
    ee = E[0] * E[fi] * hol
    le = LG[0] * LG[fi] * hol
    pe = PY[0] * PY[fi] * hol
    t = tk[0] if tk[0] > 0.0 else (pin / pn if pn > 0.0 else 1.0)
    kp = kc * t * disp  # payments' pseudo-count, in CNY

    rl1, sl1, cl1 = _count(lg, le, kc)
    rp1, sp1, cp1 = _count(pin, pe, kp)

    # electricity data completeness: readings vs the firm's usual count per day
    # (a firm that never had a reading has no electricity signal at all, and nothing is missing)
    q = elec_n / en[0] if en[0] > 0.0 else 1.0
    kx = kwh
    missing = q < 0.5
    partial = False
    if missing:
        flags.append("elec_missing")
        miss += 1
        kx = 0.0
    else:
        miss = 0
        if q < 0.95:
            kx = kwh / q
            partial = True
            flags.append("elec_partial")
    if agg[N_EVENTS] <= 0.0:
        flags.append("silent")

    # --- ring buffer and short windows (electricity of today added below) ------------------
    entry = [0.0, 0.0, lg if le > 0.0 else 0.0, le, pin if pe > 0.0 else 0.0, pe, pin, rf, 0.0, 0.0]
    ring.append(entry)
    if len(ring) > 7:
        del ring[0]
    nr = len(ring)
    if nr >= 3:
        b = ring[-2]
        c = ring[-3]
        w2 = _W2
        w3 = _W3
        s3 = [
            w2 * b[0] + w3 * c[0],
            w2 * b[1] + w3 * c[1],
            entry[2] + w2 * b[2] + w3 * c[2],
            le + w2 * b[3] + w3 * c[3],
            entry[4] + w2 * b[4] + w3 * c[4],
            pe + w2 * b[5] + w3 * c[5],
            0.0,  # raw payments and refunds: 7-day window only
            0.0,
            w2 * b[8] + w3 * c[8],
            w2 * b[9] + w3 * c[9],
        ]
        s7 = [sum(c) for c in zip(*ring)]
    elif nr == 2:
        s3 = [a + _W2 * b for a, b in zip(entry, ring[-2])]
        s7 = [a + b for a, b in zip(entry, ring[-2])]
    else:
        s3 = entry[:]
        s7 = entry[:]
    rl3, sl3, cl3 = _count(s3[2], s3[3], kc)
    rp3, sp3, cp3 = _count(s3[4], s3[5], kp)
    rl7, sl7, cl7 = _count(s7[2], s7[3], kc)
    rp7, sp7, cp7 = _count(s7[4], s7[5], kp)
    a3, ca3 = _mix(sl3, cl3, sp3, cp3, wl, wp, cap)
    a7, ca7 = _mix(sl7, cl7, sp7, cp7, wl, wp, cap)

    # A missing electricity day is neutral (likely a meter outage) when the rest of the business
    # looks normal, else it counts as 0 kWh. "Looks normal" is judged on logistics orders plus
    # payments in count units, over the shortest window (today, 3 days, 7 days) expected to hold
    # at least `others_min_events` events; without such a window, the grace rule decides.
    neutral = False
    if missing:
        u = t * disp
        ne = le + pe / u
        if ne >= cfg.others_min_events:
            no = lg + pin / u
        else:
            ne = s3[3] + s3[5] / u
            if ne >= cfg.others_min_events:
                no = s3[2] + s3[4] / u
            else:
                ne = s7[3] + s7[5] / u
                no = s7[2] + s7[4] / u
        if ne >= cfg.others_min_events:
            neutral = (no + kc) / (ne + kc) >= cfg.others_ok_ratio
        else:
            neutral = miss <= cfg.elec_missing_grace_days
    if ee > 0.0 and not neutral:
        re1 = kx / ee
        rc = re1 if re1 < cap else cap
        entry[0] = kx
        entry[1] = ee
        entry[8] = rc
        entry[9] = 1.0
        s3[0] += kx
        s3[1] += ee
        s3[8] += rc
        s3[9] += 1.0
        s7[0] += kx
        s7[1] += ee
        s7[8] += rc
        s7[9] += 1.0
    else:
        re1 = None
    # electricity windows: (recency-weighted) means of the daily ratios, so that a weekend day
    # counts as much as a weekday
    re3 = s3[8] / s3[9] if s3[9] > 0.0 else None
    re7 = s7[8] / s7[9] if s7[9] > 0.0 else None

    # --- baseline updates (none on holidays; protected when far below expectation) ----------
    if not (missing or partial or holiday or elec_n <= 0.0):
        # electricity is smooth: protect on today's ratio alone
        ge = pg if (ee > 0.0 and kx < pb * ee) else 1.0
        _update_wk(E, wd, kx, ge, dg, qf, cap)
    else:
        ge = 0.0
        E[1] *= dg
    if elec_n > 0.0:  # the usual reading count adapts to meters added or removed
        w = dg * en[1] + 1.0
        en[0] += (elec_n - en[0]) / w
        en[1] = w
    else:
        en[1] *= dg
    if not holiday:
        # counts are noisy: protect when both today and the 3-day window are low (shrunk ratios)
        gl = pg if (sl1 is not None and sl1 < pb and sl3 < pb) else 1.0
        _update_wk(LG, wd, lg, gl, dg, qf, cap)
        gp = pg if (sp1 is not None and sp1 < pb and sp3 < pb) else 1.0
        _update_wk(PY, wd, pin, gp, dg, qf, cap)
    else:
        gp = 0.0
        LG[1] *= dg
        PY[1] *= dg
    if pn > 0.0:
        w = dg * tk[1] + 1.0
        tk[0] += (pin / pn - tk[0]) / w
        tk[1] = w
    else:
        tk[1] *= dg

    # invoices: recent mean (factor removed on holidays) vs protected 30-day baseline
    ivn = agg[INV_ISSUED_N]
    iva = agg[INV_ISSUED_AMT]
    ns, nsw, nf, nfw, as_, asw, af, afw = inv
    nfw = dfg * nfw + 1.0
    nf += (ivn / hol - nf) / nfw
    afw = dfg * afw + 1.0
    af += (iva / hol - af) / afw
    rin, sin_, cin = _count(nf * recent_days, ns * recent_days, kc)
    size = as_ / ns if ns > 0.0 else as_
    ria, sia, cia = _count(af * recent_days, as_ * recent_days, kc * size * disp)
    n_base, a_base = ns, as_
    if holiday:
        nsw *= dg
        asw *= dg
    else:
        g = pg if (sin_ is not None and sin_ < pb) else 1.0
        nsw = dg * nsw + g
        ns += (g / nsw) * (ivn - ns)
        g = pg if (sia is not None and sia < pb) else 1.0
        asw = dg * asw + g
        as_ += (g / asw) * (iva - as_)
    inv = [ns, nsw, nf, nfw, as_, asw, af, afw]

    # refunds: 7-day refund ratio vs the firm's decayed refund ratio
    base_rr = ref[0] / ref[1] if ref[1] > 0.0 else None
    tot7 = s7[6] + s7[7]
    rr7 = s7[7] / tot7 if tot7 > 0.0 else None
    if rr7 is not None and base_rr is not None:
        excess = rr7 - base_rr
        n_ref = tot7 / (t * disp)
        c_ref = n_ref / (n_ref + cfg.refund_prior)
        x = (excess - cfg.refund_tolerance) / cfg.refund_span
        s_ref = 1.0 if x <= 0.0 else (0.0 if x >= 1.0 else 1.0 - x)
        r_ref = rr7 / base_rr if base_rr > 0.0 else None
    else:
        excess = None
        c_ref, s_ref, r_ref = 0.0, 1.0, None
    if not holiday:
        gr = gp if (excess is None or excess <= cfg.refund_tolerance) else pg
        ref[0] = dg * ref[0] + gr * rf
        ref[1] = dg * ref[1] + gr * (pin + rf)
    else:
        ref[0] *= dg
        ref[1] *= dg

    # volatility of the electricity residual
    vs_pre, vsw_pre = vol[0], vol[1]
    if ge > 0.0 and ee > 0.0:
        z = kx / ee
        z = (z if z < cap else cap) - 1.0
        z *= z
        w = dfg * vol[3] + 1.0
        vol[2] += (z - vol[2]) / w
        vol[3] = w
        w = dg * vol[1] + ge
        vol[0] += (ge / w) * (z - vol[0])
        vol[1] = w
    else:
        vol[1] *= dg
        vol[3] *= dfg
    if vsw_pre > 0.0 and vol[3] > 0.0:
        v_fast = math.sqrt(vol[2])
        v_slow = math.sqrt(vs_pre)
        r_vol = v_fast / (v_slow if v_slow > cfg.vol_floor else cfg.vol_floor)
        x = (r_vol - cfg.vol_ok) / (cfg.vol_bad - cfg.vol_ok)
        s_vol = 1.0 if x <= 0.0 else (0.0 if x >= 1.0 else 1.0 - x)
        c_vol = 1.0
    else:
        v_fast = v_slow = r_vol = None
        s_vol, c_vol = 1.0, 0.0

    # --- score -----------------------------------------------------------------------------
    rfull = cfg.ratio_full
    rz = cfg.ratio_zero
    span = rfull - rz
    gamma = cfg.score_exponent
    # per component, in COMPONENTS order: deficit D = 1 - marks, confidence C
    D = [
        0.0 if (r is None or r >= rfull) else (1.0 if r <= rz else 1.0 - ((r - rz) / span) ** gamma)
        for r in (re1, re3, re7, sl1, sp1, a3, a7, sin_, sia)
    ]
    D.append(1.0 - s_ref)
    D.append(1.0 - s_vol)
    C = (
        0.0 if re1 is None else 1.0,
        0.0 if re3 is None else 1.0,
        0.0 if re7 is None else 1.0,
        cl1,
        cp1,
        ca3,
        ca7,
        cin,
        cia,
        c_ref,
        c_vol,
    )
    WC = list(map(_mul, wts, C))
    tot = sum(WC)
    f = 1000000.0 / tot if tot > 0.0 else 0.0
    # deductions in 1e-4 points, rounded half up; the score is 100 minus their sum, so
    # score == 100 + sum(points) holds exactly for the published (rounded) values
    P = [(f * x + 0.5) // 1.0 for x in map(_mul, WC, D)]
    score = (100.0 - sum(P) / 10000.0) * 10000.0
    score = 0.0 if score < 0.0 else (score + 0.5) // 1.0 / 10000.0  # drops the sum's float noise
    comps: dict[str, Any] = {
        "elec": _comp(kx, ee, re1, P[0]),
        "elec_3d": _comp(s3[0], s3[1], re3, P[1]),
        "elec_7d": _comp(s7[0], s7[1], re7, P[2]),
        "logistics": _comp(lg, le, rl1, P[3]),
        "payments": _comp(pin, pe, rp1, P[4]),
        "activity_3d": _comp(None, None, a3, P[5]),
        "activity_7d": _comp(None, None, a7, P[6]),
        "invoice_n": _comp(nf, n_base, rin, P[7]),
        "invoice_amt": _comp(af, a_base, ria, P[8]),
        "refund": _comp(rr7, base_rr, r_ref, P[9]),
        "volatility": _comp(v_fast, v_slow, r_vol, P[10]),
    }
    comps["elec"]["missing"] = missing

    n = n_prev + 1
    if n <= cfg.warmup_days or tot <= 0.0:
        band = "warming_up"
    elif score < distress_below:
        band = "distress"
    elif score < watch_below:
        band = "watch"
    else:
        band = "healthy"

    vitality = {
        "score": score,
        "band": band,
        "components": comps,
        "baselines": {
            "kwh": _r(E[0] * sum(E[2:9]) / 7.0) if E[1] > 0.0 else None,
            "log_created_n": _r(LG[0] * sum(LG[2:9]) / 7.0) if LG[1] > 0.0 else None,
            "pay_in_amt": _r(PY[0] * sum(PY[2:9]) / 7.0) if PY[1] > 0.0 else None,
            "inv_issued_n": _r(ns) if nsw > 0.0 else None,
            "inv_issued_amt": _r(as_) if asw > 0.0 else None,
            "refund_ratio": _r(ref[0] / ref[1]) if ref[1] > 0.0 else None,
            "kwh_volatility": _r(math.sqrt(vol[0])) if vol[1] > 0.0 else None,
        },
        "history_days": n,
        "holiday": holiday,
        "flags": flags,
    }
    new_state = {
        "v": STATE_VERSION,
        "n": n,
        "day": day,
        "miss": miss,
        "elec": E,
        "logi": LG,
        "pay": PY,
        "inv": inv,
        "refund": ref,
        "vol": vol,
        "ticket": tk,
        "elec_n": en,
        "ring": ring,
    }
    return vitality, new_state
