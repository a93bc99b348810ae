"""Business vitality index (经营活力指数): one 0-100 score per firm per closed local day.

Pure, fast arithmetic (stdlib + :mod:`math` only, no I/O). The stream processor calls
:func:`score_day` once per firm per consecutive closed day, in day order, *including* days with no
events at all (an all-zero aggregate from :mod:`streams.daily`), and stores the returned state.

How it works
============
Every signal is compared with the firm's **own** baseline, learned online:

* **Baselines are time-decayed means** (weights halve every ``half_life_days`` = 30 days, so the
  last month weighs most). They are bias-corrected: a mean ``m`` and a total weight ``W`` are
  kept; each day ``W <- d*W + g`` and ``m <- m + g/W * (x - m)`` with ``d = 2**(-1/half_life)``
  and ``g`` the day's update gain (1 normally). The first observation therefore sets the baseline
  exactly; no arbitrary prior is needed.
* **Weekday-aware streams** (electricity kWh, new logistics orders, payment inflow) use a level x
  weekday-factor model: the level is the decayed mean of the deseasonalised value ``x / f[wd]``,
  the seven factors are decayed means (per-weekday half-life ``weekday_half_life_days``) of
  ``x / level`` for that weekday, renormalised to mean 1 after each update. Today's expectation
  is ``level * f[weekday]``. A factory using 30% of its weekday power at weekends thus expects
  30% at weekends and is not penalised. A weekday the firm never works learns a factor near 0,
  and an expectation of ~0 carries no weight (see confidence below).
* **Invoices** (issued count and amount) are lumpy (month-end spikes), so no weekday profile: the
  baseline is the plain decayed 30-day mean per day, and today's value is a *recent* decayed mean
  (half-life ``fast_half_life_days`` = 7), which smooths the spikes.
* **Baseline protection.** A collapse must not teach the baseline that collapse is normal. When a
  stream is far below its expectation (``max(today, 3-day ratio) < protect_below`` = 0.6; for
  invoices the recent/baseline ratio) the update gain is ``protect_gain`` = 0.1: the low days
  count as a tenth of a normal day. A shut-down firm therefore stays visibly collapsed for many
  weeks (after 20 days at 10% power its electricity baseline has fallen ~10%), while a genuine,
  lasting level change is absorbed in roughly three half-lives, once the old evidence has decayed.
  Updates are also winsorised at ``ratio_cap`` x expectation, so one freak spike cannot inflate a
  baseline.
* **Spring Festival.** Inside ``holiday_window`` days around each date of ``holidays`` the
  expectation of every stream is multiplied by ``1 - (1 - holiday_factors[industry]) * shape``,
  where ``shape`` ramps 0->1 up to ``holiday_core[0]``, is 1 in the core and ramps back to 0 at the
  window end. On holiday days no baseline is updated (recent invoice means are fed ``x / factor``
  instead), so the seasonal dip is neither distress nor baseline poison. ``vitality["holiday"]``
  is True inside the window.
* **Electricity data gaps.** ``elec_n == 0`` (no meter reading at all) is a *missing* day, never a
  baseline update. Choice: if the firm's other activity today (logistics + payments, 1-day
  composite) is at least ``others_ok_ratio`` of expectation the day is a likely meter/data
  outage: the electricity components are *neutral* (ratio None, weight 0, so the score rests on
  the other streams, and the missing day is left out of the 3/7-day electricity windows).
  If other activity is low the missing day counts as 0 kWh (silence after a shutdown is a
  signal). If there is no other activity to judge by, the first ``elec_missing_grace_days`` missing
  days are neutral and later ones count as zero. Flag ``"elec_missing"`` in ``vitality["flags"]``
  and ``components["elec"]["missing"]``. A partial day (readings below 95% of the firm's usual
  count, but at least half) is scaled up by the reading shortfall (flag ``"elec_partial"``).

Components
==========
``vitality["components"][name]`` is ``{"value", "baseline", "ratio", "points"}``; ``elec`` adds
``"missing"``. ``ratio`` is ``value / baseline`` (None when the component has no information:
no baseline yet, an expectation of zero, a neutral missing day). ``points`` (<= 0) is the
component's deduction from 100, so ``score == 100 + sum(points)`` (up to rounding) and an
explanation such as "invoice amount down 42% (-18 points)" is ``1 - ratio`` and ``points``.

==============  =================================================================================
name            value / baseline
==============  =================================================================================
elec            today's kWh / expected kWh (level x weekday factor x holiday factor)
elec_3d         kWh / expected kWh summed over the last 3 days (missing-neutral days left out)
elec_7d         same over the last 7 days
logistics       today's new logistics orders (``log_created_n``) / expected (weekday-aware)
payments        today's payment inflow (``pay_in_amt``) / expected (weekday-aware)
activity_3d     value, baseline None; ratio = confidence-weighted mean of the 3-day logistics and
                payment ratios (each capped at ``ratio_cap``), weights as the industry's
                ``logistics`` / ``payments`` weights
activity_7d     same over 7 days
invoice_n       recent (7-day half-life) mean issued invoices per day / 30-day baseline mean
invoice_amt     same for the issued amount (CNY before tax)
refund          7-day refund ratio ``refund_amt / (pay_in_amt + refund_amt)`` / the firm's
                baseline refund ratio; scored on the excess ``value - baseline`` (no deduction up
                to ``refund_tolerance``, full deduction at ``refund_tolerance + refund_span``)
volatility      recent (7-day half-life) RMS of the daily electricity residual ``kwh/expected - 1``
                / the firm's 30-day RMS (floored at ``vol_floor``); no deduction up to ``vol_ok``
                times, full deduction at ``vol_bad`` times
==============  =================================================================================

Ratio components earn ``s = clamp((ratio - ratio_zero) / (ratio_full - ratio_zero), 0, 1)``:
full marks from 90% of normal (ordinary noise costs nothing), none at 10%.

**Score** ``= 100 * sum(w_i * c_i * s_i) / sum(w_i * c_i)`` with ``w_i`` the industry weight
(:data:`DEFAULT_WEIGHTS`) and ``c_i`` in [0, 1] the component's *confidence*: 1 for electricity
with a positive expectation; ``n / (n + count_prior)`` for count-like signals, ``n`` being the
expected number of events in the window (logistics orders; payments = expected amount / the
firm's average ticket; invoices = baseline invoices over the recent window), so a firm expected to
ship 0.2 parcels today is not punished for shipping none; ``n / (n + refund_prior)`` for refunds.
``points_i = -100 * w_i * c_i * (1 - s_i) / sum(w * c)``. With no informative component at all
the score is 100 and the band ``warming_up``.

**Band**: ``warming_up`` during the first ``warmup_days`` days (score computed anyway) or
without any informative component; otherwise by the industry's ``(watch_below, distress_below)``
thresholds (:data:`DEFAULT_BANDS`; unknown industries use ``"default"``): ``distress`` below the
second, ``watch`` below the first, else ``healthy``.

Output
======
``vitality = {"score", "band", "components", "baselines", "history_days", "holiday", "flags"}``;
``baselines`` (after today's update; None while unknown): ``kwh`` (deseasonalised level, kWh/day),
``log_created_n``, ``pay_in_amt`` (levels), ``inv_issued_n``, ``inv_issued_amt`` (per day),
``refund_ratio``, ``kwh_volatility`` (RMS residual); ``flags`` is a list of
``"elec_missing"``, ``"elec_partial"``, ``"silent"`` (no event at all today). Floats are rounded to 4
decimals. Everything is JSON-serialisable.

State schema (JSON; lists only; ~125 numbers; ``W`` = decayed total weight)
==============================================================================
``{"v": 1, "n": days scored, "day": last day ordinal, "miss": consecutive missing-electricity
days, "elec"|"logi"|"pay": [level, W, f_mon..f_sun, cw_mon..cw_sun] (cw = factor weights),
"inv": [n_base, W, n_recent, W, amt_base, W, amt_recent, W], "refund": [decayed refund_amt,
decayed pay_in_amt + refund_amt], "vol": [slow mean z^2, W, recent mean z^2, W], "ticket":
[mean pay_in_amt per payment, W], "elec_n": [mean readings per day, W], "ring": last <= 7 days
of [kwh, expected kwh, orders, expected, pay_in, expected, pay_in raw, refund_amt]}``.
The state passed in is never mutated. Same inputs give bit-identical outputs and state; a state
that went through JSON (orjson) continues exactly as the original.

Example: a factory working weekdays (weekends at 30% power) for 5 weeks, then shutting down.

>>> from datetime import date
>>> from streams.daily import new_day, ELEC_N, KWH, LOG_CREATED_N, PAY_IN_N, PAY_IN_AMT
>>> def factory(day, level):
...     agg, weekend = new_day(), date.fromordinal(day).weekday() >= 5
...     agg[ELEC_N], agg[KWH] = 96.0, (300.0 if weekend else 1000.0) * level * (1 + (day % 5 - 2) / 40)
...     agg[LOG_CREATED_N] = round((1.0 if weekend else 6.0) * level)
...     agg[PAY_IN_N], agg[PAY_IN_AMT] = 4.0, 40000.0 * level
...     return agg
>>> state, start = None, date(2026, 3, 2).toordinal()
>>> for day in range(start, start + 35):
...     v, state = score_day(state, "manufacturing", day, factory(day, 1.0))
>>> v["band"], v["score"] > 90, v["history_days"]
('healthy', True, 35)
>>> for day in range(start + 35, start + 38):
...     v, state = score_day(state, "manufacturing", day, factory(day, 0.08))
...     print(v["band"], round(v["components"]["elec"]["ratio"], 2), v["components"]["elec"]["points"] < -10)
watch 0.08 True
distress 0.08 True
distress 0.08 True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
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
        "restaurant_retail": (60.0, 42.0),
        "agriculture": (55.0, 38.0),
        "logistics_trade": (62.0, 44.0),
        "default": (60.0, 42.0),
    }
)


def _w(*values: float) -> Mapping[str, float]:
    return MappingProxyType(dict(zip(COMPONENTS, values)))


#: Component weights per industry (normalised at use). Manufacturing leans on electricity and
#: logistics (the study's power-and-logistics stall rule), restaurants and retail on payment
#: inflow and refunds, logistics/trade firms on order flow.
DEFAULT_WEIGHTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        #                      elec  e3d  e7d  logi  pay  a3d  a7d  invn inva  refd  vol
        "manufacturing": _w(0.20, 0.15, 0.05, 0.15, 0.05, 0.10, 0.05, 0.05, 0.08, 0.04, 0.08),
        "restaurant_retail": _w(0.12, 0.08, 0.03, 0.05, 0.25, 0.17, 0.05, 0.04, 0.06, 0.08, 0.07),
        "agriculture": _w(0.14, 0.10, 0.06, 0.12, 0.12, 0.12, 0.06, 0.06, 0.10, 0.04, 0.08),
        "logistics_trade": _w(0.10, 0.08, 0.04, 0.22, 0.10, 0.16, 0.06, 0.06, 0.10, 0.04, 0.04),
        "default": _w(0.15, 0.12, 0.05, 0.12, 0.12, 0.12, 0.06, 0.06, 0.08, 0.05, 0.07),
    }
)

#: Expected activity at the depth of the Spring Festival, as a fraction of normal.
DEFAULT_HOLIDAY_FACTORS: Mapping[str, float] = MappingProxyType(
    {
        "manufacturing": 0.3,
        "restaurant_retail": 0.55,
        "agriculture": 0.45,
        "logistics_trade": 0.25,
        "default": 0.4,
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
    >>> VitalityConfig(bands={"manufacturing": (40.0, 60.0)})
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
    score_exponent: float = 1.0
    #: Ratios are capped here when combined or learned from (one spike is not a trend).
    ratio_cap: float = 3.0
    #: Below this ratio (max of today and 3 days) a stream's baseline update is protected ...
    protect_below: float = 0.6
    #: ... by scaling the day's update weight by this.
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
    #: On a missing-electricity day, other activity at least this (1-day ratio) => meter outage.
    others_ok_ratio: float = 0.5
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
        if not (self.half_life_days > 0 and self.weekday_half_life_days > 0 and self.fast_half_life_days > 0):
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
        0.3
        >>> DEFAULT.holiday_factor("manufacturing", date(2026, 3, 18).toordinal())
        1.0
        """
        shape = self._hol.get(day)
        if shape is None:
            return 1.0
        return 1.0 - (1.0 - self.industry_params(industry)[3]) * shape


DEFAULT = VitalityConfig()


def _fresh_wk() -> list[float]:
    # [level, W, f_mon..f_sun, cw_mon..cw_sun]
    return [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def _update_wk(s: list[float], wd: int, x: float, g: float, dg: float, qf: float, cap: float) -> None:
    """One level x weekday-factor update of a copied stream state (in place)."""
    level = s[0]
    fi = 2 + wd
    if level > 0.0:
        eb = level * s[fi]
        if eb > 0.0 and x > cap * eb:
            x = cap * eb
        cw = qf * s[fi + 7] + g
        s[fi + 7] = cw
        f = s[fi]
        s[fi] = f = f + (g / cw) * (x / level - f)
    else:
        f = s[fi]
    w = dg * s[1] + g
    s[1] = w
    if f > 1e-9 and w > 0.0:
        level += (g / w) * (x / f - level)
    m = (s[2] + s[3] + s[4] + s[5] + s[6] + s[7] + s[8]) / 7.0
    if m > 0.0:
        inv = 1.0 / m
        s[2] *= inv
        s[3] *= inv
        s[4] *= inv
        s[5] *= inv
        s[6] *= inv
        s[7] *= inv
        s[8] *= inv
        level *= m
    s[0] = level


# recency weights of the 3-day windows: today 1, yesterday 2/3, the day before 1/3
_W2 = 2.0 / 3.0
_W3 = 1.0 / 3.0


def _r(x: float) -> float:
    # round half up to 4 decimals for x >= 0; ~3x faster than round(x, 4)
    return int(x * 10000.0 + 0.5) / 10000.0


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

    >>> from streams.daily import new_day, ELEC_N, KWH, PAY_IN_N, PAY_IN_AMT, LOG_CREATED_N
    >>> def shop(level, elec_n=24.0):
    ...     agg = new_day()
    ...     agg[ELEC_N], agg[KWH] = elec_n, 80.0 * level if elec_n else 0.0
    ...     agg[PAY_IN_N], agg[PAY_IN_AMT], agg[LOG_CREATED_N] = 50.0, 3000.0 * level, 2.0
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

    Sales collapsing to 10% (power too) is distress within two days:

    >>> for i in (21, 22):
    ...     v, state = score_day(state, "restaurant_retail", day + i, shop(0.1))
    ...     print(v["band"], v["components"]["payments"]["ratio"])
    watch 0.1
    distress 0.1
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
            ring = (ring[pad - 6 :] if pad < 6 else []) + [[0.0] * 8 for _ in range(pad)]
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
        hol = 1.0 - (1.0 - hfac) * shape
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

    # electricity: missing / partial days
    missing = elec_n <= 0.0
    neutral = False
    kx = kwh
    if missing:
        flags.append("elec_missing")
        miss += 1
        a1, ca1 = _mix(sl1, cl1, sp1, cp1, wl, wp, cap)
        if ca1 >= 0.3:
            neutral = a1 >= cfg.others_ok_ratio
        else:
            neutral = miss <= cfg.elec_missing_grace_days
    else:
        miss = 0
        if en[0] > 0.0:
            q = elec_n / en[0]
            if 0.5 <= q < 0.95:
                kx = kwh / q
                flags.append("elec_partial")
    if agg[N_EVENTS] <= 0.0:
        flags.append("silent")

    # --- ring buffer and short windows -----------------------------------------------------
    ke = 0.0 if neutral else ee
    entry = [
        kx if ke > 0.0 else 0.0,
        ke,
        lg if le > 0.0 else 0.0,
        le,
        pin if pe > 0.0 else 0.0,
        pe,
        pin,
        rf,
    ]
    ring.append(entry)
    if len(ring) > 7:
        del ring[0]
    nr = len(ring)
    if nr >= 3:
        s3 = [a + _W2 * b + _W3 * c for a, b, c in zip(entry, ring[-2], ring[-3])]
        s7 = [sum(c) for c in zip(*ring)]
    elif nr == 2:
        s3 = [a + _W2 * b for a, b in zip(entry, ring[-2])]
        s7 = [a + b for a, b in zip(entry, ring[-2])]
    else:
        s3 = s7 = entry

    re1 = kx / ee if (ee > 0.0 and not neutral) else None
    re3 = s3[0] / s3[1] if s3[1] > 0.0 else None
    re7 = s7[0] / s7[1] if s7[1] > 0.0 else None
    rl3, sl3, cl3 = _count(s3[2], s3[3], kc)
    rp3, sp3, cp3 = _count(s3[4], s3[5], kp)
    rl7, sl7, cl7 = _count(s7[2], s7[3], kc)
    rp7, sp7, cp7 = _count(s7[4], s7[5], kp)
    a3, ca3 = _mix(sl3, cl3, sp3, cp3, wl, wp, cap)
    a7, ca7 = _mix(sl7, cl7, sp7, cp7, wl, wp, cap)

    # --- baseline updates (none on holidays; protected when far below expectation) ----------
    if not missing and not holiday:
        # electricity is smooth: protect on today's ratio alone
        ge = pg if (ee > 0.0 and kx < pb * ee) else 1.0
        _update_wk(E, wd, kx, ge, dg, qf, cap)
        w = dg * en[1] + 1.0
        en[0] += (elec_n - en[0]) / w
        en[1] = w
    else:
        ge = 0.0
        E[1] *= dg
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
    rz = cfg.ratio_zero
    span = cfg.ratio_full - rz
    gamma = cfg.score_exponent

    def sc(r: float | None) -> float:
        if r is None:
            return 1.0
        x = (r - rz) / span
        return 1.0 if x >= 1.0 else (0.0 if x <= 0.0 else (x if gamma == 1.0 else x**gamma))

    rows = (
        (kx, ee, re1, 0.0 if re1 is None else 1.0, sc(re1)),
        (s3[0], s3[1], re3, 0.0 if re3 is None else 1.0, sc(re3)),
        (s7[0], s7[1], re7, 0.0 if re7 is None else 1.0, sc(re7)),
        (lg, le, rl1, cl1, sc(sl1)),
        (pin, pe, rp1, cp1, sc(sp1)),
        (None, None, a3, ca3, sc(a3)),
        (None, None, a7, ca7, sc(a7)),
        (nf, n_base, rin, cin, sc(sin_)),
        (af, a_base, ria, cia, sc(sia)),
        (rr7, base_rr, r_ref, c_ref, s_ref),
        (v_fast, v_slow, r_vol, c_vol, s_vol),
    )
    tot = 0.0
    acc = 0.0
    for (_, _, _, c, s), w in zip(rows, wts):
        wc = w * c
        tot += wc
        acc += wc * s
    if tot > 0.0:
        score = 100.0 * acc / tot
        if score > 100.0:
            score = 100.0
        elif score < 0.0:
            score = 0.0
        f = 100.0 / tot
    else:
        score = 100.0
        f = 0.0
    comps: dict[str, Any] = {}
    for name, (v, b, r, c, s), w in zip(COMPONENTS, rows, wts):
        pt = int(f * w * c * (1.0 - s) * 10000.0 + 0.5)
        comps[name] = {
            "value": None if v is None else int(v * 10000.0 + 0.5) / 10000.0,
            "baseline": None if b is None else int(b * 10000.0 + 0.5) / 10000.0,
            "ratio": None if r is None else int(r * 10000.0 + 0.5) / 10000.0,
            "points": -pt / 10000.0 if pt else 0.0,
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
        "score": int(score * 10000.0 + 0.5) / 10000.0,
        "band": band,
        "components": comps,
        "baselines": {
            "kwh": _r(E[0]) if E[1] > 0.0 else None,
            "log_created_n": _r(LG[0]) if LG[1] > 0.0 else None,
            "pay_in_amt": _r(PY[0]) if PY[1] > 0.0 else None,
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
