"""riskmon.report on a small synthetic vitality file."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

pytest.importorskip("matplotlib")

from riskmon.report import load_vitality, pick_firms, write_report  # noqa: E402

START = date(2026, 1, 1)
DAYS = 40


def _band(score: float, day: int) -> str:
    if day < 7:
        return "warming_up"
    return "healthy" if score >= 70 else ("watch" if score >= 45 else "distress")


def _score(kind: str, day: int) -> float:
    if kind == "healthy":
        return 95.0 + (day % 3)
    if kind == "collapse":  # healthy, then falls from day 20
        return 95.0 if day < 20 else max(10.0, 95.0 - 12 * (day - 19))
    if kind == "late_collapse":
        return 90.0 if day < 30 else max(15.0, 90.0 - 20 * (day - 29))
    if kind == "dip":  # watch band only
        return 90.0 if not 15 <= day < 22 else 55.0
    raise ValueError(kind)


FIRMS = {
    "F1": ("manufacturing", "healthy"),
    "F2": ("manufacturing", "collapse"),
    "F3": ("restaurant_retail", "late_collapse"),
    "F4": ("agriculture", "dip"),
    "F5": ("logistics_trade", "healthy"),
}


@pytest.fixture
def vitality_file(tmp_path: Path) -> Path:
    path = tmp_path / "vitality.jsonl"
    with path.open("wb") as fh:
        for day in range(DAYS):
            for firm_id, (industry, kind) in FIRMS.items():
                score = _score(kind, day)
                rec = {
                    "firm_id": firm_id, "day": (START + timedelta(days=day)).isoformat(),
                    "industry": industry, "score": score, "band": _band(score, day),
                    "components": {}, "flags": [],
                }
                fh.write(orjson.dumps(rec) + b"\n")
        # A re-emitted update (after a restart) must not duplicate a day.
        fh.write(orjson.dumps({"firm_id": "F1", "day": START.isoformat(), "industry": "manufacturing",
                               "score": 100.0, "band": "warming_up"}) + b"\n")
    return path


def _alerts() -> list[dict]:
    return [
        {"firm_id": "F2", "day": "2026-01-23", "rule": "power_logistics_stall", "level": "warning"},
        {"firm_id": "F2", "day": "2026-01-25", "name": "vitality_distress", "level": "critical"},
        {"firm_id": "F4", "day": "2026-01-17", "rule": "order_drop", "level": "watch"},
        {"firm_id": "F3", "time": "2026-02-02T08:00:00+08:00", "rule": "power_logistics_stall", "level": "warning"},
    ]


def test_load_vitality_dedups_and_sorts(vitality_file: Path) -> None:
    firms = load_vitality(vitality_file)
    assert set(firms) == set(FIRMS)
    assert len(firms["F1"].days) == DAYS
    assert firms["F1"].days == sorted(firms["F1"].days)
    assert firms["F1"].scores[0] == 100.0  # the last update of a (firm, day) wins


def test_pick_firms_distressed_then_healthy(vitality_file: Path) -> None:
    firms = load_vitality(vitality_file)
    picked = pick_firms(firms)
    # Distressed firms earliest first, then one healthy firm; the firm that only dipped to
    # watch is neither.
    assert picked[:2] == ["F2", "F3"]
    assert picked[2] in {"F1", "F5"}
    assert "F4" not in picked
    # With alerts, alerted distressed firms come first.
    assert pick_firms(firms, [{"firm_id": "F3", "day": "2026-02-01"}])[0] == "F3"


def test_report_without_alerts(vitality_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = write_report(vitality_file, out)
    names = sorted(p.name for p in result["plots"])
    assert names == ["band_timeline.png", "vitality_firms.png"]
    for p in result["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    summary = result["summary"]
    assert summary["firms"] == 5 and summary["firm_days"] == 5 * DAYS
    assert summary["firms_ever_in_distress"] == 2
    assert summary["alerts"] == 0
    page = result["html"].read_text()
    # Images are referenced by relative paths that exist next to the page.
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(srcs) == names
    assert all((out / s).exists() for s in srcs)
    assert "firms ever in distress" in page and "F2" in page


def test_report_with_alerts_and_chosen_firms(vitality_file: Path, tmp_path: Path) -> None:
    result = write_report(vitality_file, tmp_path / "r", alerts=_alerts(), firms=["F2", "F4"])
    assert result["firms"] == ["F2", "F4"]
    assert sorted(p.name for p in result["plots"]) == ["alert_timeline.png", "band_timeline.png", "vitality_firms.png"]
    s = result["summary"]
    assert s["alerts"] == 4
    assert s["alerts_by_level"] == {"warning": 2, "critical": 1, "watch": 1}
    assert s["alerts_by_rule"]["power_logistics_stall"] == 2
    page = result["html"].read_text()
    assert "alert_timeline.png" in page and "critical 1" in page


def test_unknown_firm_is_an_error(vitality_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="F999"):
        write_report(vitality_file, tmp_path / "r", firms=["F999"])


def test_continuing_alerts_are_not_counted(vitality_file: Path, tmp_path: Path) -> None:
    alerts = _alerts() + [{"firm_id": "F2", "day": "2026-01-24", "rule": "power_logistics_stall",
                           "level": "warning", "new": False}]
    result = write_report(vitality_file, tmp_path / "r", alerts=alerts)
    assert result["summary"]["alerts"] == 4


def test_a_file_that_is_not_vitality_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "truth.jsonl"
    bad.write_text('{"firm_id": "F1", "industry": "manufacturing"}\n')
    with pytest.raises(ValueError, match=r"truth.jsonl:1: not a vitality update"):
        write_report(bad, tmp_path / "r")
