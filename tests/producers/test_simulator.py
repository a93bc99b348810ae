"""Tests of the firm-population simulator (producers.simulator).

Three small simulations are shared through module-scoped fixtures: a default-share population for
the file-level properties, a 91-day population with boosted scenario shares for the scenario
statistics, and a healthy population whose window covers the 2026 Spring Festival.
"""

from __future__ import annotations

import argparse
import gzip
import os
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from producers import simulator as sim
from producers.simulator import (
    DEFAULT_SHARES,
    INDUSTRIES,
    SCENARIOS,
    SPRING_FESTIVAL,
    resolve_shares,
    simulate,
)
from riskmon.events import EVENT_TYPES, parse_event

TRUTH_FIELDS = [
    "firm_id",
    "industry",
    "size",
    "scenario",
    "onset_date",
    "default_date",
    "recovery_date",
    "meters",
    "outage_feeds",
]
SCENARIO_SHARES = {
    "shutdown": 0.11,
    "gradual_decline": 0.11,
    "seasonal_dip": 0.12,
    "temporary_outage": 0.11,
    "data_outage": 0.11,
    "growth": 0.14,
}
#: Seed of the statistical fixtures; override (RISKMON_SIM_TEST_SEED=n) to check that the
#: scenario tests hold for other populations, not just the default one.
SEED = int(os.environ.get("RISKMON_SIM_TEST_SEED", "5"))


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return fh.read().splitlines()


def _truth(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Default shares, 40 firms x 21 days, seed 11."""
    out = tmp_path_factory.mktemp("small")
    summary = simulate(40, 21, 11, out)
    return summary, _lines(out / "events.jsonl.gz"), _truth(out / "truth.jsonl")


class Agg:
    """Per firm-day aggregates of one simulation, duplicates removed."""

    def __init__(self, out: Path, firms: int, days: int, start: date):
        self.truth = _truth(out / "truth.jsonl")
        self.days, self.start = days, start
        day_index = {(start + timedelta(days=i)).isoformat(): i for i in range(days)}
        firm_index = {t["firm_id"]: i for i, t in enumerate(self.truth)}
        seen: set[str] = set()
        cells: dict[str, list[int]] = defaultdict(list)  # aggregate name -> flat firm-day cells
        values: dict[str, list[float]] = defaultdict(list)
        loads = orjson.loads
        for raw in _lines(out / "events.jsonl.gz"):
            ev = loads(raw)
            eid = ev["event_id"]
            if eid in seen:
                continue
            seen.add(eid)
            cell = firm_index[ev["firm_id"]] * days + day_index[ev["event_time"][:10]]
            t = ev["type"]
            if t == "electricity":
                cells["kwh"].append(cell)
                values["kwh"].append(ev["kwh"])
            elif t == "invoice":
                cells["invoices_n"].append(cell)
                if ev["kind"] == "issued":
                    cells["issued"].append(cell)
                    values["issued"].append(ev["amount"])
            elif t == "payment":
                cells["payments_n"].append(cell)
                if ev["direction"] == "in":
                    cells["pay_in_n"].append(cell)
                if ev["refund"]:
                    cells["refund_n"].append(cell)
            elif ev["status"] == "created":
                cells["orders"].append(cell)
                values["orders"].append(ev["value"])

        def grid(name: str, weights: list[float] | None = None) -> np.ndarray:
            flat = np.bincount(np.array(cells[name], dtype=np.int64), weights, minlength=firms * days)
            return flat.reshape(firms, days)

        self.kwh = grid("kwh", values["kwh"])
        self.readings = grid("kwh").astype(int)
        self.issued_n = grid("issued")
        self.issued_amt = grid("issued", values["issued"])
        self.invoices_n = grid("invoices_n")
        self.pay_in_n = grid("pay_in_n")
        self.payments_n = grid("payments_n")
        self.refund_n = grid("refund_n")
        self.orders_n = grid("orders")
        self.order_value = grid("orders", values["orders"])

    def day(self, s: str | None) -> int | None:
        return None if s is None else (date.fromisoformat(s) - self.start).days

    def firms(self, scenario: str) -> list[tuple[int, dict]]:
        return [(i, t) for i, t in enumerate(self.truth) if t["scenario"] == scenario]


@pytest.fixture(scope="module")
def scen(tmp_path_factory):
    """Boosted scenario shares, 120 firms x 91 days (2025-09-01 .. 2025-11-30)."""
    out = tmp_path_factory.mktemp("scen")
    start = date(2025, 9, 1)
    summary = simulate(120, 91, SEED, out, start=start, shares=SCENARIO_SHARES)
    return summary, Agg(out, 120, 91, start)


@pytest.fixture(scope="module")
def festival(tmp_path_factory):
    """Healthy firms only, 40 firms x 61 days around the 2026 Spring Festival."""
    out = tmp_path_factory.mktemp("festival")
    start = date(2026, 1, 5)
    shares = {s: 0.0 for s in SCENARIOS if s != "healthy"}
    simulate(40, 61, SEED + 1, out, start=start, shares=shares)
    return Agg(out, 40, 61, start)


# ------------------------------------------------------------------------------------------------
# Files: determinism, contract, order, delivery
# ------------------------------------------------------------------------------------------------


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(25, 12, 42, a)
    simulate(25, 12, 42, b)
    simulate(25, 12, 43, c)
    for name in ("events.jsonl.gz", "truth.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "events.jsonl.gz").read_bytes() != (c / "events.jsonl.gz").read_bytes()
    assert _lines(a / "events.jsonl.gz") != _lines(c / "events.jsonl.gz")
    assert (a / "truth.jsonl").read_bytes() != (c / "truth.jsonl").read_bytes()


def test_gzip_header_has_no_mtime_and_no_name(tmp_path):
    simulate(5, 2, 1, tmp_path)
    head = (tmp_path / "events.jsonl.gz").read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] & 0x08 == 0, "FNAME flag set"
    assert head[4:8] == b"\0\0\0\0", "mtime not zero"


def test_every_line_validates_and_file_is_in_arrival_order(small):
    summary, lines, _ = small
    assert len(lines) == summary.events > 10_000
    prev = None
    types = defaultdict(int)
    for raw in lines:
        ev = parse_event(raw)
        types[ev.type] += 1
        assert ev.delivered_at is not None
        assert ev.event_time.utcoffset() == timedelta(hours=8)
        assert ev.delivered_at.utcoffset() == timedelta(hours=8)
        if prev is not None:
            assert ev.delivered_at >= prev
        prev = ev.delivered_at
    assert set(types) == set(EVENT_TYPES)
    assert dict(types) == summary.by_type


def test_lines_are_short_and_at_second_precision(small):
    _, lines, _ = small
    ev = orjson.loads(lines[len(lines) // 2])
    assert len(ev["event_time"]) == len("2025-11-01T00:00:00+08:00")
    assert len(ev["delivered_at"]) == len("2025-11-01T00:00:00+08:00")
    assert max(len(l) for l in lines) < 400


def test_volume_and_mix(small):
    summary, _, truth = small
    per_firm_day = summary.events / (summary.firms * summary.days)
    assert 35 <= per_firm_day <= 70, per_firm_day
    # hourly electricity dominates
    assert summary.by_type["electricity"] > 0.55 * summary.events
    assert {t["industry"] for t in truth} <= set(INDUSTRIES)


def test_delivery_delays_per_stream(small):
    summary, lines, _ = small
    window_start = _dt(f"{summary.start.isoformat()}T00:00:00+08:00")
    window_end = window_start + timedelta(days=summary.days)
    for raw in lines:
        ev = orjson.loads(raw)
        et, da = _dt(ev["event_time"]), _dt(ev["delivered_at"])
        assert window_start <= et < window_end, raw
        t = ev["type"]
        if t == "electricity":
            assert ev["interval_minutes"] == 60 and et.minute == 0 and et.second == 0
            end = et + timedelta(minutes=60)
            assert end <= da <= end + timedelta(hours=2), raw
        elif t == "invoice":
            assert da.date() > et.date(), raw  # T+1
            next_midnight = datetime.combine(et.date() + timedelta(days=1), datetime.min.time(), da.tzinfo)
            assert da <= next_midnight + timedelta(hours=36), raw
        elif t == "logistics":
            assert et <= da <= et + timedelta(hours=1), raw
        else:
            assert et <= da <= et + timedelta(minutes=5), raw


def test_electricity_mostly_minutes_late(small):
    _, lines, _ = small
    delays = []
    for raw in lines:
        ev = orjson.loads(raw)
        if ev["type"] == "electricity":
            end = _dt(ev["event_time"]) + timedelta(hours=1)
            delays.append((_dt(ev["delivered_at"]) - end).total_seconds())
    delays = np.array(delays)
    assert np.median(delays) < 600
    assert (delays > 1800).mean() > 0.001  # some batches arrive late ...
    assert delays.max() > 3600  # ... up to two hours after the interval end


def test_duplicates_share_id_and_content_and_arrive_later(small):
    _, lines, _ = small
    first: dict[str, dict] = {}
    dups = 0
    for raw in lines:
        ev = orjson.loads(raw)
        prev = first.get(ev["event_id"])
        if prev is None:
            first[ev["event_id"]] = ev
            continue
        dups += 1
        assert {k: v for k, v in ev.items() if k != "delivered_at"} == {
            k: v for k, v in prev.items() if k != "delivered_at"
        }
        assert _dt(ev["delivered_at"]) > _dt(prev["delivered_at"])
    assert 0.002 < dups / len(lines) < 0.01


def test_invoice_tax_and_logistics_order_lifecycle(small):
    _, lines, truth = small
    rates = {0.13, 0.09, 0.06, 0.03}
    created: dict[str, datetime] = {}
    scans = []
    issued: dict[str, dict] = {}
    cancelled = []
    for raw in lines:
        ev = orjson.loads(raw)
        if ev["type"] == "invoice":
            assert ev["amount"] > 0
            rate = ev["tax"] / ev["amount"]
            assert min(abs(rate - r) for r in rates) < 0.0051, ev
            if ev["kind"] == "issued":
                issued[ev["invoice_id"]] = ev
            elif ev["kind"] == "cancelled":
                cancelled.append(ev)
        elif ev["type"] == "logistics":
            if ev["status"] == "created":
                created[ev["order_id"]] = _dt(ev["event_time"])
            else:
                scans.append(ev)
    assert scans
    for ev in scans:
        assert ev["order_id"] in created
        assert _dt(ev["event_time"]) > created[ev["order_id"]]
    assert cancelled
    for ev in cancelled:
        orig = issued[ev["invoice_id"]]
        assert (ev["amount"], ev["tax"]) == (orig["amount"], orig["tax"])
        assert _dt(ev["event_time"]) > _dt(orig["event_time"])


def test_ids_are_deterministic_and_firm_scoped(small):
    _, lines, truth = small
    meters = {m for t in truth for m in t["meters"]}
    for raw in lines[:5000]:
        ev = orjson.loads(raw)
        assert ev["event_id"].startswith(ev["firm_id"] + "-")
        if ev["type"] == "electricity":
            assert ev["meter_id"] in meters and ev["meter_id"].startswith(ev["firm_id"] + "-M")


# ------------------------------------------------------------------------------------------------
# Truth and shares
# ------------------------------------------------------------------------------------------------


def test_truth_schema_and_sorting(small):
    summary, _, truth = small
    assert len(truth) == summary.firms
    assert [t["firm_id"] for t in truth] == sorted(t["firm_id"] for t in truth)
    assert truth[0]["firm_id"] == "F000001"
    for t in truth:
        assert list(t) == TRUTH_FIELDS
        assert t["scenario"] in SCENARIOS and t["industry"] in INDUSTRIES
        assert t["size"] in ("micro", "small", "medium")
        assert 1 <= len(t["meters"]) <= 3
        assert t["meters"][0] == t["firm_id"] + "-M1"
        for k in ("onset_date", "default_date", "recovery_date"):
            if t[k] is not None:
                date.fromisoformat(t[k])
        if t["scenario"] == "healthy":
            assert t["onset_date"] is None and t["default_date"] is None
        else:
            assert t["onset_date"] is not None
        if t["scenario"] in ("shutdown", "gradual_decline"):
            assert t["default_date"] > t["onset_date"]
        if t["scenario"] in ("seasonal_dip", "temporary_outage", "data_outage"):
            assert t["recovery_date"] > t["onset_date"] and t["default_date"] is None


def test_truth_shares_match_requested(scen):
    summary, agg = scen
    n = summary.firms
    want = resolve_shares(SCENARIO_SHARES)
    got = defaultdict(int)
    for t in agg.truth:
        got[t["scenario"]] += 1
    assert sum(got.values()) == n
    for name in SCENARIOS:
        assert abs(got[name] - want[name] * n) < 1.0, (name, got[name], want[name] * n)
        assert summary.by_scenario[name] == got[name]


def test_onsets_leave_history(scen):
    _, agg = scen
    for t in agg.truth:
        if t["onset_date"] is not None:
            assert agg.day(t["onset_date"]) >= 40


def test_share_validation():
    assert resolve_shares(None) == DEFAULT_SHARES
    assert abs(sum(DEFAULT_SHARES.values()) - 1) < 1e-12
    s = resolve_shares({"shutdown": 0.2})
    assert s["shutdown"] == 0.2 and abs(s["healthy"] - 0.48) < 1e-9
    with pytest.raises(ValueError, match="unknown scenario"):
        resolve_shares({"bankrupt": 0.1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        resolve_shares({"shutdown": -0.1})
    with pytest.raises(ValueError, match="at most 1"):
        resolve_shares({"shutdown": 0.9, "growth": 0.5})
    with pytest.raises(ValueError, match="sum to 1"):
        resolve_shares({"healthy": 0.5})


def test_cli_main_reports_bad_share_and_prints_summary(tmp_path, capsys):
    from riskmon.cli import main as cli_main

    args = argparse.Namespace(firms=4, days=2, seed=1, start="2025-11-01", out=str(tmp_path), share=["bogus=0.1"])
    assert sim.main(args) == 2
    assert "unknown scenario" in capsys.readouterr().err
    args.share = ["shutdown=oops"]
    assert sim.main(args) == 2
    assert "not a number" in capsys.readouterr().err
    argv = ["simulate", "--firms", "4", "--days", "2", "--seed", "1", "--out", str(tmp_path)]
    assert cli_main(argv + ["--share", "shutdown=0.5", "--share", "growth=0.2"]) == 0
    out = capsys.readouterr().out
    assert "electricity" in out and "events/s" in out and "shutdown" in out
    truth = _truth(tmp_path / "truth.jsonl")
    assert [t["scenario"] for t in truth].count("shutdown") == 2
    assert [t["scenario"] for t in truth].count("growth") == 1
    assert (tmp_path / "events.jsonl.gz").stat().st_size > 0


# ------------------------------------------------------------------------------------------------
# Behaviour: cycles and calendar
# ------------------------------------------------------------------------------------------------


def _baseline(series: np.ndarray, onset: int) -> float:
    """Mean over the 28 days (four whole weeks) before onset."""
    return float(series[onset - 28 : onset].mean())


def test_weekly_cycles_by_industry(scen):
    _, agg = scen
    healthy = [i for i, t in agg.firms("healthy")]
    weekdays = np.array([(agg.start + timedelta(days=d)).weekday() for d in range(agg.days)])
    by_ind = defaultdict(list)
    for i in healthy:
        by_ind[agg.truth[i]["industry"]].append(i)
    manuf = agg.kwh[by_ind["manufacturing"]].sum(axis=0)
    assert manuf[weekdays == 6].mean() < 0.8 * manuf[weekdays < 5].mean()
    rest_sales = agg.pay_in_n[by_ind["restaurant_retail"]].sum(axis=0)
    assert rest_sales[weekdays >= 5].mean() > 1.1 * rest_sales[weekdays < 4].mean()


def test_month_end_invoicing_spike(scen):
    _, agg = scen
    healthy = [i for i, t in agg.firms("healthy")]
    per_day = agg.invoices_n[healthy].sum(axis=0)
    days = [agg.start + timedelta(days=d) for d in range(agg.days)]
    spike = np.array([sim._is_month_end(d) for d in days])
    weekday = np.array([d.weekday() < 5 for d in days])
    assert spike.sum() >= 4
    assert per_day[spike].mean() > 1.5 * per_day[weekday & ~spike].mean()


def test_restaurant_electricity_peaks_at_meal_times(small):
    _, lines, truth = small
    rest = {t["firm_id"] for t in truth if t["industry"] == "restaurant_retail"}
    by_hour = np.zeros(24)
    for raw in lines:
        ev = orjson.loads(raw)
        if ev["type"] == "electricity" and ev["firm_id"] in rest:
            by_hour[int(ev["event_time"][11:13])] += ev["kwh"]
    assert rest
    assert by_hour[12] > 2 * by_hour[3] and by_hour[19] > 2 * by_hour[3]


def test_spring_festival_dip_for_population(festival):
    agg = festival
    cny = (SPRING_FESTIVAL[2026] - agg.start).days
    kwh = agg.kwh.sum(axis=0)
    sales = agg.pay_in_n.sum(axis=0)
    base = slice(cny - 35, cny - 14)  # three whole weeks, before the run-up
    low = slice(cny - 1, cny + 6)  # one whole week
    after = slice(cny + 11, cny + 18)  # one whole week, after the dip
    assert kwh[low].mean() < 0.6 * kwh[base].mean()
    assert sales[low].mean() < 0.7 * sales[base].mean()
    assert kwh[after].mean() > 0.85 * kwh[base].mean()
    assert sim.spring_festival_factor("logistics_trade", SPRING_FESTIVAL[2025]) < 0.5
    assert sim.spring_festival_factor("restaurant_retail", date(2025, 6, 1)) == 1.0


def test_no_festival_effect_outside_the_window(scen):
    _, agg = scen
    healthy = [i for i, t in agg.firms("healthy")]
    weekly = agg.kwh[healthy].sum(axis=0)[: 13 * 7].reshape(13, 7).sum(axis=1)
    assert weekly.min() > 0.8 * weekly.max()


# ------------------------------------------------------------------------------------------------
# Behaviour: scenarios
# ------------------------------------------------------------------------------------------------


def test_healthy_firms_have_no_full_day_gaps(scen):
    _, agg = scen
    for i, t in agg.firms("healthy"):
        assert (agg.readings[i] > 0).all(), t["firm_id"]


def test_shutdown_power_orders_and_sales_collapse(scen):
    _, agg = scen
    firms = agg.firms("shutdown")
    assert len(firms) >= 10
    checked = 0
    for i, t in firms:
        on = agg.day(t["onset_date"])
        assert agg.day(t["default_date"]) - on >= 30
        if on + 2 >= agg.days:
            continue
        checked += 1
        base = _baseline(agg.kwh[i], on)
        after = agg.kwh[i, on + 1 :]
        assert (after < 0.4 * base).all(), (t["firm_id"], after / base)
        assert (after < 0.15 * base * 1.6).all()  # standby power (weekday peaks included)
        assert agg.orders_n[i, on:].sum() == 0
        assert agg.pay_in_n[i, on + 1 :].mean() < 0.25 * _baseline(agg.pay_in_n[i], on) + 0.1
    assert checked >= 8


def test_gradual_decline_slides(scen):
    _, agg = scen
    checked = 0
    refunds_before = refunds_after = sales_before = sales_after = 0.0
    issued_before = issued_end = issued_expected = 0.0
    for i, t in agg.firms("gradual_decline"):
        on = agg.day(t["onset_date"])
        end = min(agg.day(t["default_date"]), agg.days)
        length = agg.day(t["default_date"]) - on
        assert 30 <= length <= 60
        if end - on < 14:
            continue
        checked += 1
        # activity slides linearly from 100% at onset to 20% at default
        activity = 1 - 0.8 * (np.arange(end - 14, end) - on) / length
        base = _baseline(agg.kwh[i], on)
        last_week = agg.kwh[i, end - 7 : end].mean()
        assert last_week < (activity[-7:].mean() + 0.12) * base, (t["firm_id"], last_week / base)
        assert last_week > (activity[-7:].mean() - 0.25) * base, (t["firm_id"], last_week / base)
        before = agg.issued_n[i, on - 14 : on].sum()
        issued_before += before
        issued_end += agg.issued_n[i, end - 14 : end].sum()
        issued_expected += before * activity.mean()  # if invoices only followed activity
        refunds_before += agg.refund_n[i, :on].sum()
        sales_before += agg.pay_in_n[i, :on].sum()
        refunds_after += agg.refund_n[i, on:].sum()
        sales_after += agg.pay_in_n[i, on:].sum()
    assert checked >= 8
    assert issued_end < 0.9 * issued_before  # invoices thin out ...
    assert issued_end < issued_expected  # ... faster than activity
    assert refunds_after / sales_after > 1.5 * refunds_before / sales_before  # refunds rise


def test_seasonal_dip_recovers(scen):
    _, agg = scen
    checked = 0
    for i, t in agg.firms("seasonal_dip"):
        on, rec = agg.day(t["onset_date"]), agg.day(t["recovery_date"])
        assert 7 <= rec - on <= 21 and t["default_date"] is None
        if rec + 8 > agg.days:
            continue
        checked += 1
        base = _baseline(agg.kwh[i], on)
        dip = agg.kwh[i, on + 1 : on + 6].mean() / agg.kwh[i, on - 27 : on - 22].mean()  # same weekdays
        assert 0.3 < dip < 0.7, (t["firm_id"], dip)
        assert agg.kwh[i, rec + 1 : rec + 8].mean() > 0.8 * base, t["firm_id"]
    assert checked >= 8


def test_temporary_outage_collapses_then_recovers(scen):
    _, agg = scen
    checked = 0
    for i, t in agg.firms("temporary_outage"):
        on, rec = agg.day(t["onset_date"]), agg.day(t["recovery_date"])
        assert 4 <= rec - on <= 14 and t["default_date"] is None
        if rec + 9 > agg.days:
            continue
        checked += 1
        base = _baseline(agg.kwh[i], on)
        assert (agg.kwh[i, on:rec] < 0.3 * base).all(), t["firm_id"]
        assert agg.kwh[i, rec + 2 : rec + 9].mean() > 0.8 * base, t["firm_id"]
    assert checked >= 8


def test_data_outage_is_a_gap_in_data_only(scen):
    _, agg = scen
    firms = agg.firms("data_outage")
    assert len(firms) >= 10
    assert {tuple(t["outage_feeds"]) for _, t in firms} == {("electricity",), tuple(EVENT_TYPES)}
    gap_business = base_business = 0.0
    for i, t in firms:
        on, rec = agg.day(t["onset_date"]), agg.day(t["recovery_date"])
        assert 2 <= rec - on <= 10
        full_gap = slice(on + 1, min(rec, agg.days))  # whole days inside the gap
        assert (agg.readings[i, full_gap] == 0).all(), t["firm_id"]
        assert (agg.readings[i, :on] > 0).all()
        if rec + 1 < agg.days:
            assert agg.readings[i, rec + 1] > 0  # the meters report again
            # no distress: power after the gap is normal
            assert agg.kwh[i, rec + 1 : rec + 8].mean() > 0.8 * _baseline(agg.kwh[i], on)
        business = agg.invoices_n[i] + agg.payments_n[i]
        if t["outage_feeds"] == ["electricity"]:
            gap_business += business[full_gap].sum()
            base_business += _baseline(business, on) * len(range(*full_gap.indices(agg.days)))
        else:
            assert business[full_gap].sum() == 0
    assert base_business > 0
    assert gap_business > 0.6 * base_business


def _energy_per_output_change(agg: Agg, firms: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per firm: electricity ratio and kWh-per-unit-output ratio, last window over first window.

    The windows are four whole weeks each (same weekday mix) and each holds one month-end
    invoicing spike: 2025-09-03..09-30 and 2025-11-03..11-30. Output = issued invoice amount plus
    declared value of new logistics orders."""
    first, last = slice(2, 30), slice(63, 91)
    assert agg.start + timedelta(days=2) == date(2025, 9, 3)
    assert agg.start + timedelta(days=90) == date(2025, 11, 30)
    kwh_ratio, intensity_ratio = [], []
    for i in firms:
        output = agg.issued_amt[i] + agg.order_value[i]
        k1, k2 = agg.kwh[i, first].sum(), agg.kwh[i, last].sum()
        o1, o2 = output[first].sum(), output[last].sum()
        kwh_ratio.append(k2 / k1)
        intensity_ratio.append((k2 / o2) / (k1 / o1))
    return np.array(kwh_ratio), np.array(intensity_ratio)


def test_growth_power_rises_and_energy_per_output_falls(scen):
    _, agg = scen
    firms = agg.firms("growth")
    assert len(firms) >= 12
    for _, t in firms:
        assert 40 <= agg.day(t["onset_date"]) <= agg.days - 45
    kwh, intensity = _energy_per_output_change(agg, [i for i, _ in firms])
    h_kwh, _ = _energy_per_output_change(agg, [i for i, _ in agg.firms("healthy")])
    # electricity rises for (nearly) every growth firm, more than for healthy firms
    assert (kwh > 1.0).mean() >= 0.9, kwh
    assert np.median(kwh) > 1.025 and np.median(kwh) > np.median(h_kwh) + 0.02
    # energy per unit of output falls (amounts are noisy per firm: judge the typical firm)
    assert (intensity < 1.0).mean() >= 0.55, intensity
    assert np.median(intensity) < 0.97
