"""What the real-broker stream tests compare against: a simulated population's vitality from the
in-process backtest (the same core without Kafka)."""

from __future__ import annotations

from pathlib import Path

from streams.backtest import run_backtest
from streams.registry import FirmRegistry


def backtest_vitality(population: Path, firms: int, days: int) -> dict:
    """Vitality by (firm_id, day) of ``population``; every firm must have closed its days."""
    result = run_backtest(
        [population / "events.jsonl.gz"], registry=FirmRegistry.from_file(population / "truth.jsonl")
    )
    assert len(result.vitality) >= firms * (days - 3)
    return result.vitality
