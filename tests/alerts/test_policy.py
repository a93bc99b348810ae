"""The alert policy on hand-made day sequences: lifecycle, credit line, risk share, ids."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from alerts.policy import AlertPolicy, PolicyConfig, RiskShareConfig, stable_id

START = date(2026, 3, 2)  # a Monday


def record(i: int, score: float = 95.0, band: str = "healthy", flags: tuple[str, ...] = (),
           pay_in: float = 1000.0, pay_expected: float = 1000.0, holiday: bool = False) -> dict[str, Any]:
    return {
        "firm_id": "F1", "day": (START + timedelta(days=i)).isoformat(), "industry": "manufacturing",
        "score": score, "band": band, "flags": list(flags), "holiday": holiday,
        "components": {"elec": {"ratio": score / 100.0}},
        "baselines": {"pay_in_amt": pay_expected},
        "aggregate": {"pay_in_amt": pay_in, "refund_amt": 0.0},
    }


def detection(i: int, name: str = "power_logistics_stall", level: str = "warning",
              action: str = "FREEZE_ADJUSTMENTS", source: str = "rule", score: float = 0.9) -> dict[str, Any]:
    return {
        "firm_id": "F1", "day": (START + timedelta(days=i)).isoformat(), "source": source, "name": name,
        "level": level, "action": action, "score": score, "new": True,
        "reasons": [{"code": f"{name}_reason", "observed": {"x": i}, "reference": {"t": 0.3},
                     "contribution": 1.0, "text": "why"}],
    }


def run(policy: AlertPolicy, days: list[tuple[dict, list[dict]]], through_json: bool = False
        ) -> tuple[dict[str, list[dict]], Any]:
    state = None
    out: dict[str, list[dict]] = {"alerts": [], "credit": [], "riskshare": [], "watchlist": []}
    for rec, dets in days:
        o, state = policy.on_day(state, rec, dets)
        if through_json:
            state = orjson.loads(orjson.dumps(state))
        for k in out:
            out[k] += o[k]
    return out, state


def shutdown_days(n_before: int = 10, n_after: int = 20) -> list[tuple[dict, list[dict]]]:
    days = [(record(i), []) for i in range(n_before)]
    for i in range(n_before, n_before + n_after):
        dets = [detection(i, "elec_shift", "watch", "RM_FOLLOW_UP", "model", 0.6)]
        if i >= n_before + 1:
            dets.append(detection(i, "firm_profile", "warning", "FREEZE_ADJUSTMENTS", "model", 0.95))
        if i >= n_before + 3:
            dets.append(detection(i))
        days.append((record(i, score=10.0, band="distress", pay_in=0.0), dets))
    return days


def test_shutdown_is_one_alert_escalated_once_and_one_freeze() -> None:
    out, state = run(AlertPolicy(), shutdown_days())
    alerts = out["alerts"]
    assert [(a["event"], a["level"], a["name"]) for a in alerts] == [
        ("raised", "watch", "elec_shift"), ("escalated", "warning", "firm_profile"),
        ("corroborated", "warning", "power_logistics_stall")]
    assert len({a["alert_id"] for a in alerts}) == 1
    assert alerts[1]["action"] == "FREEZE_ADJUSTMENTS" and alerts[1]["authority"] == "automatic"
    assert [c["action"] for c in out["credit"]] == ["FREEZE_ADJUSTMENTS"]
    assert out["credit"][0]["alert_id"] == alerts[0]["alert_id"]
    assert [w["event"] for w in out["watchlist"]] == ["entered"]
    assert state["c"]["s"] == "frozen"


def test_reasons_are_the_triggering_detections_own_inputs_at_most_five() -> None:
    days = shutdown_days()
    out, _ = run(AlertPolicy(), days)
    esc = out["alerts"][1]
    trigger = next(d for d in days[11][1] if d["name"] == "firm_profile")
    assert esc["reasons"][0] == {**trigger["reasons"][0], "detector": "firm_profile"}
    assert 1 <= len(esc["reasons"]) <= 5
    rule_msg = out["alerts"][2]
    rule_det = next(d for d in days[13][1] if d["name"] == "power_logistics_stall")
    assert rule_msg["reasons"][0] == {**rule_det["reasons"][0], "detector": "power_logistics_stall"}
    many = [{**detection(0), "reasons": [{"code": f"c{j}", "observed": j, "reference": 0, "contribution": 0.1,
                                          "text": ""} for j in range(9)]}]
    o, _ = AlertPolicy().on_day(None, record(0, score=10, band="distress"), many)
    assert [r["code"] for r in o["alerts"][0]["reasons"]] == ["c0", "c1", "c2", "c3", "c4"]


def test_recovery_resolves_the_alert_and_releases_the_line_after_clean_healthy_days() -> None:
    days = shutdown_days(10, 5)
    days += [(record(i), []) for i in range(15, 30)]
    out, state = run(AlertPolicy(PolicyConfig(resolve_after_clean_days=7, release_after_clean_days=7)), days)
    resolved = [a for a in out["alerts"] if a["event"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["day"] == record(21)["day"]
    assert [(c["action"], c["day"]) for c in out["credit"]] == [
        ("FREEZE_ADJUSTMENTS", record(11)["day"]), ("RELEASE", record(21)["day"])]
    assert [w["event"] for w in out["watchlist"]] == ["entered", "exited"]
    assert state["w"]["hist"] == [[record(10)["day"], record(21)["day"]]]
    assert state["a"] == {} and state["c"]["s"] == "normal"


def test_silence_after_a_collapse_neither_resolves_nor_releases() -> None:
    days = shutdown_days(10, 5)
    days += [(record(i, score=0.0, band="distress", flags=("silent",)), []) for i in range(15, 60)]
    out, state = run(AlertPolicy(), days)
    assert [a["event"] for a in out["alerts"]] == ["raised", "escalated", "corroborated"]
    assert [c["action"] for c in out["credit"]] == ["FREEZE_ADJUSTMENTS"]
    assert state["c"]["s"] == "frozen"


def test_no_release_while_the_band_is_below_healthy() -> None:
    days = shutdown_days(10, 5)
    days += [(record(i, score=50.0, band="watch"), []) for i in range(15, 40)]
    out, _ = run(AlertPolicy(), days)
    assert [c["action"] for c in out["credit"]] == ["FREEZE_ADJUSTMENTS"]


def test_an_open_breaker_sends_a_model_to_human_review_and_cannot_freeze() -> None:
    days = [(record(i), []) for i in range(10)]
    days += [(record(i, score=10, band="distress"),
              [detection(i, "firm_profile", "warning", "FREEZE_ADJUSTMENTS", "model")]) for i in range(10, 20)]
    out, _ = run(AlertPolicy(PolicyConfig(breaker_open=frozenset({"firm_profile"}))), days)
    assert [(a["event"], a["action"], a["authority"]) for a in out["alerts"]] == [
        ("raised", "HUMAN_REVIEW", "human_review")]
    assert out["credit"] == []
    # the same days with the breaker closed freeze
    out, _ = run(AlertPolicy(), days)
    assert [c["action"] for c in out["credit"]] == ["FREEZE_ADJUSTMENTS"]


def test_a_governance_downgraded_warning_goes_to_human_review() -> None:
    from detectors.drift import downgrade

    days = [(record(i), []) for i in range(10)]
    days += [(record(i, score=10, band="distress"),
              downgrade([detection(i, "firm_profile", "warning", "FREEZE_ADJUSTMENTS", "model")], ["firm_profile"]))
             for i in range(10, 20)]
    out, _ = run(AlertPolicy(), days)
    assert [(a["event"], a["level"], a["action"], a["authority"]) for a in out["alerts"]] == [
        ("raised", "watch", "HUMAN_REVIEW", "human_review")]
    assert "breaker_open" in [r["code"] for r in out["alerts"][0]["reasons"]]
    assert out["credit"] == []


def test_a_rule_still_freezes_when_a_model_breaker_is_open() -> None:
    days = [(record(0, score=10, band="distress"),
             [detection(0, "firm_profile", "warning", "FREEZE_ADJUSTMENTS", "model", 0.99), detection(0)])]
    out, _ = run(AlertPolicy(PolicyConfig(breaker_open=frozenset({"firm_profile"}))), days)
    assert out["alerts"][0]["name"] == "power_logistics_stall"
    assert [c["action"] for c in out["credit"]] == ["FREEZE_ADJUSTMENTS"]


def test_growth_makes_the_line_eligible_once_and_a_freeze_overrides_it() -> None:
    grow = [(record(i), [detection(i, "electricity_growth", "info", "INCREASE_ELIGIBLE")]) for i in range(5)]
    out, state = run(AlertPolicy(), grow)
    assert [(c["action"], c["before"], c["after"]) for c in out["credit"]] == [
        ("INCREASE_ELIGIBLE", "normal", "increase_eligible")]
    assert out["watchlist"] == []  # info alerts do not put a firm on the watch list
    o, state = AlertPolicy().on_day(state, record(5, score=10, band="distress"), [detection(5)])
    assert [(c["action"], c["before"]) for c in o["credit"]] == [("FREEZE_ADJUSTMENTS", "increase_eligible")]
    suppressed = [(record(i), [detection(i, "electricity_growth", "info", "NONE")]) for i in range(3)]
    out, _ = run(AlertPolicy(), suppressed)
    assert out["credit"] == []


def test_watch_level_freeze_action_only_asks_for_follow_up() -> None:
    o, _ = AlertPolicy().on_day(None, record(0), [detection(0, level="watch")])
    assert o["alerts"][0]["action"] == "RM_FOLLOW_UP" and o["credit"] == []


def test_ids_are_deterministic_and_redelivered_days_are_ignored() -> None:
    days = shutdown_days()
    a, state_a = run(AlertPolicy(), days)
    b, state_b = run(AlertPolicy(), days, through_json=True)
    assert a == b and state_a == orjson.loads(orjson.dumps(state_b))
    again, same = AlertPolicy().on_day(state_a, days[-1][0], days[-1][1])
    assert all(v == [] for v in again.values()) and same == state_a
    ids = [m["message_id"] for m in a["alerts"]] + [c["action_id"] for c in a["credit"]]
    assert len(ids) == len(set(ids))
    assert a["credit"][0]["action_id"] == stable_id("F1", "FREEZE_ADJUSTMENTS", record(11)["day"])


def weeks_of(scores: list[float], gaps: list[float]) -> list[tuple[dict, list[dict]]]:
    """One week per score: 7 days at that score with payment inflow (1 - gap) of expectation."""
    days = []
    for w, (s, g) in enumerate(zip(scores, gaps)):
        for d in range(7):
            i = 7 * w + d
            days.append((record(i, score=s, band="healthy" if s > 70 else "distress", pay_in=1000.0 * (1 - g)), []))
    return days


def test_risk_share_moves_on_two_weekly_declines_with_a_widening_gap_and_reverts() -> None:
    out, state = run(AlertPolicy(), weeks_of([95, 95, 80, 60, 60, 92], [0.0, 0.0, 0.2, 0.5, 0.5, 0.0]))
    changes = out["riskshare"]
    assert [c["reason"]["code"] for c in changes] == ["health_decline_gap_widening", "recovered"]
    first = changes[0]
    assert first["before"] == {"fiscal": 40.0, "bank": 30.0, "guarantor": 30.0}
    assert first["after"] == {"fiscal": 55.0, "bank": 22.5, "guarantor": 22.5}
    assert first["day"] == record(27)["day"]  # Sunday of the 4th week
    assert first["reason"]["observed"]["health_index"] == [95.0, 80.0, 60.0]
    assert changes[1]["after"] == {"fiscal": 40.0, "bank": 30.0, "guarantor": 30.0}
    for c in changes:
        assert sum(c["after"].values()) == pytest.approx(100.0)
    assert state["s"]["adj"] is False


@pytest.mark.parametrize(
    "scores, gaps",
    [
        ([95, 94, 93, 92], [0.0, 0.1, 0.2, 0.3]),  # declines too small
        ([95, 80, 60, 60], [0.5, 0.5, 0.5, 0.5]),  # gap did not widen
        ([95, 60, 80, 50], [0.0, 0.3, 0.1, 0.6]),  # not two consecutive declines
    ],
)
def test_risk_share_stays_without_the_full_condition(scores: list[float], gaps: list[float]) -> None:
    out, _ = run(AlertPolicy(), weeks_of(scores, gaps))
    assert out["riskshare"] == []


def test_festival_weeks_are_skipped_not_counted_as_declines() -> None:
    days = weeks_of([95, 95, 95], [0.0, 0.0, 0.0])
    days += [(record(21 + d, score=40, band="watch", pay_in=0.0, holiday=True), []) for d in range(14)]
    days += [(rec | {"day": record(35 + i)["day"]}, []) for i, (rec, _) in enumerate(weeks_of([95], [0.0]))]
    out, _ = run(AlertPolicy(), days)
    assert out["riskshare"] == []


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="sum"):
        RiskShareConfig(adjusted_split=(5000, 3000, 3000))
    with pytest.raises(ValueError, match="unknown alert policy settings"):
        PolicyConfig.from_dict({"resolve_days": 3})
    cfg = PolicyConfig.from_dict({"riskshare": {"adjusted_split": [4500, 2750, 2750]}, "breaker_open": ["m"]})
    assert cfg.riskshare.adjusted_split == (4500, 2750, 2750) and cfg.breaker_open == frozenset({"m"})


def test_unknown_state_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="state version"):
        AlertPolicy().on_day({"v": 99, "d": 0}, record(0), [])
