"""The firm-day aggregate: what one firm did on one local calendar day, summed from its events.

A plain ``list[float]`` with named slots keeps per-event work to a few additions and makes the
aggregate cheap to serialize into a changelog table. The slot names are the public vocabulary of
vitality components and rules.

>>> agg = new_day()
>>> add_event(agg, {"type": "payment", "amount": 50.0, "direction": "in", "refund": False})
>>> add_event(agg, {"type": "electricity", "kwh": 12.5})
>>> as_dict(agg)["pay_in_amt"], as_dict(agg)["kwh"], as_dict(agg)["n_events"]
(50.0, 12.5, 2.0)
"""

from __future__ import annotations

from typing import Any, Mapping

SLOTS: tuple[str, ...] = (
    "n_events",  # accepted (non-duplicate, on-time) events of every stream
    # electricity
    "elec_n",  # interval readings
    "kwh",  # energy, kWh
    # invoices (amounts in CNY before tax)
    "inv_issued_n",
    "inv_issued_amt",
    "inv_tax_amt",  # VAT on issued invoices
    "inv_received_n",
    "inv_received_amt",
    "inv_cancelled_n",
    "inv_cancelled_amt",
    # logistics
    "log_created_n",  # new shipping orders
    "log_created_value",
    "log_created_kg",
    "log_picked_n",
    "log_delivered_n",
    # payments
    "pay_in_n",
    "pay_in_amt",
    "pay_out_n",
    "pay_out_amt",
    "refund_n",
    "refund_amt",
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(SLOTS)}
N_SLOTS = len(SLOTS)

(
    N_EVENTS, ELEC_N, KWH, INV_ISSUED_N, INV_ISSUED_AMT, INV_TAX_AMT, INV_RECEIVED_N,
    INV_RECEIVED_AMT, INV_CANCELLED_N, INV_CANCELLED_AMT, LOG_CREATED_N, LOG_CREATED_VALUE,
    LOG_CREATED_KG, LOG_PICKED_N, LOG_DELIVERED_N, PAY_IN_N, PAY_IN_AMT, PAY_OUT_N, PAY_OUT_AMT,
    REFUND_N, REFUND_AMT,
) = range(N_SLOTS)  # fmt: skip


def new_day() -> list[float]:
    return [0.0] * N_SLOTS


def add_event(agg: list[float], ev: Mapping[str, Any]) -> None:
    """Add one validated event (as a decoded dict) to a firm-day aggregate."""
    agg[N_EVENTS] += 1
    t = ev["type"]
    if t == "electricity":
        agg[ELEC_N] += 1
        agg[KWH] += ev["kwh"]
    elif t == "payment":
        amount = ev["amount"]
        if ev.get("refund"):
            agg[REFUND_N] += 1
            agg[REFUND_AMT] += amount
        elif ev["direction"] == "in":
            agg[PAY_IN_N] += 1
            agg[PAY_IN_AMT] += amount
        else:
            agg[PAY_OUT_N] += 1
            agg[PAY_OUT_AMT] += amount
    elif t == "invoice":
        kind = ev["kind"]
        if kind == "issued":
            agg[INV_ISSUED_N] += 1
            agg[INV_ISSUED_AMT] += ev["amount"]
            agg[INV_TAX_AMT] += ev["tax"]
        elif kind == "received":
            agg[INV_RECEIVED_N] += 1
            agg[INV_RECEIVED_AMT] += ev["amount"]
        else:
            agg[INV_CANCELLED_N] += 1
            agg[INV_CANCELLED_AMT] += ev["amount"]
    elif t == "logistics":
        status = ev["status"]
        if status == "created":
            agg[LOG_CREATED_N] += 1
            agg[LOG_CREATED_VALUE] += ev["value"]
            agg[LOG_CREATED_KG] += ev["weight_kg"]
        elif status == "picked_up":
            agg[LOG_PICKED_N] += 1
        else:
            agg[LOG_DELIVERED_N] += 1
    else:  # validated upstream; an unknown type here is a programming error
        raise ValueError(f"unknown event type {t!r}")


def as_dict(agg: list[float]) -> dict[str, float]:
    return dict(zip(SLOTS, agg))
