"""Prometheus metrics of riskmon's long-running stages (ingest, stream worker).

Every metric lives on a :class:`~prometheus_client.CollectorRegistry` passed to
:class:`RiskmonMetrics`, so tests build isolated registries. Names start with ``riskmon_``, use
base units (seconds) and counters end in ``_total``. No metric has a per-firm label: firm counts
per vitality band are kept by :class:`BandTracker`, which turns per-firm band transitions into
gauge increments.

The adapters call narrow recording functions with numbers they already have:

* ingest: :meth:`RiskmonMetrics.ingest_progress` (the ``on_progress`` callback of
  ``run_ingest``: cumulative :class:`~streams.ingest.IngestCounts`), :meth:`dead_lettered` (the
  dead letters of one poll) and :func:`update_aiokafka_lag`;
* worker: :meth:`RiskmonMetrics.worker_step` after each internal record, :meth:`checkpoint_timer`
  around a checkpoint, :meth:`partitions_revoked`, and :func:`update_faust_lag` on a timer;
* alerts and actions: :meth:`worker_step` also counts the alert policy's output
  (:meth:`record_actions`: alerts raised or escalated by triggering rule/model and level,
  freezes, frozen credit lines, risk-share adjustments); a worker without the policy counts the
  detection engine's new episodes as alerts and FREEZE_ADJUSTMENTS detections as freezes;
* governance and actions: :meth:`record_drift` / :meth:`record_governance` (PSI, breakers from
  ``detectors.drift``), :meth:`alert`, :meth:`risk_share_adjusted`, :meth:`set_psi`,
  :meth:`set_circuit_breaker`, :meth:`declare` (series that exist before their first value).

The HTTP endpoint is prometheus_client's own server (:func:`start_metrics_server`), bound to
127.0.0.1 unless told otherwise; Faust's web server stays off. Faust's own Prometheus sensor
(:func:`attach_faust_sensor`) records into the same registry with the ``riskmon_faust_`` prefix.

>>> from prometheus_client import CollectorRegistry
>>> m = RiskmonMetrics(CollectorRegistry(), component="worker")
>>> m.events("payment", 3)
>>> m.value("riskmon_events_total", stream="payment")
3.0
>>> m.record_vitality([{"firm_id": "F1", "industry": "manufacturing", "band": "watch",
...                     "day": "2026-01-05"}], now=0.0)
>>> m.value("riskmon_firms", band="watch", industry="manufacturing")
1.0
"""

from __future__ import annotations

import asyncio
import logging
import platform
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from riskmon import __version__

log = logging.getLogger("riskmon.metrics")

#: Default port of the metrics endpoint (RISKMON_METRICS_PORT): 9464 is the port OpenTelemetry's
#: Prometheus exporter uses, free of Kafka's (9092-9094), Prometheus' (9090) and Grafana's (3000).
DEFAULT_METRICS_PORT = 9464
DEFAULT_METRICS_HOST = "127.0.0.1"

STREAMS: tuple[str, ...] = ("electricity", "invoice", "logistics", "payment")
#: The detection action that freezes a credit line (no increase, no new drawdown).
FREEZE_ACTION = "FREEZE_ADJUSTMENTS"
BANDS: tuple[str, ...] = ("healthy", "watch", "distress", "warming_up")
LEVELS: tuple[str, ...] = ("info", "watch", "warning", "critical")

#: Latency from event time to an output: seconds to days. A firm-day closes only after the
#: slowest stream's allowed lateness (36 h for invoices), so hours are the normal case.
EVENT_LATENCY_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600,
    24 * 3600, 36 * 3600, 48 * 3600, 72 * 3600, 7 * 86400, 30 * 86400,
)
#: Processing latency inside the pipeline: milliseconds to a minute.
PROCESSING_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
)
#: Checkpoint duration: a checkpoint writes every firm changed since the previous one.
CHECKPOINT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)


class BandTracker:
    """Count firms per (band, industry) from per-firm band updates, without per-firm labels.

    ``update`` remembers each firm's latest band and calls ``on_change(key, delta)`` for the
    gauge cells that change; ``drop_partition`` forgets the firms of a partition this worker no
    longer owns (their new owner counts them), so that sums across workers stay right.

    >>> t = BandTracker()
    >>> t.update("F1", "manufacturing", "healthy", partition=0)
    True
    >>> t.update("F2", "manufacturing", "healthy", partition=1)
    True
    >>> t.update("F1", "manufacturing", "healthy", partition=0)  # no transition
    False
    >>> t.update("F1", "manufacturing", "distress", partition=0)
    True
    >>> sorted(t.counts.items())
    [(('distress', 'manufacturing'), 1), (('healthy', 'manufacturing'), 1)]
    >>> t.drop_partition(1)
    1
    >>> sorted(t.counts.items())
    [(('distress', 'manufacturing'), 1), (('healthy', 'manufacturing'), 0)]
    """

    def __init__(self, on_change: Callable[[tuple[str, str], int], None] | None = None) -> None:
        self.on_change = on_change
        self.counts: dict[tuple[str, str], int] = {}
        self._firms: dict[str, tuple[str, str, int | None]] = {}  # firm -> (band, industry, p)

    def __len__(self) -> int:
        return len(self._firms)

    def band_of(self, firm_id: str) -> str | None:
        entry = self._firms.get(firm_id)
        return entry[0] if entry else None

    def _add(self, key: tuple[str, str], delta: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + delta
        if self.on_change is not None:
            self.on_change(key, delta)

    def update(self, firm_id: str, industry: str, band: str, partition: int | None = None) -> bool:
        """Record a firm's latest band; True if a gauge cell changed."""
        old = self._firms.get(firm_id)
        self._firms[firm_id] = (band, industry, partition)
        if old is not None and old[0] == band and old[1] == industry:
            return False
        if old is not None:
            self._add((old[0], old[1]), -1)
        self._add((band, industry), +1)
        return True

    def forget(self, firm_id: str) -> bool:
        old = self._firms.pop(firm_id, None)
        if old is None:
            return False
        self._add((old[0], old[1]), -1)
        return True

    def drop_partition(self, partition: int) -> int:
        """Forget every firm last seen on ``partition``; returns how many."""
        gone = [f for f, (_, _, p) in self._firms.items() if p == partition]
        for firm_id in gone:
            self.forget(firm_id)
        return len(gone)


@lru_cache(maxsize=4096)
def day_end_epoch(day: str, tz: str) -> float:
    """End of a firm-day (local midnight after ``day``) as epoch seconds.

    >>> day_end_epoch("2026-01-05", "Asia/Shanghai") == datetime(2026, 1, 5, 16, tzinfo=ZoneInfo("UTC")).timestamp()
    True
    """
    d = date.fromisoformat(day) + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp()


@dataclass
class _PipelineSnapshot:
    accepted: dict[str, int]
    duplicates: int
    skipped_replayed: int


class RiskmonMetrics:
    """Every riskmon metric, registered on ``registry``.

    ``component`` (``worker`` or ``ingest``) only labels ``riskmon_build_info``; Prometheus
    tells the processes apart by their ``job`` and ``instance`` labels.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        component: str = "worker",
        tz: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.component = component
        self.tz = tz
        self.clock = clock
        r = self.registry
        self._lock = threading.Lock()
        self._servers: list[Any] = []
        self._pipelines: "weakref.WeakKeyDictionary[Any, _PipelineSnapshot]" = weakref.WeakKeyDictionary()
        self._ingest_last: dict[str, Any] | None = None
        self._processed: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset
        self._lag_at: dict[str, float] = {}
        self._closed_max = 0.0

        self.build_info = Gauge(
            "riskmon_build_info", "riskmon build: always 1, the labels tell the version",
            ["version", "component", "python"], registry=r,
        )
        self.build_info.labels(__version__, component, platform.python_version()).set(1)

        # --- input ----------------------------------------------------------------------------
        self.events_total = Counter(
            "riskmon_events", "Events accepted into firm-days by the stream worker, per stream",
            ["stream"], registry=r,
        )
        self.late_events_total = Counter(
            "riskmon_late_events", "Events that arrived after their firm-day closed "
            "(sent to riskmon.events.late)", ["stream"], registry=r,
        )
        self.duplicate_events_total = Counter(
            "riskmon_duplicate_events", "Duplicate events dropped by the stream worker", registry=r,
        )
        self.replayed_skipped_total = Counter(
            "riskmon_replayed_events_skipped", "Events skipped after a restart because the "
            "recovered state already reflected them", registry=r,
        )
        self.dead_letters_total = Counter(
            "riskmon_dead_letters", "Records or envelope members dead-lettered, per dead-letter "
            "topic", ["topic"], registry=r,
        )
        self.ingest_events_total = Counter(
            "riskmon_ingest_events", "Valid events forwarded by the ingest stage, per stream",
            ["stream"], registry=r,
        )
        self.ingest_records_total = Counter(
            "riskmon_ingest_records", "Kafka records read from the event topics by ingest",
            registry=r,
        )
        self.ingest_watermarks_total = Counter(
            "riskmon_ingest_watermarks", "Watermarks forwarded by the ingest stage", registry=r,
        )
        self.ingest_envelopes_total = Counter(
            "riskmon_ingest_envelopes", "Envelopes written to riskmon.internal.events by ingest",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "riskmon_consumer_lag_records", "Records not yet processed, summed over the "
            "partitions this process owns", ["stage", "topic"], registry=r,
        )
        self.worker_records_total = Counter(
            "riskmon_worker_records", "Internal records (envelopes, watermarks) processed by the "
            "stream worker", registry=r,
        )
        self.partitions_owned = Gauge(
            "riskmon_worker_partitions", "Internal-topic partitions this worker owns", registry=r,
        )

        # --- vitality -------------------------------------------------------------------------
        self.firm_days_closed_total = Counter(
            "riskmon_firm_days_closed", "Firm-days closed (vitality updates emitted)", registry=r,
        )
        self.event_to_vitality = Histogram(
            "riskmon_event_to_vitality_seconds", "Wall-clock seconds from the end of a firm-day "
            "(event time) to its vitality update; includes the allowed lateness",
            registry=r, buckets=EVENT_LATENCY_BUCKETS,
        )
        self.watermark_to_vitality = Histogram(
            "riskmon_watermark_to_vitality_seconds", "Seconds from the Kafka timestamp of the "
            "internal record that closed a firm-day to its vitality update (processing latency)",
            registry=r, buckets=PROCESSING_LATENCY_BUCKETS,
        )
        self.closed_event_time = Gauge(
            "riskmon_closed_event_time_seconds", "Event-time end of the latest firm-day closed "
            "(epoch seconds): how far the worker has got in event time", registry=r,
        )
        self.firms = Gauge(
            "riskmon_firms", "Firms per latest vitality band and industry", ["band", "industry"],
            registry=r,
        )
        self.bands = BandTracker(self._on_band_change)

        # --- detection and actions -----------------------------------------------------------
        self.alerts_total = Counter(
            "riskmon_alerts", "Alerts raised, per rule and level", ["rule", "level"], registry=r,
        )
        self.event_to_alert = Histogram(
            "riskmon_event_to_alert_seconds", "Wall-clock seconds from the end of the firm-day "
            "that triggered an alert to its publication", registry=r,
            buckets=EVENT_LATENCY_BUCKETS,
        )
        self.active_freezes = Gauge(
            "riskmon_active_freezes", "Credit lines currently frozen (no increase, no drawdown)",
            registry=r,
        )
        self.freezes_total = Counter(
            "riskmon_freezes", "Credit-line freezes started", registry=r,
        )
        # Which firms are frozen: those whose latest closed day carries a freeze detection.
        self.freeze_state = BandTracker(self._on_freeze_change)
        self.risk_share_adjustments_total = Counter(
            "riskmon_risk_share_adjustments", "Dynamic risk-share adjustments "
            "(fiscal share raised or restored)", ["direction"], registry=r,
        )
        self.psi = Gauge(
            "riskmon_psi", "Population stability index of a model's score, per segment",
            ["model", "segment"], registry=r,
        )
        self.circuit_breaker_open = Gauge(
            "riskmon_circuit_breaker_open", "1 while a model's circuit breaker is open (decisions "
            "go to human review)", ["model"], registry=r,
        )

        # --- worker state ---------------------------------------------------------------------
        self.checkpoints_total = Counter(
            "riskmon_worker_checkpoints", "State checkpoints written to the changelog tables",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "riskmon_worker_checkpoint_seconds", "Duration of one checkpoint", registry=r,
            buckets=CHECKPOINT_BUCKETS,
        )

        # Known label values exist from the start (at 0), so rates and "no events" rules have a
        # series to look at before the first event.
        # Only the component's own: the other stage's zeros would look like a stalled input.
        for s in STREAMS:
            if component == "ingest":
                self.ingest_events_total.labels(s)
            else:
                self.events_total.labels(s)
                self.late_events_total.labels(s)
        if component != "ingest":
            for direction in ("up", "down"):
                self.risk_share_adjustments_total.labels(direction)

    def declare(
        self,
        rules: Iterable[tuple[str, str]] = (),
        models: Iterable[str] = (),
        segments: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Create the series of known alert rules ``(rule, level)``, models (breaker closed)
        and PSI ``(model, segment)`` cells before their first value, so that dashboards and
        rate() see them from the start. PSI cells start at 0."""
        for rule, level in rules:
            self.alerts_total.labels(rule, level)
        for model in models:
            self.circuit_breaker_open.labels(model).set(0)
        for model, segment in segments:
            self.psi.labels(model, segment)

    # -- generic --------------------------------------------------------------------------------
    def value(self, name: str, **labels: str) -> float | None:
        """Current value of a sample (tests and summaries)."""
        return self.registry.get_sample_value(name, labels)

    # -- input ------------------------------------------------------------------------------------
    def events(self, stream: str, n: int = 1) -> None:
        if n:
            self.events_total.labels(stream).inc(n)

    def late(self, stream: str, n: int = 1) -> None:
        if n:
            self.late_events_total.labels(stream).inc(n)

    def duplicates(self, n: int = 1) -> None:
        if n:
            self.duplicate_events_total.inc(n)

    def dead_letter(self, topic: str, n: int = 1) -> None:
        if n:
            self.dead_letters_total.labels(topic).inc(n)

    def dead_lettered(self, dead: Iterable[Any]) -> None:
        """Count a poll's dead letters (objects with a ``topic``: ingest's ``DeadLetter``)."""
        per_topic: dict[str, int] = {}
        for d in dead:
            per_topic[d.topic] = per_topic.get(d.topic, 0) + 1
        for topic, n in per_topic.items():
            self.dead_letter(topic, n)

    def ingest_progress(self, counts: Any) -> None:
        """``on_progress`` callback of ``run_ingest``: cumulative ``IngestCounts`` of one router.

        Only the growth since the previous call is added, so it may be called as often as
        wanted. Dead letters are counted per topic by :meth:`dead_lettered`, not here.
        """
        now = {
            "events": dict(counts.events), "records": counts.records,
            "watermarks": counts.watermarks, "envelopes": counts.envelopes_out,
        }
        last = self._ingest_last or {"events": {}, "records": 0, "watermarks": 0, "envelopes": 0}
        for stream, n in now["events"].items():
            d = n - last["events"].get(stream, 0)
            if d > 0:
                self.ingest_events_total.labels(stream).inc(d)
        for key, counter in (
            ("records", self.ingest_records_total),
            ("watermarks", self.ingest_watermarks_total),
            ("envelopes", self.ingest_envelopes_total),
        ):
            d = now[key] - last[key]
            if d > 0:
                counter.inc(d)
        self._ingest_last = now

    # -- worker ---------------------------------------------------------------------------------
    def pipeline_progress(self, pipeline: Any) -> None:
        """Add the growth of a ``PartitionPipeline``'s counts since the last call for it.

        Pipelines are tracked weakly: a partition rebuilt after a rebalance starts from zero.
        Late events and closed days are counted from the emitted records (:meth:`worker_step`).
        """
        counts = pipeline.counts
        last = self._pipelines.get(pipeline)
        if last is None:
            last = _PipelineSnapshot({}, 0, 0)
        for stream, n in counts.accepted.items():
            self.events(stream, n - last.accepted.get(stream, 0))
        self.duplicates(counts.duplicates - last.duplicates)
        d = counts.skipped_replayed - last.skipped_replayed
        if d > 0:
            self.replayed_skipped_total.inc(d)
        self._pipelines[pipeline] = _PipelineSnapshot(
            dict(counts.accepted), counts.duplicates, counts.skipped_replayed
        )

    def record_late(self, late: Iterable[tuple[str, bytes]]) -> None:
        """Count late events from the worker's output (``Emitted.late``: (firm_id, JSON))."""
        per_stream: dict[str, int] = {}
        for _, value in late:
            try:
                stream = orjson.loads(value)["event"]["type"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                stream = "unknown"
            per_stream[stream] = per_stream.get(stream, 0) + 1
        for stream, n in per_stream.items():
            self.late(stream, n)

    def record_detections(
        self, detections: Iterable[tuple[str, bytes] | Mapping[str, Any]], now: float | None = None
    ) -> dict[tuple[str, str], bool]:
        """Count the detection engine's output (``Emitted.detections``: (firm_id, JSON) or
        decoded detections): each *new* episode is an alert (``riskmon_alerts_total{rule,level}``
        with ``rule`` = the detection's name, latency from the end of its firm-day).

        Returns the firm-days that carry a freeze (``action`` FREEZE_ADJUSTMENTS), each with
        whether one of its freeze detections starts an episode; pass it to
        :meth:`record_vitality` as ``freezes``."""
        now = self.clock() if now is None else now
        freezes: dict[tuple[str, str], bool] = {}
        for item in detections:
            det = orjson.loads(item[1]) if isinstance(item, tuple) else item
            new = bool(det.get("new"))
            if new:
                self.alert(str(det.get("name") or "detection"), str(det.get("level") or "info"), det.get("day"), now)
            if det.get("action") == FREEZE_ACTION:
                key = (det["firm_id"], det["day"])
                freezes[key] = freezes.get(key, False) or new
        return freezes

    def record_vitality(
        self,
        updates: Iterable[tuple[str, bytes] | Mapping[str, Any]],
        partition: int | None = None,
        record_timestamp: float | None = None,
        now: float | None = None,
        freezes: Mapping[tuple[str, str], bool] | None = None,
    ) -> None:
        """Count closed firm-days, update band counts and observe latencies.

        ``updates`` are the worker's ``Emitted.vitality`` pairs (firm_id, JSON) or decoded
        vitality records; ``record_timestamp`` is the Kafka timestamp (epoch seconds) of the
        internal record whose watermark closed them. With ``freezes`` (from
        :meth:`record_detections`; None when no detection runs) a firm is frozen while its latest
        closed day carries a freeze: ``riskmon_active_freezes`` counts such firms and
        ``riskmon_freezes_total`` the firms that became frozen with a new episode (a freeze
        continuing on a partition this worker just took over is not a new one).
        """
        now = self.clock() if now is None else now
        n = 0
        latest_end = None
        for item in updates:
            rec = orjson.loads(item[1]) if isinstance(item, tuple) else item
            n += 1
            firm_id = rec["firm_id"]
            self.bands.update(firm_id, rec.get("industry") or "default", rec["band"], partition)
            day = rec.get("day")
            if freezes is not None:
                starts = freezes.get((firm_id, day))
                was_frozen = self.freeze_state.band_of(firm_id) == "frozen"
                self.freeze_state.update(firm_id, "all", "free" if starts is None else "frozen", partition)
                if starts and not was_frozen:
                    self.freezes_total.inc()
            if day:
                end = day_end_epoch(day, self.tz)
                self.event_to_vitality.observe(max(0.0, now - end))
                if latest_end is None or end > latest_end:
                    latest_end = end
            if record_timestamp is not None:
                self.watermark_to_vitality.observe(max(0.0, now - record_timestamp))
        if n:
            self.firm_days_closed_total.inc(n)
        if latest_end is not None:
            with self._lock:
                if latest_end > self._closed_max:
                    self._closed_max = latest_end
                    self.closed_event_time.set(latest_end)

    def worker_step(
        self,
        partition: int,
        offset: int,
        pipeline: Any,
        out: Any,
        record_timestamp: float | None = None,
        topic: str = "riskmon.internal.events",
    ) -> None:
        """Everything the worker knows after one internal record: call it right after
        ``pipeline.on_record(...)`` with the record's partition, offset, the partition's
        pipeline, the ``Emitted`` output and the message's timestamp (seconds)."""
        self.worker_records_total.inc()
        self._processed[(topic, partition)] = offset
        self.pipeline_progress(pipeline)
        if out.late:
            self.record_late(out.late)
        freezes = None
        if getattr(pipeline, "policy", None) is not None:
            self.record_actions(out, partition)
        elif getattr(pipeline, "detector", None) is not None:
            freezes = self.record_detections(getattr(out, "detections", None) or ())
        if out.vitality:
            self.record_vitality(out.vitality, partition, record_timestamp, freezes=freezes)

    def record_actions(self, out: Any, partition: int | None = None, now: float | None = None) -> None:
        """Count the alert policy's output (``Emitted.alerts``/``credit``/``riskshare``): alerts
        raised or escalated per triggering rule/model and level, freezes started, the frozen
        credit lines, risk-share adjustments by direction."""
        now = self.clock() if now is None else now
        for _, value in out.alerts:
            a = orjson.loads(value)
            if a["event"] != "resolved":
                self.alert(a["name"], a["level"], a["day"], now)
        for _, value in out.credit:
            c = orjson.loads(value)
            if c["action"] == FREEZE_ACTION:
                self.freezes_total.inc()
            self.freeze_state.update(c["firm_id"], "all", "frozen" if c["after"] == "frozen" else "free", partition)
        for _, value in out.riskshare:
            r = orjson.loads(value)
            self.risk_share_adjusted("up" if r["after"]["fiscal"] > r["before"]["fiscal"] else "down")

    def restore_frozen(self, firm_ids: Iterable[str], partition: int | None = None) -> None:
        """Credit lines that are frozen in state a worker restored (a takeover, a restart)."""
        for firm_id in firm_ids:
            self.freeze_state.update(firm_id, "all", "frozen", partition)

    def partitions_assigned(self, n: int) -> None:
        self.partitions_owned.set(n)

    def partitions_revoked(self, partitions: Iterable[int], topic: str = "riskmon.internal.events") -> None:
        """Forget the firms (band counts) and offsets of partitions this worker gave up."""
        for p in partitions:
            self.bands.drop_partition(p)
            self.freeze_state.drop_partition(p)
            self._processed.pop((topic, p), None)

    @contextmanager
    def checkpoint_timer(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.checkpoint_seconds.observe(time.perf_counter() - start)
            self.checkpoints_total.inc()

    def processed_offset(self, topic: str, partition: int) -> int | None:
        return self._processed.get((topic, partition))

    def _on_band_change(self, key: tuple[str, str], delta: int) -> None:
        self.firms.labels(*key).inc(delta)

    def _on_freeze_change(self, key: tuple[str, str], delta: int) -> None:
        if key[0] == "frozen":
            self.active_freezes.inc(delta)

    # -- detection and actions ------------------------------------------------------------------
    def alert(self, rule: str, level: str, day: str | None = None, now: float | None = None) -> None:
        """Count a published alert; ``day`` (the firm-day that triggered it) gives the latency."""
        self.alerts_total.labels(rule, level).inc()
        if day:
            now = self.clock() if now is None else now
            self.event_to_alert.observe(max(0.0, now - day_end_epoch(day, self.tz)))

    def freeze(self, n: int = 1) -> None:
        self.freezes_total.inc(n)

    def set_active_freezes(self, n: int) -> None:
        """For an actions service that owns freezes; the worker counts them from its credit-line actions (or, without the alert policy, from detections)."""
        self.active_freezes.set(n)

    def risk_share_adjusted(self, direction: str = "up", n: int = 1) -> None:
        self.risk_share_adjustments_total.labels(direction).inc(n)

    def set_psi(self, model: str, segment: str, value: float) -> None:
        self.psi.labels(model, segment).set(value)

    def set_circuit_breaker(self, model: str, is_open: bool) -> None:
        self.circuit_breaker_open.labels(model).set(1 if is_open else 0)

    def record_drift(self, daily: Mapping[tuple[str, str, str, str], tuple[float, int]], day: str | None = None) -> None:
        """PSI of each model's score per segment from ``detectors.drift.DriftMonitor.daily``
        (``(day, segment, kind, name) -> (value, n)``), for ``day`` (default: the latest)."""
        if not daily:
            return
        day = day or max(k[0] for k in daily)
        for (d, segment, kind, name), (value, _n) in daily.items():
            if d == day and kind == "psi":
                self.set_psi(name, segment, value)

    def record_governance(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Events of ``detectors.drift``: a breaker opening or reset sets
        ``riskmon_circuit_breaker_open{model}``; a drift event of a model's score sets its PSI."""
        for ev in events:
            kind = ev.get("event")
            if kind == "breaker_open":
                self.set_circuit_breaker(str(ev["model"]), True)
            elif kind == "breaker_reset":
                self.set_circuit_breaker(str(ev["model"]), False)
            elif ev.get("kind") == "psi" and "segment" in ev and "value" in ev:
                self.set_psi(str(ev["name"]), str(ev["segment"]), float(ev["value"]))

    def set_lag(self, stage: str, lags: Mapping[str, int]) -> None:
        for topic, lag in lags.items():
            self.consumer_lag.labels(stage, topic).set(lag)

    # -- serving --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the HTTP servers started by :func:`start_metrics_server`."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


def start_metrics_server(
    metrics: RiskmonMetrics, host: str = DEFAULT_METRICS_HOST, port: int = DEFAULT_METRICS_PORT
) -> int:
    """Serve ``metrics.registry`` on ``http://host:port/metrics`` from a daemon thread;
    ``port`` 0 picks a free port. Returns the bound port; :meth:`RiskmonMetrics.close` stops it.
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    metrics._servers.append(server)
    return int(server.server_port)


def serve_from_settings(metrics: RiskmonMetrics, settings: Any) -> int | None:
    """Start the endpoint as configured (``metrics_enabled``, ``metrics_host``,
    ``metrics_port``); a port in use is logged, not fatal: the pipeline matters more than its
    metrics. Returns the bound port or None."""
    if not getattr(settings, "metrics_enabled", True):
        return None
    host = getattr(settings, "metrics_host", DEFAULT_METRICS_HOST)
    port = getattr(settings, "metrics_port", DEFAULT_METRICS_PORT)
    try:
        bound = start_metrics_server(metrics, host, port)
    except OSError as exc:
        log.warning("metrics endpoint not started on %s:%s: %s", host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound


# ---------------------------------------------------------------------------------------------
# Consumer lag
# ---------------------------------------------------------------------------------------------


def lag_by_topic(ends: Mapping[Any, int | None], positions: Mapping[Any, int | None]) -> dict[str, int]:
    """Sum ``end - position`` per topic over partitions (``TopicPartition``-like keys with
    ``topic``); partitions whose end or position is unknown are left out.

    >>> from collections import namedtuple
    >>> TP = namedtuple("TP", "topic partition")
    >>> lag_by_topic({TP("a", 0): 10, TP("a", 1): 5, TP("b", 0): None}, {TP("a", 0): 7, TP("a", 1): 5, TP("b", 0): 0})
    {'a': 3}
    """
    lags: dict[str, int] = {}
    for tp, end in ends.items():
        pos = positions.get(tp)
        if end is None or end < 0 or pos is None:
            continue
        lags[tp.topic] = lags.get(tp.topic, 0) + max(0, end - pos)
    return lags


def _throttled(metrics: RiskmonMetrics, stage: str, min_interval: float) -> bool:
    now = time.monotonic()
    if now - metrics._lag_at.get(stage, -1e18) < min_interval:
        return True
    metrics._lag_at[stage] = now
    return False


async def update_aiokafka_lag(
    metrics: RiskmonMetrics, consumer: Any, stage: str = "ingest", min_interval: float = 1.0
) -> dict[str, int] | None:
    """Set ``riskmon_consumer_lag_records{stage,topic}`` from an ``AIOKafkaConsumer``: for each
    assigned partition, its end (the last stable offset under read_committed, else the
    highwater, both as of the last fetch) minus its position. At most once per
    ``min_interval`` seconds; cheap enough to call after every poll."""
    if _throttled(metrics, stage, min_interval):
        return None
    ends: dict[Any, int | None] = {}
    positions: dict[Any, int | None] = {}
    try:
        for tp in consumer.assignment():
            end = None
            if getattr(consumer, "_isolation_level", "") == "read_committed":
                end = consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = consumer.highwater(tp)
            ends[tp] = end
            positions[tp] = await asyncio.wait_for(consumer.position(tp), 1.0)
    except Exception as exc:  # rebalance in progress, consumer stopping: try next time
        log.debug("lag not measured: %r", exc)
        return None
    lags = lag_by_topic(ends, positions)
    metrics.set_lag(stage, lags)
    return lags


async def update_faust_lag(
    metrics: RiskmonMetrics, app: Any, topic: str = "riskmon.internal.events", stage: str = "worker"
) -> dict[str, int] | None:
    """Set the worker's lag on ``topic``: per owned partition, the highwater of Faust's consumer
    minus the next offset to process (the last offset :meth:`RiskmonMetrics.worker_step` saw,
    plus one; the consumer's position before the first record). Run it from an ``app.timer``.
    Under read_uncommitted a transaction's commit marker takes an offset, so an idle worker can
    show a lag of 1 per partition."""
    ends: dict[Any, int | None] = {}
    positions: dict[Any, int | None] = {}
    try:
        consumer = app.consumer
        owned = [tp for tp in consumer.assignment() if tp.topic == topic]
        for tp in owned:
            ends[tp] = consumer.highwater(tp)
            last = metrics.processed_offset(topic, tp.partition)
            positions[tp] = last + 1 if last is not None else await consumer.position(tp)
    except Exception as exc:
        log.debug("lag not measured: %r", exc)
        return None
    metrics.partitions_assigned(len(owned))
    lags = lag_by_topic(ends, positions) or {topic: 0}
    metrics.set_lag(stage, lags)
    return lags


# ---------------------------------------------------------------------------------------------
# Faust's own sensor
# ---------------------------------------------------------------------------------------------


def attach_faust_sensor(app: Any, registry: CollectorRegistry, name_prefix: str = "riskmon_faust") -> Any:
    """Record Faust's own statistics (messages in/out, table operations, rebalances, commit
    latency, offsets per topic-partition) into ``registry`` with ``name_prefix``.

    The same as ``faust.sensors.prometheus.setup_prometheus_sensors`` minus the ``/metrics``
    page on Faust's web server: riskmon serves the registry from its own metrics port, so the
    worker runs with Faust's web server off. Faust reports these latencies in milliseconds
    (``*_latency``, ``*_ms``). Returns the monitor."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, name_prefix))
    app.monitor = monitor
    return monitor
