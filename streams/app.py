"""The Faust worker: per-firm vitality in event time, state in changelog-backed tables.

Thin adapter around :class:`streams.pipeline.PartitionPipeline`. It reads the internal topic that
the ingest stage fills with envelopes (hundreds of events per Kafka record, so Faust's per-record
cost is amortised) and watermarks.

Recovery design — at-least-once input, exact state, idempotent output:

* Records are consumed with ``noack``: an input offset is acknowledged (and so may be committed)
  only after the state that reflects it has been written to the changelog tables.
* A checkpoint of partition *p* at input offset *k* writes every firm changed since the previous
  checkpoint (``firmstate`` table, key firm_id, each stamped with *k*), then the partition's
  watermarks (``partmeta`` table, key *p*, stamped with *k*), then acks the records up to *k*.
  Faust flushes the producer before it commits offsets, so a committed offset never runs ahead of
  the state. Checkpoints happen whenever firm-days close (once per event-time day) and at least
  every ``checkpoint_records`` records.
* After a crash or rebalance the new owner rebuilds the partition from the tables and resumes at
  the committed offset. Records at or below the partition's checkpoint are skipped; an event is
  also skipped for a firm whose own state is stamped at or beyond the record's offset (a
  checkpoint interrupted half-way). Everything else is reprocessed, deterministically, so the state
  ends exactly as in a clean run. Vitality updates emitted between the last checkpoint and the
  crash are emitted again, identical: consumers deduplicate by (firm_id, day).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from riskmon.kafka_tuning import apply_faust_patches
from riskmon.metrics import RiskmonMetrics
from riskmon.settings import Settings
from riskmon.topics import GOVERNANCE_INPUT_TOPIC, GOVERNANCE_TOPIC, INTERNAL_TOPIC
from riskmon.wire import ACTION_TOPICS, DETECTIONS_TOPIC, LATE_TOPIC, VITALITY_TOPIC, partition_for
from streams.eventtime import FirmState, day_ordinal
from streams.pipeline import Emitted, PartitionPipeline, default_detector, default_policy
from streams.registry import FirmRegistry

log = logging.getLogger("riskmon.worker")


@dataclass
class PartitionRuntime:
    pipeline: PartitionPipeline
    checkpoint_offset: int = -1
    pending: list[Any] = field(default_factory=list)  # unacked faust events


def _read_committed_worker_consumer() -> None:
    """Make Faust's worker consumer read only committed records.

    The ingest stage writes the internal topic in Kafka transactions; Faust asks for
    ``read_committed`` only in its own exactly-once mode, so records of an aborted ingest
    transaction (a crash between send and commit) would otherwise be processed. aiokafka reads
    the isolation level when the consumer starts, so setting it on the freshly created consumer is
    enough. Idempotent."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_riskmon_read_committed", False):
        return

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._isolation_level = "read_committed"
        return consumer

    create._riskmon_read_committed = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    kwargs = settings.kafka_client_kwargs()
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    mechanism = settings.sasl_mechanism
    assert settings.sasl_password is not None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        ssl_context=kwargs.get("ssl_context"),
        mechanism=mechanism,
    )


def create_app(
    settings: Settings, registry: FirmRegistry | None = None, metrics: RiskmonMetrics | None = None
) -> faust.App:
    if not settings.bootstrap_servers:
        raise ValueError("the stream worker needs RISKMON_BOOTSTRAP_SERVERS")
    registry = registry if registry is not None else FirmRegistry.from_file(settings.firms_file)
    _read_committed_worker_consumer()
    apply_faust_patches()
    partitions = settings.partitions
    brokers = [f"kafka://{b.strip()}" for b in settings.bootstrap_servers.split(",")]
    app = faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(settings.state_dir or tempfile.mkdtemp(prefix="riskmon-worker-")),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=0,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        consumer_group_instance_id=f"{settings.app_id}-worker-{settings.worker_id}",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_max_request_size=16 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_linger_ms=5,
        producer_compression_type=settings.producer_compression(),
        stream_recovery_delay=0.0,
        stream_buffer_maxsize=settings.stream_buffer_records,
        # Records are acknowledged only at checkpoints; a rebalance must not wait for them (it
        # would wait forever). Unacknowledged records are reprocessed by the next owner.
        stream_wait_empty=False,
    )
    if metrics is not None:
        from riskmon.metrics import attach_faust_sensor

        attach_faust_sensor(app, metrics.registry)
    app.riskmon_metrics = metrics  # type: ignore[attr-defined]
    internal = app.topic(
        INTERNAL_TOPIC, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    vitality_topic = app.topic(
        VITALITY_TOPIC, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    late_topic = app.topic(LATE_TOPIC, key_serializer="raw", value_serializer="raw", partitions=partitions)
    detections_topic = app.topic(
        DETECTIONS_TOPIC, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    # JSON keys and values: Faust's changelog recovery decodes them as JSON whatever the schema.
    # Writes go to the partition of the record being processed (no key hashing), which is the
    # firm's partition, so each partition's state lives in the same changelog partition.
    as_json = faust.Schema(key_serializer="json", value_serializer="json")
    firm_table = app.Table("firmstate", partitions=partitions, schema=as_json)
    meta_table = app.Table("partmeta", partitions=partitions, schema=as_json)
    governance_input = app.topic(
        GOVERNANCE_INPUT_TOPIC, key_serializer="raw", value_serializer="raw", partitions=1
    )
    action_topics = {
        kind: app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions)
        for kind, name in ACTION_TOPICS.items()
    }
    detector = default_detector(settings) if settings.detection_enabled else None
    policy = default_policy(settings) if detector is not None and settings.alerts_enabled else None
    gconfig = settings.governance_config() if detector is not None else None
    operator_paused = set(policy.config.breaker_open) if policy is not None else set()
    if metrics is not None and detector is not None:
        # The breaker state this worker acts on: operators' (settings) and governance decisions'.
        models = [m.name for m in detector.config.models if m.enabled]
        metrics.declare(models=models)
        for model in operator_paused:
            metrics.set_circuit_breaker(model, True)
    runtimes: dict[int, PartitionRuntime] = {}
    app.riskmon_runtimes = runtimes  # type: ignore[attr-defined]
    # Governance decisions by period, shared by this worker's partitions: filled by the decision
    # reader below and by the decisions that come with tick records on the internal topic.
    decisions: dict[int, dict[str, Any]] = {}
    app.riskmon_decisions = decisions  # type: ignore[attr-defined]

    def load_partition(p: int) -> PartitionRuntime:
        pipeline = PartitionPipeline(
            n_sources=partitions,
            registry=registry,
            lateness_s=settings.lateness_s(),
            tz=settings.timezone,
            detector=detector,
            policy=policy,
            governance=gconfig,
            partition=p,
        )
        pipeline.decisions = decisions
        meta = meta_table.get(str(p))
        firms = [
            FirmState.from_json(firm_id, value)
            for firm_id, value in firm_table.items()
            if partition_for(firm_id, partitions) == p
        ]
        pipeline.restore(meta, firms)
        if metrics is not None and policy is not None:
            metrics.restore_frozen(
                (f.firm_id for f in firms if f.alert_state and f.alert_state["c"]["s"] == "frozen"), p
            )
        rt = PartitionRuntime(pipeline, checkpoint_offset=meta["k"] if meta else -1)
        # The epoch time lets `riskmon bench stream` tell start-up from processing.
        log.info(
            "partition %d: restored %d firms at offset %d (t=%.3f)",
            p, len(firms), rt.checkpoint_offset, time.time(),
        )
        return rt

    def checkpoint(p: int, rt: PartitionRuntime, offset: int) -> None:
        if metrics is None:
            _checkpoint(p, rt, offset)
        else:
            with metrics.checkpoint_timer():
                _checkpoint(p, rt, offset)

    def _checkpoint(p: int, rt: PartitionRuntime, offset: int) -> None:
        core = rt.pipeline.core
        for firm_id in sorted(core.dirty):
            firm = core.firms[firm_id]
            firm.checkpoint_offset = offset
            firm_table[firm_id] = firm.to_json()
        core.dirty.clear()
        meta_table[str(p)] = {**rt.pipeline.meta_json(), "k": offset}
        rt.checkpoint_offset = offset
        for ev in rt.pending:
            ev.ack()
        rt.pending.clear()

    # Partitions of the internal topic this worker owns. A record of a partition revoked while
    # the agent held it (Faust does not wait for agents: stream_wait_empty=False) is left to
    # the new owner instead of being processed, checkpointed and published here as well.
    owned: set[int] = set()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        owned.update(tp.partition for tp in assigned if tp.topic == INTERNAL_TOPIC)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == INTERNAL_TOPIC:
                owned.discard(tp.partition)
                runtimes.pop(tp.partition, None)
        if metrics is not None:
            metrics.partitions_revoked(tp.partition for tp in revoked if tp.topic == INTERNAL_TOPIC)

    @app.agent(internal, name="riskmon-vitality")
    async def vitality(stream: Any) -> None:
        async for event in stream.noack().events():
            message = event.message
            p, offset = message.partition, message.offset
            if p not in owned:
                continue
            rt = runtimes.get(p)
            if rt is None:
                rt = runtimes[p] = load_partition(p)
            if offset <= rt.checkpoint_offset:
                event.ack()
                continue
            rt.pending.append(event)
            out = Emitted()
            rt.pipeline.on_record(orjson.loads(event.value), offset, out)
            if gconfig is not None:
                rt.pipeline.release_if_decided(out)
            for firm_id, value in out.late:
                await late_topic.send(key=firm_id.encode(), value=value)
            for firm_id, value in out.vitality:
                await vitality_topic.send(key=firm_id.encode(), value=value)
            for firm_id, value in out.detections:
                await detections_topic.send(key=firm_id.encode(), value=value)
            for kind, topic in action_topics.items():
                for firm_id, value in getattr(out, kind):
                    await topic.send(key=firm_id.encode(), value=value)
            for report in out.governance:
                await governance_input.send(key=str(p).encode(), value=report, partition=0)
            if metrics is not None:
                metrics.worker_step(p, offset, rt.pipeline, out, message.timestamp)
            if out.vitality or out.governance or len(rt.pending) >= settings.checkpoint_records:
                checkpoint(p, rt, offset)

    if gconfig is not None:
        _governance_stage(app, settings, gconfig, decisions, internal, governance_input, metrics,
                          operator_paused)

    if metrics is not None:
        from riskmon.metrics import update_faust_lag

        @app.timer(interval=5.0)
        async def _consumer_lag() -> None:
            await update_faust_lag(metrics, app, INTERNAL_TOPIC)

    return app


def _governance_stage(app: faust.App, settings: Settings, gconfig: Any, decisions: dict[int, dict[str, Any]],
                      internal: Any, governance_input: Any, metrics: RiskmonMetrics | None,
                      operator_paused: set[str]) -> None:
    """The governance agent (one instance in the group: its topic has one partition) and, in
    every worker, the reader of its decisions (see :mod:`detectors.governance`).

    Recovery: the agent's compact state at its last decision is in the ``governance`` table; an
    input record is acknowledged only once its rows and mark belong to decided periods, so after a
    restart the rows and marks since the last decision are read again (rows are deduplicated by
    firm and day) and every decision comes out as before. Decisions are
    published on ``riskmon.governance`` (key = period) and, for liveness, as a tick record into
    every partition of the internal topic: a partition that holds days learns of the decision
    even when no other input follows."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from detectors.governance import Governance

    as_json = faust.Schema(key_serializer="json", value_serializer="json")
    gov_table = app.Table("governance", partitions=1, schema=as_json)
    decisions_topic = app.topic(GOVERNANCE_TOPIC, key_serializer="raw", value_serializer="raw", partitions=1)
    holder: dict[str, Any] = {}

    def note_decision(decision: dict[str, Any]) -> None:
        period = int(decision["period"])
        known = decisions.get(period)
        if known is not None and known != decision:
            log.error("governance: conflicting decisions for period %d; keeping the first", period)
            return
        decisions[period] = decision
        if metrics is not None:
            latest = decisions[max(decisions)]
            paused = set(latest["paused"]) | operator_paused
            for model in paused:
                metrics.set_circuit_breaker(model, True)
            for ev in latest["events"]:
                if ev.get("event") == "breaker_reset" and ev["model"] not in paused:
                    metrics.set_circuit_breaker(ev["model"], False)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        if any(tp.topic == GOVERNANCE_INPUT_TOPIC for tp in revoked):
            holder.clear()  # the next owner (maybe this worker again) restores from the table

    @app.agent(governance_input, name="riskmon-governance")
    async def governance(stream: Any) -> None:
        async for event in stream.noack().events():
            gov: Governance | None = holder.get("gov")
            if gov is None:
                gov = holder["gov"] = Governance(gconfig, partitions=settings.partitions)
                holder["unacked"] = []  # (latest row day, event), in input order
                saved = gov_table.get("state")
                if saved is not None:
                    gov.load_state(saved)
                    log.info("governance: restored at period %s", gov.next_period)
            unacked: list[tuple[int, Any]] = holder["unacked"]
            msg = orjson.loads(event.value)
            latest = -1
            if "reenable" in msg:
                gov.request_reenable(str(msg["reenable"]))
                log.warning("governance: re-enable of %s requested (from the next decision)", msg["reenable"])
            else:
                rows = msg.get("rows") or ()
                gov.add_rows(rows)
                if rows:
                    latest = max(day_ordinal(r["d"]) for r in rows)
                if "mark" in msg:
                    gov.mark(int(msg["p"]), msg["mark"])
                    latest = max(latest, day_ordinal(msg["mark"]))
            unacked.append((latest, event))
            new = gov.advance()
            for decision in new:
                value = orjson.dumps(decision)
                await decisions_topic.send(key=str(decision["period"]).encode(), value=value, partition=0)
                tick = orjson.dumps({"segments": [], "decision": decision})
                for q in range(settings.partitions):
                    await internal.send(key=b"governance", value=tick, partition=q)
                log.info("governance: period from %s decided: paused %s, resets %s, %d events",
                         decision["from"], decision["paused"] or "none", decision["resets"] or "none",
                         len(decision["events"]))
            if metrics is not None and gov.daily:
                metrics.record_drift(gov.daily)
                gov.daily.clear()
            snap = gov.snapshot()
            if snap is not None and ("reenable" in msg or new):
                gov_table["state"] = snap
            # A report is acknowledged once the state saved above covers its rows and mark; the
            # others are read again after a restart.
            done = snap["processed_through"] if snap is not None else None
            while unacked and (unacked[0][0] < 0 or (done is not None and unacked[0][0] <= done)):
                unacked.pop(0)[1].ack()

    @app.task
    async def read_decisions() -> None:
        consumer = AIOKafkaConsumer(
            **settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=1000,
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(GOVERNANCE_TOPIC, 0)])
            async for record in consumer:
                note_decision(orjson.loads(record.value))
        finally:
            await consumer.stop()

    app.riskmon_note_decision = note_decision  # type: ignore[attr-defined]


def quiet_logging(level: int = logging.WARNING) -> None:
    """Faust's worker leaves the root logger at DEBUG; keep riskmon's own INFO lines only."""
    logging.getLogger().setLevel(level)
    for name in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(name).setLevel(level)
    own_log_handler()


def own_log_handler() -> None:
    """riskmon's INFO lines go straight to the process's stderr: the Faust worker reconfigures
    logging when it starts and filters below WARNING."""
    ours = logging.getLogger("riskmon")
    ours.setLevel(logging.INFO)
    if not ours.handlers:
        handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False


def main(args: Any) -> int:
    """``riskmon worker``: run one stream worker until SIGINT/SIGTERM."""
    from riskmon.topics import ensure_pipeline_topics
    import asyncio

    overrides: dict[str, Any] = {}
    if args.bootstrap:
        overrides["bootstrap_servers"] = args.bootstrap
    if args.worker_id:
        overrides["worker_id"] = args.worker_id
    if args.firms_file:
        overrides["firms_file"] = args.firms_file
    if getattr(args, "metrics_port", None) is not None:
        overrides["metrics_port"] = args.metrics_port
    if getattr(args, "metrics_host", None):
        overrides["metrics_host"] = args.metrics_host
    settings = Settings().model_copy(update=overrides)
    if not settings.bootstrap_servers:
        raise SystemExit("riskmon worker: pass --bootstrap or set RISKMON_BOOTSTRAP_SERVERS")
    asyncio.run(ensure_pipeline_topics(settings))
    own_log_handler()
    from riskmon.metrics import serve_from_settings

    metrics = RiskmonMetrics(component="worker", tz=settings.timezone)
    serve_from_settings(metrics, settings)  # logs "metrics on http://HOST:PORT/metrics"
    app = create_app(settings, metrics=metrics)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)

    @app.task
    async def _quiet() -> None:
        quiet_logging()

    worker.execute_from_commandline()
    return 0
