"""Evaluation metrics on a tiny hand-made truth + detections set, and the whole evaluation on a
tiny synthetic vitality file."""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta

import orjson
import pytest

from detectors.evaluate import FirmObs, add_arguments, evaluate, format_report, iter_firm_records, main, score_firms


def truth_row(fid, scenario, onset=None, default=None, recovery=None):
    return {"firm_id": fid, "industry": "manufacturing", "scenario": scenario, "onset_date": onset,
            "default_date": default, "recovery_date": recovery}


def warn(fid, day, name="m", level="warning"):
    return {"firm_id": fid, "day": day, "source": "model", "name": name, "level": level,
            "action": "FREEZE_ADJUSTMENTS", "score": 0.9, "new": True, "reasons": []}


TRUTH = {t["firm_id"]: t for t in [
    truth_row("S1", "shutdown", "2026-01-10", "2026-02-20"),
    truth_row("S2", "shutdown", "2026-01-20", "2026-03-30"),  # default after the window
    truth_row("D1", "gradual_decline", "2026-01-05", "2026-02-10"),
    truth_row("D2", "gradual_decline", "2026-01-01", "2026-02-01"),
    truth_row("H1", "healthy"),
    truth_row("H2", "healthy"),
    truth_row("G1", "growth", "2026-01-01"),
    truth_row("P1", "seasonal_dip", "2026-01-10", recovery="2026-01-20"),
    truth_row("P2", "seasonal_dip", "2026-01-10", recovery="2026-01-20"),
    truth_row("O1", "data_outage", "2026-01-10", recovery="2026-01-15"),
    truth_row("T1", "temporary_outage", "2026-01-10", recovery="2026-01-20"),
]}
FIRMS = {f: FirmObs(f, "manufacturing", "2025-11-01", "2026-02-28", "2025-11-15") for f in TRUTH}
DETS = {
    "S1": [warn("S1", "2026-01-11"), warn("S1", "2026-01-12", "stall")],
    "S2": [warn("S2", "2026-01-25", "stall")],
    "D1": [warn("D1", "2026-01-07", level="watch"), warn("D1", "2026-02-15")],  # watch only; warning after default
    "D2": [warn("D2", "2025-12-20"), warn("D2", "2026-01-12")],  # one before onset (early), one after
    "H1": [warn("H1", "2025-12-01"), warn("H1", "2025-12-03"), warn("H1", "2025-12-20", "stall"),
           warn("H1", "2025-11-10")],  # Nov 10 is in the warm-up: not counted
    "G1": [warn("G1", "2026-02-01")],
    "P1": [warn("P1", "2026-01-12")],
    "O1": [warn("O1", "2026-02-25", "stall")],  # after the outage (+7 d)
    "T1": [warn("T1", "2026-01-10")],
}


def test_recall_delay_lead_by_hand():
    m = score_firms(TRUTH, FIRMS, DETS)
    d = m["distressed"]
    # detected: S1 (delay 1), S2 (5), D2 (11); D1 missed: its only warning came after default
    assert (d["firms"], d["warned"], d["recall"]) == (4, 3, 0.75)
    assert d["delays"] == [5, 11, 1] or sorted(d["delays"]) == [1, 5, 11]
    assert d["delay_median"] == 5 and d["delay_p90"] == 11  # nearest rank: ceil(0.9 * 3) = 3rd
    assert d["delay_mean"] == round(17 / 3, 2)
    # lead = default - first warning: S1 41 - 1 = 40, S2 69 - 5 = 64, D2 31 - 11 = 20
    assert d["lead_median"] == 40 and d["lead_p10"] == 20
    # defaults inside the window: S1, D1, D2; warned S1 and D2
    assert (d["firms_default_observed"], d["warned_default_observed"]) == (3, 2)
    assert d["recall_default_observed"] == pytest.approx(2 / 3)
    assert d["warned_before_onset"] == 1
    assert m["shutdown"]["recall"] == 1.0 and m["gradual_decline"]["recall"] == 0.5
    t = m["temporary_outage"]
    assert (t["warned"], t["delay_median"]) == (1, 0)


def test_false_warning_rates_by_hand():
    m = score_firms(TRUTH, FIRMS, DETS)
    h = m["healthy"]
    # H1: Dec 1 + Dec 3 (one episode: gap 2 <= 7) and Dec 20 (a second); G1: one; H2: none
    assert h["episodes"] == 3 and h["firms_warned"] == 2 and h["firms"] == 3
    # observed from 2025-11-15 to 2026-02-28: 106 days each, 318 days = 10.6 firm-months
    assert h["firm_months"] == 10.6
    assert h["per_100_firm_months"] == pytest.approx(100 * 3 / 10.6)
    assert m["seasonal_dip"]["share_warned"] == 0.5 and m["seasonal_dip"]["share_warned_during_event"] == 0.5
    o = m["data_outage"]
    assert (o["firms_warned"], o["warned_during_event"]) == (1, 0)


def test_per_source_metrics():
    m = score_firms(TRUTH, FIRMS, DETS, source="stall")
    d = m["distressed"]
    assert (d["warned"], sorted(d["delays"])) == (2, [2, 5])  # S1 on Jan 12, S2 on Jan 25
    assert m["healthy"]["episodes"] == 1 and m["seasonal_dip"]["firms_warned"] == 0
    m = score_firms(TRUTH, FIRMS, DETS, source="m")
    assert m["distressed"]["warned"] == 2 and m["healthy"]["episodes"] == 2


# --- the whole evaluation on a tiny synthetic directory ------------------------------------------


@pytest.fixture
def sim_dir(tmp_path):
    """vitality.jsonl from the real vitality index (no events file: the cached file is used) and
    a truth.jsonl: a healthy and a growing factory, and one that shuts down."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location("_engine_tests", pathlib.Path(__file__).with_name("test_engine.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    onset = 70
    start = date(2025, 9, 1)
    recs = []
    recs += mod.firm_records(100, firm_id="A1")
    recs += mod.firm_records(100, firm_id="A2", level=lambda i: 1.0 + 0.001 * i)
    recs += mod.firm_records(100, firm_id="B1", elec_level=lambda i: 1.0 if i < onset else 0.06,
                             orders_level=lambda i: 1.0 if i < onset else 0.0)
    recs.sort(key=lambda r: (r["firm_id"], r["day"]))
    (tmp_path / "vitality.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    onset_day = (start + timedelta(days=onset)).isoformat()
    truth = [truth_row("A1", "healthy"), truth_row("A2", "growth", "2025-10-01"),
             truth_row("B1", "shutdown", onset_day, (start + timedelta(days=99)).isoformat())]
    (tmp_path / "truth.jsonl").write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in truth))
    return tmp_path


def test_iter_firm_records_groups_and_sorts(sim_dir):
    firms = list(iter_firm_records(sim_dir / "vitality.jsonl"))
    assert [f for f, _ in firms] == ["A1", "A2", "B1"] and all(len(r) == 100 for _, r in firms)
    # an ungrouped file gives the same result
    lines = (sim_dir / "vitality.jsonl").read_bytes().splitlines()
    (sim_dir / "shuffled.jsonl").write_bytes(b"\n".join(lines[::2] + lines[1::2]) + b"\n")
    again = list(iter_firm_records(sim_dir / "shuffled.jsonl"))
    assert sorted(f for f, _ in again) == ["A1", "A2", "B1"]
    assert {f: [r["day"] for r in rs] for f, rs in again} == {f: [r["day"] for r in rs] for f, rs in firms}


def test_evaluate_end_to_end(sim_dir, capsys):
    rep = evaluate(sim_dir, detections_out=sim_dir / "detections.jsonl")
    assert rep["vitality"]["vitality"] == "reused" and rep["firms"] == 3 and rep["firm_days"] == 300
    d = rep["overall"]["distressed"]
    assert (d["firms"], d["warned"], d["delay_median"]) == (1, 1, 0)  # power at 6% from the onset day
    assert rep["overall"]["healthy"]["episodes"] == 0
    assert rep["targets"]["met"]["false_warnings_per_100_firm_months"] is True
    assert rep["per_source"]["power_logistics_stall"]["distressed"]["delay_median"] == 2  # 3rd day
    assert rep["state_bytes"]["max"] < 5000
    assert (sim_dir / "detections.jsonl").exists()
    text = format_report(rep)
    assert "Targets" in text and "firm_profile" in text
    json.loads(orjson.dumps(rep, option=orjson.OPT_NON_STR_KEYS))
    # the CLI
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert main(p.parse_args([str(sim_dir), "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["distressed"]["recall"] == 1.0
    assert main(p.parse_args([str(sim_dir / "nowhere")])) == 2
