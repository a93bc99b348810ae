"""In-process backtest: the stream worker's exact core over an event file, without Kafka.

Reads a file in arrival order, validates each line as the ingest stage does, puts watermarks
where replay would (:class:`riskmon.wire.WatermarkSchedule`) and feeds one
:class:`~streams.pipeline.PartitionPipeline`. Because the event-time rules depend only on each
stream's own order, the vitality updates equal the Kafka path's, firm-day for firm-day.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson

from riskmon.events import EventError
from riskmon.fastcheck import check_line
from riskmon.settings import Settings
from riskmon.wire import WATERMARK_INTERVAL_S, WatermarkSchedule
from streams.eventtime import STREAMS
from streams.pipeline import Emitted, PartitionPipeline, PipelineCounts
from streams.registry import FirmRegistry


@dataclass
class BacktestResult:
    vitality: dict[tuple[str, str], dict]
    counts: PipelineCounts
    events_read: int = 0
    invalid: int = 0
    seconds: float = 0.0
    late: list[bytes] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)
    #: alert policy output by kind (alerts, credit, riskshare, watchlist), in emission order
    actions: dict[str, list[dict]] = field(default_factory=dict)
    #: governance decisions, one per period (with their drift and breaker events)
    decisions: list[dict] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else 0.0


def resolve_input(path: Path) -> tuple[list[Path], Path | None]:
    """A simulation directory (events.jsonl.gz + truth.jsonl) or an event file."""
    if path.is_dir():
        events = path / "events.jsonl.gz"
        if not events.exists():
            events = path / "events.jsonl"
        if not events.exists():
            raise FileNotFoundError(f"{path} holds no events.jsonl(.gz)")
        registry = path / "firms.jsonl"
        if not registry.exists():
            registry = path / "truth.jsonl"
        return [events], registry if registry.exists() else None
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return [path], None


def run_backtest(
    paths: Iterable[Path],
    settings: Settings | None = None,
    registry: FirmRegistry | None = None,
    watermark_interval_s: float = WATERMARK_INTERVAL_S,
    score_fn: Any = None,
    detector: Any = None,
    policy: Any = None,
    governance: Any = None,
) -> BacktestResult:
    """``governance`` (a :class:`detectors.governance.GovernanceConfig`, with ``detector``): the
    governance stage runs in process, fed by the pipeline's reports, as the stream's governance
    agent is."""
    from producers.eventfile import iter_lines

    settings = settings or Settings()
    pipeline = PartitionPipeline(
        n_sources=1,
        registry=registry,
        lateness_s=settings.lateness_s(),
        tz=settings.timezone,
        score_fn=score_fn,
        detector=detector,
        policy=policy,
        governance=governance,
    )
    gov = None
    if governance is not None:
        from detectors.governance import Governance

        gov = Governance(governance, partitions=1)
    schedule = WatermarkSchedule(watermark_interval_s)
    out = Emitted()
    pending: list[dict[str, Any]] = []
    read = invalid = 0
    reported = 0
    started = time.perf_counter()

    def govern() -> None:
        nonlocal reported
        while gov is not None and reported < len(out.governance):
            for raw in out.governance[reported:]:
                report = orjson.loads(raw)
                gov.add_rows(report["rows"])
                if "mark" in report:
                    gov.mark(report["p"], report["mark"])
            reported = len(out.governance)
            for decision in gov.advance():
                pipeline.on_decision(decision, out)

    def advance(boundary: float) -> None:
        if pending:
            pipeline.on_events(pending, 0, -1, out)
            pending.clear()
        for stream in STREAMS:
            pipeline.on_watermark(stream, 0, boundary, out)
        govern()

    loads = orjson.loads
    for path in paths:
        for _, raw in iter_lines(Path(path)):
            read += 1
            try:
                arrival = check_line(raw)[2]
            except EventError:
                invalid += 1
                continue
            boundary = schedule.observe(arrival)
            if boundary is not None:
                advance(boundary)
            pending.append(loads(raw))  # the dict the core reads
    final = schedule.final()
    if final is not None:
        advance(final)
    elapsed = time.perf_counter() - started
    from streams.pipeline import collect_vitality

    return BacktestResult(
        vitality=collect_vitality(out.vitality),
        counts=pipeline.counts,
        events_read=read,
        invalid=invalid,
        seconds=elapsed,
        late=[v for _, v in out.late],
        detections=[orjson.loads(v) for _, v in out.detections],
        actions={
            kind: [orjson.loads(v) for _, v in getattr(out, kind)]
            for kind in ("alerts", "credit", "riskshare", "watchlist")
        },
        decisions=list(gov.decisions) if gov is not None else [],
    )


def write_vitality(result: BacktestResult, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as fh:
        for key in sorted(result.vitality):
            fh.write(orjson.dumps(result.vitality[key]) + b"\n")


ACTION_FILES: dict[str, str] = {
    "alerts": "alerts.jsonl",
    "credit": "actions_credit.jsonl",
    "riskshare": "actions_riskshare.jsonl",
    "watchlist": "watchlist.jsonl",
}


def write_actions(result: BacktestResult, out_dir: Path) -> None:
    """Alerts and actions as JSON lines, one file per topic, in emission order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, name in ACTION_FILES.items():
        with (out_dir / name).open("wb") as fh:
            for msg in result.actions.get(kind, ()):
                fh.write(orjson.dumps(msg) + b"\n")


def format_actions_summary(actions: dict[str, list[dict]]) -> str:
    """Counts of alerts (by transition and level) and actions, for the command line."""
    alerts = actions.get("alerts", [])
    peak: dict[str, str] = {}
    levels = ("info", "watch", "warning", "critical")
    for a in alerts:
        if a["event"] != "resolved" and levels.index(a["level"]) >= levels.index(peak.get(a["alert_id"], "info")):
            peak[a["alert_id"]] = a["level"]
    by_peak: dict[str, int] = {}
    for lvl in peak.values():
        by_peak[lvl] = by_peak.get(lvl, 0) + 1
    transitions: dict[str, int] = {}
    for a in alerts:
        transitions[a["event"]] = transitions.get(a["event"], 0) + 1
    credit: dict[str, int] = {}
    for c in actions.get("credit", []):
        credit[c["action"]] = credit.get(c["action"], 0) + 1
    share: dict[str, int] = {}
    for r in actions.get("riskshare", []):
        share[r["reason"]["code"]] = share.get(r["reason"]["code"], 0) + 1
    watch = sum(1 for w in actions.get("watchlist", []) if w["event"] == "entered")

    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items())) or "none"

    return "\n".join([
        f"alerts           {len(peak):>12,}  by highest level: {fmt(by_peak)}; messages: {fmt(transitions)}",
        f"credit actions   {len(actions.get('credit', [])):>12,}  {fmt(credit)}",
        f"risk-share       {len(actions.get('riskshare', [])):>12,}  {fmt(share)}",
        f"watch-list entries {watch:>10,}",
    ])


def main(args: Any) -> int:
    """``riskmon backtest PATH``: vitality of every firm-day of a file, without Kafka."""
    path = Path(args.path)
    try:
        files, registry_path = resolve_input(path)
    except FileNotFoundError as exc:
        print(f"riskmon backtest: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    registry_file = args.firms or registry_path or settings.firms_file
    registry = FirmRegistry.from_file(registry_file)
    from streams.pipeline import default_detector, default_governance, default_policy

    # A simulation directory with ground truth is scored by detectors.evaluate, which runs the
    # same detection engine over the vitality written here (so the engine runs once).
    evaluate_truth = path.is_dir() and (path / "truth.jsonl").exists() and settings.detection_enabled
    with_alerts = settings.detection_enabled and settings.alerts_enabled
    detector = default_detector(settings) if settings.detection_enabled and (with_alerts or not evaluate_truth) else None
    policy = default_policy(settings) if with_alerts else None
    governance = default_governance(settings) if detector is not None else None
    result = run_backtest(files, settings, registry, detector=detector, policy=policy, governance=governance)
    out_path = Path(args.out) if args.out else (path if path.is_dir() else path.parent) / "vitality.jsonl"
    write_vitality(result, out_path)
    if policy is not None:
        write_actions(result, out_path.parent)
    c = result.counts
    bands: dict[str, int] = {}
    for rec in result.vitality.values():
        bands[rec.get("band", "?")] = bands.get(rec.get("band", "?"), 0) + 1
    print(f"events read      {result.events_read:>12,}  ({result.invalid:,} invalid)")
    print(f"accepted         {sum(c.accepted.values()):>12,}  " + ", ".join(f"{k} {v:,}" for k, v in sorted(c.accepted.items())))
    print(f"duplicates       {c.duplicates:>12,}")
    print(f"late             {c.late:>12,}")
    print(f"firm-days closed {c.days_closed:>12,}  bands: " + ", ".join(f"{k} {v:,}" for k, v in sorted(bands.items())))
    if detector is not None:
        levels: dict[str, int] = {}
        for det in result.detections:
            levels[det.get("level", "?")] = levels.get(det.get("level", "?"), 0) + 1
        print(f"detections       {len(result.detections):>12,}  " + ", ".join(f"{k} {v:,}" for k, v in sorted(levels.items())))
    if policy is not None:
        print(format_actions_summary(result.actions))
    print(f"seconds          {result.seconds:>12.2f}  ({result.events_per_s:,.0f} events/s)")
    print(f"vitality written to {out_path}")
    if policy is not None:
        print(f"alerts and actions written to {out_path.parent}/{{" + ",".join(ACTION_FILES.values()) + "}")
    if evaluate_truth:
        from detectors.evaluate import evaluate, format_report

        print()
        config = orjson.loads(settings.detection_config_file.read_bytes()) if settings.detection_config_file else None
        # reuses the vitality.jsonl just written when it is there
        report = evaluate(path, config, governance=settings.governance_config())
        if getattr(args, "json", False):
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
        else:
            print(format_report(report))
    return 0
