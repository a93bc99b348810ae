"""Contract tests: one valid example per event type, and invalid ones with the exact error."""

from __future__ import annotations

import copy

import orjson
import pytest

from riskmon.events import (
    MAX_EVENT_BYTES,
    ElectricityReading,
    EventError,
    Invoice,
    LogisticsEvent,
    Payment,
    dump_event,
    json_schemas,
    parse_event,
    validate_event,
)

ENVELOPE = {
    "firm_id": "F000123",
    "event_time": "2026-01-05T10:00:00+08:00",
    "delivered_at": "2026-01-05T10:20:00+08:00",
    "schema_version": 1,
}
VALID = {
    "electricity": {
        **ENVELOPE, "event_id": "F000123-M1-1", "type": "electricity", "source": "sgcc-ah",
        "meter_id": "F000123-M1", "interval_minutes": 60, "kwh": 42.5,
    },
    "invoice": {
        **ENVELOPE, "event_id": "F000123-inv-1", "type": "invoice", "source": "golden-tax",
        "invoice_id": "3400231130-0001", "kind": "issued", "counterparty_id": "91340100MA2N",
        "amount": 10000.0, "tax": 1300.0,
    },
    "logistics": {
        **ENVELOPE, "event_id": "F000123-log-1", "type": "logistics", "source": "sf-express",
        "order_id": "SF1234567", "status": "created", "value": 5000.0, "weight_kg": 120.0,
    },
    "payment": {
        **ENVELOPE, "event_id": "F000123-pay-1", "type": "payment", "source": "unionpay",
        "txn_id": "T99", "amount": 88.0, "direction": "in", "channel": "pos", "refund": False,
    },
}
MODELS = {
    "electricity": ElectricityReading,
    "invoice": Invoice,
    "logistics": LogisticsEvent,
    "payment": Payment,
}


@pytest.mark.parametrize("etype", sorted(VALID))
def test_valid_example_round_trips(etype: str) -> None:
    event = parse_event(orjson.dumps(VALID[etype]))
    assert isinstance(event, MODELS[etype])
    assert event.firm_id == "F000123"
    assert event.delivery_time.isoformat() == "2026-01-05T10:20:00+08:00"
    again = parse_event(dump_event(event))
    assert again == event


def test_delivered_at_is_optional_and_defaults_to_event_time() -> None:
    obj = dict(VALID["payment"])
    del obj["delivered_at"]
    event = validate_event(obj)
    assert event.delivered_at is None
    assert event.delivery_time == event.event_time


def _with(etype: str, **changes: object) -> dict:
    obj = copy.deepcopy(VALID[etype])
    for key, value in changes.items():
        if value is _DROP:
            del obj[key]
        else:
            obj[key] = value
    return obj


_DROP = object()

INVALID = [
    ("electricity", {"kwh": -1.0}, "kwh: Input should be greater than or equal to 0"),
    ("electricity", {"kwh": "12.5"}, "kwh: Input should be a valid number"),
    ("electricity", {"kwh": float("inf")}, "kwh: Input should be a finite number"),
    ("electricity", {"interval_minutes": 0}, "interval_minutes: Input should be greater than or equal to 1"),
    ("electricity", {"meter_id": _DROP}, "meter_id: Field required"),
    ("invoice", {"tax": 2000000.0}, "tax: larger than amount"),
    ("invoice", {"kind": "refunded"}, "kind: Input should be 'issued', 'cancelled' or 'received'"),
    ("invoice", {"amount": 2e12}, "amount: Input should be less than or equal to 1000000000000"),
    ("logistics", {"status": "lost"}, "status: Input should be 'created', 'picked_up' or 'delivered'"),
    ("payment", {"amount": 0}, "amount: Input should be greater than 0"),
    ("payment", {"direction": "sideways"}, "direction: Input should be 'in' or 'out'"),
    ("payment", {"refund": "yes"}, "refund: Input should be a valid boolean"),
    ("payment", {"firm_id": ""}, "firm_id: String should have at least 1 character"),
    ("payment", {"firm_id": None}, "firm_id: Input should be a valid string"),
    ("payment", {"firm_id": "F 1"}, "firm_id: String should match pattern '^[A-Za-z0-9_.\\-]+$'"),
    ("payment", {"event_time": "2026-01-05T10:00:00"}, "event_time: Input should have timezone info"),
    ("payment", {"event_time": 1767578400}, "event_time: Value error, expected an ISO 8601 string, got int"),
    ("payment", {"event_time": "soon"}, "event_time: Value error, not an ISO 8601 timestamp: 'soon'"),
    ("payment", {"delivered_at": "2026-01-05T09:00:00+08:00"}, "delivered_at: earlier than event_time"),
    ("payment", {"schema_version": 2}, "schema_version: Input should be 1"),
    ("payment", {"surprise": 1}, "surprise: Extra inputs are not permitted"),
]


@pytest.mark.parametrize("etype,changes,message", INVALID)
def test_invalid_event_names_field_and_problem(etype: str, changes: dict, message: str) -> None:
    with pytest.raises(EventError) as info:
        validate_event(_with(etype, **changes))
    text = str(info.value).replace("Value error, ", "")
    assert text == message.replace("Value error, ", "")
    assert info.value.field == message.split(":")[0]


def test_unknown_type_and_non_objects() -> None:
    with pytest.raises(EventError, match=r"^type: must be one of electricity, invoice, logistics, payment, got 'gas'$"):
        validate_event(_with("payment", type="gas"))
    with pytest.raises(EventError, match=r"^event: expected a JSON object, got list$"):
        validate_event([1, 2])
    with pytest.raises(EventError, match=r"^event: not valid JSON"):
        parse_event(b'{"event_id": "x"')
    with pytest.raises(EventError, match=r"^event: not valid JSON"):
        parse_event(b"\xff\xfe\x00garbage")
    with pytest.raises(EventError, match=r"exceeds the 16384-byte limit"):
        parse_event(b" " * (MAX_EVENT_BYTES + 1))


def test_json_schemas_cover_every_type_and_field() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"electricity", "invoice", "logistics", "payment", "event"}
    for etype, obj in VALID.items():
        props = schemas[etype]["properties"]
        assert set(obj) <= set(props), f"{etype}: example has fields the schema lacks"
        for name, prop in props.items():
            assert prop.get("description"), f"{etype}.{name} has no description"


def test_docs_describe_every_field_and_carry_a_valid_example_per_type() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    for etype, model in MODELS.items():
        for name in model.model_fields:
            assert f"| `{name}` |" in doc, f"docs/events.md does not describe {etype}.{name}"
    examples = [line for line in doc.splitlines() if line.startswith('{"event_id"')]
    assert sorted(parse_event(line).type for line in examples) == sorted(MODELS)
