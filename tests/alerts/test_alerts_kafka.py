"""Alerts and actions on a real broker: the right actions per scenario, and the same
deduplicated set of alerts and actions after replaying the file twice or SIGKILLing the worker.

The population starts after the Spring Festival and the growth rule looks at two months instead
of the brief's three (the only way a growth firm shows within a 130-day window).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.policy import AlertPolicy
from alerts.schema import ID_FIELDS
from detectors.engine import Engine, EngineConfig
from detectors.governance import GovernanceConfig
from producers.replay import replay_files
from producers.simulator import simulate
from riskmon.services import ServiceGroup, ingest_service, read_topic, worker_service
from riskmon.settings import Settings
from riskmon.wire import ACTION_TOPICS, ALERTS_TOPIC, LATE_TOPIC
from streams.backtest import run_backtest
from streams.registry import FirmRegistry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRMS, DAYS = 30, 130
ENGINE_CONFIG = {"rules": {"electricity_growth": {"months": 2, "min_days": 10}}}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(FIRMS, DAYS, seed=5, out_dir=out, start=date(2026, 3, 1), shares={
        "shutdown": 0.2, "temporary_outage": 0.2, "growth": 0.25, "healthy": 0.35,
        "seasonal_dip": 0.0, "gradual_decline": 0.0, "data_outage": 0.0})
    (out / "engine.json").write_bytes(orjson.dumps(ENGINE_CONFIG))
    return out


@pytest.fixture(scope="module")
def truth(population: Path) -> dict[str, dict]:
    rows = [orjson.loads(line) for line in (population / "truth.jsonl").read_bytes().splitlines()]
    return {r["firm_id"]: r for r in rows}


def _backtest(population: Path, files: int = 1) -> Any:
    return run_backtest(
        [population / "events.jsonl.gz"] * files,
        registry=FirmRegistry.from_file(population / "truth.jsonl"),
        detector=Engine(EngineConfig.from_dict(ENGINE_CONFIG)),
        policy=AlertPolicy(),
        governance=GovernanceConfig(),
    )


@pytest.fixture(scope="module")
def in_process(population: Path) -> Any:
    return _backtest(population)


@pytest.fixture(scope="module")
def expected(in_process: Any) -> dict[str, dict[str, dict]]:
    """The in-process run's messages by kind and id: what a deduplicating consumer must end with."""
    return {kind: {m[ID_FIELDS[kind]]: m for m in msgs} for kind, msgs in in_process.actions.items()}


def test_rule_reasons_are_the_rules_own_inputs(in_process: Any) -> None:
    """Every alert a rule triggered cites exactly what that rule computed on that firm-day,
    recomputed here by running the rules alone over the firm's vitality records."""
    from detectors.rules import Day, rules_from_config

    rules = {r.id: r for r in rules_from_config(ENGINE_CONFIG["rules"])}
    rule_alerts = [a for a in in_process.actions["alerts"] if a["source"] == "rule"]
    assert {a["name"] for a in rule_alerts} >= {"power_logistics_stall"}
    history: dict[str, list[dict]] = {}
    for (firm, _), rec in sorted(in_process.vitality.items()):
        history.setdefault(firm, []).append(rec)
    for alert in rule_alerts:
        rule = rules[alert["name"]]
        state = hit = None
        for rec in history[alert["firm_id"]]:
            assert rule.applies(rec["industry"])
            hit, state = rule.step(state, Day.from_record(rec))
            if rec["day"] == alert["day"]:
                break
        assert hit is not None, alert
        own = [r for r in alert["reasons"] if r["detector"] == alert["name"]]
        assert own == [{**r, "detector": alert["name"]} for r in hit["reasons"]][: len(own)] and own


def _settings(broker: Any, population: Path) -> Settings:
    return Settings(
        bootstrap_servers=broker.bootstrap,
        partitions=3,
        firms_file=population / "truth.jsonl",
        detection_config_file=population / "engine.json",
        checkpoint_records=50,
        metrics_port=0,
    )


def _dedup(settings: Settings, expected: dict[str, dict[str, dict]], timeout: float = 300.0
           ) -> tuple[dict[str, dict[str, dict]], Counter]:
    """Read every action topic like a deduplicating subscriber: first message per id wins; a
    re-delivered id must carry the same content. Returns the messages and the raw counts."""
    got: dict[str, dict[str, dict]] = {}
    raw: Counter = Counter()
    for kind, topic in ACTION_TOPICS.items():
        wanted = set(expected[kind])

        def done(records: list, wanted: set = wanted, kind: str = kind) -> bool:
            return wanted <= {orjson.loads(r.value)[ID_FIELDS[kind]] for r in records}

        records = asyncio.run(read_topic(settings, topic, done, timeout=timeout))
        seen: dict[str, dict] = {}
        for r in records:
            msg = orjson.loads(r.value)
            assert r.key.decode() == msg["firm_id"]  # keyed by firm
            first = seen.setdefault(msg[ID_FIELDS[kind]], msg)
            assert first == msg, f"{kind}: id {msg[ID_FIELDS[kind]]} re-emitted with other content"
        got[kind] = seen
        raw[kind] = len(records)
    return got, raw


def _assert_same(got: dict[str, dict[str, dict]], expected: dict[str, dict[str, dict]]) -> None:
    for kind in ACTION_TOPICS:
        missing = sorted(set(expected[kind]) - set(got[kind]))[:3]
        extra = sorted(set(got[kind]) - set(expected[kind]))[:3]
        assert not missing and not extra, f"{kind}: missing {missing}, extra {extra}"
        assert got[kind] == expected[kind]


def test_in_process_actions_per_scenario(expected: dict[str, dict[str, dict]], truth: dict[str, dict]) -> None:
    """What the Kafka tests compare against is itself right."""
    scen = {f: t["scenario"] for f, t in truth.items()}
    credit = Counter((scen[c["firm_id"]], c["action"]) for c in expected["credit"].values())
    by_firm: dict[str, list[str]] = {}
    for c in sorted(expected["credit"].values(), key=lambda c: c["day"]):
        by_firm.setdefault(c["firm_id"], []).append(c["action"])
    shutdown = [f for f, s in scen.items() if s == "shutdown"]
    for firm in shutdown:
        warnings = {a["alert_id"] for a in expected["alerts"].values()
                    if a["firm_id"] == firm and a["level"] == "warning" and a["event"] != "resolved"}
        assert len(warnings) == 1, firm
        assert by_firm.get(firm) == ["FREEZE_ADJUSTMENTS"], firm
    recovering = [f for f, s in scen.items() if s == "temporary_outage"]
    assert all(by_firm.get(f) == ["FREEZE_ADJUSTMENTS", "RELEASE"] for f in recovering), by_firm
    growth = [f for f, s in scen.items() if s == "growth"]
    assert any(by_firm.get(f) == ["INCREASE_ELIGIBLE"] for f in growth)
    healthy = [f for f, s in scen.items() if s == "healthy"]
    assert not any(f in by_firm for f in healthy)
    assert not any(r["firm_id"] in healthy for r in expected["riskshare"].values())
    assert credit[("growth", "FREEZE_ADJUSTMENTS")] == 0
    # a shutdown firm's risk share moved to the adjusted split at least once in the population
    assert any(scen[r["firm_id"]] == "shutdown" and r["after"]["fiscal"] == 55.0
               for r in expected["riskshare"].values())


def test_replaying_the_file_twice_adds_nothing(
    fresh_broker: Any, population: Path, expected: dict[str, dict[str, dict]], tmp_path: Path
) -> None:
    settings = _settings(fresh_broker, population)
    late_twice = _backtest(population, files=2).counts.late
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        group.add(worker_service(settings, tmp_path))
        for _ in range(2):
            summary = asyncio.run(replay_files([population / "events.jsonl.gz"], settings))
            assert summary.bad_lines == 0
        # The second pass is fully processed once its events have come out as late.
        late = asyncio.run(read_topic(settings, LATE_TOPIC, lambda r: len(r) >= late_twice, timeout=300))
        assert len(late) >= late_twice > 0
        got, raw = _dedup(settings, expected)
        group.check_alive()
    _assert_same(got, expected)
    assert raw["alerts"] == len(expected["alerts"])  # the second pass published no alert at all


def test_sigkilled_worker_leaves_the_same_deduplicated_alerts_and_actions(
    fresh_broker: Any, population: Path, expected: dict[str, dict[str, dict]], tmp_path: Path
) -> None:
    settings = _settings(fresh_broker, population)
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        worker = group.add(worker_service(settings, tmp_path, "k"))
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(replay_files([population / "events.jsonl.gz"], settings, speed=DAYS * 86400 / 40))
            n_alerts = len(expected["alerts"])
            before_kill = loop.run_until_complete(
                read_topic(settings, ALERTS_TOPIC, lambda r: len(r) >= n_alerts // 3, timeout=180))
            worker.kill()
            loop.run_until_complete(asyncio.sleep(1))
            group.add(worker_service(settings, tmp_path, "k"))  # same id: static membership
            loop.run_until_complete(task)
        finally:
            loop.close()
        got, raw = _dedup(settings, expected)
        group.check_alive()
    assert 0 < len(before_kill) < len(expected["alerts"])
    _assert_same(got, expected)
