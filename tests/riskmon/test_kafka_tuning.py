"""The Faust/aiokafka patches keep the libraries' results and only remove work."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from intervaltree import IntervalTree

from riskmon import kafka_tuning


class _FakeConsumer(SimpleNamespace):
    def __init__(self, committed: int | None) -> None:
        super().__init__(_gap=defaultdict(IntervalTree), _committed_offset=defaultdict(lambda: committed))


def _covered(tree: IntervalTree) -> set[int]:
    return {o for iv in tree for o in range(iv.begin, iv.end)}


def test_linear_gap_bookkeeping_covers_the_same_offsets_as_faust() -> None:
    from faust.transport.consumer import Consumer

    kafka_tuning.apply_faust_patches()
    patched = Consumer._add_gap
    original = patched._riskmon_original
    gaps = [(3, 3), (5, 6), (7, 7), (10, 12), (11, 15), (2, 4), (20, 19), (30, 31)]
    for committed in (None, 4):
        ours, faust = _FakeConsumer(committed), _FakeConsumer(committed)
        for a, b in gaps:
            asyncio.run(patched(ours, "tp", a, b))
            asyncio.run(original(faust, "tp", a, b))
        assert _covered(ours._gap["tp"]) == _covered(faust._gap["tp"])
        assert _covered(ours._gap["tp"])  # the sequence does leave gaps


def test_empty_fetches_back_off_and_fetches_with_data_do_not(monkeypatch: Any) -> None:
    from aiokafka.consumer.fetcher import Fetcher

    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    results = iter([False, True])

    async def fake_fetch(self: Any, assignment: Any, node_id: Any, request: Any) -> bool:
        return next(results)

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", fake_fetch)
    monkeypatch.setattr(kafka_tuning, "_sleep", fake_sleep, raising=False)
    kafka_tuning._empty_fetch_backoff()
    assert Fetcher._proc_fetch_request is not fake_fetch
    assert asyncio.run(Fetcher._proc_fetch_request(None, None, 0, None)) is False
    assert asyncio.run(Fetcher._proc_fetch_request(None, None, 0, None)) is True
    assert slept == [kafka_tuning.EMPTY_FETCH_BACKOFF_S]


def test_every_client_built_from_the_settings_gets_the_fetch_backoff(monkeypatch: Any) -> None:
    """`riskmon tail`, `ingest`, `demo` and `bench` run plain aiokafka consumers that sit idle for
    long spells; all of them take their options from ``Settings.kafka_client_kwargs``, which
    patches the fetcher first."""
    from aiokafka.consumer.fetcher import Fetcher

    from riskmon.settings import Settings

    async def unpatched(self: Any, assignment: Any, node_id: Any, request: Any) -> bool:
        return True

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", unpatched)
    Settings(bootstrap_servers="127.0.0.1:9").kafka_client_kwargs()
    assert getattr(Fetcher._proc_fetch_request, "_riskmon_backoff", False)
