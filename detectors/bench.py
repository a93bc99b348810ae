"""Benchmark and output digest of the detection engine (:mod:`detectors.engine`).

    python -m detectors.bench VITALITY_JSONL [--runs 5] [--firms N] [--compare DIR]

``VITALITY_JSONL`` holds one vitality record per firm-day (``riskmon backtest SIM_DIR`` writes
``SIM_DIR/vitality.jsonl``). Each firm's records run through :meth:`Engine.on_day` in day order
with the state threaded per firm, the way the stream worker drives it, in two modes:

* ``plain``: the state object returned by one day is passed to the next;
* ``roundtrip``: the state goes through ``orjson.loads(orjson.dumps(state))`` after every day,
  as a changelog checkpoint / restore would (the round trip is inside the timing).

Reported: microseconds per firm-day (median of ``--runs`` runs) for each mode, both wall-clock
(``perf_counter``) and CPU time of the process (``process_time``, steadier on a shared machine),
and digests:

* ``digest``: sha256 of every firm-day's detections (in firm, day order) followed by every
  firm's final state, all as orjson bytes (key order included, floats exact);
* ``digest_all``: the same with every firm-day's state too (computed by one extra, untimed run).

The records are loaded before timing and then moved out of the garbage collector's reach
(``gc.freeze``): the collector would otherwise re-scan millions of record objects that a stream
worker never holds at once, and charge that to the engine.

The digests of the two modes must be equal (a state that went through JSON continues exactly).
``--compare DIR`` also loads the engine of ``DIR/detectors`` (e.g. a copy of the package before
a change) in a subprocess with ``DIR`` first on ``sys.path``; the two engines take turns, run by
run, on the same data, so both medians see the same machine load. The output of an
optimisation must not change either digest (exit status 1 if it does).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:
    # Run as a file (``python path/to/bench.py``, how --compare starts the reference): the
    # script's own folder is sys.path[0] and would shadow nothing useful but expose the package's
    # modules as top-level ones; drop it so ``detectors`` comes from PYTHONPATH (the reference).
    import os as _os
    import sys as _sys

    if _sys.path and _os.path.abspath(_sys.path[0]) == _os.path.dirname(_os.path.abspath(__file__)):
        del _sys.path[0]

import argparse
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import orjson

from detectors.engine import Engine

__all__ = ["load_firms", "run_once", "digest", "Bench", "bench"]

Firms = list[list[dict[str, Any]]]


def load_firms(path: str | os.PathLike, max_firms: int | None = None) -> Firms:
    """The records of ``path`` grouped per firm (firms in id order), each firm's in day order."""
    by_firm: dict[str, list[dict[str, Any]]] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                by_firm.setdefault(rec["firm_id"], []).append(rec)
    firms = [sorted(by_firm[f], key=lambda r: r["day"]) for f in sorted(by_firm)]
    return firms[:max_firms] if max_firms else firms


def run_once(engine: Engine, firms: Firms, roundtrip: bool, keep_states: bool = False
             ) -> tuple[tuple[float, float], list[list[dict]], list[dict | None], list[dict]]:
    """One pass over every firm: ``((wall seconds, CPU seconds), detections per firm-day, final
    state per firm, state per firm-day if keep_states)``. Only the engine (and the round trip)
    is timed."""
    on_day = engine.on_day
    loads, dumps = orjson.loads, orjson.dumps
    all_dets: list[list[dict]] = []
    finals: list[dict | None] = []
    states: list[dict] = []
    elapsed = cpu = 0.0
    wall_clock, cpu_clock = time.perf_counter, time.process_time
    for recs in firms:
        st: dict | None = None
        out: list[list[dict]] = []
        t0, c0 = wall_clock(), cpu_clock()
        if roundtrip:
            for rec in recs:
                dets, st = on_day(st, rec)
                st = loads(dumps(st))
                out.append(dets)
                if keep_states:
                    states.append(st)
        else:
            for rec in recs:
                dets, st = on_day(st, rec)
                out.append(dets)
                if keep_states:
                    states.append(st)
        elapsed += wall_clock() - t0
        cpu += cpu_clock() - c0
        all_dets.extend(out)
        finals.append(st)
    return (elapsed, cpu), all_dets, finals, states


def digest(dets: Iterable[list[dict]], finals: Iterable[dict | None], states: Iterable[dict] = ()) -> str:
    """sha256 of the orjson bytes of every detection list, then every state, then every final
    state (one newline-terminated document each)."""
    h = hashlib.sha256()
    for group in (dets, states, finals):
        for obj in group:
            h.update(orjson.dumps(obj))
            h.update(b"\n")
    return h.hexdigest()


class Bench:
    """The firms of one vitality file loaded once, and the engine importable as
    ``detectors.engine``: timed runs one at a time (so that two engines can take turns)."""

    def __init__(self, path: str | os.PathLike, max_firms: int | None = None) -> None:
        self.firms = load_firms(path, max_firms)
        gc.collect()
        gc.freeze()
        self.firm_days = sum(len(f) for f in self.firms)
        self.engine = Engine()
        self.module = sys.modules[Engine.__module__].__file__
        run_once(self.engine, self.firms[: max(1, len(self.firms) // 20)], False)  # warm-up

    def run(self, mode: str) -> dict[str, Any]:
        """One timed pass in ``mode`` ("plain" or "roundtrip"): us per firm-day and digest."""
        (wall, cpu), dets, finals, _ = run_once(self.engine, self.firms, mode == "roundtrip")
        return {"wall": 1e6 * wall / self.firm_days, "cpu": 1e6 * cpu / self.firm_days,
                "digest": digest(dets, finals)}

    def check(self) -> dict[str, Any]:
        """The untimed pass keeping every state: ``digest_all`` and the detection count."""
        _, dets, finals, states = run_once(self.engine, self.firms, False, keep_states=True)
        return {"digest_all": digest(dets, finals, states), "detections": sum(len(d) for d in dets)}


class _Remote:
    """A :class:`Bench` in a subprocess whose ``detectors`` package comes from ``impl_dir``
    (``--serve``: one command per line on stdin, one JSON line back)."""

    def __init__(self, path: str, max_firms: int | None, impl_dir: str) -> None:
        env = dict(os.environ)
        inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        env["PYTHONPATH"] = os.pathsep.join([impl_dir, *inherited])
        cmd = [sys.executable, str(Path(__file__).resolve()), path, "--serve"]
        if max_firms:
            cmd += ["--firms", str(max_firms)]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"reference benchmark exited ({self.proc.wait()})")
        return json.loads(line)

    def call(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait()


def _serve(b: Bench) -> None:
    print(json.dumps({"module": b.module, "firms": len(b.firms), "firm_days": b.firm_days}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        print(json.dumps(b.check() if cmd == "check" else b.run(cmd)), flush=True)


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    digests = {r["digest"] for r in results}
    if len(digests) != 1:
        raise AssertionError(f"runs disagree: {sorted(digests)}")
    return {"us_per_firm_day": statistics.median(r["wall"] for r in results),
            "cpu_us_per_firm_day": statistics.median(r["cpu"] for r in results),
            "us_per_firm_day_runs": [round(r["wall"], 1) for r in results],
            "cpu_us_per_firm_day_runs": [round(r["cpu"], 1) for r in results],
            "digest": digests.pop()}


def bench(path: str | os.PathLike, runs: int = 5, max_firms: int | None = None, compare: str | None = None
          ) -> dict[str, dict[str, Any]]:
    """``{"current": result, "reference": result}`` (the reference only with ``compare``): per
    mode the median us per firm-day of ``runs`` runs and the digest, plus ``digest_all``. With a
    reference, the two engines take turns run by run (same data, same machine load)."""
    remote = _Remote(str(path), max_firms, compare) if compare else None
    try:
        b = Bench(path, max_firms)
        engines: dict[str, Any] = {"current": b.run}
        heads = {"current": {"module": b.module, "firms": len(b.firms), "firm_days": b.firm_days}}
        if remote is not None:
            engines["reference"] = remote.call
            heads["reference"] = remote.info
        out: dict[str, dict[str, Any]] = {name: {**heads[name], "runs": runs} for name in engines}
        for mode in ("plain", "roundtrip"):
            results: dict[str, list] = {name: [] for name in engines}
            for _ in range(runs):
                for name in sorted(engines, reverse=True):  # reference first in each turn
                    results[name].append(engines[name](mode))
            for name in engines:
                out[name][mode] = _summary(results[name])
        out["current"].update(b.check())
        if remote is not None:
            out["reference"].update(remote.call("check"))
        for r in out.values():
            r["digest"] = r["plain"]["digest"]
            r["modes_agree"] = r["plain"]["digest"] == r["roundtrip"]["digest"]
        return out
    finally:
        if remote is not None:
            remote.close()


def _show(label: str, r: dict[str, Any]) -> None:
    print(f"{label}: {r['module']}")
    for mode in ("plain", "roundtrip"):
        m = r[mode]
        print(f"  {mode:9s} {m['us_per_firm_day']:7.1f} us/firm-day wall, {m['cpu_us_per_firm_day']:7.1f} CPU"
              f"  (median of {r['runs']}; runs: wall {m['us_per_firm_day_runs']}, "
              f"CPU {m['cpu_us_per_firm_day_runs']})")
    print(f"  digest     {r['digest']}  (plain and round-trip agree: {r['modes_agree']})")
    print(f"  digest_all {r['digest_all']}")
    print(f"  {r['firms']} firms, {r['firm_days']} firm-days, {r['detections']} detections")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detectors.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("vitality", help="vitality JSONL (riskmon backtest SIM_DIR writes it in SIM_DIR)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per mode (median reported)")
    ap.add_argument("--firms", type=int, default=None, help="only the first N firms (by id)")
    ap.add_argument("--compare", metavar="DIR", default=None,
                    help="also run the engine of DIR/detectors (in a subprocess, taking turns) and compare")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the --compare subprocess
    a = ap.parse_args(argv)
    if a.serve:
        _serve(Bench(a.vitality, a.firms))
        return 0
    out = bench(a.vitality, a.runs, a.firms, a.compare)
    if a.json:
        print(json.dumps(out))
        return 0
    for name in ("reference", "current"):
        if name in out:
            _show(name, out[name])
    cur, ref = out["current"], out.get("reference")
    ok = cur["modes_agree"]
    if ref is not None:
        for mode in ("plain", "roundtrip"):
            wall = ref[mode]["us_per_firm_day"] / cur[mode]["us_per_firm_day"]
            cpu = ref[mode]["cpu_us_per_firm_day"] / cur[mode]["cpu_us_per_firm_day"]
            print(f"speed-up ({mode}): {wall:.2f}x wall, {cpu:.2f}x CPU")
        same = ref["digest"] == cur["digest"] and ref["digest_all"] == cur["digest_all"]
        print("digests identical" if same else "FAIL: digests differ")
        ok = ok and same
    if not cur["modes_agree"]:
        print("FAIL: plain and round-trip runs differ")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
