"""riskmon.metrics: naming, recording functions, band tracking, lag, the HTTP endpoint, Faust's sensor."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import namedtuple
from types import SimpleNamespace

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from riskmon.metrics import (
    BandTracker,
    RiskmonMetrics,
    attach_faust_sensor,
    day_end_epoch,
    lag_by_topic,
    start_metrics_server,
    update_aiokafka_lag,
    update_faust_lag,
)
from streams.ingest import DeadLetter, IngestCounts
from streams.pipeline import Emitted, PipelineCounts

TP = namedtuple("TP", "topic partition")
FIRM_LABELS = {"firm", "firm_id", "firmid", "loan", "loan_id"}


def _families(m: RiskmonMetrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())}


def test_registries_are_isolated() -> None:
    a, b = RiskmonMetrics(CollectorRegistry()), RiskmonMetrics(CollectorRegistry())
    a.events("payment", 5)
    assert a.value("riskmon_events_total", stream="payment") == 5
    assert b.value("riskmon_events_total", stream="payment") == 0


def test_naming_conventions_and_no_firm_labels() -> None:
    m = RiskmonMetrics(CollectorRegistry(), component="worker")
    m.alert("power_logistics_stall", "warning", day="2026-01-05", now=day_end_epoch("2026-01-05", m.tz) + 3600)
    m.set_psi("vitality", "manufacturing", 0.12)
    m.set_circuit_breaker("vitality", True)
    m.dead_letter("riskmon.events.payment.dlq")
    m.set_lag("worker", {"riskmon.internal.events": 3})
    fams = _families(m)
    for name, fam in fams.items():
        assert name.startswith("riskmon_"), name
        if fam.type == "counter":
            assert all(s.name.endswith("_total") or s.name.endswith("_created") for s in fam.samples), name
        if fam.type == "histogram":
            assert name.endswith("_seconds"), name
        for s in fam.samples:
            assert not FIRM_LABELS & set(s.labels), (name, s.labels)
            assert not any("ms" == part for part in name.split("_")), name
    expected = {
        "riskmon_events", "riskmon_dead_letters", "riskmon_late_events", "riskmon_duplicate_events",
        "riskmon_consumer_lag_records", "riskmon_event_to_vitality_seconds",
        "riskmon_watermark_to_vitality_seconds", "riskmon_event_to_alert_seconds",
        "riskmon_firm_days_closed", "riskmon_firms", "riskmon_alerts", "riskmon_active_freezes",
        "riskmon_freezes", "riskmon_risk_share_adjustments", "riskmon_psi",
        "riskmon_circuit_breaker_open", "riskmon_ingest_records", "riskmon_ingest_envelopes",
        "riskmon_ingest_events", "riskmon_worker_checkpoints", "riskmon_worker_checkpoint_seconds",
        "riskmon_build_info",
    }
    assert expected <= set(fams), expected - set(fams)
    info = [s for s in fams["riskmon_build_info"].samples]
    assert info[0].value == 1 and info[0].labels["component"] == "worker"
    # Known streams exist at zero before the first event (rates and "no events" rules need them).
    assert RiskmonMetrics(CollectorRegistry()).value("riskmon_events_total", stream="invoice") == 0


#: promtool's linter reads "days" in a name as a time unit; a firm-day is a unit of work.
LINT_FALSE_POSITIVE = re.compile(r'^riskmon_firm_days_closed_(total|created) use base unit "seconds" instead of "days"$')


def test_promtool_lint_is_clean() -> None:
    """``promtool check metrics`` (Prometheus' own linter) finds nothing else to say."""
    import shutil
    import subprocess

    import os

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("promtool is not installed in CI (apt-get install prometheus in .ci/run)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    m = RiskmonMetrics(CollectorRegistry())
    m.alert("r", "info")
    m.set_psi("m", "s", 0.1)
    m.set_circuit_breaker("m", False)
    m.set_lag("worker", {"t": 1})
    m.dead_letter("x.dlq")
    proc = subprocess.run([promtool, "check", "metrics"], input=generate_latest(m.registry),
                          capture_output=True, timeout=30)
    lines = (proc.stdout + proc.stderr).decode().strip().splitlines()
    problems = [line for line in lines if not LINT_FALSE_POSITIVE.match(line)]
    assert not problems, problems


def test_band_tracker_transitions_and_partition_drop() -> None:
    changes: list[tuple[tuple[str, str], int]] = []
    t = BandTracker(lambda key, d: changes.append((key, d)))
    t.update("F1", "manufacturing", "warming_up", 0)
    t.update("F1", "manufacturing", "healthy", 0)
    t.update("F2", "restaurant_retail", "healthy", 1)
    t.update("F2", "restaurant_retail", "healthy", 1)  # no transition, no change
    t.update("F2", "restaurant_retail", "distress", 1)
    assert t.counts[("healthy", "manufacturing")] == 1
    assert t.counts[("distress", "restaurant_retail")] == 1
    assert t.counts[("healthy", "restaurant_retail")] == 0
    assert len(changes) == 1 + 2 + 1 + 2
    assert sum(t.counts.values()) == len(t) == 2
    assert t.drop_partition(1) == 1
    assert sum(t.counts.values()) == len(t) == 1
    assert t.drop_partition(7) == 0


def test_firms_gauge_follows_vitality_updates() -> None:
    m = RiskmonMetrics(CollectorRegistry(), tz="Asia/Shanghai")

    def rec(firm: str, day: str, band: str, industry: str = "manufacturing") -> tuple[str, bytes]:
        return firm, orjson.dumps({"firm_id": firm, "day": day, "industry": industry, "band": band, "score": 1.0})

    end = day_end_epoch("2026-01-05", "Asia/Shanghai")
    m.record_vitality([rec("F1", "2026-01-05", "healthy"), rec("F2", "2026-01-05", "healthy")],
                      partition=0, record_timestamp=end + 7000, now=end + 7200)
    m.record_vitality([rec("F1", "2026-01-06", "distress")], partition=0, now=end + 86400 + 7200)
    assert m.value("riskmon_firms", band="healthy", industry="manufacturing") == 1
    assert m.value("riskmon_firms", band="distress", industry="manufacturing") == 1
    assert m.value("riskmon_firm_days_closed_total") == 3
    # Latency: 2 h after the end of the day, in the (1 h, 2 h] bucket.
    assert m.value("riskmon_event_to_vitality_seconds_count") == 3
    assert m.value("riskmon_event_to_vitality_seconds_bucket", le="3600.0") == 0
    assert m.value("riskmon_event_to_vitality_seconds_bucket", le="7200.0") == 3
    assert m.value("riskmon_watermark_to_vitality_seconds_count") == 2
    assert m.value("riskmon_watermark_to_vitality_seconds_sum") == pytest.approx(400.0)
    assert m.value("riskmon_closed_event_time_seconds") == end + 86400
    m.partitions_revoked([0])
    assert m.value("riskmon_firms", band="healthy", industry="manufacturing") == 0
    assert m.value("riskmon_firms", band="distress", industry="manufacturing") == 0


class _Pipeline:  # stands in for PartitionPipeline: counts only
    def __init__(self) -> None:
        self.counts = PipelineCounts()


def test_worker_step_counts_deltas_per_pipeline() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    p0, p1 = _Pipeline(), _Pipeline()
    p0.counts.accepted = {"payment": 10, "electricity": 4}
    p0.counts.duplicates = 2
    late_event = {"reason": "late", "source_partition": 0, "event": {"type": "invoice", "firm_id": "F1"}}
    out = Emitted(late=[("F1", orjson.dumps(late_event))])
    m.worker_step(0, 100, p0, out, record_timestamp=None)
    p0.counts.accepted["payment"] += 5
    p1.counts.accepted = {"payment": 1}
    m.worker_step(0, 101, p0, Emitted())
    m.worker_step(1, 7, p1, Emitted())
    assert m.value("riskmon_events_total", stream="payment") == 16
    assert m.value("riskmon_events_total", stream="electricity") == 4
    assert m.value("riskmon_duplicate_events_total") == 2
    assert m.value("riskmon_late_events_total", stream="invoice") == 1
    assert m.value("riskmon_worker_records_total") == 3
    assert m.processed_offset("riskmon.internal.events", 0) == 101
    # A pipeline rebuilt after a rebalance starts from zero: it is a new object, counted afresh.
    p0b = _Pipeline()
    p0b.counts.accepted = {"payment": 3}
    m.worker_step(0, 150, p0b, Emitted())
    assert m.value("riskmon_events_total", stream="payment") == 19


def test_ingest_progress_and_dead_letters() -> None:
    m = RiskmonMetrics(CollectorRegistry(), component="ingest")
    c = IngestCounts()
    c.events["payment"] = 100
    c.records, c.watermarks, c.envelopes_out = 10, 2, 3
    m.ingest_progress(c)
    m.ingest_progress(c)  # idempotent without growth
    c.events["payment"] += 50
    c.records += 5
    m.ingest_progress(c)
    assert m.value("riskmon_ingest_events_total", stream="payment") == 150
    assert m.value("riskmon_ingest_records_total") == 15
    assert m.value("riskmon_ingest_watermarks_total") == 2
    assert m.value("riskmon_ingest_envelopes_total") == 3
    m.dead_lettered([DeadLetter("riskmon.events.payment.dlq", b"x", []),
                     DeadLetter("riskmon.events.payment.dlq", b"y", []),
                     DeadLetter("riskmon.events.invoice.dlq", b"z", [])])
    assert m.value("riskmon_dead_letters_total", topic="riskmon.events.payment.dlq") == 2
    assert m.value("riskmon_dead_letters_total", topic="riskmon.events.invoice.dlq") == 1


def test_actions_and_models() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    m.alert("order_drop", "watch")
    m.alert("order_drop", "watch")
    m.freeze(3)
    m.set_active_freezes(2)
    m.risk_share_adjusted("up")
    m.set_psi("vitality", "agriculture", 0.3)
    m.set_circuit_breaker("vitality", True)
    m.set_circuit_breaker("vitality", False)
    assert m.value("riskmon_alerts_total", rule="order_drop", level="watch") == 2
    assert m.value("riskmon_freezes_total") == 3
    assert m.value("riskmon_active_freezes") == 2
    assert m.value("riskmon_risk_share_adjustments_total", direction="up") == 1
    assert m.value("riskmon_psi", model="vitality", segment="agriculture") == 0.3
    assert m.value("riskmon_circuit_breaker_open", model="vitality") == 0
    with m.checkpoint_timer():
        pass
    assert m.value("riskmon_worker_checkpoints_total") == 1
    assert m.value("riskmon_worker_checkpoint_seconds_count") == 1


def test_day_end_epoch_uses_firm_time_zone() -> None:
    # 2026-01-05 in Shanghai (UTC+8) ends at 2026-01-05T16:00Z.
    assert day_end_epoch("2026-01-05", "Asia/Shanghai") == 1767628800.0
    assert day_end_epoch("2026-01-05", "UTC") == 1767657600.0


def test_metrics_server_binds_loopback_and_serves() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    m.events("logistics", 2)
    port = start_metrics_server(m, port=0)
    try:
        assert port > 0
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'riskmon_events_total{stream="logistics"} 2.0' in body
        assert m._servers[0].server_address[0] == "127.0.0.1"
    finally:
        m.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_lag_by_topic() -> None:
    lags = lag_by_topic(
        {TP("a", 0): 10, TP("a", 1): 5, TP("b", 0): None, TP("c", 0): -1},
        {TP("a", 0): 7, TP("a", 1): 6, TP("b", 0): 0, TP("c", 0): 0},
    )
    assert lags == {"a": 3}


class _FakeAiokafkaConsumer:
    _isolation_level = "read_committed"

    def __init__(self) -> None:
        self.ends = {TP("riskmon.events.payment", 0): 120, TP("riskmon.events.payment", 1): 50,
                     TP("riskmon.events.invoice", 0): 9}
        self.pos = {TP("riskmon.events.payment", 0): 100, TP("riskmon.events.payment", 1): 50,
                    TP("riskmon.events.invoice", 0): 4}

    def assignment(self) -> set:
        return set(self.ends)

    def last_stable_offset(self, tp: TP) -> int:
        return self.ends[tp]

    def highwater(self, tp: TP) -> int:
        return self.ends[tp] + 1  # includes an open transaction: not used under read_committed

    async def position(self, tp: TP) -> int:
        return self.pos[tp]


def test_update_aiokafka_lag() -> None:
    m = RiskmonMetrics(CollectorRegistry(), component="ingest")
    c = _FakeAiokafkaConsumer()
    lags = asyncio.run(update_aiokafka_lag(m, c, min_interval=0))
    assert lags == {"riskmon.events.payment": 20, "riskmon.events.invoice": 5}
    assert m.value("riskmon_consumer_lag_records", stage="ingest", topic="riskmon.events.payment") == 20
    # Throttled: a call within min_interval of the previous one measures nothing.
    assert asyncio.run(update_aiokafka_lag(m, c, min_interval=60)) is None


def test_update_faust_lag_uses_processed_offsets() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    topic = "riskmon.internal.events"

    class Consumer:
        def assignment(self) -> set:
            return {TP(topic, 0), TP(topic, 1), TP("riskmon-firmstate-changelog", 0)}

        def highwater(self, tp: TP) -> int:
            return 500

        async def position(self, tp: TP) -> int:
            return 480

    m.worker_step(0, 449, _Pipeline(), Emitted())  # processed up to 449: 50 to go
    lags = asyncio.run(update_faust_lag(m, SimpleNamespace(consumer=Consumer()), topic))
    assert lags == {topic: 50 + 20}  # partition 1 has no processed record yet: its position
    assert m.value("riskmon_worker_partitions") == 2
    # A consumer that is not started yet: nothing measured, no exception.
    assert asyncio.run(update_faust_lag(m, SimpleNamespace(consumer=None), topic)) is None


def test_attach_faust_sensor_records_into_the_registry() -> None:
    faust = pytest.importorskip("faust")
    registry = CollectorRegistry()
    m = RiskmonMetrics(registry)
    app = faust.App("riskmon-test-sensor", broker="kafka://127.0.0.1:1", web_enabled=False)
    monitor = attach_faust_sensor(app, registry)
    assert app.monitor is monitor
    tp = TP("riskmon.internal.events", 0)
    monitor.on_message_in(tp, 5, SimpleNamespace(tp=tp, offset=5))
    body = generate_latest(registry).decode()
    assert "riskmon_faust_messages_received_total 1.0" in body
    assert re.search(r'riskmon_faust_messages_received_per_topic_total\{topic="riskmon.internal.events"\} 1.0', body)
    assert m.value("riskmon_events_total", stream="payment") == 0  # both on one registry


def test_series_exist_before_first_value_per_component() -> None:
    worker = RiskmonMetrics(CollectorRegistry(), component="worker")
    ingest = RiskmonMetrics(CollectorRegistry(), component="ingest")
    assert worker.value("riskmon_events_total", stream="electricity") == 0
    assert worker.value("riskmon_ingest_events_total", stream="electricity") is None
    assert ingest.value("riskmon_ingest_events_total", stream="electricity") == 0
    assert ingest.value("riskmon_events_total", stream="electricity") is None
    worker.declare(rules=[("order_drop", "watch")], models=["vitality"], segments=[("vitality", "agriculture")])
    assert worker.value("riskmon_alerts_total", rule="order_drop", level="watch") == 0
    assert worker.value("riskmon_circuit_breaker_open", model="vitality") == 0
    assert worker.value("riskmon_psi", model="vitality", segment="agriculture") == 0


class _DetectingPipeline(_Pipeline):
    detector = object()  # the worker runs the detection engine


def _vit(firm: str, day: str, band: str = "watch") -> tuple[str, bytes]:
    return firm, orjson.dumps({"firm_id": firm, "day": day, "industry": "manufacturing", "band": band})


def _det(firm: str, day: str, name: str, level: str, action: str, new: bool) -> tuple[str, bytes]:
    return firm, orjson.dumps({"firm_id": firm, "day": day, "source": "rule", "name": name, "level": level,
                               "action": action, "score": 0.7, "new": new, "reasons": []})


def test_detections_become_alerts_and_freezes() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    p = _DetectingPipeline()
    # Day 1: F1 gets two freeze detections (one freeze), F2 a follow-up; F3 nothing.
    out = Emitted(
        vitality=[_vit("F1", "2026-01-05"), _vit("F2", "2026-01-05"), _vit("F3", "2026-01-05", "healthy")],
        detections=[_det("F1", "2026-01-05", "power_logistics_stall", "warning", "FREEZE_ADJUSTMENTS", True),
                    _det("F1", "2026-01-05", "level_slide", "warning", "FREEZE_ADJUSTMENTS", True),
                    _det("F2", "2026-01-05", "order_drop", "watch", "RM_FOLLOW_UP", True)],
    )
    m.worker_step(0, 1, p, out)
    assert m.value("riskmon_alerts_total", rule="power_logistics_stall", level="warning") == 1
    assert m.value("riskmon_alerts_total", rule="order_drop", level="watch") == 1
    assert m.value("riskmon_event_to_alert_seconds_count") == 3
    assert m.value("riskmon_active_freezes") == 1 and m.value("riskmon_freezes_total") == 1
    # Day 2: F1's freeze continues (not new: no alert, no new freeze); F4 on partition 1 continues
    # a freeze it had before this worker owned it (not counted as a start).
    out = Emitted(
        vitality=[_vit("F1", "2026-01-06"), _vit("F2", "2026-01-06")],
        detections=[_det("F1", "2026-01-06", "power_logistics_stall", "warning", "FREEZE_ADJUSTMENTS", False)],
    )
    m.worker_step(0, 2, p, out)
    m.worker_step(1, 1, p, Emitted(vitality=[_vit("F4", "2026-01-06")], detections=[
        _det("F4", "2026-01-06", "firm_profile", "warning", "FREEZE_ADJUSTMENTS", False)]))
    assert m.value("riskmon_alerts_total", rule="power_logistics_stall", level="warning") == 1
    assert m.value("riskmon_active_freezes") == 2 and m.value("riskmon_freezes_total") == 1
    # Day 3: F1's evidence is gone: the freeze is lifted. Partition 1 moves away.
    m.worker_step(0, 3, p, Emitted(vitality=[_vit("F1", "2026-01-07", "healthy")]))
    m.partitions_revoked([1])
    assert m.value("riskmon_active_freezes") == 0 and m.value("riskmon_freezes_total") == 1


def test_without_a_detector_freezes_are_left_alone() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    m.set_active_freezes(5)  # an actions service owns them
    m.worker_step(0, 1, _Pipeline(), Emitted(vitality=[_vit("F1", "2026-01-05")]))
    assert m.value("riskmon_active_freezes") == 5


def test_governance_events_and_drift() -> None:
    m = RiskmonMetrics(CollectorRegistry())
    m.record_drift({("2026-01-05", "manufacturing", "psi", "firm_profile"): (0.05, 300),
                    ("2026-01-06", "manufacturing", "psi", "firm_profile"): (0.31, 310),
                    ("2026-01-06", "agriculture", "psi", "firm_profile"): (0.02, 90),
                    ("2026-01-06", "manufacturing", "csi", "elec"): (0.4, 310)})
    assert m.value("riskmon_psi", model="firm_profile", segment="manufacturing") == 0.31
    assert m.value("riskmon_psi", model="firm_profile", segment="agriculture") == 0.02
    assert m.value("riskmon_psi", model="elec", segment="manufacturing") is None  # CSI is not PSI
    m.record_governance([{"day": "2026-01-12", "model": "level_slide", "event": "breaker_open"}])
    assert m.value("riskmon_circuit_breaker_open", model="level_slide") == 1
    m.record_governance([{"day": "2026-02-01", "model": "level_slide", "event": "breaker_reset"},
                         {"day": "2026-02-01", "segment": "agriculture", "kind": "psi", "name": "firm_profile",
                          "value": 0.27, "event": "retrain"}])
    assert m.value("riskmon_circuit_breaker_open", model="level_slide") == 0
    assert m.value("riskmon_psi", model="firm_profile", segment="agriculture") == 0.27
