"""Governance through the partition pipeline, in process: the same event file gives the same
decisions, detections, alerts and actions whatever the partition count and however late or in
whatever order decisions reach the partitions (as the Kafka path may deliver them)."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.policy import AlertPolicy
from alerts.schema import ID_FIELDS
from detectors.drift import BreakerConfig, DriftConfig
from detectors.engine import Engine
from detectors.governance import Governance, GovernanceConfig
from producers.eventfile import iter_lines
from producers.simulator import simulate
from riskmon.events import validate_event
from riskmon.wire import WatermarkSchedule, partition_for
from streams.backtest import run_backtest
from streams.eventtime import STREAMS
from streams.pipeline import Emitted, PartitionPipeline, collect_vitality
from streams.registry import FirmRegistry

#: thresholds low enough for a 40-firm population to open a breaker and retrain a model
CONFIG = GovernanceConfig(
    drift=DriftConfig(reference_days=14, window_days=7, min_daily=3, min_count=20),
    breaker=BreakerConfig(threshold=0.02, min_firms=5),
)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("govsim")
    simulate(40, 75, seed=4, out_dir=out, start=date(2026, 3, 2), shares={
        "shutdown": 0.25, "gradual_decline": 0.15, "healthy": 0.6, "temporary_outage": 0.0,
        "growth": 0.0, "seasonal_dip": 0.0, "data_outage": 0.0})
    return out


def run_partitioned(population: Path, partitions: int, seed: int | None) -> dict[str, Any]:
    """Route events to ``partitions`` pipelines by firm, broadcast watermarks, run one
    :class:`Governance`; with a ``seed``, hand each decision to the partitions late and in a
    random order (``None``: at once, in partition order)."""
    registry = FirmRegistry.from_file(population / "truth.jsonl")
    engine, policy = Engine(), AlertPolicy()
    pipes = [PartitionPipeline(n_sources=1, registry=registry, detector=engine, policy=policy,
                               governance=CONFIG, partition=p) for p in range(partitions)]
    for p in pipes:
        p.decisions = {}  # each partition learns decisions on its own
    outs = [Emitted() for _ in pipes]
    gov = Governance(CONFIG, partitions=partitions)
    read = [0] * partitions
    undelivered: list[tuple[int, dict]] = []  # (partition, decision)
    rng = random.Random(seed)

    def pump(final: bool = False) -> None:
        while True:
            for i, out in enumerate(outs):
                for raw in out.governance[read[i]:]:
                    report = orjson.loads(raw)
                    gov.add_rows(report["rows"])
                    if "mark" in report:
                        gov.mark(report["p"], report["mark"])
                read[i] = len(out.governance)
            for d in gov.advance():
                undelivered.extend((p, d) for p in range(partitions))
            if not undelivered:
                return
            if seed is not None:
                rng.shuffle(undelivered)
                # deliver only some now (the rest arrives later) unless draining at the end
                keep = [] if final else undelivered[: rng.randrange(len(undelivered) + 1)]
            else:
                keep = []
            todo = undelivered[len(keep):]
            undelivered[:] = keep
            for p, d in todo:
                pipes[p].on_decision(d, outs[p])
            if not final and keep:
                return

    schedule = WatermarkSchedule()
    pending: list[list[dict]] = [[] for _ in pipes]

    def advance(boundary: float) -> None:
        for i, p in enumerate(pipes):
            if pending[i]:
                p.on_events(pending[i], 0, -1, outs[i])
                pending[i] = []
            for s in STREAMS:
                p.on_watermark(s, 0, boundary, outs[i])
        pump()

    for _, raw in iter_lines(population / "events.jsonl.gz"):
        ev = orjson.loads(raw)
        boundary = schedule.observe(validate_event(ev).delivery_time.timestamp())
        if boundary is not None:
            advance(boundary)
        pending[partition_for(ev["firm_id"], partitions)].append(ev)
    advance(schedule.final())
    pump(final=True)
    assert not any(f.held for p in pipes for f in p.core.firms.values()), "days left held"
    result: dict[str, Any] = {"decisions": gov.decisions,
                              "vitality": collect_vitality(v for o in outs for v in o.vitality)}
    result["detections"] = sorted((orjson.loads(v) for o in outs for _, v in o.detections),
                                  key=lambda d: (d["firm_id"], d["day"], d["name"]))
    for kind in ("alerts", "credit", "riskshare", "watchlist"):
        msgs = [orjson.loads(v) for o in outs for _, v in getattr(o, kind)]
        result[kind] = {m[ID_FIELDS[kind]]: m for m in msgs}
    return result


@pytest.fixture(scope="module")
def reference(population: Path) -> dict[str, Any]:
    return run_partitioned(population, 1, None)


def test_the_population_exercises_the_breaker_and_a_retrain(reference: dict[str, Any]) -> None:
    decisions = reference["decisions"]
    assert any(d["paused"] for d in decisions), "no breaker opened: the test would prove little"
    assert any(d["resets"] for d in decisions), "no retrain reset"
    downgraded = [d for d in reference["detections"] if d.get("paused")]
    assert downgraded and all(d["level"] == "watch" and d["action"] == "HUMAN_REVIEW" for d in downgraded)
    # a paused model's warning never freezes a credit line
    freezes = [c for c in reference["credit"].values() if c["action"] == "FREEZE_ADJUSTMENTS"]
    paused_by_day = {}
    for d in decisions:
        paused_by_day[d["period"]] = set(d["paused"])
    assert freezes
    for c in freezes:
        alert = next(a for a in reference["alerts"].values() if a["alert_id"] == c["alert_id"])
        period = (date.fromisoformat(c["day"]).toordinal() - 1) // 7
        assert not (alert["source"] == "model" and alert["name"] in paused_by_day[period])


@pytest.mark.parametrize("partitions,seed", [(1, 1), (2, None), (3, 7), (4, 11)])
def test_partition_count_and_decision_delivery_do_not_matter(
    population: Path, reference: dict[str, Any], partitions: int, seed: int | None
) -> None:
    got = run_partitioned(population, partitions, seed)
    for key in ("decisions", "vitality", "detections", "alerts", "credit", "riskshare", "watchlist"):
        assert got[key] == reference[key], key


def test_backtest_governs_like_the_partitioned_path(population: Path, reference: dict[str, Any]) -> None:
    result = run_backtest([population / "events.jsonl.gz"], registry=FirmRegistry.from_file(population / "truth.jsonl"),
                          detector=Engine(), policy=AlertPolicy(), governance=CONFIG)
    assert result.decisions == reference["decisions"]
    assert {m[ID_FIELDS["alerts"]]: m for m in result.actions["alerts"]} == reference["alerts"]
    assert sorted(result.detections, key=lambda d: (d["firm_id"], d["day"], d["name"])) == reference["detections"]


def test_without_governance_nothing_is_held_and_paused_models_still_warn(population: Path,
                                                                          reference: dict[str, Any]) -> None:
    result = run_backtest([population / "events.jsonl.gz"], registry=FirmRegistry.from_file(population / "truth.jsonl"),
                          detector=Engine(), policy=AlertPolicy())
    assert result.decisions == []
    assert not any(d.get("paused") for d in result.detections)
    assert len(result.detections) >= len(reference["detections"]) > 0
