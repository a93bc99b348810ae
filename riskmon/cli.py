"""The ``riskmon`` command. Sub-commands import their implementation lazily so that
``riskmon --help`` and light commands start fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable


def _cmd_schema(args: argparse.Namespace) -> int:
    import orjson

    from riskmon.events import json_schemas

    schemas = json_schemas()
    if args.outputs:
        from alerts.schema import output_schemas

        schemas = output_schemas()
        args.type = "all"
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            (out / f"{name}.schema.json").write_bytes(
                orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
            )
        print(f"wrote {len(schemas)} schemas to {out}")
    else:
        wanted = schemas if args.type == "all" else {args.type: schemas[args.type]}
        sys.stdout.write(
            orjson.dumps(wanted, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from producers.eventfile import EventFileError, iter_lines
    from riskmon.events import EventError, parse_event

    bad = total = 0
    try:
        for path in args.files:
            for lineno, raw in iter_lines(Path(path)):
                total += 1
                try:
                    parse_event(raw)
                except EventError as exc:
                    bad += 1
                    if bad <= args.show:
                        print(f"{path}:{lineno}: {exc}", file=sys.stderr)
    except EventFileError as exc:
        print(f"riskmon validate: {exc}", file=sys.stderr)
        return 2
    print(f"{total} events, {bad} invalid")
    return 1 if bad else 0


def _lazy(target: str) -> Callable[[argparse.Namespace], int]:
    """A sub-command implemented by ``"package.module:function"``, imported only when run."""
    module_name, function = target.split(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module_name), function)(args)

    return run


_BENCHMARKS = {
    "simulate": _lazy("producers.simulator:bench_main"),
    "stream": _lazy("streams.bench:main"),
    "crash": _lazy("streams.resilience:crash_main"),
    "soak": _lazy("streams.resilience:soak_main"),
}


def _cmd_bench(args: argparse.Namespace) -> int:
    return _BENCHMARKS[args.what](args)


def _metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=int, help="port of /metrics (RISKMON_METRICS_PORT, default 9464; 0 = a free port)")
    p.add_argument("--metrics-host", help="address of /metrics (RISKMON_METRICS_HOST, default 127.0.0.1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskmon",
        description="Real-time risk monitor for small-business lending. Kafka settings come from "
        "RISKMON_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("schema", help="print or export the JSON Schemas of the event contract (or outputs)")
    p.add_argument("--type", default="all", choices=["all", "event", "electricity", "invoice", "logistics", "payment"])
    p.add_argument("--out", help="write one <type>.schema.json per type into this directory")
    p.add_argument("--outputs", action="store_true",
                   help="the schemas of the alert and action topics instead (see docs/alerts.md)")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("validate", help="check event files against the contract")
    p.add_argument("files", nargs="+")
    p.add_argument("--show", type=int, default=20, help="print at most this many errors")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("simulate", help="simulate a population of firms and write an event file")
    p.add_argument("--firms", type=int, default=500)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2025-11-01", help="first simulated day (YYYY-MM-DD)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="SCENARIO=FRACTION",
        help="override a scenario's share of firms, e.g. --share shutdown=0.1 (repeatable)",
    )
    p.set_defaults(func=_lazy("producers.simulator:main"))

    p = sub.add_parser("replay", help="replay event files onto the Kafka event topics")
    p.add_argument("files", nargs="+")
    p.add_argument("--bootstrap", help="host:port[,host:port]; default RISKMON_BOOTSTRAP_SERVERS")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="event-time seconds played per wall second")
    pace.add_argument("--max", action="store_true", help="as fast as possible (the default)")
    p.add_argument("--batch-size", type=int, default=200, help="events per batch envelope; 1 sends plain records")
    p.add_argument("--linger-ms", type=float, default=20.0, help="flush a partial batch after this long")
    p.add_argument("--partitions", type=int, help="partitions of topics created (default RISKMON_PARTITIONS or 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, help="parser processes (default: auto; 0 parses in-process)")
    p.set_defaults(func=_lazy("producers.replay:main"))

    p = sub.add_parser("ingest", help="run the ingest stage: event topics -> validated envelopes")
    p.add_argument("--bootstrap", help="host:port[,host:port]; default RISKMON_BOOTSTRAP_SERVERS")
    p.add_argument("--instance-id", default="0", help="stable id: static membership, transactional id")
    _metrics_args(p)
    p.set_defaults(func=_lazy("streams.ingest:main"))

    p = sub.add_parser("worker", help="run a Faust stream worker computing vitality")
    p.add_argument("--bootstrap", help="host:port[,host:port]; default RISKMON_BOOTSTRAP_SERVERS")
    p.add_argument("--worker-id", help="stable id for static group membership (RISKMON_WORKER_ID)")
    p.add_argument("--firms-file", help="firm register, JSON lines with firm_id and industry")
    _metrics_args(p)
    p.set_defaults(func=_lazy("streams.app:main"))

    p = sub.add_parser("governance", help="model governance: list decisions, re-enable a paused model")
    p.add_argument("--bootstrap", help="host:port[,host:port]; default RISKMON_BOOTSTRAP_SERVERS")
    gsub = p.add_subparsers(dest="action", required=True)
    g = gsub.add_parser("decisions", help="print the governance decisions published so far (one per period)")
    g.add_argument("--timeout", type=float, default=10.0, help="stop after this many seconds idle (default 10)")
    g = gsub.add_parser("reenable", help="re-enable a model paused by its circuit breaker (from the next period)")
    g.add_argument("model", help="model name, e.g. firm_profile")
    p.set_defaults(func=_lazy("streams.governance_cli:main"))

    p = sub.add_parser("report", help="plots and an HTML page from a vitality file (and alerts)")
    p.add_argument("vitality", help="vitality updates, JSON lines (the demo's or backtest's vitality.jsonl)")
    p.add_argument("--alerts", help="alerts or detections, JSON lines (firm_id, day, name or rule, level)")
    p.add_argument("--firm", action="append", help="plot this firm (repeatable; default: picked)")
    p.add_argument("--out", help="output directory (default: report/ beside the vitality file)")
    p.set_defaults(func=_lazy("riskmon.report:main"))

    p = sub.add_parser(
        "backtest",
        help="run the stream core over an event file without Kafka; on a simulation directory, "
        "also score the detections against its truth.jsonl",
    )
    p.add_argument("path", help="a simulation directory or an event file")
    p.add_argument("--firms", help="firm register (default: the simulation's truth.jsonl)")
    p.add_argument("--out", help="vitality output (default: vitality.jsonl beside the input)")
    p.add_argument("--json", action="store_true", help="print the detection report as JSON")
    p.set_defaults(func=_lazy("streams.backtest:main"))

    p = sub.add_parser("nab", help="score an anomaly detector on the NAB corpus (Numenta Anomaly Benchmark)")
    p.add_argument("path", help="NAB root directory (with data/ and labels/)")
    p.add_argument("--detector", default="default", help="registered detector: default, windowed_gaussian, hst (default: default)")
    p.add_argument("--profile", dest="profiles", action="append", choices=["standard", "reward_low_FP_rate", "reward_low_FN_rate"], help="score only this profile (repeatable; default: all three)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes, files in parallel (default 2)")
    p.add_argument("--seed", type=int, default=None, help="seed passed to the detector")
    p.add_argument("--per-file", action="store_true", help="also print each file's raw standard score")
    p.set_defaults(func=_lazy("detectors.nab:main"))

    p = sub.add_parser("tail", help="print alerts, credit actions, risk-share changes or watch-list events")
    from alerts.tail import add_arguments as _tail_arguments

    _tail_arguments(p)
    p.set_defaults(func=_lazy("alerts.tail:main"))

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--data-dir", help="data directory (default: a fresh temporary one)")
    p.set_defaults(func=_lazy("riskmon.broker:main"))

    p = sub.add_parser("demo", help="the end-to-end demo on the embedded broker")
    p.add_argument("--firms", type=int, default=300)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="out/demo")
    p.set_defaults(func=_lazy("riskmon.demo:main"))

    p = sub.add_parser("bench", help="benchmarks that print figures")
    p.add_argument("what", choices=["simulate", "stream", "crash", "soak"],
                   help="simulate: generation speed; stream: per-stage throughput and latency; crash: "
                   "repeated worker SIGKILLs vs a clean run; soak: sustained load with memory over time")
    p.add_argument("--firms", type=int, default=2000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--path", help="stream: a simulation directory to use instead of simulating")
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[200, 1],
        help="stream: replay batch sizes to compare (1 = single-event records)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--runs", type=int, default=3)
    from streams.resilience import add_arguments as _resilience_arguments

    _resilience_arguments(p)
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
