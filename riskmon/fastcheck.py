"""Fast validation for events in canonical form, with the contract's validator as the fallback.

Parsing with pydantic costs a few microseconds per event; riskmon's producers and the ingest stage
handle hundreds of thousands per second. :func:`fast_check` accepts only events written in the
canonical form riskmon's producers emit, checking every rule of :mod:`riskmon.events` by hand, and
returns ``None`` for anything else so that callers fall back to the contract's own validator,
:func:`riskmon.events.validate_event`. Accept/reject decisions are therefore exactly the
contract's (fuzz-tested in ``tests/producers/test_replay.py``). :func:`fast_line` does the same
on raw JSON bytes, decoding and checking in one step (with msgspec: about half the cost of
``orjson.loads`` followed by :func:`fast_check`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, ClassVar, Literal, Union

import orjson

from riskmon.events import (
    MAX_AMOUNT_CNY,
    MAX_EVENT_BYTES,
    MAX_EVENT_EPOCH,
    MAX_KWH_PER_INTERVAL,
    MIN_EVENT_EPOCH,
    parse_event,
)

# --------------------------------------------------------------------------------------------
# Validation: a fast path for canonical events, the contract's validator for everything else
# --------------------------------------------------------------------------------------------

_ID_OK = re.compile(r"[A-Za-z0-9_.:\-]+").fullmatch
_FIRM_OK = re.compile(r"[A-Za-z0-9_.\-]+").fullmatch
# Fast-path timestamps are limited to the contract's range (``riskmon.events.MIN_EVENT_TIME`` ..
# ``MAX_EVENT_TIME``, inclusive; float precision stays far below 1 µs there).
_TS_MIN, _TS_MAX = MIN_EVENT_EPOCH, MAX_EVENT_EPOCH
_TS_CACHE: dict[str, float] = {}
_TS_CACHE_MAX = 200_000

_BASE_REQ = frozenset({"event_id", "firm_id", "type", "event_time", "source"})
_BASE_OPT = frozenset({"delivered_at", "schema_version"})
_FIELDS = {
    "electricity": ({"meter_id", "interval_minutes", "kwh"}, set()),
    "invoice": ({"invoice_id", "kind", "counterparty_id", "amount", "tax"}, set()),
    "logistics": ({"order_id", "status", "value", "weight_kg"}, set()),
    "payment": ({"txn_id", "amount", "direction", "channel"}, {"refund"}),
}
_REQUIRED = {t: _BASE_REQ | req for t, (req, _) in _FIELDS.items()}
_ALLOWED = {t: _BASE_REQ | _BASE_OPT | req | opt for t, (req, opt) in _FIELDS.items()}
_INVOICE_KINDS = frozenset({"issued", "cancelled", "received"})
_LOGISTICS_STATUS = frozenset({"created", "picked_up", "delivered"})
_DIRECTIONS = frozenset({"in", "out"})
_CHANNELS = frozenset({"pos", "transfer", "online", "qr"})


_HOUR_BASE: dict[str, int] = {}
_SIXTY = {f"{i:02d}": i for i in range(60)}
_fromisoformat = datetime.fromisoformat


def _hour_base(hour: str, tz: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH`` at offset ``tz`` (``Z`` or ``+HH:MM``), validated."""
    key = hour + tz
    base = _HOUR_BASE.get(key)
    if base is not None:
        return base
    if hour[4] != "-" or hour[7] != "-" or hour[10] != "T" or not key.isascii():
        return None
    if tz != "Z" and (tz[0] not in "+-" or tz[3] != ":" or tz[4] not in "012345"):
        return None
    try:
        # checks the digits and the ranges of the date, the hour and the offset
        base = int(_fromisoformat(hour + ":00:00" + tz).timestamp())
    except (ValueError, OverflowError):
        return None
    if len(_HOUR_BASE) >= _TS_CACHE_MAX:
        _HOUR_BASE.clear()
    _HOUR_BASE[key] = base
    return base


def _ts(value: Any) -> float | None:
    """Timestamp of an aware ISO-8601 string in canonical form, or None (then the contract's
    validator decides). Canonical: ``YYYY-MM-DDTHH:MM:SS``, optionally ``.fff`` or ``.ffffff``,
    then ``Z`` or ``+HH:MM`` / ``-HH:MM`` with minutes below 60. The result equals
    ``datetime.fromisoformat(value).timestamp()``."""
    ts = _TS_CACHE.get(value)
    if ts is not None:
        return ts
    if type(value) is not str:
        return None
    n = len(value)
    if n < 20:
        return None
    if value[-1] == "Z":
        body = n - 1
        tz = "Z"
    else:
        body = n - 6
        tz = value[body:]
    base = _hour_base(value[:13], tz)
    if base is None or value[13] != ":" or value[16] != ":":
        return None
    minute = _SIXTY.get(value[14:16])
    second = _SIXTY.get(value[17:19])
    if minute is None or second is None:
        return None
    seconds = base + minute * 60 + second
    if body == 19:
        ts = float(seconds)
    else:
        if (body != 23 and body != 26) or value[19] != ".":
            return None
        frac = value[20:body]
        if not (frac.isdigit() and frac.isascii()):
            return None
        us = int(frac) * (1000 if body == 23 else 1)
        # one exact integer division: the same float as datetime.timestamp()
        ts = (seconds * 1_000_000 + us) / 1_000_000
    if not _TS_MIN <= ts <= _TS_MAX:
        return None
    if len(_TS_CACHE) >= _TS_CACHE_MAX:
        _TS_CACHE.clear()
    _TS_CACHE[value] = ts
    return ts


_GOOD_FIRMS: set[str] = set()


def _good_firm(firm: str) -> bool:
    """Check a firm id against the contract (and remember the good ones)."""
    if len(firm) > 64 or _FIRM_OK(firm) is None:
        return False
    if len(_GOOD_FIRMS) >= 1_000_000:
        _GOOD_FIRMS.clear()
    _GOOD_FIRMS.add(firm)
    return True


def _ident(value: Any) -> bool:
    return type(value) is str and len(value) <= 128 and _ID_OK(value) is not None


def _money(value: Any) -> bool:
    t = type(value)
    return (t is float or t is int) and 0 <= value <= MAX_AMOUNT_CNY


def fast_check(obj: Any) -> tuple[str, str, float] | None:
    """``(type, firm_id, arrival_timestamp)`` when ``obj`` is an event in canonical form that
    certainly satisfies the contract; ``None`` when the contract's validator must decide.

    Never accepts anything :func:`riskmon.events.validate_event` rejects (tested by fuzzing)."""
    try:
        etype = obj["type"]
        keys = obj.keys()
        if not (keys <= _ALLOWED[etype] and _REQUIRED[etype] <= keys):
            return None
        firm = obj["firm_id"]
        if type(firm) is not str:
            return None
        if firm not in _GOOD_FIRMS and not _good_firm(firm):
            return None
        if not _ident(obj["event_id"]):
            return None
        source = obj["source"]
        if type(source) is not str or not 1 <= len(source) <= 64:
            return None
        if "schema_version" in obj:
            sv = obj["schema_version"]
            if type(sv) is not int or sv != 1:
                return None
        event_ts = _ts(obj["event_time"])
        if event_ts is None:
            return None
        delivered = obj.get("delivered_at")
        if delivered is None:
            arrival = event_ts
        else:
            arrival = _ts(delivered)  # type: ignore[assignment]
            if arrival is None or arrival < event_ts:
                return None
        if etype == "payment":
            amount = obj["amount"]
            t = type(amount)
            if not ((t is float or t is int) and 0 < amount <= MAX_AMOUNT_CNY):
                return None
            if not (
                _ident(obj["txn_id"])
                and type(obj["direction"]) is str
                and obj["direction"] in _DIRECTIONS
                and type(obj["channel"]) is str
                and obj["channel"] in _CHANNELS
            ):
                return None
            if "refund" in obj and type(obj["refund"]) is not bool:
                return None
        elif etype == "electricity":
            minutes = obj["interval_minutes"]
            kwh = obj["kwh"]
            t = type(kwh)
            if not (
                type(minutes) is int
                and 1 <= minutes <= 1440
                and (t is float or t is int)
                and 0 <= kwh <= MAX_KWH_PER_INTERVAL
                and _ident(obj["meter_id"])
            ):
                return None
        elif etype == "invoice":
            amount = obj["amount"]
            tax = obj["tax"]
            if not (
                _money(amount)
                and _money(tax)
                and tax <= amount
                and _ident(obj["invoice_id"])
                and _ident(obj["counterparty_id"])
                and type(obj["kind"]) is str
                and obj["kind"] in _INVOICE_KINDS
            ):
                return None
        else:  # logistics
            weight = obj["weight_kg"]
            t = type(weight)
            if not (
                _money(obj["value"])
                and (t is float or t is int)
                and 0 <= weight <= 1e6
                and _ident(obj["order_id"])
                and type(obj["status"]) is str
                and obj["status"] in _LOGISTICS_STATUS
            ):
                return None
        return etype, firm, arrival
    except Exception:  # wrong shapes (not a dict, unhashable values, missing keys): be exact
        return None


# --------------------------------------------------------------------------------------------
# Raw bytes: decoding and validation in one step
# --------------------------------------------------------------------------------------------

def _fast_line_orjson(raw: bytes) -> tuple[str, str, float] | None:
    """Fast path on a line without msgspec: orjson, then :func:`fast_check`."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return fast_check(obj)


# The fast path with msgspec: decode and check types, lengths, ranges and literals in C (typed
# structs mirroring the contract), then the patterns, timestamps and cross-field rules in Python.
# Every constraint is at least as strict as the contract's; JSON that msgspec and orjson read
# differently (duplicate keys, escapes, numbers) is rejected or read identically (tested by
# fuzzing), and anything rejected here goes to the contract's validator. msgspec is optional.
try:
    import msgspec as _msgspec
except ImportError:  # pragma: no cover
    _msgspec = None

_fast_line_msgspec: Callable[[bytes], tuple[str, str, float] | None] | None = None

if _msgspec is not None:
    _Meta = _msgspec.Meta
    _MId = Annotated[str, _Meta(min_length=1, max_length=128)]
    _MFirm = Annotated[str, _Meta(min_length=1, max_length=64)]
    _MSource = Annotated[str, _Meta(min_length=1, max_length=64)]
    _MMoney = Annotated[float, _Meta(ge=0, le=MAX_AMOUNT_CNY)]
    _MMinutes = Annotated[int, _Meta(ge=1, le=1440)]
    _MKwh = Annotated[float, _Meta(ge=0, le=MAX_KWH_PER_INTERVAL)]
    _MWeight = Annotated[float, _Meta(ge=0, le=1e6)]
    _MAmount = Annotated[float, _Meta(gt=0, le=MAX_AMOUNT_CNY)]

    class _MBase(_msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True, gc=False):
        etype: ClassVar[str] = ""
        event_id: _MId
        firm_id: _MFirm
        event_time: str
        source: _MSource
        delivered_at: Union[str, None] = None
        schema_version: Literal[1] = 1

        def _arrival(self) -> float | None:
            et = _TS_CACHE.get(self.event_time) or _ts(self.event_time)
            if et is None:
                return None
            d = self.delivered_at
            if d is None:
                return et
            dt = _TS_CACHE.get(d) or _ts(d)
            if dt is None or dt < et:
                return None
            return dt

    class _MElectricity(_MBase, tag="electricity", kw_only=True, gc=False):
        etype: ClassVar[str] = "electricity"
        meter_id: _MId
        interval_minutes: _MMinutes
        kwh: _MKwh

        def check(self) -> float | None:
            if _ID_OK(self.event_id + self.meter_id) is None:
                return None
            return self._arrival()

    class _MInvoice(_MBase, tag="invoice", kw_only=True, gc=False):
        etype: ClassVar[str] = "invoice"
        invoice_id: _MId
        kind: Literal["issued", "cancelled", "received"]
        counterparty_id: _MId
        amount: _MMoney
        tax: _MMoney

        def check(self) -> float | None:
            if self.tax > self.amount:
                return None
            if _ID_OK(self.event_id + self.invoice_id + self.counterparty_id) is None:
                return None
            return self._arrival()

    class _MLogistics(_MBase, tag="logistics", kw_only=True, gc=False):
        etype: ClassVar[str] = "logistics"
        order_id: _MId
        status: Literal["created", "picked_up", "delivered"]
        value: _MMoney
        weight_kg: _MWeight

        def check(self) -> float | None:
            if _ID_OK(self.event_id + self.order_id) is None:
                return None
            return self._arrival()

    class _MPayment(_MBase, tag="payment", kw_only=True, gc=False):
        etype: ClassVar[str] = "payment"
        txn_id: _MId
        amount: _MAmount
        direction: Literal["in", "out"]
        channel: Literal["pos", "transfer", "online", "qr"]
        refund: bool = False

        def check(self) -> float | None:
            if _ID_OK(self.event_id + self.txn_id) is None:
                return None
            return self._arrival()

    _m_decode = _msgspec.json.Decoder(Union[_MElectricity, _MInvoice, _MLogistics, _MPayment]).decode

    def _fast_line_msgspec(raw: bytes) -> tuple[str, str, float] | None:  # type: ignore[no-redef]
        """Fast path on a line with msgspec."""
        try:
            ev = _m_decode(raw)
        except Exception:  # DecodeError, UnicodeDecodeError, ...: the contract's validator decides
            return None
        arrival = ev.check()
        if arrival is None:
            return None
        firm = ev.firm_id
        if firm not in _GOOD_FIRMS and not _good_firm(firm):
            return None
        return ev.etype, firm, arrival


#: The fast path in use: ``fast_line(raw) -> (type, firm_id, arrival) | None``.
fast_line: Callable[[bytes], tuple[str, str, float] | None] = _fast_line_msgspec or _fast_line_orjson
FAST_PATH = "msgspec" if _fast_line_msgspec is not None else "orjson"


# --------------------------------------------------------------------------------------------
# A line of an event file: the fast path, else the contract
# --------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def timestamp_of(dt: datetime) -> float:
    """Seconds since the epoch of an aware datetime."""
    return (dt - _EPOCH).total_seconds()


def slow_line(raw: bytes) -> tuple[str, str, float]:
    """The contract's own decoding and validation (:func:`riskmon.events.parse_event`); raises
    :class:`EventError`."""
    event = parse_event(raw)
    return event.type, event.firm_id, timestamp_of(event.delivery_time)


def check_line(raw: bytes) -> tuple[str, str, float]:
    """Decode and validate one line: ``(type, firm_id, arrival_timestamp)``; raises
    :class:`EventError` with the contract's message for a bad line."""
    if len(raw) <= MAX_EVENT_BYTES:
        info = fast_line(raw)
        if info is not None:
            return info
    return slow_line(raw)
