"""Firm-population simulator: synthetic event streams with labelled distress scenarios.

``riskmon simulate --firms N --days D --seed S --out DIR`` (or :func:`simulate`) writes

* ``DIR/events.jsonl.gz`` — every event of the four streams (electricity, invoice, logistics,
  payment; see :mod:`riskmon.events`), one JSON object per line, in **arrival order**: sorted by
  ``delivered_at`` (ties keep generation order, so the file is fully deterministic). Times are
  ISO 8601 at second precision with the firms' local offset ``+08:00`` (Asia/Shanghai). The gzip
  stream has mtime 0 and no file name, so the same seed gives byte-identical files.
* ``DIR/truth.jsonl`` — the labels, one JSON object per firm, sorted by ``firm_id``:

  ============== ===========================================================================
  field          meaning
  ============== ===========================================================================
  firm_id        ``"F000001"`` …
  industry       one of :data:`INDUSTRIES`
  size           one of :data:`SIZES` (``micro``/``small``/``medium``; scales volumes)
  scenario       one of :data:`SCENARIOS`
  onset_date     ``YYYY-MM-DD`` when the scenario's behaviour starts (shutdown day, start of
                 the decline, of the dip, of the outage, of the data gap, of the growth), or
                 ``null`` for healthy firms
  default_date   ``YYYY-MM-DD`` of the loan default (shutdown: 30–60 days after onset;
                 gradual_decline: end of the slide), may lie after the window; else ``null``
  recovery_date  ``YYYY-MM-DD`` of the first day back to normal (seasonal_dip: activity back
                 above 90%; temporary_outage: operations restart; data_outage: the feeds report
                 again), else ``null``
  meters         the firm's meter ids, e.g. ``["F000001-M1", "F000001-M2"]``
  outage_feeds   data_outage only: the event types missing during the gap
                 (``["electricity"]`` or all four); else ``null``
  ============== ===========================================================================

Scenarios (:data:`SCENARIOS`, default shares :data:`DEFAULT_SHARES`):

* ``healthy`` — normal operations with noise and a slight random drift.
* ``shutdown`` — from onset the power falls to a standby 3–12% of normal (about 45% on the onset
  day itself), new logistics orders stop, payments in collapse, purchases tail off; default
  30–60 days after onset.
* ``gradual_decline`` — activity slides linearly from 100% to 20% over 30–60 days; issued invoices
  thin out faster than power, refunds rise; default at the end of the slide.
* ``seasonal_dip`` — not distress: activity dips to 40–60% for 1–3 weeks (off-season, planned
  maintenance) and comes back above 90% on ``recovery_date``.
* ``temporary_outage`` — a fire or equipment failure: activity collapses for 4–14 days and then
  recovers (70% on the restart day, 90% the next, then normal); no default.
* ``data_outage`` — the firm's meters (65%) or all its feeds (35%) stop reporting for 2–10 days
  while the business goes on: the data gap is the only effect.
* ``growth`` — electricity rises 3–6% a month from onset while output (invoice amounts, logistics
  value, sales receipts) rises 8–15 points a month faster (11–21% a month), so energy per unit
  of output falls.

Onsets fall in the last two thirds of the window, after at least 40 days of history where the
window allows (``onset_window``), late enough before the window end for the scenario to show.

Behaviour common to all firms: industry-specific daily and weekly cycles (restaurants peak at
meal times and at weekends; factories run on weekdays), the Spring Festival dip
(:data:`SPRING_FESTIVAL`; 20–50% of normal from about a week before to 7–10 days after, depending
on industry), a month-end invoicing spike, day-level and reading-level noise, meters going offline
for a few hours, and realistic delivery: electricity 0–2 h after the interval end (mostly minutes,
occasional batches), invoices T+1 (a few hours into the next day, ~3% up to 36 h later),
logistics scans minutes, payments seconds; ~0.5% of events are re-delivered later with the same
``event_id`` and content.

Ids are deterministic: electricity ``<meter_id>-<hours since 1970-01-01T00:00+08:00>`` (one per
meter interval), invoices ``<invoice_id>-i`` (issued), ``-r`` (received), ``-x`` (cancellation)
with invoice ids ``<firm>-V<n>`` / ``<firm>-R<n>``, logistics ``<order_id>-c|p|d`` (created,
picked_up, delivered) with order ids ``<firm>-O<n>``, payments ``<firm>-T<n>`` (= txn_id). The
per-firm counters follow event time. A duplicate delivery repeats the line with a later
``delivered_at`` only.

Only events whose ``event_time`` lies inside the window ``[start, start + days)`` are written
(their deliveries may fall after it).

Python API::

    from producers.simulator import simulate, SCENARIOS, INDUSTRIES
    summary = simulate(firms=300, days=120, seed=7, out_dir="out/sim",
                       start=date(2025, 11, 1), shares={"shutdown": 0.1})
    summary.by_type, summary.by_scenario, summary.bytes, summary.seconds

:func:`simulate` returns a :class:`SimulationSummary`; :func:`resolve_shares` validates shares;
:func:`spring_festival_factor` gives the holiday multiplier of an industry on a day.

Speed: events are generated day by day across all firms with numpy, lines are formatted from
pre-encoded pieces, and the buffer is flushed up to the start of the next day after each day (no
later-generated event can arrive earlier), so memory holds ~2–3 days of events.
"""

from __future__ import annotations

import argparse
import gzip
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import orjson

__all__ = [
    "SCENARIOS",
    "DEFAULT_SHARES",
    "INDUSTRIES",
    "INDUSTRY_MIX",
    "SIZES",
    "SIZE_MIX",
    "SPRING_FESTIVAL",
    "VAT_RATES",
    "DEFAULT_START",
    "EVENTS_FILE",
    "TRUTH_FILE",
    "SimulationSummary",
    "simulate",
    "resolve_shares",
    "parse_share_args",
    "onset_window",
    "spring_festival_factor",
    "main",
    "bench_main",
]

# --------------------------------------------------------------------------------------------
# Public constants
# --------------------------------------------------------------------------------------------

SCENARIOS: tuple[str, ...] = (
    "healthy",
    "shutdown",
    "gradual_decline",
    "seasonal_dip",
    "temporary_outage",
    "data_outage",
    "growth",
)
DEFAULT_SHARES: dict[str, float] = {
    "healthy": 0.62,
    "shutdown": 0.06,
    "gradual_decline": 0.06,
    "seasonal_dip": 0.08,
    "temporary_outage": 0.06,
    "data_outage": 0.06,
    "growth": 0.06,
}
INDUSTRIES: tuple[str, ...] = ("manufacturing", "restaurant_retail", "agriculture", "logistics_trade")
INDUSTRY_MIX: tuple[float, ...] = (0.35, 0.30, 0.13, 0.22)
SIZES: tuple[str, ...] = ("micro", "small", "medium")
SIZE_MIX: tuple[float, ...] = (0.60, 0.30, 0.10)
#: Chinese New Year (Spring Festival) dates.
SPRING_FESTIVAL: dict[int, date] = {
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
}
#: VAT rate of invoices a firm issues, by industry (general taxpayers). Micro firms are
#: small-scale taxpayers and issue at 3% whatever the industry.
VAT_RATES: dict[str, float] = {
    "manufacturing": 0.13,
    "restaurant_retail": 0.06,
    "agriculture": 0.09,
    "logistics_trade": 0.09,
}
SMALL_SCALE_VAT = 0.03
DEFAULT_START = date(2025, 11, 1)
EVENTS_FILE = "events.jsonl.gz"
TRUTH_FILE = "truth.jsonl"

# Scenario codes (index into SCENARIOS).
_HEALTHY, _SHUTDOWN, _DECLINE, _DIP, _TEMP, _DATA, _GROWTH = range(7)
_MANUF, _REST, _AGRI, _LOGI = range(4)
_FAR = 10**9  # "never" as a day number
_DAY = 86400

# --------------------------------------------------------------------------------------------
# Behavioural parameters (per industry, in INDUSTRIES order)
# --------------------------------------------------------------------------------------------

# Hourly electricity shape on a full working day (1.0 = peak) and the base load (standby).
_ELEC_SHAPE = np.array(
    [
        # manufacturing: one long shift, lunch dip, some evening work
        [.3, .3, .3, .3, .3, .32, .45, .75, 1, 1, 1, 1, .85, 1, 1, 1, 1, .95, .7, .55, .5, .42, .35, .32],
        # restaurant_retail: fridges overnight, breakfast, lunch and dinner peaks
        [.25, .24, .24, .24, .24, .26, .35, .5, .55, .6, .8, 1, 1, .85, .6, .55, .65, .9, 1, 1, .85, .6, .4, .3],
        # agriculture: pumps and cold storage, daylight work
        [.3, .3, .3, .3, .3, .45, .65, .85, 1, 1, 1, 1, .9, 1, 1, 1, .95, .8, .6, .45, .35, .32, .3, .3],
        # logistics_trade: warehouses, long day
        [.35, .35, .35, .35, .35, .4, .6, .9, 1, 1, 1, 1, .9, 1, 1, 1, 1, 1, .95, .8, .6, .5, .4, .37],
    ]
)
_ELEC_BASE = np.array([0.3, 0.24, 0.3, 0.35])
# Weekly factor of the variable (above base load) part, Monday..Sunday.
_ELEC_WEEK = np.array(
    [
        [1, 1, 1, 1, 1, .55, .3],
        [.88, .88, .9, .95, 1.05, 1.22, 1.15],
        [1, 1, 1, 1, 1, .95, .85],
        [1, 1, 1, 1, 1, .8, .6],
    ]
)
# Weekly factor of sales (payments in, new logistics orders).
_SALES_WEEK = np.array(
    [
        [1.08, 1.08, 1.08, 1.08, 1.08, .4, .2],
        [.85, .85, .9, .95, 1.1, 1.3, 1.25],
        [1.05, 1.05, 1.05, 1.05, 1.05, .8, .6],
        [1.08, 1.08, 1.08, 1.08, 1.08, .6, .35],
    ]
)
# Weekly factor of office work (invoices, payments out).
_OFFICE_WEEK = np.array(
    [
        [1.2, 1.2, 1.2, 1.2, 1.2, .3, .1],
        [1.1, 1.1, 1.1, 1.1, 1.1, .8, .7],
        [1.15, 1.15, 1.15, 1.15, 1.15, .5, .35],
        [1.2, 1.2, 1.2, 1.2, 1.2, .3, .1],
    ]
)
# Hour-of-day distribution of sales (payments in) per industry.
_SALES_HOURS = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0, 0, .3, 1, 1, 1, .4, .8, 1, 1, 1, .8, .3, .1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, .1, .5, .6, .4, .5, 1.2, 1.6, 1, .5, .4, .5, .9, 1.5, 1.5, 1, .6, .3, .1],
        [0, 0, 0, 0, 0, 0, .3, .8, 1, 1, 1, .8, .4, .6, 1, 1, .8, .5, .2, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, .2, .6, 1, 1, 1, 1, .6, .9, 1, 1, 1, .9, .6, .3, .1, 0, 0, 0],
    ]
)
_OFFICE_HOURS = np.array(
    [0, 0, 0, 0, 0, 0, 0, .05, .5, 1, 1, 1, .4, .7, 1, 1, 1, .8, .3, .1, .05, 0, 0, 0]
)
_SHIP_HOURS = np.array(
    [0, 0, 0, 0, 0, .05, .2, .5, 1, 1, 1, 1, .7, 1, 1, 1, 1, .9, .6, .3, .1, .05, 0, 0]
)
# Micro firm, normal weekday: expected counts per day.
#             issued  received  orders  pay_in  pay_out
_RATES = np.array(
    [
        [1.0, 0.7, 1.2, 1.2, 1.3],
        [0.7, 0.5, 0.3, 14.0, 1.0],
        [0.5, 0.4, 0.7, 1.0, 0.8],
        [1.3, 1.0, 3.0, 2.0, 2.0],
    ]
)
# Micro firm: median amounts, CNY.  issued  received  order value  pay_in  pay_out
_AMOUNTS = np.array(
    [
        [18000, 12000, 15000, 20000, 15000],
        [1500, 3000, 2000, 60, 2500],
        [6000, 4000, 6000, 8000, 5000],
        [9000, 7000, 5000, 10000, 8000],
    ],
    dtype=float,
)
_WEIGHT_KG = np.array([300.0, 40.0, 800.0, 200.0])
_KWH_PER_HOUR = np.array([30.0, 8.0, 12.0, 6.0])  # micro firm, one meter at the daily peak
_REFUND_RATE = np.array([0.01, 0.025, 0.01, 0.012])  # refunds per payment in
_SIZE_COUNT = np.array([1.0, 1.6, 2.6])
_SIZE_AMOUNT = np.array([1.0, 3.0, 10.0])
_SIZE_KWH = np.array([1.0, 3.5, 10.0])
_METER_MIX = np.array([[0.7, 0.25, 0.05], [0.45, 0.4, 0.15], [0.2, 0.4, 0.4]])
# Payment channels: order of _CHANNELS; probabilities of a sale's channel per industry.
_CHANNELS = (b"pos", b"transfer", b"online", b"qr")
_CHANNEL_SOURCE = (b"unionpay-pos", b"bank-core", b"online-gw", b"qr-acq")
_SALE_CHANNELS = np.array(
    [
        [0.0, 0.9, 0.1, 0.0],
        [0.35, 0.02, 0.08, 0.55],
        [0.0, 0.6, 0.1, 0.3],
        [0.0, 0.75, 0.15, 0.1],
    ]
)
# Supplier VAT rate mix (0.13, 0.09, 0.06, 0.03) of received invoices per industry.
_SUPPLIER_RATES = np.array([0.13, 0.09, 0.06, 0.03])
_SUPPLIER_RATE_MIX = np.array(
    [[.7, .1, .1, .1], [.3, .4, .1, .2], [.3, .5, .05, .15], [.5, .3, .1, .1]]
)
# Spring Festival dip per industry: floor of activity and days after New Year it lasts.
_SF_FLOOR = np.array([0.25, 0.5, 0.4, 0.2])
_SF_AFTER = np.array([10, 7, 8, 10])

_MONTH_END_SPIKE = 2.5  # invoices on the last two working days of a month
_DUP_RATE = 0.005
_OFFLINE_RATE = 0.004  # per meter-day: the meter goes offline for 2-12 hours
_ELEC_BATCH_RATE = 0.06  # per meter-day: a block of 1-2 readings arrives as a late batch
_COUNTERPARTIES = 20000


# --------------------------------------------------------------------------------------------
# Shares, onsets, calendar
# --------------------------------------------------------------------------------------------


def resolve_shares(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Scenario shares after applying ``overrides`` to :data:`DEFAULT_SHARES`.

    ``healthy`` absorbs the difference unless it is overridden itself, in which case the shares
    must sum to 1. Raises :class:`ValueError` naming the problem.

    >>> resolve_shares({"shutdown": 0.1})["healthy"]
    0.58
    >>> resolve_shares({"shutdown": 0.7})
    Traceback (most recent call last):
    ...
    ValueError: shares of the non-healthy scenarios sum to 1.02; they must be at most 1 (healthy takes the rest)
    """
    shares = dict(DEFAULT_SHARES)
    overrides = dict(overrides or {})
    for name, value in overrides.items():
        if name not in shares:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        value = float(value)
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise ValueError(f"share of {name} must be between 0 and 1, got {value}")
        shares[name] = value
    others = sum(v for k, v in shares.items() if k != "healthy")
    if "healthy" in overrides:
        total = others + shares["healthy"]
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"scenario shares sum to {total:.6g}; with healthy given they must sum to 1")
    else:
        if others > 1.0 + 1e-9:
            raise ValueError(
                f"shares of the non-healthy scenarios sum to {others:.6g}; they must be at most 1 "
                "(healthy takes the rest)"
            )
        shares["healthy"] = round(max(0.0, 1.0 - others), 12)
    return {name: shares[name] for name in SCENARIOS}


def parse_share_args(items: Iterable[str]) -> dict[str, float]:
    """Parse ``["shutdown=0.1", ...]`` (the CLI's ``--share``) into a dict."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--share expects SCENARIO=FRACTION, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--share {item!r}: {value!r} is not a number") from None
    return out


def _counts_for_shares(shares: Mapping[str, float], firms: int) -> list[int]:
    """Firms per scenario: largest-remainder rounding of share × firms (ties by scenario order)."""
    raw = [shares[s] * firms for s in SCENARIOS]
    counts = [int(math.floor(x)) for x in raw]
    rest = firms - sum(counts)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def _is_month_end(day: date) -> bool:
    """True on the last two working days (Monday-Friday) of a month: invoicing peaks then.

    >>> _is_month_end(date(2025, 11, 27)), _is_month_end(date(2025, 11, 28)), _is_month_end(date(2025, 11, 29))
    (True, True, False)
    """
    if day.weekday() >= 5:
        return False
    later = 0
    d = day + timedelta(days=1)
    while d.month == day.month:
        later += d.weekday() < 5
        d += timedelta(days=1)
    return later < 2


def onset_window(days: int) -> tuple[int, int]:
    """The first and last possible onset day (0-based) before scenario-specific tails: the last
    two thirds of the window, with at least 40 days of history where the window allows it."""
    lo = max(math.ceil(days / 3), min(40, days // 2))
    return lo, max(lo, days - 1)


def spring_festival_factor(industry: int | str, day: date) -> float:
    """Activity multiplier of the Spring Festival for an industry on a day (1.0 = no effect).

    >>> spring_festival_factor("manufacturing", date(2026, 2, 18))
    0.25
    >>> spring_festival_factor("manufacturing", date(2026, 3, 10))
    1.0
    """
    ind = INDUSTRIES.index(industry) if isinstance(industry, str) else industry
    floor, after = float(_SF_FLOOR[ind]), int(_SF_AFTER[ind])
    for cny in (SPRING_FESTIVAL.get(day.year), SPRING_FESTIVAL.get(day.year + 1)):
        if cny is None:
            continue
        r = (day - cny).days
        if -8 < r < -2:  # ramp down over the week before
            return 1.0 - (1.0 - floor) * (r + 8) / 6.0
        if -2 <= r <= after - 4:
            return floor
        if after - 4 < r <= after:  # ramp back up
            return floor + (1.0 - floor) * (r - (after - 4)) / 5.0
    return 1.0


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


@dataclass
class SimulationSummary:
    """What a simulation wrote."""

    firms: int
    days: int
    seed: int
    start: date
    out_dir: Path
    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    by_scenario: dict[str, int] = field(default_factory=dict)
    by_industry: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    truth_bytes: int = 0
    seconds: float = 0.0
    #: CPU time of the generating process (the wall clock overstates cost on a busy machine).
    cpu_seconds: float = 0.0

    @property
    def events_path(self) -> Path:
        return self.out_dir / EVENTS_FILE

    @property
    def truth_path(self) -> Path:
        return self.out_dir / TRUTH_FILE

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")

    def format(self) -> str:
        lines = [
            f"simulated {self.firms} firms x {self.days} days from {self.start} (seed {self.seed})",
            f"events: {self.events:,} ({self.duplicates:,} duplicate deliveries)",
        ]
        for name, n in self.by_type.items():
            lines.append(f"  {name:<12} {n:>12,}")
        lines.append(f"firms per scenario:")
        for name, n in self.by_scenario.items():
            lines.append(f"  {name:<17} {n:>7,}")
        lines.append("firms per industry: " + ", ".join(f"{k} {v}" for k, v in self.by_industry.items()))
        lines.append(
            f"wrote {self.events_path} ({self.bytes / 1e6:,.1f} MB) and {self.truth_path} "
            f"({self.truth_bytes / 1e3:,.1f} kB)"
        )
        lines.append(
            f"{self.seconds:.2f} s, {self.events_per_second:,.0f} events/s "
            f"({self.cpu_seconds:.2f} CPU s, {self.events_per_cpu_second:,.0f} events per CPU second)"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------

_TOD: np.ndarray | None = None


def _time_of_day_table() -> np.ndarray:
    """b"HH:MM:SS+08:00" for every second of the day (built once)."""
    global _TOD
    if _TOD is None:
        hm = [b"%02d:%02d:" % (h, m) for h in range(24) for m in range(60)]
        ss = [b"%02d+08:00" % s for s in range(60)]
        _TOD = np.array([a + b for a in hm for b in ss], dtype=object)
    return _TOD


def _cum_table(weights: np.ndarray) -> np.ndarray:
    """Flattened cumulative hour distributions, row i offset by i, for one searchsorted call."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    cum = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    cum[cum > 1.0 - 1e-12] = 1.0
    return (cum + np.arange(len(w))[:, None]).ravel()


def _sample_hours(rng: np.random.Generator, cum_flat: np.ndarray, rows: np.ndarray | int, n: int) -> np.ndarray:
    u = rng.random(n) + rows
    hours = np.searchsorted(cum_flat, u, side="right") - 24 * np.asarray(rows)
    return np.minimum(hours, 23)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """Position of each repeated element within its group, for np.repeat(..., counts)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


class _Population:
    """Static firm attributes and scenario parameters."""

    def __init__(self, firms: int, days: int, seed: int, start: date, shares: Mapping[str, float]):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        n = firms
        self.n, self.days, self.start = n, days, start
        self.ids = [b"F%06d" % (i + 1) for i in range(n)]
        self.ind = rng.choice(len(INDUSTRIES), size=n, p=INDUSTRY_MIX)
        self.size = rng.choice(len(SIZES), size=n, p=SIZE_MIX)
        mix = np.cumsum(_METER_MIX, axis=1)[self.size]
        u = rng.random(n)
        nm = 1 + (u >= mix[:, 0]).astype(np.int64) + (u >= mix[:, 1])
        self.n_meters = nm
        ind, size = self.ind, self.size

        # Volumes: counts and amounts per firm, with firm-level heterogeneity.
        count_scale = _SIZE_COUNT[size] * rng.lognormal(0.0, 0.3, n)
        self.rates = _RATES[ind] * count_scale[:, None]  # (n, 5)
        self.amounts = _AMOUNTS[ind] * (_SIZE_AMOUNT[size] * rng.lognormal(0.0, 0.4, n))[:, None]
        self.weight = _WEIGHT_KG[ind] * _SIZE_AMOUNT[size] ** 0.7 * rng.lognormal(0.0, 0.3, n)
        self.vat = np.where(size == 0, SMALL_SCALE_VAT, np.array([VAT_RATES[i] for i in INDUSTRIES])[ind])
        self.refund_rate = _REFUND_RATE[ind] * rng.lognormal(0.0, 0.3, n)
        self.sf_depth = rng.uniform(0.85, 1.15, n)  # depth of the Spring Festival dip
        # Counterparty pools: each firm trades with a few customers and suppliers.
        self.cust_base = rng.integers(0, _COUNTERPARTIES, n)
        self.cust_n = rng.integers(3, 25, n)
        self.supp_base = rng.integers(0, _COUNTERPARTIES, n)
        self.supp_n = rng.integers(2, 12, n)
        self.cp_ids = np.array(
            [b"91340%013d" % v for v in rng.integers(10**11, 10**13, _COUNTERPARTIES).tolist()],
            dtype=object,
        )

        # Meters: firm, id, share of the firm's load.
        self.meter_firm = np.repeat(np.arange(n), nm)
        mrank = _ranks(nm)
        self.meter_ids = np.array(
            [b"%s-M%d" % (self.ids[f], r + 1) for f, r in zip(self.meter_firm.tolist(), mrank.tolist())],
            dtype=object,
        )
        share = rng.gamma(2.0, 1.0, len(self.meter_firm))
        share /= np.bincount(self.meter_firm, weights=share)[self.meter_firm]
        firm_kwh = _KWH_PER_HOUR[ind] * _SIZE_KWH[size] * rng.lognormal(0.0, 0.35, n)
        self.meter_kwh = firm_kwh[self.meter_firm] * share * nm[self.meter_firm] ** 0.3

        # Scenarios: exact counts, randomly placed.
        counts = _counts_for_shares(shares, n)
        self.scen = rng.permutation(np.repeat(np.arange(len(SCENARIOS)), counts))
        self.scen_counts = dict(zip(SCENARIOS, counts))
        self._draw_scenarios(rng)
        self.healthy_drift = np.where(self.scen == _HEALTHY, rng.normal(0.0, 0.01, n), 0.0)

    def _draw_scenarios(self, rng: np.random.Generator) -> None:
        n, days = self.n, self.days
        lo, hi = onset_window(days)
        self.onset = np.full(n, _FAR, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)  # dip / outage / slide / gap length, days
        self.level = np.ones(n)  # dip level or standby power level
        self.default = np.full(n, _FAR, dtype=np.int64)
        self.recovery = np.full(n, _FAR, dtype=np.int64)
        self.g_elec = np.zeros(n)
        self.g_out = np.zeros(n)
        self.gap_start = np.full(n, _FAR * _DAY, dtype=np.int64)  # seconds from window start
        self.gap_end = np.full(n, _FAR * _DAY, dtype=np.int64)
        self.gap_all = np.zeros(n, dtype=bool)
        # Draw every parameter for every firm (fixed call pattern), then keep what applies.
        u_onset = rng.random(n)
        length_u = rng.random(n)
        level_u = rng.random(n)
        extra_u = rng.random(n)
        hour_u = rng.integers(0, 24, n)

        def onsets(tail: np.ndarray | int) -> np.ndarray:
            top = np.maximum(lo, days - 1 - np.asarray(tail))
            top = np.minimum(top, hi)
            return lo + np.floor(u_onset * (top - lo + 1)).astype(np.int64)

        sc = self.scen
        for code in range(1, len(SCENARIOS)):
            m = sc == code
            if not m.any():
                continue
            if code == _SHUTDOWN:
                on = onsets(10)
                self.level[m] = (0.03 + 0.09 * level_u)[m]
                self.default[m] = (on + 30 + np.floor(extra_u * 31).astype(np.int64))[m]
            elif code == _DECLINE:
                length = 30 + np.floor(length_u * 31).astype(np.int64)
                on = onsets(15)
                self.length[m] = length[m]
                self.default[m] = (on + length)[m]
            elif code == _DIP:
                length = 7 + np.floor(length_u * 15).astype(np.int64)
                on = onsets(length + 10)
                self.length[m] = length[m]
                self.level[m] = (0.4 + 0.2 * level_u)[m]
                self.recovery[m] = (on + length)[m]
            elif code == _TEMP:
                length = 4 + np.floor(length_u * 11).astype(np.int64)
                on = onsets(length + 7)
                self.length[m] = length[m]
                self.level[m] = (0.04 + 0.08 * level_u)[m]
                self.recovery[m] = (on + length)[m]
            elif code == _DATA:
                length = 2 + np.floor(length_u * 9).astype(np.int64)
                on = onsets(length + 3)
                self.length[m] = length[m]
                start = on * _DAY + hour_u * 3600
                self.gap_start[m] = start[m]
                self.gap_end[m] = (start + length * _DAY)[m]
                self.gap_all[m] = (extra_u < 0.35)[m]
                self.recovery[m] = ((start + length * _DAY) // _DAY)[m]
            elif code == _GROWTH:
                on = onsets(45)
                self.g_elec[m] = (0.03 + 0.03 * level_u)[m]
                self.g_out[m] = (self.g_elec + 0.08 + 0.07 * extra_u)[m]
            self.onset[m] = on[m]

    # ---------------------------------------------------------------------------------------
    def factors(self, d: int, sf: np.ndarray) -> dict[str, np.ndarray]:
        """Multipliers for day ``d`` (0-based) for every firm: elec, sales, purch, orders,
        value (amount of sales), refund, cancel. ``sf`` is the Spring Festival factor per
        industry for the day."""
        n = self.n
        elec = np.ones(n)
        sales = np.ones(n)
        purch = np.ones(n)
        orders = np.ones(n)
        value = np.ones(n)
        refund = np.ones(n)
        cancel = np.ones(n)
        sc = self.scen
        t = d - self.onset
        L = np.maximum(self.length, 1)

        m = (sc == _SHUTDOWN) & (t >= 0)
        if m.any():
            first = t[m] == 0
            elec[m] = np.where(first, 0.45, self.level[m])
            sales[m] = np.where(first, 0.35, 0.03)
            orders[m] = 0.0
            purch[m] = 0.05 + 0.35 * np.exp(-t[m] / 15.0)
            refund[m] = 3.0
            cancel[m] = 5.0

        m = (sc == _DECLINE) & (t >= 0)
        if m.any():
            x = t[m] / L[m]
            act = np.where(x <= 1.0, 1.0 - 0.8 * x, 0.2 * np.maximum(0.25, 1.0 - (t[m] - L[m]) / 40.0))
            elec[m] = act
            sales[m] = act**1.4
            orders[m] = act**1.2
            purch[m] = act
            value[m] = 0.75 + 0.25 * act
            refund[m] = 1.0 + 6.0 * (1.0 - act)
            cancel[m] = 1.0 + 3.0 * (1.0 - act)

        m = (sc == _DIP) & (t >= 0) & (t <= L)
        if m.any():
            tm, lm, lv = t[m], L[m], self.level[m]
            act = np.where(tm == 0, (1.0 + lv) / 2.0, np.where(tm == lm, 0.95, lv))
            elec[m] = act
            sales[m] = act
            orders[m] = act
            purch[m] = act

        m = (sc == _TEMP) & (t >= 0) & (t <= L + 1)
        if m.any():
            tm, lm = t[m], L[m]
            down = tm < lm
            back = np.where(tm == lm, 0.7, 0.9)
            elec[m] = np.where(down, self.level[m], back)
            sales[m] = np.where(down, 0.04, back)
            orders[m] = np.where(down, 0.02, back)
            purch[m] = np.where(down, 0.15, back)

        m = (sc == _GROWTH) & (t >= 0)
        if m.any():
            months = t[m] / 30.0
            g = (1.0 + self.g_elec[m]) ** months
            elec[m] = g
            sales[m] = g
            orders[m] = g
            purch[m] = g
            value[m] = ((1.0 + self.g_out[m]) / (1.0 + self.g_elec[m])) ** months

        m = sc == _HEALTHY
        if m.any():
            g = (1.0 + self.healthy_drift[m]) ** (d / 30.0)
            elec[m] = g
            sales[m] = g
            purch[m] = g
            orders[m] = g

        # Spring Festival, for all firms.
        f = 1.0 - (1.0 - sf[self.ind]) * self.sf_depth
        f = np.clip(f, 0.05, 1.0)
        for a in (elec, sales, purch, orders):
            a *= f
        return {
            "elec": elec,
            "sales": sales,
            "purch": purch,
            "orders": orders,
            "value": value,
            "refund": refund,
            "cancel": cancel,
        }


# Line templates (bytes formatting is the fastest way to build the lines).
# Electricity lines: the per-meter constant parts are pre-built (_Simulator.elec_head/elec_mid).
_T_ELEC = b'%s%d%s%s","delivered_at":"%s%s","kwh":%.3f}\n'
_T_INV = (
    b'{"event_id":"%s-%s%d-%s","firm_id":"%s","type":"invoice","event_time":"%s%s",'
    b'"delivered_at":"%s%s","source":"etax-ah","schema_version":1,"invoice_id":"%s-%s%d",'
    b'"kind":"%s","counterparty_id":"%s","amount":%.2f,"tax":%.2f}\n'
)
_T_LOG = (
    b'{"event_id":"%s-O%d-%s","firm_id":"%s","type":"logistics","event_time":"%s%s",'
    b'"delivered_at":"%s%s","source":"logi-hub","schema_version":1,"order_id":"%s-O%d",'
    b'"status":"%s","value":%.2f,"weight_kg":%.1f}\n'
)
_T_PAY = (
    b'{"event_id":"%s-T%d","firm_id":"%s","type":"payment","event_time":"%s%s",'
    b'"delivered_at":"%s%s","source":"%s","schema_version":1,"txn_id":"%s-T%d",'
    b'"amount":%.2f,"direction":"%s","channel":"%s","refund":%s}\n'
)


class _Simulator:
    def __init__(self, firms: int, days: int, seed: int, start: date, shares: Mapping[str, float]):
        if firms < 1:
            raise ValueError("firms must be at least 1")
        if days < 1:
            raise ValueError("days must be at least 1")
        if seed < 0:
            raise ValueError("seed must be a non-negative integer")
        self.seed = seed
        self.pop = _Population(firms, days, seed, start, shares)
        self.days = days
        self.end = days * _DAY
        p = self.pop
        self.fid = np.array(p.ids, dtype=object)
        self.tod = _time_of_day_table()
        self.ds = np.array(
            [(start + timedelta(days=i)).isoformat().encode() + b"T" for i in range(days + 8)], dtype=object
        )
        self.dates = [start + timedelta(days=i) for i in range(days + 8)]
        epoch_hours = (start - date(1970, 1, 1)).days * 24
        self.epoch_hour0 = epoch_hours
        self.sf = np.array([[spring_festival_factor(i, dd) for i in range(4)] for dd in self.dates])
        self.elec_prof = (
            _ELEC_BASE[:, None, None]
            + (_ELEC_SHAPE[:, None, :] - _ELEC_BASE[:, None, None]) * _ELEC_WEEK[:, :, None]
        )  # (industry, weekday, hour)
        self.meter_ind = p.ind[p.meter_firm]
        # {"event_id":"<meter>-<epoch hour>","firm_id":..,"type":"electricity","meter_id":..,...
        self.elec_head = np.array([b'{"event_id":"%s-' % m for m in p.meter_ids.tolist()], dtype=object)
        self.elec_mid = np.array(
            [
                b'","firm_id":"%s","type":"electricity","meter_id":"%s","source":"sgcc-ah",'
                b'"schema_version":1,"interval_minutes":60,"event_time":"' % (p.ids[f], m)
                for f, m in zip(p.meter_firm.tolist(), p.meter_ids.tolist())
            ],
            dtype=object,
        )
        self.sales_cum = _cum_table(_SALES_HOURS)
        self.office_cum = _cum_table(_OFFICE_HOURS)
        self.ship_cum = _cum_table(_SHIP_HOURS)
        self.n_inv = np.zeros(p.n, dtype=np.int64)
        self.n_ord = np.zeros(p.n, dtype=np.int64)
        self.n_txn = np.zeros(p.n, dtype=np.int64)
        self.counts = {t: 0 for t in ("electricity", "invoice", "logistics", "payment")}
        self.duplicates = 0

    # --- helpers -------------------------------------------------------------------------
    def _dups(self, rng: np.random.Generator, deliv: np.ndarray, limit: np.ndarray, spread: float):
        """Pick ~0.5% of events to re-deliver later (``spread``: mean extra delay, s). Returns
        (index of every emitted row into the originals, delivered time of every row). ``limit``
        caps the re-delivery time (the stream's maximum lateness)."""
        n = len(deliv)
        pick = np.flatnonzero(rng.random(n) < _DUP_RATE)
        later = 1 + np.floor(rng.exponential(spread, len(pick))).astype(np.int64)
        dd = deliv[pick] + later
        lim = limit[pick]
        ok = lim > deliv[pick]
        pick, dd = pick[ok], np.minimum(dd[ok], lim[ok])
        self.duplicates += len(pick)
        return np.concatenate([np.arange(n), pick]), np.concatenate([deliv, dd])

    def _number(self, firm: np.ndarray, t: np.ndarray, counter: np.ndarray) -> np.ndarray:
        """Per-firm sequence numbers in event-time order (ties by generation order); advances
        ``counter`` (one entry per firm) in place."""
        order = np.lexsort((t, firm))
        counts = np.bincount(firm, minlength=self.pop.n)
        nums = np.empty(len(firm), dtype=np.int64)
        nums[order] = counter[firm[order]] + _ranks(counts) + 1
        counter += counts
        return nums

    def _ts(self, t: np.ndarray) -> tuple[list, list]:
        return self.ds[t // _DAY].tolist(), self.tod[t % _DAY].tolist()

    def _gap_mask(self, firm: np.ndarray, t: np.ndarray, all_only: bool) -> np.ndarray:
        """True where an event of ``firm`` at ``t`` falls in the firm's data gap."""
        p = self.pop
        m = (t >= p.gap_start[firm]) & (t < p.gap_end[firm])
        if all_only:
            m &= p.gap_all[firm]
        return m

    # --- streams ---------------------------------------------------------------------------
    def electricity(self, rng, d: int, fac) -> tuple[np.ndarray, list]:
        p = self.pop
        mf = p.meter_firm
        M = len(mf)
        dow = self.dates[d].weekday()
        prof = self.elec_prof[self.meter_ind, dow]  # (M, 24)
        day_noise = rng.lognormal(0.0, 0.06, p.n)
        kwh = (p.meter_kwh * (fac["elec"] * day_noise)[mf])[:, None] * prof
        kwh *= rng.lognormal(0.0, 0.1, (M, 24))
        hours = np.arange(24)
        ok = np.ones((M, 24), dtype=bool)
        # Meters going offline for a few hours.
        off = np.flatnonzero(rng.random(M) < _OFFLINE_RATE)
        if len(off):
            h0 = rng.integers(0, 24, len(off))
            ln = rng.integers(2, 13, len(off))
            ok[off] &= ~((hours >= h0[:, None]) & (hours < (h0 + ln)[:, None]))
        # Data gaps (data_outage firms).
        t_ev = d * _DAY + hours * 3600
        gap = (t_ev >= p.gap_start[mf][:, None]) & (t_ev < p.gap_end[mf][:, None])
        ok &= ~gap
        # Delivery: mostly minutes after the interval end; some meter-days deliver a block late.
        delay = 20 + np.minimum(np.floor(rng.exponential(240.0, (M, 24))), 2400).astype(np.int64)
        batch = np.flatnonzero(rng.random(M) < _ELEC_BATCH_RATE)
        if len(batch):
            h0 = rng.integers(0, 24, len(batch))
            ln = rng.integers(1, 3, len(batch))
            at = rng.integers(60, 3600, len(batch))  # after the end of the block's last interval
            inblock = (hours >= h0[:, None]) & (hours < (h0 + ln)[:, None])
            blk = (h0 + ln)[:, None] * 3600 + at[:, None] - (hours + 1) * 3600
            delay[batch] = np.where(inblock, blk, delay[batch])
        mi, hi = np.nonzero(ok)
        t_end = d * _DAY + (hi + 1) * 3600
        deliv = t_end + delay[mi, hi]
        rows, deliv = self._dups(rng, deliv, t_end + 7200, 600.0)
        mi, hi = mi[rows], hi[rows]
        vals = np.round(kwh[mi, hi], 3).tolist()
        heads = self.elec_head[mi].tolist()
        mids = self.elec_mid[mi].tolist()
        ids = (self.epoch_hour0 + d * 24 + hi).tolist()
        dsd = self.ds[d]
        times = np.array([b"%s%02d:00:00+08:00" % (dsd, h) for h in range(24)], dtype=object)[hi].tolist()
        dday, dsec = self._ts(deliv)
        lines = [
            _T_ELEC % (a, e, m, t, b, c, v)
            for a, e, m, t, b, c, v in zip(heads, ids, mids, times, dday, dsec, vals)
        ]
        self.counts["electricity"] += len(lines)
        return deliv, lines

    def invoices(self, rng, d: int, fac) -> tuple[np.ndarray, list]:
        p = self.pop
        n = p.n
        date_ = self.dates[d]
        dow = date_.weekday()
        office = _OFFICE_WEEK[p.ind, dow] * (_MONTH_END_SPIKE if _is_month_end(date_) else 1.0)
        noise = rng.lognormal(0.0, 0.12, n)
        lam_i = p.rates[:, 0] * office * fac["sales"] ** 1.0 * noise
        lam_r = p.rates[:, 1] * office * fac["purch"] * noise
        ci = rng.poisson(lam_i)
        cr = rng.poisson(lam_r)
        fi = np.repeat(np.arange(n), ci)
        fr = np.repeat(np.arange(n), cr)
        ti = d * _DAY + _sample_hours(rng, self.office_cum, 0, len(fi)) * 3600 + rng.integers(0, 3600, len(fi))
        tr = d * _DAY + _sample_hours(rng, self.office_cum, 0, len(fr)) * 3600 + rng.integers(0, 3600, len(fr))
        nums = self._number(np.concatenate([fi, fr]), np.concatenate([ti, tr]), self.n_inv)
        num_i, num_r = nums[: len(fi)], nums[len(fi) :]
        amt_i = np.round(p.amounts[fi, 0] * fac["value"][fi] * rng.lognormal(0.0, 0.45, len(fi)), 2)
        amt_r = np.round(p.amounts[fr, 1] * rng.lognormal(0.0, 0.7, len(fr)), 2)
        amt_i = np.maximum(amt_i, 1.0)
        amt_r = np.maximum(amt_r, 1.0)
        tax_i = np.round(amt_i * p.vat[fi], 2)
        rate_r = _SUPPLIER_RATES[
            _sample_hours(rng, _SUPPLIER_RATE_CUM, p.ind[fr], len(fr))
        ]
        tax_r = np.round(amt_r * rate_r, 2)
        cp_i = p.cp_ids[(p.cust_base[fi] + rng.integers(0, 1 << 30, len(fi)) % p.cust_n[fi]) % _COUNTERPARTIES]
        cp_r = p.cp_ids[(p.supp_base[fr] + rng.integers(0, 1 << 30, len(fr)) % p.supp_n[fr]) % _COUNTERPARTIES]
        # Cancellations of issued invoices, minutes to 3 days later.
        cancel = np.flatnonzero(rng.random(len(fi)) < 0.015 * fac["cancel"][fi])
        tc = ti[cancel] + 600 + rng.integers(0, 3 * _DAY, len(cancel))
        # Assemble: issued, received, cancelled.
        firm = np.concatenate([fi, fr, fi[cancel]])
        t = np.concatenate([ti, tr, tc])
        num = np.concatenate([num_i, num_r, num_i[cancel]])
        kind = np.concatenate(
            [np.zeros(len(fi), np.int8), np.ones(len(fr), np.int8), np.full(len(cancel), 2, np.int8)]
        )
        amt = np.concatenate([amt_i, amt_r, amt_i[cancel]])
        tax = np.concatenate([tax_i, tax_r, tax_i[cancel]])
        cp = np.concatenate([cp_i, cp_r, cp_i[cancel]])
        keep = (t < self.end) & ~self._gap_mask(firm, t, True)
        firm, t, num, kind, amt, tax, cp = (a[keep] for a in (firm, t, num, kind, amt, tax, cp))
        # Delivery T+1: a few hours into the next day; ~3% up to 36 h after the event day.
        ev_day = t // _DAY
        late = rng.random(len(t)) < 0.03
        deliv = (ev_day + 1) * _DAY + np.where(
            late, rng.integers(9 * 3600, 36 * 3600, len(t)), rng.integers(1800, 9 * 3600, len(t))
        )
        rows, deliv = self._dups(rng, deliv, (ev_day + 1) * _DAY + 36 * 3600, 3 * 3600.0)
        firm, t, num, kind, amt, tax, cp = (a[rows] for a in (firm, t, num, kind, amt, tax, cp))
        fids = self.fid[firm].tolist()
        eday, esec = self._ts(t)
        dday, dsec = self._ts(deliv)
        letter = np.array([b"V", b"R", b"V"], dtype=object)[kind].tolist()
        suffix = np.array([b"i", b"r", b"x"], dtype=object)[kind].tolist()
        kinds = np.array([b"issued", b"received", b"cancelled"], dtype=object)[kind].tolist()
        lines = [
            _T_INV % (f, l, k, s, f, ea, eb, da, db, f, l, k, kn, c, a, x)
            for f, l, k, s, ea, eb, da, db, kn, c, a, x in zip(
                fids, letter, num.tolist(), suffix, eday, esec, dday, dsec, kinds, cp.tolist(),
                amt.tolist(), tax.tolist(),
            )
        ]
        self.counts["invoice"] += len(lines)
        return deliv, lines

    def logistics(self, rng, d: int, fac) -> tuple[np.ndarray, list]:
        p = self.pop
        n = p.n
        dow = self.dates[d].weekday()
        lam = p.rates[:, 2] * _SALES_WEEK[p.ind, dow] * fac["orders"] * rng.lognormal(0.0, 0.15, n)
        c = rng.poisson(lam)
        fo = np.repeat(np.arange(n), c)
        k = len(fo)
        t0 = d * _DAY + _sample_hours(rng, self.ship_cum, 0, k) * 3600 + rng.integers(0, 3600, k)
        num = self._number(fo, t0, self.n_ord)
        t1 = t0 + rng.integers(1800, 10 * 3600, k)
        t2 = t1 + np.clip(rng.lognormal(math.log(30 * 3600), 0.5, k), 2 * 3600, 5 * _DAY).astype(np.int64)
        has_del = rng.random(k) > 0.01
        value = np.round(p.amounts[fo, 2] * fac["value"][fo] * rng.lognormal(0.0, 0.45, k), 2)
        weight = np.round(np.maximum(p.weight[fo] * rng.lognormal(0.0, 0.6, k), 0.1), 1)
        idx = np.concatenate([np.arange(k), np.arange(k), np.flatnonzero(has_del)])
        status = np.concatenate([np.zeros(k, np.int8), np.ones(k, np.int8), np.full(int(has_del.sum()), 2, np.int8)])
        t = np.concatenate([t0, t1, t2[has_del]])
        firm = fo[idx]
        keep = (t < self.end) & ~self._gap_mask(firm, t, True)
        idx, status, t, firm = idx[keep], status[keep], t[keep], firm[keep]
        deliv = t + 10 + np.minimum(np.floor(rng.exponential(180.0, len(t))), 2700).astype(np.int64)
        rows, deliv = self._dups(rng, deliv, t + 3600, 300.0)
        idx, status, t, firm = idx[rows], status[rows], t[rows], firm[rows]
        fids = self.fid[firm].tolist()
        eday, esec = self._ts(t)
        dday, dsec = self._ts(deliv)
        st = np.array([b"created", b"picked_up", b"delivered"], dtype=object)[status].tolist()
        sfx = np.array([b"c", b"p", b"d"], dtype=object)[status].tolist()
        nums = num[idx].tolist()
        lines = [
            _T_LOG % (f, o, s, f, ea, eb, da, db, f, o, sl, v, w)
            for f, o, s, ea, eb, da, db, sl, v, w in zip(
                fids, nums, sfx, eday, esec, dday, dsec, st, value[idx].tolist(), weight[idx].tolist()
            )
        ]
        self.counts["logistics"] += len(lines)
        return deliv, lines

    def payments(self, rng, d: int, fac) -> tuple[np.ndarray, list]:
        p = self.pop
        n = p.n
        dow = self.dates[d].weekday()
        noise = rng.lognormal(0.0, 0.12, n)
        lam_in = p.rates[:, 3] * _SALES_WEEK[p.ind, dow] * fac["sales"] * noise
        lam_out = p.rates[:, 4] * _OFFICE_WEEK[p.ind, dow] * fac["purch"] * noise
        lam_ref = p.rates[:, 3] * _SALES_WEEK[p.ind, dow] * p.refund_rate * fac["refund"] * np.maximum(fac["sales"], 0.3)
        cin, cout, cref = rng.poisson(lam_in), rng.poisson(lam_out), rng.poisson(lam_ref)
        fin, fout, fref = (np.repeat(np.arange(n), c) for c in (cin, cout, cref))
        ki, ko, kr = len(fin), len(fout), len(fref)
        firm = np.concatenate([fin, fout, fref])
        direction = np.concatenate([np.zeros(ki, np.int8), np.ones(ko + kr, np.int8)])
        refund = np.concatenate([np.zeros(ki + ko, np.int8), np.ones(kr, np.int8)])
        sale_rows = np.concatenate([fin, fref])
        ch_sale = _sample_hours(rng, _SALE_CHANNEL_CUM, p.ind[sale_rows], ki + kr)
        ch_out = np.where(rng.random(ko) < 0.85, 1, 2)
        channel = np.concatenate([ch_sale[:ki], ch_out, ch_sale[ki:]])
        hrs = np.concatenate(
            [
                _sample_hours(rng, self.sales_cum, p.ind[fin], ki),
                _sample_hours(rng, self.office_cum, 0, ko),
                _sample_hours(rng, self.sales_cum, p.ind[fref], kr),
            ]
        )
        t = d * _DAY + hrs * 3600 + rng.integers(0, 3600, ki + ko + kr)
        num = self._number(firm, t, self.n_txn)
        med = np.concatenate([p.amounts[fin, 3] * fac["value"][fin], p.amounts[fout, 4], p.amounts[fref, 3] * 0.8])
        sigma = np.where(channel == 1, 0.7, 0.6)
        amt = np.maximum(np.round(med * rng.lognormal(0.0, 1.0, len(med)) ** sigma, 2), 0.01)
        keep = ~self._gap_mask(firm, t, True)
        firm, num, direction, refund, channel, t, amt = (
            a[keep] for a in (firm, num, direction, refund, channel, t, amt)
        )
        deliv = t + 1 + np.minimum(np.floor(rng.exponential(4.0, len(t))), 120).astype(np.int64)
        rows, deliv = self._dups(rng, deliv, t + 300, 30.0)
        firm, num, direction, refund, channel, t, amt = (
            a[rows] for a in (firm, num, direction, refund, channel, t, amt)
        )
        fids = self.fid[firm].tolist()
        eday, esec = self._ts(t)
        dday, dsec = self._ts(deliv)
        src = np.array(_CHANNEL_SOURCE, dtype=object)[channel].tolist()
        chs = np.array(_CHANNELS, dtype=object)[channel].tolist()
        dirs = np.array([b"in", b"out"], dtype=object)[direction].tolist()
        refs = np.array([b"false", b"true"], dtype=object)[refund].tolist()
        lines = [
            _T_PAY % (f, k, f, ea, eb, da, db, s, f, k, a, dr, c, r)
            for f, k, ea, eb, da, db, s, a, dr, c, r in zip(
                fids, num.tolist(), eday, esec, dday, dsec, src, amt.tolist(), dirs, chs, refs
            )
        ]
        self.counts["payment"] += len(lines)
        return deliv, lines

    # --- driver ------------------------------------------------------------------------------
    def run(self, out_dir: Path, compresslevel: int = 1) -> int:
        """Generate and write events.jsonl.gz; returns the number of events written."""
        out_dir.mkdir(parents=True, exist_ok=True)
        buf_t = np.empty(0, dtype=np.int64)
        buf_l = np.empty(0, dtype=object)
        written = 0
        with open(out_dir / EVENTS_FILE, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        ) as gz:
            for d in range(self.days):
                rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, d)))
                fac = self.pop.factors(d, self.sf[d])
                parts = [
                    self.electricity(rng, d, fac),
                    self.invoices(rng, d, fac),
                    self.logistics(rng, d, fac),
                    self.payments(rng, d, fac),
                ]
                ts = [buf_t] + [pt for pt, _ in parts]
                n_new = sum(len(pl) for _, pl in parts)
                arr = np.empty(len(buf_l) + n_new, dtype=object)
                arr[: len(buf_l)] = buf_l
                pos = len(buf_l)
                for _, pl in parts:
                    arr[pos : pos + len(pl)] = pl
                    pos += len(pl)
                allt = np.concatenate(ts)
                order = np.argsort(allt, kind="stable")
                allt = allt[order]
                arr = arr[order]
                last = d == self.days - 1
                cut = len(allt) if last else int(np.searchsorted(allt, (d + 1) * _DAY, side="left"))
                if cut:
                    gz.write(b"".join(arr[:cut].tolist()))
                    written += cut
                buf_t, buf_l = allt[cut:], arr[cut:]
        return written

    def truth_lines(self) -> list[bytes]:
        p = self.pop
        start = p.start
        feeds_all = ["electricity", "invoice", "logistics", "payment"]

        def day(v: int) -> str | None:
            return None if v >= _FAR else (start + timedelta(days=int(v))).isoformat()

        meters: dict[int, list[str]] = {}
        for f, mid in zip(p.meter_firm.tolist(), p.meter_ids.tolist()):
            meters.setdefault(f, []).append(mid.decode())
        out = []
        for i in range(p.n):
            sc = int(p.scen[i])
            rec = {
                "firm_id": p.ids[i].decode(),
                "industry": INDUSTRIES[int(p.ind[i])],
                "size": SIZES[int(p.size[i])],
                "scenario": SCENARIOS[sc],
                "onset_date": day(int(p.onset[i])),
                "default_date": day(int(p.default[i])),
                "recovery_date": day(int(p.recovery[i])),
                "meters": meters[i],
                "outage_feeds": (feeds_all if p.gap_all[i] else ["electricity"]) if sc == _DATA else None,
            }
            out.append(orjson.dumps(rec))
        return out


def _pad_rows(m: np.ndarray) -> np.ndarray:
    """Pad a (rows, k) probability table to 24 columns for :func:`_sample_hours`."""
    out = np.zeros((m.shape[0], 24))
    out[:, : m.shape[1]] = m
    return out


_SUPPLIER_RATE_CUM = _cum_table(_pad_rows(_SUPPLIER_RATE_MIX))
_SALE_CHANNEL_CUM = _cum_table(_pad_rows(_SALE_CHANNELS))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def simulate(
    firms: int,
    days: int,
    seed: int,
    out_dir: str | Path,
    start: date = DEFAULT_START,
    shares: Mapping[str, float] | None = None,
    compresslevel: int = 1,
) -> SimulationSummary:
    """Simulate ``firms`` firms for ``days`` days from ``start`` and write
    ``out_dir/events.jsonl.gz`` and ``out_dir/truth.jsonl``.

    ``shares`` overrides scenario shares (see :func:`resolve_shares`). Same arguments give
    byte-identical files.
    """
    if isinstance(start, str):
        start = date.fromisoformat(start)
    resolved = resolve_shares(shares)
    out = Path(out_dir)
    t0, c0 = time.perf_counter(), time.process_time()
    sim = _Simulator(int(firms), int(days), int(seed), start, resolved)
    written = sim.run(out, compresslevel=compresslevel)
    truth = b"\n".join(sim.truth_lines()) + b"\n"
    (out / TRUTH_FILE).write_bytes(truth)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    p = sim.pop
    summary = SimulationSummary(
        firms=int(firms),
        days=int(days),
        seed=int(seed),
        start=start,
        out_dir=out,
        events=written,
        by_type=dict(sim.counts),
        duplicates=sim.duplicates,
        by_scenario=dict(p.scen_counts),
        by_industry={name: int((p.ind == i).sum()) for i, name in enumerate(INDUSTRIES)},
        bytes=(out / EVENTS_FILE).stat().st_size,
        truth_bytes=len(truth),
        seconds=seconds,
        cpu_seconds=cpu,
    )
    assert written == sum(summary.by_type.values())
    return summary


def main(args: argparse.Namespace) -> int:
    """``riskmon simulate``."""
    try:
        shares = parse_share_args(getattr(args, "share", None) or [])
        try:
            start = date.fromisoformat(args.start) if isinstance(args.start, str) else args.start
        except ValueError as exc:
            raise ValueError(f"--start {args.start!r} is not a date YYYY-MM-DD ({exc})") from None
        resolve_shares(shares)
        if args.firms < 1 or args.days < 1:
            raise ValueError("--firms and --days must be at least 1")
        if args.seed < 0:
            raise ValueError("--seed must be a non-negative integer")
    except ValueError as exc:
        print(f"riskmon simulate: {exc}", file=sys.stderr)
        return 2
    summary = simulate(args.firms, args.days, args.seed, args.out, start=start, shares=shares)
    print(summary.format())
    return 0


def bench_main(args: argparse.Namespace) -> int:
    """``riskmon bench simulate``: generate ``runs`` times into a temp dir; print events/s."""
    rates, cpu_rates = [], []
    print(f"bench simulate: {args.firms} firms x {args.days} days, seed {args.seed}, {args.runs} runs")
    for r in range(max(1, args.runs)):
        with tempfile.TemporaryDirectory(prefix="riskmon-bench-") as tmp:
            s = simulate(args.firms, args.days, args.seed, tmp)
        rates.append(s.events_per_second)
        cpu_rates.append(s.events_per_cpu_second)
        print(
            f"run {r + 1}: {s.events:,} events in {s.seconds:.2f} s = {s.events_per_second:,.0f} events/s"
            f" (CPU {s.cpu_seconds:.2f} s = {s.events_per_cpu_second:,.0f} events/CPU-s; {s.bytes / 1e6:.1f} MB gz)"
        )
    print(
        f"median: {statistics.median(rates):,.0f} events/s wall, "
        f"{statistics.median(cpu_rates):,.0f} events per CPU second"
    )
    return 0
