"""Reference rules on hand-made vitality-record sequences."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from detectors.rules import (
    Day,
    ElectricityGrowth,
    FeedSilence,
    OrderDrop,
    PowerLogisticsStall,
    TaxDecline,
    default_rules,
    rules_from_config,
    rules_to_config,
)

START = date(2026, 3, 2)  # a Monday


def rec(i: int, *, industry="manufacturing", elec=1.0, expected_kwh=1000.0, orders=3.0, expected_orders=3.0,
        pay=1000.0, pay_expected=1000.0, pay_n=20.0, inv_n=1.0, inv_amt=1000.0, inv_tax=130.0,
        order_value=500.0, flags=(), holiday=False, band="healthy", start=START) -> dict:
    """A minimal vitality record for day ``start + i`` (only the fields the rules read)."""
    missing = "elec_missing" in flags
    return {
        "firm_id": "F1",
        "day": (start + timedelta(days=i)).isoformat(),
        "industry": industry,
        "band": band,
        "history_days": 30 + i,
        "holiday": holiday,
        "flags": list(flags),
        "components": {
            "elec": {"value": 0.0 if missing else elec * expected_kwh, "baseline": expected_kwh,
                     "ratio": None if missing else elec, "points": 0.0, "missing": missing},
            "logistics": {"value": orders, "baseline": expected_orders, "ratio": None, "points": 0.0},
            "payments": {"value": pay, "baseline": pay_expected, "ratio": None, "points": 0.0},
        },
        "baselines": {"kwh": expected_kwh},
        "aggregate": {"log_created_n": orders, "log_created_value": order_value, "pay_in_amt": pay,
                      "pay_in_n": pay_n, "inv_issued_n": inv_n, "inv_issued_amt": inv_amt,
                      "inv_tax_amt": inv_tax, "kwh": 0.0 if missing else elec * expected_kwh},
    }


def run(rule, records):
    st, hits = None, []
    for r in records:
        hit, st = rule.step(st, Day.from_record(r))
        json.loads(json.dumps(st))  # state stays JSON
        hits.append(hit)
    return hits, st


# --- power-and-logistics stall ---------------------------------------------------------------


def test_stall_fires_on_the_third_low_day_not_the_second():
    rule = PowerLogisticsStall()
    recs = [rec(i) for i in range(5)] + [rec(5 + i, elec=e, orders=0.0) for i, e in enumerate([0.21, 0.18, 0.25])]
    hits, _ = run(rule, recs)
    assert hits[:7] == [None] * 7  # day 2 of the stall: nothing yet
    h = hits[7]
    assert h["name"] == "power_logistics_stall" and h["level"] == "warning" and h["action"] == "FREEZE_ADJUSTMENTS"
    assert h["new"] is True
    # the reasons cite exactly the values the rule compared
    elec, orders = h["reasons"]
    assert elec["code"] == "elec_below_expected"
    assert elec["observed"]["ratio"] == [0.21, 0.18, 0.25]
    assert elec["observed"]["kwh"] == [210.0, 180.0, 250.0]
    assert elec["observed"]["days"] == [recs[k]["day"] for k in (5, 6, 7)]
    assert elec["reference"]["threshold"] == rule.elec_below
    assert elec["reference"]["expected_kwh"] == [1000.0, 1000.0, 1000.0]
    assert "21%, 18%, 25%" in elec["text"]
    assert orders["code"] == "no_new_logistics_orders" and orders["observed"]["orders"] == [0.0, 0.0, 0.0]
    assert orders["reference"]["expected_orders"] == 9.0
    assert abs(sum(r["contribution"] for r in h["reasons"]) - 1.0) < 1e-9


def test_stall_continues_then_ends():
    rule = PowerLogisticsStall()
    recs = [rec(i) for i in range(3)] + [rec(3 + i, elec=0.1, orders=0.0) for i in range(5)] + [rec(8, elec=0.1, orders=2.0)]
    hits, st = run(rule, recs)
    assert [h is not None for h in hits] == [False] * 5 + [True, True, True, False]
    assert [h["new"] for h in hits[5:8]] == [True, False, False]
    assert st["on"] is False


def test_no_stall_while_orders_keep_coming_or_power_is_only_dipping():
    rule = PowerLogisticsStall()
    hits, _ = run(rule, [rec(i, elec=0.1, orders=1.0) for i in range(6)])
    assert all(h is None for h in hits)
    hits, _ = run(rule, [rec(i, elec=0.45, orders=0.0) for i in range(6)])  # a seasonal dip (>= 30%)
    assert all(h is None for h in hits)
    # the brief's 60% threshold is a parameter
    hits, _ = run(PowerLogisticsStall(elec_below=0.6), [rec(i, elec=0.45, orders=0.0) for i in range(6)])
    assert hits[2] is not None and hits[1] is None


def test_data_outage_is_not_a_stall():
    rule = PowerLogisticsStall()
    # meters silent for 6 days (vitality may score them as 0 kWh) and no orders reported
    recs = [rec(i) for i in range(3)] + [rec(3 + i, elec=0.0, orders=0.0, flags=("elec_missing",)) for i in range(6)]
    recs += [rec(9 + i, flags=("elec_missing", "silent"), orders=0.0) for i in range(3)]
    hits, _ = run(rule, recs)
    assert all(h is None for h in hits)


def test_a_missing_day_holds_the_streak_and_a_long_gap_clears_it():
    rule = PowerLogisticsStall()
    low = dict(elec=0.1, orders=0.0)
    recs = [rec(0, **low), rec(1, **low), rec(2, flags=("elec_missing",), orders=0.0), rec(3, **low)]
    hits, _ = run(rule, recs)
    assert hits[3] is not None and hits[3]["reasons"][0]["observed"]["ratio"] == [0.1, 0.1, 0.1]
    gap = [rec(2 + i, flags=("elec_missing",), orders=0.0) for i in range(3)]  # > max_gap_days
    hits, _ = run(rule, [rec(0, **low), rec(1, **low)] + gap + [rec(5, **low)])
    assert all(h is None for h in hits)


def test_spring_festival_dip_is_not_a_stall_but_a_collapse_inside_it_is():
    rule = PowerLogisticsStall()
    # festival: expectations are already lowered; the firm runs at 80% of the lowered expectation
    hits, _ = run(rule, [rec(i, elec=0.8, orders=0.0, holiday=True) for i in range(8)])
    assert all(h is None for h in hits)
    hits, _ = run(rule, [rec(i, elec=0.05, orders=0.0, holiday=True) for i in range(3)])
    assert hits[2] is not None and hits[2]["reasons"][0]["reference"]["threshold"] == rule.holiday_elec_below


def test_warming_up_days_and_other_industries_are_ignored():
    rule = PowerLogisticsStall()
    hits, _ = run(rule, [rec(i, elec=0.1, orders=0.0, band="warming_up") for i in range(5)])
    assert all(h is None for h in hits)
    assert not rule.applies("restaurant_retail") and rule.applies("manufacturing")


# --- tax decline -----------------------------------------------------------------------------


def months_of_days(first: date, n_days: int):
    return [first + timedelta(days=i) for i in range(n_days)]


def test_monthly_tax_decline_fires_after_six_down_months():
    rule = TaxDecline()
    first = date(2025, 1, 1)
    days = months_of_days(first, 245)  # Jan .. Sep 2 2025
    recs = []
    for d in days:
        tax = 100.0 if d.month == 1 else 50.0  # down 50% from February
        recs.append(rec((d - first).days, start=first, inv_tax=tax, inv_n=1.0))
    hits, st = run(rule, recs)
    fired = [(r["day"], h) for r, h in zip(recs, hits) if h is not None]
    # Feb..Jul are the 6 down months; July closes on August 1st
    assert fired[0][0] == "2025-08-01" and fired[0][1]["new"] is True
    assert all(h["new"] is False for _, h in fired[1:])
    reason = fired[0][1]["reasons"][0]
    assert reason["observed"]["buckets"] == ["2025-02", "2025-03", "2025-04", "2025-05", "2025-06", "2025-07"]
    assert reason["observed"]["per_day"] == [50.0] * 6
    assert reason["reference"]["reference_per_day"] == [100.0] * 6
    # shrunk ratio (x + k u) / (e + k u): k = 2 invoices, u = 100 per invoice; February has 28 days
    assert reason["observed"]["ratio"][0] == round((50 * 28 + 200) / (100 * 28 + 200), 4)
    assert fired[0][1]["level"] == "warning"
    # until July has closed, only five down months are complete: nothing
    assert recs[211]["day"] == "2025-07-31"
    assert all(h is None for h in run(TaxDecline(), recs[:212])[0])


def test_weekly_tax_decline_variant_and_noise_resistance():
    weekly = next(r for r in default_rules() if r.id == "tax_decline_weekly")
    assert weekly.level == "watch" and weekly.period == "week" and weekly.buckets == 4
    recs = [rec(i, inv_tax=130.0, inv_n=4.0) for i in range(28)]  # 4 normal weeks from a Monday
    recs += [rec(28 + i, inv_tax=40.0, inv_n=1.2) for i in range(35)]  # then down ~70%
    hits, _ = run(weekly, recs)
    first = next(i for i, h in enumerate(hits) if h is not None)
    assert first == 28 + 28  # the 4th down week closes on the following Monday
    assert hits[first]["action"] == "RM_FOLLOW_UP"
    # a firm that only wobbles (alternating +-25%) never fires
    recs = [rec(i, inv_tax=130.0 * (1.25 if (i // 7) % 2 else 0.75), inv_n=4.0) for i in range(120)]
    hits, _ = run(weekly, recs)
    assert all(h is None for h in hits)


def test_tax_buckets_skip_festival_and_silent_days():
    rule = TaxDecline(period="week", buckets=2, min_days=4, warmup_buckets=1)
    recs = [rec(i, inv_tax=100.0) for i in range(14)]
    # a festival week with almost no invoicing, then normal weeks: not a decline
    recs += [rec(14 + i, inv_tax=5.0, holiday=True) for i in range(7)]
    recs += [rec(21 + i, inv_tax=100.0) for i in range(21)]
    hits, _ = run(rule, recs)
    assert all(h is None for h in hits)


# --- order drop ------------------------------------------------------------------------------


def test_restaurant_weekly_order_drop_is_a_soft_alert():
    rule = OrderDrop()
    recs = [rec(i, industry="restaurant_retail", pay=1000.0, pay_n=20.0) for i in range(10)]
    recs += [rec(10 + i, industry="restaurant_retail", pay=550.0, pay_n=11.0) for i in range(7)]
    hits, _ = run(rule, recs)
    assert all(h is None for h in hits[:16])
    h = hits[16]
    assert h["level"] == "watch" and h["action"] == "RM_FOLLOW_UP" and h["new"]
    r = h["reasons"][0]
    assert r["observed"]["inflow"] == 3850.0 and r["observed"]["ratio"] == 0.55
    assert r["reference"]["expected_inflow"] == 7000.0 and r["reference"]["threshold"] == 0.6
    # down only 35%: nothing
    recs = [rec(i, industry="restaurant_retail") for i in range(10)]
    recs += [rec(10 + i, industry="restaurant_retail", pay=650.0, pay_n=13.0) for i in range(10)]
    assert all(h is None for h in run(rule, recs)[0])


def test_order_drop_needs_enough_expected_payments():
    rule = OrderDrop()
    # a shop with one payment a day: 7 expected payments < 10
    recs = [rec(i, industry="restaurant_retail", pay=1000.0, pay_n=1.0) for i in range(10)]
    recs += [rec(10 + i, industry="restaurant_retail", pay=0.0, pay_n=0.0) for i in range(7)]
    assert all(h is None for h in run(rule, recs)[0])


# --- electricity growth ----------------------------------------------------------------------


def growth_records(kwh_growth: float, out_growth: float, months: int = 5):
    first = date(2025, 3, 1)
    recs = []
    d = first
    while (d.year - first.year) * 12 + d.month - first.month < months:
        m = (d.year - first.year) * 12 + d.month - first.month
        kwh = 1000.0 * (1 + kwh_growth) ** m
        out = 10000.0 * (1 + out_growth) ** m
        recs.append(rec((d - first).days, start=first, elec=kwh / 1000.0, expected_kwh=1000.0, inv_amt=out / 2,
                        order_value=out / 2))
        d += timedelta(days=1)
    return recs


def test_electricity_growth_with_falling_intensity_is_increase_eligible():
    rule = ElectricityGrowth()
    recs = growth_records(0.05, 0.15)
    hits, _ = run(rule, recs)
    fired = [(r["day"], h) for r, h in zip(recs, hits) if h is not None]
    assert fired[0][0] == "2025-07-01"  # March..June closed: 3 month-over-month rises
    h = fired[0][1]
    assert h["action"] == "INCREASE_ELIGIBLE" and h["level"] == "info" and h["new"]
    rise, intensity = h["reasons"]
    assert rise["observed"]["kwh_per_day"] == [1000.0, 1050.0, 1102.5, 1157.625]
    assert rise["observed"]["rise"] == [0.05, 0.05, 0.05]
    assert intensity["observed"]["kwh_per_1000_cny"] == [100.0, round(1050 / 11.5, 4), round(1102.5 / 13.225, 4),
                                                          round(1157.625 / 15.20875, 4)]


def test_no_growth_credit_when_output_does_not_keep_up_or_power_is_flat():
    assert all(h is None for h in run(ElectricityGrowth(), growth_records(0.05, 0.02))[0])
    assert all(h is None for h in run(ElectricityGrowth(), growth_records(0.0, 0.15))[0])


def test_electricity_growth_keeps_a_festival_month_with_ten_usable_days():
    """The Spring Festival month keeps few non-holiday days (10 in February 2026): it still
    counts as a month (min_days 10) instead of breaking every series once a year."""
    first = date(2025, 11, 1)
    recs = []
    for i in range(182):  # Nov 2025 .. Apr 2026
        d = first + timedelta(days=i)
        m = (d.year - first.year) * 12 + d.month - first.month
        hol = date(2026, 2, 10) <= d <= date(2026, 2, 27)
        kwh, out = 1000.0 * 1.05 ** m, 10000.0 * 1.15 ** m
        recs.append(rec(i, start=first, elec=kwh / 1000.0 * (0.3 if hol else 1.0), expected_kwh=1000.0,
                        inv_amt=out / 2, order_value=out / 2, holiday=hol))
    hits, _ = run(ElectricityGrowth(), recs)
    fired = [r["day"] for r, h in zip(recs, hits) if h is not None and h["new"]]
    assert fired and fired[0] == "2026-03-01"  # Nov, Dec, Jan, Feb (10 days) closed: 3 rises
    hits, _ = run(ElectricityGrowth(min_days=15), recs)
    assert not any(h is not None and h["new"] and r["day"] < "2026-04-01" for r, h in zip(recs, hits))


# --- feed silence ----------------------------------------------------------------------------


def test_feed_silence_is_info_for_data_check():
    recs = [rec(i) for i in range(2)] + [rec(2 + i, flags=("elec_missing", "silent")) for i in range(6)]
    hits, _ = run(FeedSilence(), recs)
    assert [h is not None for h in hits] == [False] * 6 + [True, True]
    assert hits[6]["action"] == "DATA_CHECK" and hits[6]["level"] == "info" and hits[6]["new"]


# --- configuration ---------------------------------------------------------------------------


def test_rules_config_round_trip_and_validation():
    rules = default_rules()
    again = rules_from_config(json.loads(json.dumps(rules_to_config(rules))))
    assert again == rules
    custom = rules_from_config({"power_logistics_stall": {"elec_below": 0.6, "days": 4},
                                "order_drop": {"enabled": False},
                                "stall_retail": {"kind": "power_logistics_stall", "industries": ["restaurant_retail"]}})
    stall = next(r for r in custom if r.id == "power_logistics_stall")
    assert (stall.elec_below, stall.days, stall.industries) == (0.6, 4, ("manufacturing",))
    assert not next(r for r in custom if r.id == "order_drop").applies("restaurant_retail")
    assert next(r for r in custom if r.id == "stall_retail").applies("restaurant_retail")
    with pytest.raises(ValueError, match="unknown parameters"):
        rules_from_config({"power_logistics_stall": {"elec_bellow": 0.5}})
    with pytest.raises(ValueError, match="unknown level"):
        PowerLogisticsStall(level="severe")
    with pytest.raises(ValueError, match="give its 'kind'"):
        rules_from_config({"my_rule": {"days": 2}})


def test_docstring_examples():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("detectors.rules"), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
