"""Reference rules of the domain brief, evaluated on closed firm-days from per-firm state.

Every rule is a frozen dataclass with defaults (the brief's figures) and is configurable from a
dict / JSON (:func:`rules_from_config`). A rule has an ``id``, a ``level`` (info / watch /
warning / critical), an ``owner`` (the team that acts on it) and an ``action`` (what a
subscriber does: ``FREEZE_ADJUSTMENTS``, ``RM_FOLLOW_UP``, ``INCREASE_ELIGIBLE``,
``DATA_CHECK``, ``NONE``).

A rule is a pure step function over one firm's closed days, in day order::

    hit, new_state = rule.step(state, day)

``day`` is a :class:`Day`, the view of one vitality record (:func:`Day.from_record`);
``state`` is the rule's JSON state for this firm (``None`` on the firm's first day) and is never
mutated: lists are copied on write, so the new state may share the unchanged ones with it (treat
states as values). Every state is bounded (at most ``days`` / ``months + 1`` / 7 entries). ``hit`` is
``None`` or ``{"name", "level", "action", "score", "new", "reasons"}``: the engine adds the firm,
the day and ``source="rule"``. A rule is *active* on every day its condition holds; ``new`` is
true on the first day of an episode. Each reason is ``{"code", "observed", "reference",
"contribution", "text"}``: ``observed`` holds the exact values the rule compared and
``reference`` the exact references and thresholds it compared them with, so that an alert can
cite them.

Day handling common to the rules
================================
* ``warming_up`` days (the vitality band; baselines not yet trusted) are ignored: they neither
  count towards nor break a streak.
* Electricity data gaps: a day flagged ``elec_missing`` (fewer than half the usual meter
  readings) or ``silent`` (no event at all: every feed down) is *no evidence*. Vitality may score
  such a day as 0 kWh (silence after a shutdown is a signal for the score), but a rule never
  counts it as low power: a data outage is not a stall. The day holds the streak; more than
  ``max_gap_days`` such days in a row clear it.
* Spring Festival (``holiday``): expectations in the vitality record are already lowered by the
  industry's holiday factor (kept at the low end of what firms do). Rules that compare a day with
  its expectation keep running on holiday days but with a stricter threshold
  (``holiday_elec_below``); bucketed rules (tax, growth) leave holiday days out of their buckets.

Reference rules (the domain brief's figures are the defaults unless stated)
============================================================================
``power_logistics_stall`` (manufacturing): electricity below ``elec_below`` of expectation for 3
consecutive observed days *and* no new logistics orders over those days -> warning,
FREEZE_ADJUSTMENTS. Expectation = the vitality ``elec`` baseline: the firm's decayed (30-day
half-life) weekday-aware mean kWh for that weekday. **Default 30%, not the brief's 60%**: on the
simulated population a seasonal dip (off-season, maintenance: activity at 40-60% for 1-3 weeks,
electricity ratio >= 0.36) with a micro firm's sparse orders meets the 60% rule on 19% of
seasonal-dip firms, for no gain in recall; a shutdown's standby power sits at 3-19% of
expectation. ``PowerLogisticsStall(elec_below=0.6)`` is the brief's rule as stated.
``min_expected_orders``: "no new orders" is only evidence when the streak was expected to hold
at least that many orders (default 0).

``tax_decline`` (all industries): VAT on issued invoices per observed day, in calendar-month
buckets, below 70% of the firm's reference for 6 consecutive months -> warning, RM_FOLLOW_UP.
The reference is the median of the firm's last 6 buckets that were not down; the first
``warmup_buckets`` buckets only build it; ratios are shrunk by ``prior_invoices`` invoices (see
:class:`TaxDecline`).

``tax_decline_weekly``: the faster variant, ISO-week buckets, 4 consecutive weeks below 70% ->
watch, RM_FOLLOW_UP.

``order_drop`` (restaurant_retail): payment inflow (the takeout/POS orders) over the last 7
observed days at or below 60% of expectation (down 40%) -> watch (soft alert), RM_FOLLOW_UP.
Needs ``min_expected_payments`` expected payments in the week (a firm expected to take 2 payments
a week is not judged on them).

``electricity_growth``: 3 consecutive month-over-month rises of electricity per day (each at
least ``min_rise``) *and* falling energy per unit of output (kWh per CNY of issued invoice amount
plus new logistics order value, each month below the previous) -> info, INCREASE_ELIGIBLE.
Evaluated when a month closes (the first observed day of the next month); active until the next
month closes.

``feed_silence``: no event at all for ``days`` (5) consecutive days -> info, DATA_CHECK: a data
outage is not distress, but a long silence must be looked at by a human.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Mapping

__all__ = [
    "LEVELS",
    "LEVEL_RANK",
    "ACTIONS",
    "Day",
    "Rule",
    "PowerLogisticsStall",
    "TaxDecline",
    "OrderDrop",
    "ElectricityGrowth",
    "FeedSilence",
    "RULE_KINDS",
    "default_rules",
    "rules_from_config",
    "rules_to_config",
    "reason",
]

LEVELS: tuple[str, ...] = ("info", "watch", "warning", "critical")
LEVEL_RANK: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
ACTIONS: tuple[str, ...] = (
    "FREEZE_ADJUSTMENTS",
    "RM_FOLLOW_UP",
    "INCREASE_ELIGIBLE",
    "HUMAN_REVIEW",
    "DATA_CHECK",
    "NONE",
)


def _r4(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _pct(x: float) -> str:
    return f"{100.0 * x:.0f}%"


def reason(code: str, observed: Any, reference: Any, contribution: float, text: str) -> dict[str, Any]:
    """One explanation item of a detection (the common reason schema)."""
    return {
        "code": code,
        "observed": observed,
        "reference": reference,
        "contribution": round(float(contribution), 4),
        "text": text,
    }


# --------------------------------------------------------------------------------------------
# The view of one vitality record
# --------------------------------------------------------------------------------------------

_EMPTY: Mapping[str, Any] = {}  # read-only stand-in for a missing record section
_new = object.__new__  # an instance without running __init__ (see Day.from_record)


@dataclass(slots=True)
class Day:
    """What rules and models read from one vitality record (see :mod:`streams.pipeline`).

    A read-only view by convention (rules and models never assign to it). It is deliberately not
    a *frozen* dataclass: a frozen ``__init__`` sets each of the 24 fields through
    ``object.__setattr__``, which made building the view ~10x slower than a plain slots class --
    and the engine builds one per closed firm-day.
    """

    firm_id: str
    day: str  # ISO date
    ordinal: int
    industry: str
    holiday: bool
    warming_up: bool
    history_days: int
    elec_missing: bool
    elec_partial: bool
    silent: bool
    #: today's kWh / expected kWh (vitality ``elec`` ratio), None when missing or unknown
    elec_ratio: float | None
    elec_value: float | None  # kWh used for scoring (scaled up on partial days)
    elec_expected: float | None  # expected kWh today (level x weekday x holiday factor)
    kwh_level: float | None  # the deseasonalised daily kWh level after today's update
    orders: float  # new logistics orders today
    orders_expected: float | None
    order_value: float  # CNY value of today's new logistics orders
    pay_in: float  # payment inflow today, CNY
    pay_in_n: float
    pay_expected: float | None
    inv_n: float
    inv_amt: float
    inv_tax: float
    record: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "Day":
        comps = rec.get("components") or _EMPTY
        agg = rec.get("aggregate") or _EMPTY
        flags = rec.get("flags") or ()
        elec = comps.get("elec") or _EMPTY
        missing = "elec_missing" in flags
        iso = rec["day"]
        # Filled slot by slot rather than through the 24-argument __init__: this runs once per
        # closed firm-day and plain slot stores are the cheapest way in (every field is set).
        d = _new(cls)
        d.firm_id = rec["firm_id"]
        d.day = iso
        d.ordinal = date.fromisoformat(iso).toordinal()
        d.industry = rec.get("industry") or "default"
        d.holiday = bool(rec.get("holiday"))
        d.warming_up = rec.get("band") == "warming_up"
        d.history_days = int(rec.get("history_days") or 0)
        d.elec_missing = missing
        d.elec_partial = "elec_partial" in flags
        d.silent = "silent" in flags
        d.elec_ratio = None if missing else elec.get("ratio")
        d.elec_value = elec.get("value")
        d.elec_expected = elec.get("baseline")
        d.kwh_level = (rec.get("baselines") or _EMPTY).get("kwh")
        d.orders = float(agg.get("log_created_n", 0.0))
        d.orders_expected = (comps.get("logistics") or _EMPTY).get("baseline")
        d.order_value = float(agg.get("log_created_value", 0.0))
        d.pay_in = float(agg.get("pay_in_amt", 0.0))
        d.pay_in_n = float(agg.get("pay_in_n", 0.0))
        d.pay_expected = (comps.get("payments") or _EMPTY).get("baseline")
        d.inv_n = float(agg.get("inv_issued_n", 0.0))
        d.inv_amt = float(agg.get("inv_issued_amt", 0.0))
        d.inv_tax = float(agg.get("inv_tax_amt", 0.0))
        d.record = rec
        return d

    @property
    def no_evidence(self) -> bool:
        """A data gap: electricity missing or nothing at all reported."""
        return self.elec_missing or self.silent


# --------------------------------------------------------------------------------------------
# Rule base
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Common fields of every rule. ``industries`` None = every industry."""

    kind: ClassVar[str] = ""

    id: str = ""
    level: str = "warning"
    owner: str = "risk-ops"
    action: str = "NONE"
    enabled: bool = True
    industries: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVEL_RANK:
            raise ValueError(f"rule {self.id!r}: unknown level {self.level!r}; choose from {LEVELS}")
        if self.action not in ACTIONS:
            raise ValueError(f"rule {self.id!r}: unknown action {self.action!r}; choose from {ACTIONS}")
        if self.industries is not None and not isinstance(self.industries, tuple):
            object.__setattr__(self, "industries", tuple(self.industries))

    def applies(self, industry: str) -> bool:
        return self.enabled and (self.industries is None or industry in self.industries)

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        raise NotImplementedError

    def _hit(self, new: bool, score: float, reasons: list[dict]) -> dict[str, Any]:
        return {
            "name": self.id,
            "level": self.level,
            "action": self.action,
            "score": round(float(score), 4),
            "new": bool(new),
            "reasons": reasons,
        }

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["kind"] = self.kind
        if d.get("industries") is not None:
            d["industries"] = list(d["industries"])
        return d


# --------------------------------------------------------------------------------------------
# Power-and-logistics stall
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLogisticsStall(Rule):
    """Manufacturing firm: electricity below ``elec_below`` of expectation for ``days``
    consecutive observed days and no new logistics orders over them.

    State: ``{"s": [[ordinal, elec ratio, kWh, expected kWh, orders, expected orders], ...] (at
    most ``days``), "gap": consecutive no-evidence days, "on": active}``.
    """

    kind: ClassVar[str] = "power_logistics_stall"

    id: str = "power_logistics_stall"
    level: str = "warning"
    owner: str = "credit-risk"
    action: str = "FREEZE_ADJUSTMENTS"
    industries: tuple[str, ...] | None = ("manufacturing",)
    elec_below: float = 0.3
    holiday_elec_below: float = 0.3
    days: int = 3
    max_orders: float = 0.0
    min_expected_orders: float = 0.0
    max_gap_days: int = 2

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        st = state or {"s": [], "gap": 0, "on": False}
        streak = st["s"]  # copied on write: the entries are never mutated
        gap = st["gap"]
        on = st["on"]
        if day.warming_up or day.no_evidence or day.elec_ratio is None:
            if not day.warming_up:
                gap += 1
                if gap > self.max_gap_days:
                    streak, on = [], False
            return None, {"s": streak, "gap": gap, "on": on}
        gap = 0
        thr = self.holiday_elec_below if day.holiday else self.elec_below
        r = float(day.elec_ratio)
        if r < thr:
            streak = (streak + [
                [day.ordinal, _r4(r), _r4(day.elec_value), _r4(day.elec_expected), day.orders,
                 _r4(day.orders_expected or 0.0)]
            ])[-self.days :]
        elif streak:
            streak = []
        hit = None
        fire = False
        if len(streak) == self.days:
            orders = sum(e[4] for e in streak)
            exp_orders = sum(e[5] for e in streak)
            fire = orders <= self.max_orders and exp_orders >= self.min_expected_orders
        if fire:
            ratios = [e[1] for e in streak]
            depth = max(0.0, min(1.0, 1.0 - max(ratios) / thr))
            score = 0.5 + 0.5 * depth
            days_iso = [date.fromordinal(e[0]).isoformat() for e in streak]
            reasons = [
                reason(
                    "elec_below_expected",
                    {"days": days_iso, "ratio": ratios, "kwh": [e[2] for e in streak]},
                    {"threshold": thr, "expected_kwh": [e[3] for e in streak],
                     "baseline": "decayed 30-day weekday-aware mean kWh (vitality elec baseline)"},
                    0.6,
                    f"electricity at {', '.join(_pct(x) for x in ratios)} of its weekday baseline "
                    f"for {self.days} days (below {_pct(thr)})",
                ),
                reason(
                    "no_new_logistics_orders",
                    {"days": days_iso, "orders": [e[4] for e in streak]},
                    {"max_orders": self.max_orders, "expected_orders": _r4(sum(e[5] for e in streak))},
                    0.4,
                    f"{sum(e[4] for e in streak):.0f} new logistics orders in {self.days} days "
                    f"(about {sum(e[5] for e in streak):.1f} expected)",
                ),
            ]
            hit = self._hit(not on, score, reasons)
        return hit, {"s": streak, "gap": gap, "on": fire}


# --------------------------------------------------------------------------------------------
# Bucketed decline (tax, monthly or weekly)
# --------------------------------------------------------------------------------------------


@functools.cache
def _month_key(ordinal: int) -> int:
    # cached: the monthly rules ask for it every firm-day, and building a date costs more than
    # the lookup (one entry per calendar day ever seen: a few thousand ints over years)
    d = date.fromordinal(ordinal)
    return d.year * 12 + d.month - 1


def _week_key(ordinal: int) -> int:
    return (ordinal - 1) // 7  # ordinal 1 (0001-01-01) is a Monday: ISO weeks


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    h = len(ys) // 2
    return ys[h] if len(ys) % 2 else 0.5 * (ys[h - 1] + ys[h])


def _bucket_label(key: int, period: str) -> str:
    if period == "month":
        return f"{key // 12:04d}-{key % 12 + 1:02d}"
    return date.fromordinal(key * 7 + 1).isoformat()  # the week's Monday


@dataclass(frozen=True)
class TaxDecline(Rule):
    """``field`` per observed day, bucketed by ``period`` ("month" or "week"), below
    ``(1 - drop)`` x the firm's reference for ``buckets`` consecutive buckets.

    The reference is the median per-day rate of the firm's last ``ref_buckets`` buckets that were
    not down (a median: month-end invoicing spikes do not inflate it; only buckets that were not
    down: a decline does not teach it that declining is normal). The first ``warmup_buckets``
    buckets only build it. A
    bucket is judged on a *shrunk* ratio ``(x + k u) / (e + k u)``: ``x`` its total, ``e`` the
    reference rate x its observed days, ``u`` the firm's average amount per invoice and ``k =
    prior_invoices`` -- a firm that issues 3 invoices a week is not "down 30%" because it issued 2.
    A bucket expected to hold fewer than ``min_expected_invoices`` invoices, or observed on fewer
    than ``min_days`` days, is not judged (and does not break a streak).

    State: ``{"b": [key, total, invoices, days] (open bucket), "ref": [[per-day rate, invoices per
    day], ...] (at most ``ref_buckets``), "n": buckets closed, "run": [[label, per-day, reference per-day,
    shrunk ratio], ...] (the current down streak, at most ``buckets``), "on": active}``.
    """

    kind: ClassVar[str] = "tax_decline"

    id: str = "tax_decline"
    level: str = "warning"
    owner: str = "credit-risk"
    action: str = "RM_FOLLOW_UP"
    field: str = "inv_tax"
    period: str = "month"
    drop: float = 0.30
    buckets: int = 6
    min_days: int = 10
    warmup_buckets: int = 1
    ref_buckets: int = 6
    prior_invoices: float = 2.0
    min_expected_invoices: float = 0.0
    skip_holiday: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.period not in ("month", "week"):
            raise ValueError(f"rule {self.id!r}: period must be 'month' or 'week'")
        if self.field not in ("inv_tax", "inv_amt", "inv_n"):
            raise ValueError(f"rule {self.id!r}: field must be inv_tax, inv_amt or inv_n")

    def _key(self, ordinal: int) -> int:
        return _month_key(ordinal) if self.period == "month" else _week_key(ordinal)

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        st = state or {"b": None, "ref": [], "n": 0, "run": [], "on": False}
        bucket = st["b"]
        ref = st["ref"]  # ref and run are copied on write (only when a bucket closes)
        n = st["n"]
        run = st["run"]
        on = st["on"]
        key = _month_key(day.ordinal) if self.period == "month" else (day.ordinal - 1) // 7  # _key, inlined
        hit = None
        closed = False
        if bucket is not None and key != bucket[0]:
            # the open bucket closes: judge it against the reference, then learn it if not down
            bkey, total, count, days = bucket
            if days >= self.min_days:
                rate = total / days
                n += 1
                down = False
                judged = False
                ref_rate = _median([e[0] for e in ref]) if ref else 0.0
                if n > self.warmup_buckets and ref_rate > 0:
                    ref_n = _median([e[1] for e in ref])
                    exp_n = ref_n * days
                    if exp_n >= self.min_expected_invoices:
                        judged = True
                        unit = ref_rate / ref_n if ref_n > 0 else ref_rate
                        k = self.prior_invoices * unit
                        shrunk = (total + k) / (ref_rate * days + k)
                        down = shrunk < 1.0 - self.drop
                if down:
                    run = (run + [[_bucket_label(bkey, self.period), _r4(rate), _r4(ref_rate),
                                   _r4(shrunk)]])[-self.buckets :]
                else:
                    if judged:
                        run = []
                    ref = (ref + [[_r4(rate), _r4(count / days)]])[-self.ref_buckets :]
            bucket = None
            closed = True
        if bucket is None:
            bucket = [key, 0.0, 0.0, 0]
        if not (day.warming_up or day.silent or (self.skip_holiday and day.holiday)):
            bucket = [bucket[0], bucket[1] + getattr(day, self.field), bucket[2] + day.inv_n, bucket[3] + 1]
        if closed:
            new = len(run) >= self.buckets and not on
            on = len(run) >= self.buckets
        else:
            new = False
        if on:
            ratios = [e[3] for e in run]
            score = 0.5 + 0.5 * max(0.0, min(1.0, 1.0 - max(ratios) / (1.0 - self.drop)))
            unit_name = "month" if self.period == "month" else "week"
            what = {"inv_tax": "VAT on issued invoices", "inv_amt": "issued invoice amount",
                    "inv_n": "issued invoices"}[self.field]
            hit = self._hit(
                new,
                score,
                [
                    reason(
                        f"{self.field}_down_{unit_name}ly",
                        {"buckets": [e[0] for e in run], "per_day": [e[1] for e in run], "ratio": ratios},
                        {"reference_per_day": [e[2] for e in run], "threshold": round(1.0 - self.drop, 4),
                         "buckets": self.buckets, "prior_invoices": self.prior_invoices},
                        1.0,
                        f"{what} down {', '.join(_pct(1 - x) for x in ratios)} vs the firm's reference "
                        f"for {len(run)} consecutive {unit_name}s (threshold: down {_pct(self.drop)})",
                    )
                ],
            )
        return hit, {"b": bucket, "ref": ref, "n": n, "run": run, "on": on}


# --------------------------------------------------------------------------------------------
# Weekly order drop (restaurants)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderDrop(Rule):
    """Payment inflow over the last ``days`` observed days at or below ``(1 - drop)`` x its
    expectation (the sum of the vitality ``payments`` baselines of those days).

    State: ``{"w": [[ordinal, inflow, expected, payments], ...] (at most ``days``),
    "t": [mean ticket, weight], "on": active}``.
    """

    kind: ClassVar[str] = "order_drop"

    id: str = "order_drop"
    level: str = "watch"
    owner: str = "relationship-managers"
    action: str = "RM_FOLLOW_UP"
    industries: tuple[str, ...] | None = ("restaurant_retail",)
    drop: float = 0.40
    days: int = 7
    min_expected_payments: float = 10.0

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        st = state or {"w": [], "t": [0.0, 0.0], "on": False}
        win = st["w"]  # copied on write: the entries are never mutated
        t = st["t"]
        on = st["on"]
        if day.warming_up or day.silent or day.pay_expected is None:
            return None, {"w": win, "t": t, "on": on}
        win = (win + [[day.ordinal, _r4(day.pay_in), _r4(day.pay_expected), day.pay_in_n]])[-self.days :]
        if day.pay_in_n > 0:
            d = 0.5 ** (1.0 / 30.0)
            t = [d * t[0] + day.pay_in, d * t[1] + day.pay_in_n]
        hit = None
        fire = False
        if len(win) == self.days and t[1] > 0:
            ticket = t[0] / t[1]
            inflow = expected = 0  # summed in window order from 0, as sum() does
            for e in win:
                inflow += e[1]
                expected += e[2]
            exp_n = expected / ticket if ticket > 0 else 0.0
            if exp_n >= self.min_expected_payments and expected > 0:
                ratio = inflow / expected
                fire = ratio <= 1.0 - self.drop
                if fire:
                    hit = self._hit(
                        not on,
                        0.5 + 0.5 * max(0.0, min(1.0, 1.0 - ratio / (1.0 - self.drop))),
                        [
                            reason(
                                "weekly_orders_down",
                                {"days": [date.fromordinal(win[0][0]).isoformat(), day.day],
                                 "inflow": _r4(inflow), "payments": sum(e[3] for e in win),
                                 "ratio": _r4(ratio)},
                                {"expected_inflow": _r4(expected), "expected_payments": _r4(exp_n),
                                 "threshold": round(1.0 - self.drop, 4)},
                                1.0,
                                f"orders (payment inflow) down {_pct(1 - ratio)} over {self.days} days: "
                                f"CNY {inflow:,.0f} vs {expected:,.0f} expected (threshold: down "
                                f"{_pct(self.drop)})",
                            )
                        ],
                    )
        return hit, {"w": win, "t": t, "on": fire}


# --------------------------------------------------------------------------------------------
# Electricity growth credit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElectricityGrowth(Rule):
    """``months`` consecutive month-over-month rises of kWh per day, each at least
    ``min_rise``, with kWh per CNY of output falling every month.

    A month's kWh per day is measured on its observed, non-festival days. With ``deseasonalise``
    (off by default) each day's kWh is divided by the firm's weekday factor (``elec_ratio`` x the
    deseasonalised level before today = kWh / weekday factor): a month with five weekends is not
    "down" for a factory, and a month with few usable days (the Spring Festival month) is not
    biased by which weekdays remain. A month needs ``min_days`` such days (default 10: the
    festival month of 2026 keeps 10); a month with fewer breaks the series.

    State: ``{"b": [month key, kWh, output CNY, days] (open month), "m": [[label, kWh/day,
    output/day], ...] (the last ``months + 1`` closed months), "on": active, "lv": the
    deseasonalised kWh level before today}``.
    """

    kind: ClassVar[str] = "electricity_growth"

    id: str = "electricity_growth"
    level: str = "info"
    owner: str = "credit-line-management"
    action: str = "INCREASE_ELIGIBLE"
    months: int = 3
    min_rise: float = 0.01
    min_days: int = 10
    deseasonalise: bool = False

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        st = state or {"b": None, "m": [], "on": False, "lv": None}
        b = st["b"]
        months = st["m"]  # copied on write (only when a month closes)
        on = st["on"]
        lv = st.get("lv")
        key = _month_key(day.ordinal)
        closed = False
        if b is not None and key != b[0]:
            if b[3] >= self.min_days:
                months = months + [[_bucket_label(b[0], "month"), _r4(b[1] / b[3]), _r4(b[2] / b[3])]]
            else:
                months = []  # a month without enough observed days breaks the series
            months = months[-(self.months + 1) :]
            b = None
            closed = True
        if b is None:
            b = [key, 0.0, 0.0, 0]
        no_ev = day.no_evidence
        if self.deseasonalise:
            kwh = (day.elec_ratio * lv) if (day.elec_ratio is not None and lv) else None
            if day.kwh_level and not no_ev:
                lv = day.kwh_level
        else:
            kwh = day.elec_value
        ok_day = not (day.warming_up or no_ev or day.holiday or kwh is None)
        if ok_day:
            b = [b[0], b[1] + float(kwh), b[2] + day.inv_amt + day.order_value, b[3] + 1]
        if closed:
            on = False
            if len(months) == self.months + 1:
                kwh = [e[1] for e in months]
                out = [e[2] for e in months]
                rises = [kwh[i + 1] / kwh[i] - 1.0 if kwh[i] > 0 else 0.0 for i in range(self.months)]
                intensity = [k / o if o > 0 else math.inf for k, o in zip(kwh, out)]
                on = all(r >= self.min_rise for r in rises) and all(
                    intensity[i + 1] < intensity[i] for i in range(self.months)
                )
        hit = None
        if on:
            kwh = [e[1] for e in months]
            out = [e[2] for e in months]
            intensity = [_r4(1000.0 * k / o) if o > 0 else None for k, o in zip(kwh, out)]
            rises = [round(kwh[i + 1] / kwh[i] - 1.0, 4) for i in range(self.months)]
            hit = self._hit(
                closed,
                min(1.0, 0.5 + sum(rises)),
                [
                    reason(
                        "electricity_rising",
                        {"months": [e[0] for e in months], "kwh_per_day": kwh, "rise": rises},
                        {"min_rise": self.min_rise, "months": self.months},
                        0.5,
                        f"electricity up {', '.join(_pct(r) for r in rises)} month over month for "
                        f"{self.months} months",
                    ),
                    reason(
                        "energy_per_output_falling",
                        {"months": [e[0] for e in months], "kwh_per_1000_cny": intensity,
                         "output_per_day": out},
                        {"rule": "each month below the previous"},
                        0.5,
                        "energy per unit of output fell from "
                        f"{intensity[0]} to {intensity[-1]} kWh per 1,000 CNY (invoices + shipments)",
                    ),
                ],
            )
        return hit, {"b": b, "m": months, "on": on, "lv": lv}


# --------------------------------------------------------------------------------------------
# Feed silence (a data outage is not distress, but must be looked at)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedSilence(Rule):
    """No event at all for ``days`` consecutive days. State: ``{"n": silent days in a row}``."""

    kind: ClassVar[str] = "feed_silence"

    id: str = "feed_silence"
    level: str = "info"
    owner: str = "data-operations"
    action: str = "DATA_CHECK"
    days: int = 5

    def step(self, state: dict | None, day: Day) -> tuple[dict | None, dict]:
        n = (state or {"n": 0})["n"]
        n = n + 1 if day.silent else 0
        hit = None
        if n >= self.days:
            hit = self._hit(
                n == self.days,
                0.5,
                [reason("no_events", {"silent_days": n}, {"days": self.days}, 1.0,
                        f"no event from any feed for {n} days (data outage or closure; not scored as distress)")],
            )
        return hit, {"n": n}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

RULE_KINDS: dict[str, type[Rule]] = {
    cls.kind: cls for cls in (PowerLogisticsStall, TaxDecline, OrderDrop, ElectricityGrowth, FeedSilence)
}


def default_rules() -> tuple[Rule, ...]:
    """The reference rule set with the domain brief's figures."""
    return (
        PowerLogisticsStall(),
        TaxDecline(),
        TaxDecline(
            id="tax_decline_weekly", level="watch", period="week", buckets=4, min_days=4,
            warmup_buckets=2, ref_buckets=8, prior_invoices=5.0,
        ),
        OrderDrop(),
        ElectricityGrowth(),
        FeedSilence(),
    )


def _build(kind: str, params: Mapping[str, Any]) -> Rule:
    cls = RULE_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown rule kind {kind!r}; known: {sorted(RULE_KINDS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - names - {"kind"}
    if unknown:
        raise ValueError(f"rule kind {kind!r}: unknown parameters {sorted(unknown)}")
    kw = {k: v for k, v in params.items() if k != "kind"}
    if isinstance(kw.get("industries"), list):
        kw["industries"] = tuple(kw["industries"])
    return cls(**kw)


def rules_from_config(config: Mapping[str, Any] | list | None) -> tuple[Rule, ...]:
    """Rules from a JSON-like config.

    * ``None`` -> :func:`default_rules`;
    * a dict ``{rule id: {param: value}}`` -> the default rules with those overrides (a rule id
      that is not a default needs ``"kind"``; ``{"enabled": false}`` switches one off);
    * a list of ``{"kind": ..., "id": ..., ...}`` -> exactly those rules.

    >>> rules = rules_from_config({"power_logistics_stall": {"elec_below": 0.5}})
    >>> [r.elec_below for r in rules if r.id == "power_logistics_stall"]
    [0.5]
    >>> rules_from_config([{"kind": "order_drop", "drop": 0.5}])[0].drop
    0.5
    """
    if config is None:
        return default_rules()
    if isinstance(config, list):
        out = tuple(_build(item["kind"], item) for item in config)
    else:
        defaults = {r.id: r for r in default_rules()}
        out_l = []
        for rid, rule in defaults.items():
            over = config.get(rid)
            if over:
                params = {**rule.to_dict(), **over}
                params.pop("kind", None)
                out_l.append(_build(rule.kind, params))
            else:
                out_l.append(rule)
        for rid, over in config.items():
            if rid not in defaults:
                if "kind" not in over:
                    raise ValueError(f"rule {rid!r} is not a default rule: give its 'kind'")
                out_l.append(_build(over["kind"], {"id": rid, **over}))
        out = tuple(out_l)
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate rule ids in {ids}")
    return out


def rules_to_config(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    """The list form of a rule set (round-trips through :func:`rules_from_config`)."""
    return [r.to_dict() for r in rules]
