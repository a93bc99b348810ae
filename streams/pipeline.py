"""The per-partition vitality pipeline, shared by the Faust worker and the in-process backtest.

It takes decoded internal records (envelopes of validated events and watermarks, see
:mod:`streams.ingest`), applies them to a :class:`~streams.eventtime.PartitionCore` and returns
the records to publish: vitality updates (``riskmon.vitality``) and late events
(``riskmon.events.late``). No I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol

import orjson

from detectors.governance import govern_day, period_of
from streams.daily import as_dict
from streams.eventtime import ClosedDay, FirmState, PartitionCore, ScoreFn, day_iso, day_ordinal, parse_time
from streams.registry import FirmRegistry

if TYPE_CHECKING:
    from alerts.policy import AlertPolicy
    from detectors.governance import GovernanceConfig

#: governance rows per report record (about 400 bytes each)
_ROWS_PER_REPORT = 2000


def default_score_fn() -> ScoreFn:
    from streams.vitality import score_day

    return lambda state, industry, day, agg: score_day(state, industry, day, agg)


def default_detector(settings: Any = None) -> "DayDetector":
    """The detection engine (reference rules and per-firm models) run on every closed day, with
    the configuration in ``settings.detection_config_file`` if one is set."""
    from detectors.engine import Engine, EngineConfig

    path = getattr(settings, "detection_config_file", None)
    if path is None:
        return Engine()
    return Engine(EngineConfig.from_dict(orjson.loads(Path(path).read_bytes())))


def default_policy(settings: Any = None) -> "AlertPolicy":
    """The alert policy run after the detection engine (breaker state from the settings)."""
    from alerts.policy import AlertPolicy

    return AlertPolicy(settings.policy_config() if settings is not None else None)


def default_governance(settings: Any = None) -> "GovernanceConfig | None":
    """The governance configuration (drift, circuit breaker, retrain action), or None when
    governance is disabled (``RISKMON_GOVERNANCE_ENABLED=false``)."""
    if settings is None:
        from detectors.governance import GovernanceConfig

        return GovernanceConfig()
    return settings.governance_config()


def vitality_record(closed: ClosedDay, industry: str) -> dict[str, Any]:
    """The public vitality update of one closed firm-day (value on ``riskmon.vitality``)."""
    return {
        "firm_id": closed.firm_id,
        "day": day_iso(closed.day),
        "industry": industry,
        **closed.vitality,
        "aggregate": as_dict(closed.aggregate),
    }


@dataclass
class PipelineCounts:
    accepted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late: int = 0
    skipped_replayed: int = 0  # events already reflected in recovered state
    days_closed: int = 0
    detections: int = 0
    alerts: int = 0
    credit_actions: int = 0
    riskshare_changes: int = 0


class DayDetector(Protocol):
    """Runs on every closed firm-day, in day order per firm, with that firm's own state only (so
    results do not depend on partitioning)."""

    def on_day(self, state: dict | None, record: dict[str, Any]) -> tuple[list[dict], dict]: ...


@dataclass
class Emitted:
    vitality: list[tuple[str, bytes]] = field(default_factory=list)  # (firm_id, JSON)
    late: list[tuple[str, bytes]] = field(default_factory=list)
    detections: list[tuple[str, bytes]] = field(default_factory=list)
    alerts: list[tuple[str, bytes]] = field(default_factory=list)
    credit: list[tuple[str, bytes]] = field(default_factory=list)
    riskshare: list[tuple[str, bytes]] = field(default_factory=list)
    watchlist: list[tuple[str, bytes]] = field(default_factory=list)
    #: governance reports (JSON: {"p": partition, "rows": [...], "mark": day}), in order
    governance: list[bytes] = field(default_factory=list)


class PartitionPipeline:
    """One partition's state machine. ``offset`` arguments let a restarted worker skip input
    that its recovered state already reflects (each firm's state remembers the input offset it
    was checkpointed at)."""

    def __init__(
        self,
        n_sources: int,
        registry: FirmRegistry | None = None,
        lateness_s: dict[str, float] | None = None,
        tz: str = "Asia/Shanghai",
        score_fn: ScoreFn | None = None,
        detector: DayDetector | None = None,
        policy: "AlertPolicy | None" = None,
        governance: "GovernanceConfig | None" = None,
        partition: int = 0,
    ) -> None:
        if policy is not None and detector is None:
            raise ValueError("the alert policy needs the detection engine (detector)")
        if governance is not None and detector is None:
            raise ValueError("governance needs the detection engine (detector)")
        self.registry = registry or FirmRegistry()
        self.detector = detector
        self.policy = policy
        # With governance, closed days wait for their period's decision (detectors.governance).
        self.governance = governance
        self.partition = partition
        self.decisions: dict[int, dict[str, Any]] = {}  # period -> decision
        self._held: set[str] = set()  # firms with held days
        self._first_held_day: int | None = None  # earliest held day (ordinal) of the partition
        self.marked: int | None = None  # last mark reported (day ordinal)
        self.core = PartitionCore(
            score_fn=score_fn or default_score_fn(),
            industry_of=self.registry.industry_of,
            lateness_s=lateness_s,
            tz=tz,
            n_sources=n_sources,
        )
        self.counts = PipelineCounts()
        self._watermark_times: dict[str, float] = {}  # each watermark comes once per source
        # Highest input offset that some restored firm's state already reflects; input above it
        # needs no per-firm check.
        self._restored_through = -1

    def restore(self, meta: dict[str, Any] | None, firms: list[FirmState]) -> None:
        """Rebuild the partition from checkpointed state (see :mod:`streams.app`)."""
        self.core.restore(meta, firms)
        self._restored_through = max((f.checkpoint_offset for f in firms), default=-1)
        self.marked = meta.get("g") if meta else None
        self._held = {f.firm_id for f in firms if f.held}
        self._recompute_first_held()

    def meta_json(self) -> dict[str, Any]:
        """The partition's own checkpointed state (watermarks, horizon, last governance mark)."""
        return {**self.core.meta_json(), "g": self.marked}

    def on_record(self, obj: dict[str, Any], offset: int = -1, out: Emitted | None = None) -> Emitted:
        """Apply one decoded internal record: its segments of events and watermarks, in order."""
        out = out if out is not None else Emitted()
        for segment in obj["segments"]:
            events = segment.get("events")
            if events is not None:
                self.on_events(events, segment["src"], offset, out)
            else:
                stamp = segment["watermark"]
                epoch_s = self._watermark_times.get(stamp)
                if epoch_s is None:
                    if len(self._watermark_times) > 1000:
                        self._watermark_times.clear()
                    epoch_s = self._watermark_times[stamp] = parse_time(stamp)
                self.on_watermark(segment["stream"], segment["src"], epoch_s, out)
        decision = obj.get("decision")
        if decision is not None:
            self.on_decision(decision, out)
        return out

    def on_events(
        self, events: Iterable[dict[str, Any]], source: int, offset: int, out: Emitted
    ) -> None:
        core = self.core
        firms = core.firms
        counts = self.counts
        accepted = counts.accepted
        recheck = 0 <= offset <= self._restored_through
        for ev in events:
            if recheck:
                firm = firms.get(ev["firm_id"])
                if firm is not None and firm.checkpoint_offset >= offset:
                    counts.skipped_replayed += 1
                    continue
            result = core.on_event(ev, source)
            if result == "accepted":
                t = ev["type"]
                accepted[t] = accepted.get(t, 0) + 1
            elif result == "duplicate":
                counts.duplicates += 1
            else:
                counts.late += 1
                out.late.append(
                    (ev["firm_id"], orjson.dumps({"reason": "late", "source_partition": source, "event": ev}))
                )

    def on_watermark(self, stream: str, source: int, epoch_s: float, out: Emitted) -> None:
        horizon = self.core.horizon
        closed = self.core.on_watermark(stream, source, epoch_s)
        if closed:
            self._closed(closed, out)
        if self.governance is not None and self.core.horizon != horizon:
            self.release(out)  # the partition's mark may move (also with no firm here)

    def on_decision(self, decision: dict[str, Any], out: Emitted) -> None:
        """A governance decision (:class:`detectors.governance.Governance`); releases the held
        days it covers. Decisions may come in any order and more than once."""
        period = int(decision["period"])
        known = self.decisions.get(period)
        if known is None:
            self.decisions[period] = decision
        elif known != decision:
            raise ValueError(f"conflicting governance decisions for period {period}")
        if self.governance is not None:
            self.release_if_decided(out)

    def _first_held_decided(self) -> bool:
        first = self._first_held_day
        return first is not None and period_of(first, self.governance.breaker.period_days) in self.decisions

    def release_if_decided(self, out: Emitted) -> None:
        """Release held days if a decision for the oldest held period has arrived by another way
        than this partition's input (the worker's decision reader fills :attr:`decisions`)."""
        if self._first_held_decided():
            self.release(out)

    def _closed(self, closed: list[ClosedDay], out: Emitted) -> None:
        industry_of = self.registry.industry_of
        detector = self.detector
        firms = self.core.firms
        held = self.governance is not None
        for c in closed:
            record = vitality_record(c, industry_of(c.firm_id))
            out.vitality.append((c.firm_id, orjson.dumps(record)))
            if held:
                firms[c.firm_id].held.append(record)
                self._held.add(c.firm_id)
            elif detector is not None:
                firm = firms[c.firm_id]
                detections, firm.detector_state = detector.on_day(firm.detector_state, record)
                self._detected(firm, record, detections, out)
        if held and closed:
            self._recompute_first_held()
        self.counts.days_closed += len(closed)

    def _detected(self, firm: FirmState, record: dict[str, Any], detections: list[dict], out: Emitted) -> None:
        for det in detections:
            out.detections.append((firm.firm_id, orjson.dumps(det)))
        self.counts.detections += len(detections)
        if self.policy is not None:
            acts, firm.alert_state = self.policy.on_day(firm.alert_state, record, detections)
            if acts["alerts"] or acts["credit"] or acts["riskshare"] or acts["watchlist"]:
                self._acts(firm.firm_id, acts, out)

    def _recompute_first_held(self) -> None:
        firms = self.core.firms
        self._first_held_day = min((day_ordinal(firms[f].held[0]["day"]) for f in self._held), default=None)

    def release(self, out: Emitted) -> None:
        """Run detection and the alert policy on the held days whose decision is known, in day
        order per firm, and report rows and the partition's mark to governance."""
        gcfg = self.governance
        assert gcfg is not None and self.detector is not None
        rows: list[dict[str, Any]] = []
        if self._first_held_decided():
            pd = gcfg.breaker.period_days
            firms = self.core.firms
            decisions = self.decisions
            for firm_id in sorted(self._held):
                firm = firms[firm_id]
                n = 0
                for record in firm.held:
                    decision = decisions.get(period_of(day_ordinal(record["day"]), pd))
                    if decision is None:
                        break
                    res, final, row = govern_day(self.detector, firm.detector_state, record, decision, gcfg)
                    firm.detector_state = res.state
                    self._detected(firm, record, final, out)
                    if row is not None:
                        rows.append(row)
                    n += 1
                if n:
                    firm.held = firm.held[n:]
                    self.core.dirty.add(firm_id)
                    if not firm.held:
                        self._held.discard(firm_id)
            self._recompute_first_held()
        horizon = self.core.horizon
        if horizon is None:
            return
        mark = horizon if self._first_held_day is None else min(horizon, self._first_held_day - 1)
        if rows or self.marked is None or mark > self.marked:
            # Reports stay below ~1 MB per record (Kafka's default message size limit).
            for i in range(0, max(len(rows), 1), _ROWS_PER_REPORT):
                chunk = rows[i:i + _ROWS_PER_REPORT]
                last = i + _ROWS_PER_REPORT >= len(rows)
                report: dict[str, Any] = {"p": self.partition, "rows": chunk}
                if last:
                    report["mark"] = day_iso(mark)
                out.governance.append(orjson.dumps(report))
            if self.marked is None or mark > self.marked:
                self.marked = mark


    def _acts(self, firm_id: str, acts: dict[str, list[dict]], out: Emitted) -> None:
        key = firm_id
        for msg in acts["alerts"]:
            out.alerts.append((key, orjson.dumps(msg)))
        for msg in acts["credit"]:
            out.credit.append((key, orjson.dumps(msg)))
        for msg in acts["riskshare"]:
            out.riskshare.append((key, orjson.dumps(msg)))
        for msg in acts["watchlist"]:
            out.watchlist.append((key, orjson.dumps(msg)))
        self.counts.alerts += len(acts["alerts"])
        self.counts.credit_actions += len(acts["credit"])
        self.counts.riskshare_changes += len(acts["riskshare"])


def collect_vitality(records: Iterable[tuple[str, bytes]]) -> dict[tuple[str, str], dict]:
    """Index vitality updates by (firm_id, day); a re-emitted identical update counts once and a
    conflicting one is an error (outputs must be deterministic)."""
    result: dict[tuple[str, str], dict] = {}
    for _, value in records:
        rec = orjson.loads(value)
        key = (rec["firm_id"], rec["day"])
        if key in result and result[key] != rec:
            raise ValueError(f"conflicting vitality updates for {key}")
        result[key] = rec
    return result

