"""Governance on a real broker: with two workers, a rebalance and a SIGKILL mid-replay, the
governance decisions (a circuit breaker opening, a retrain reset), the detections' downgrades and
the alerts and actions equal the in-process backtest's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.policy import AlertPolicy
from alerts.schema import ID_FIELDS
from detectors.engine import Engine
from producers.replay import replay_files
from riskmon.services import ServiceGroup, ingest_service, read_topic, worker_service
from riskmon.settings import Settings
from riskmon.topics import GOVERNANCE_TOPIC
from riskmon.wire import ACTION_TOPICS, ALERTS_TOPIC
from streams.backtest import run_backtest
from streams.registry import FirmRegistry
from test_pipeline_governance import CONFIG, population  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def expected(population: Path) -> Any:  # noqa: F811
    result = run_backtest([population / "events.jsonl.gz"], registry=FirmRegistry.from_file(population / "truth.jsonl"),
                          detector=Engine(), policy=AlertPolicy(), governance=CONFIG)
    assert any(d["paused"] for d in result.decisions) and any(d["resets"] for d in result.decisions)
    return result


def _read_dedup(settings: Settings, topic: str, id_of: Any, wanted: set, timeout: float = 90.0) -> dict:
    def done(records: list) -> bool:
        return wanted <= {id_of(orjson.loads(r.value)) for r in records}

    seen: dict = {}
    for r in asyncio.run(read_topic(settings, topic, done, timeout=timeout)):
        msg = orjson.loads(r.value)
        first = seen.setdefault(id_of(msg), msg)
        assert first == msg, f"{topic}: {id_of(msg)} published twice with different content"
    return seen


def _decision_diff(got: dict | None, want: dict) -> str:
    if got is None:
        return f"period from {want['from']} not published"
    keys = [k for k in want if got.get(k) != want[k]]
    if keys == ["events"]:
        a, b = got["events"], want["events"]
        only_got = [e for e in a if e not in b][:3]
        only_want = [e for e in b if e not in a][:3]
        return f"period from {want['from']}: events differ ({len(a)} vs {len(b)}): got {only_got} want {only_want}"
    return f"period from {want['from']}: {', '.join(f'{k}: {got.get(k)} != {want[k]}' for k in keys)}"


@pytest.mark.timeout(900)
def test_two_workers_a_rebalance_and_a_sigkill_give_the_in_process_governance(
    fresh_broker: Any, population: Path, expected: Any, tmp_path: Path, capsys: Any  # noqa: F811
) -> None:
    config_file = tmp_path / "governance.json"
    config_file.write_bytes(orjson.dumps(CONFIG.to_dict()))
    settings = Settings(bootstrap_servers=fresh_broker.bootstrap, partitions=3,
                        firms_file=population / "truth.jsonl", governance_config_file=config_file,
                        checkpoint_records=50, metrics_port=0)
    n_alerts = len(expected.actions["alerts"])
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        first = group.add(worker_service(settings, tmp_path, "a"))
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(replay_files([population / "events.jsonl.gz"], settings, speed=75 * 86400 / 40))
            loop.run_until_complete(asyncio.sleep(4))
            group.add(worker_service(settings, tmp_path, "b"))  # rebalance mid-replay
            loop.run_until_complete(read_topic(settings, ALERTS_TOPIC, lambda r: len(r) >= n_alerts // 3, timeout=180))
            first.kill()  # SIGKILL, state after its last checkpoint lost
            loop.run_until_complete(asyncio.sleep(1))
            group.add(worker_service(settings, tmp_path, "a"))  # same id: static membership
            assert loop.run_until_complete(task).bad_lines == 0
        finally:
            loop.close()
        decisions = _read_dedup(settings, GOVERNANCE_TOPIC, lambda d: d["period"],
                                {d["period"] for d in expected.decisions})
        got = {kind: _read_dedup(settings, topic, lambda m, k=kind: m[ID_FIELDS[k]],
                                 {m[ID_FIELDS[kind]] for m in expected.actions[kind]})
               for kind, topic in ACTION_TOPICS.items()}
        # operators: list the decisions, ask for a re-enable (the agent takes the request)
        import time
        from argparse import Namespace

        from streams.governance_cli import main as governance_cli, request_reenable

        assert governance_cli(Namespace(action="decisions", bootstrap=fresh_broker.bootstrap, timeout=10.0)) == 0
        asyncio.run(request_reenable(settings, "firm_profile"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "re-enable of firm_profile requested" in (tmp_path / f"worker-{w}.log").read_text() for w in "ab"):
            time.sleep(0.5)
        group.check_alive()
    for want in expected.decisions:
        got_d = decisions.get(want["period"])
        assert got_d == want, _decision_diff(got_d, want)
    for kind in ACTION_TOPICS:
        want = {m[ID_FIELDS[kind]]: m for m in expected.actions[kind]}
        missing = sorted((want[k]["firm_id"], want[k]["day"]) for k in set(want) - set(got[kind]))
        extra = sorted((got[kind][k]["firm_id"], got[kind][k]["day"]) for k in set(got[kind]) - set(want))
        assert not missing and not extra, f"{kind}: missing {missing[:5]}, extra {extra[:5]}"
        assert got[kind] == want, kind
    logs = "".join((tmp_path / f"worker-{w}.log").read_text() for w in ("a", "b"))
    assert "governance: period from" in logs
    assert "re-enable of firm_profile requested" in logs
    printed = [line for line in capsys.readouterr().out.splitlines() if "paused:" in line]
    assert len(printed) == len(expected.decisions)
    assert "paused: firm_profile, level_slide" in printed[-1]
