"""Every message the policy emits matches the published contract, and the published JSON
Schemas in docs/schemas are the ones the code generates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from alerts.policy import AlertPolicy
from alerts.schema import OUTPUT_MODELS, Split, output_schemas
from detectors.engine import Engine
from producers.simulator import simulate
from streams.backtest import run_backtest
from streams.registry import FirmRegistry

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def actions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("sim")
    simulate(20, 70, seed=2, out_dir=out, start=date(2026, 3, 1),
             shares={"shutdown": 0.3, "temporary_outage": 0.3, "healthy": 0.4, "seasonal_dip": 0.0,
                     "gradual_decline": 0.0, "data_outage": 0.0, "growth": 0.0})
    result = run_backtest([out / "events.jsonl.gz"], registry=FirmRegistry.from_file(out / "truth.jsonl"),
                          detector=Engine(), policy=AlertPolicy())
    return result.actions


def test_every_emitted_message_validates(actions: dict[str, list[dict]]) -> None:
    assert actions["alerts"] and actions["credit"] and actions["riskshare"] and actions["watchlist"]
    for kind, messages in actions.items():
        for m in messages:
            OUTPUT_MODELS[kind].model_validate(m)


def test_a_split_that_does_not_sum_to_100_is_rejected() -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        Split(fiscal=50, bank=30, guarantor=30)


def test_published_schemas_are_current() -> None:
    for topic, schema in output_schemas().items():
        path = DOCS / "schemas" / f"{topic}.schema.json"
        assert path.exists(), f"run: riskmon schema --outputs --out docs/schemas ({path} missing)"
        assert orjson.loads(path.read_bytes()) == schema, f"{path} is stale: riskmon schema --outputs --out docs/schemas"
