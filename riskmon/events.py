"""The event contract: four event types sharing one envelope.

Every event on riskmon's input topics is one JSON object (orjson on the wire). The models below are
the single source of truth for the contract; ``docs/events.md`` documents them and ``riskmon schema``
exports their JSON Schemas.

>>> ev = parse_event(b'{"event_id":"e1","firm_id":"F00001","type":"payment",'
...     b'"event_time":"2026-01-05T10:00:00+08:00","source":"pos-gw","schema_version":1,'
...     b'"txn_id":"t1","amount":120.5,"direction":"in","channel":"pos","refund":false}')
>>> ev.type, ev.amount, ev.direction
('payment', 120.5, 'in')
>>> parse_event(b'{"event_id":"e1","firm_id":"","type":"payment"}')
Traceback (most recent call last):
...
riskmon.events.EventError: firm_id: String should have at least 1 character; ...
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

SCHEMA_VERSION = 1

#: Amounts above this (CNY) are rejected as absurd: larger than any small-business transaction.
MAX_AMOUNT_CNY = 1e12
#: The largest energy one meter interval may report (kWh); a small firm uses far less.
MAX_KWH_PER_INTERVAL = 1e6
#: A serialized event larger than this (bytes) is rejected before parsing.
MAX_EVENT_BYTES = 16 * 1024
#: ``event_time`` and ``delivered_at`` must lie in this range (inclusive). Earlier or later
#: timestamps are unit or clock errors, and one of them could make the stream processors close
#: (and score) decades of empty firm-days or dates that do not exist.
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)
MIN_EVENT_EPOCH = MIN_EVENT_TIME.timestamp()
MAX_EVENT_EPOCH = MAX_EVENT_TIME.timestamp()

EventType = Literal["electricity", "invoice", "logistics", "payment"]
EVENT_TYPES: tuple[str, ...] = ("electricity", "invoice", "logistics", "payment")

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
FirmId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# Numbers and flags are strict: a JSON string such as "12.5" is rejected rather than coerced, so
# the validated JSON object itself can travel downstream unchanged.
Money = Annotated[float, Strict(), Field(ge=0, le=MAX_AMOUNT_CNY, allow_inf_nan=False)]


class EventError(ValueError):
    """An event that breaks the contract. The message names the field and the problem."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _EventBase(BaseModel):
    """Envelope fields common to every event type."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: Identifier = Field(description="Unique id of the event; a re-delivery carries the same id.")
    firm_id: FirmId = Field(description="The borrowing firm the event belongs to; the Kafka key.")
    event_time: AwareDatetime = Field(
        description="When the event happened at its source (ISO 8601 with a UTC offset), "
        "between 2000-01-01 and 2100-01-01 UTC."
    )
    delivered_at: AwareDatetime | None = Field(
        default=None,
        description="When the source delivered the event to riskmon (ISO 8601 with offset). "
        "Absent means delivered at event_time. Never earlier than event_time.",
    )
    source: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The system that produced the event, e.g. a grid operator or payment gateway."
    )
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version.")

    @field_validator("event_time", "delivered_at", mode="before")
    @classmethod
    def _iso_string(cls, value: Any) -> Any:
        # Only ISO 8601 text, parsed exactly as the stream processors parse it; no epoch numbers.
        if value is None:
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}") from None

    @field_validator("event_time", "delivered_at", mode="after")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_EVENT_TIME <= value <= MAX_EVENT_TIME:
            raise ValueError(
                f"outside {MIN_EVENT_TIME.isoformat()} .. {MAX_EVENT_TIME.isoformat()}"
            )
        return value

    @field_validator("delivered_at", mode="after")
    @classmethod
    def _delivery_not_before_event(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        event_time = info.data.get("event_time")
        if value is not None and event_time is not None and value < event_time:
            raise ValueError("earlier than event_time")
        return value

    @property
    def delivery_time(self) -> datetime:
        """The arrival clock: delivered_at, or event_time when the source gave none."""
        return self.delivered_at if self.delivered_at is not None else self.event_time


class ElectricityReading(_EventBase):
    """One grid-meter interval reading; event_time is the start of the interval."""

    type: Literal["electricity"] = Field(default="electricity", description="Event type tag; selects the topic.")
    meter_id: Identifier = Field(description="Meter that took the reading; a firm may have several.")
    interval_minutes: Annotated[int, Strict(), Field(ge=1, le=1440)] = Field(
        description="Length of the metered interval in minutes (15, 30 or 60 in practice)."
    )
    kwh: Annotated[float, Strict(), Field(ge=0, le=MAX_KWH_PER_INTERVAL, allow_inf_nan=False)] = Field(
        description="Energy consumed during the interval, kWh."
    )

    @property
    def interval_end(self) -> datetime:
        return self.event_time + timedelta(minutes=self.interval_minutes)


class Invoice(_EventBase):
    """A VAT e-invoice issued or received by the firm, or the cancellation of one it issued."""

    type: Literal["invoice"] = Field(default="invoice", description="Event type tag; selects the topic.")
    invoice_id: Identifier = Field(description="Invoice number; a cancellation repeats the original's.")
    kind: Literal["issued", "cancelled", "received"] = Field(
        description="issued: a sale by the firm; received: a purchase; cancelled: voids an issued one."
    )
    counterparty_id: Identifier = Field(description="Taxpayer id of the other party.")
    amount: Money = Field(description="Amount before tax, CNY.")
    tax: Money = Field(description="VAT amount, CNY; never more than amount.")

    @field_validator("tax", mode="after")
    @classmethod
    def _tax_within_amount(cls, value: float, info: ValidationInfo) -> float:
        amount = info.data.get("amount")
        if amount is not None and value > amount:
            raise ValueError("larger than amount")
        return value


class LogisticsEvent(_EventBase):
    """A shipping order or waybill scan: a new order, a pick-up or a delivery."""

    type: Literal["logistics"] = Field(default="logistics", description="Event type tag; selects the topic.")
    order_id: Identifier = Field(description="Shipping order or waybill id; the same across its scans.")
    status: Literal["created", "picked_up", "delivered"] = Field(
        description="created: a new shipping order; picked_up / delivered: later scans of it."
    )
    value: Money = Field(description="Declared value of the goods, CNY.")
    weight_kg: Annotated[float, Strict(), Field(ge=0, le=1e6, allow_inf_nan=False)] = Field(
        description="Gross weight, kg."
    )


class Payment(_EventBase):
    """A payment flow on the firm's accounts: POS/acquiring, transfers, online and QR payments."""

    type: Literal["payment"] = Field(default="payment", description="Event type tag; selects the topic.")
    txn_id: Identifier = Field(description="Transaction id at the payment processor.")
    amount: Annotated[float, Strict(), Field(gt=0, le=MAX_AMOUNT_CNY, allow_inf_nan=False)] = Field(
        description="Amount, CNY; always positive, the direction says which way."
    )
    direction: Literal["in", "out"] = Field(description="in: money received; out: money paid.")
    channel: Literal["pos", "transfer", "online", "qr"] = Field(description="Payment channel.")
    refund: Annotated[bool, Strict()] = Field(default=False, description="True when the flow reverses an earlier sale.")


Event = Annotated[
    Union[ElectricityReading, Invoice, LogisticsEvent, Payment], Field(discriminator="type")
]
MODELS: dict[str, type[_EventBase]] = {
    "electricity": ElectricityReading,
    "invoice": Invoice,
    "logistics": LogisticsEvent,
    "payment": Payment,
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)


def _describe(exc: ValidationError) -> EventError:
    """Turn pydantic's report into one line naming each failing field and its problem."""
    parts = []
    first_field = None
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # The discriminated union puts the type tag first in the location; drop it.
        if loc and loc[0] in MODELS:
            loc = loc[1:]
        field = ".".join(loc) or "event"
        first_field = first_field or field
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{field}: {msg}")
    return EventError("; ".join(parts), field=first_field)


def validate_event(obj: Any) -> ElectricityReading | Invoice | LogisticsEvent | Payment:
    """Validate a decoded JSON object against the contract.

    Raises :class:`EventError` with a message such as ``"kwh: Input should be greater than or
    equal to 0"``.
    """
    if not isinstance(obj, dict):
        raise EventError(f"event: expected a JSON object, got {type(obj).__name__}", field="event")
    etype = obj.get("type")
    if not isinstance(etype, str) or etype not in MODELS:
        raise EventError(
            f"type: must be one of {', '.join(EVENT_TYPES)}, got {etype!r}", field="type"
        )
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise _describe(exc) from None


def decode_json(raw: bytes | str) -> Any:
    """Decode one JSON document, enforcing the size limit; errors are :class:`EventError`."""
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"event: {len(raw)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit", "event")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"event: not valid JSON ({exc})", field="event") from None


def parse_event(raw: bytes | str) -> ElectricityReading | Invoice | LogisticsEvent | Payment:
    """Decode and validate one serialized event."""
    return validate_event(decode_json(raw))


def dump_event(event: _EventBase) -> bytes:
    """Serialize an event to its wire form (orjson, no whitespace, unset optional fields omitted)."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each event type, keyed by type, plus the union as ``event``."""
    schemas = {name: model.model_json_schema() for name, model in MODELS.items()}
    schemas["event"] = _ADAPTER.json_schema()
    return schemas
