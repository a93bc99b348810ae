"""The contract of riskmon's output topics for downstream teams, as pydantic models.

``docs/alerts.md`` embeds the JSON Schemas generated from these models (``riskmon schema
--outputs``); a test checks that every message the policy emits validates against them and that
the document is up to date.

>>> from alerts.schema import OUTPUT_MODELS
>>> sorted(OUTPUT_MODELS)
['alerts', 'credit', 'riskshare', 'watchlist']
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Level = Literal["info", "watch", "warning", "critical"]
CreditState = Literal["normal", "frozen", "increase_eligible"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: str = Field(description="Version of this message schema.")
    policy_version: str = Field(description="Version of the alert policy configuration that decided.")
    firm_id: str = Field(min_length=1, description="The firm; also the Kafka key.")
    industry: str | None = None
    day: str = Field(description="The firm-day (local date, ISO) this message was decided on.")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="Machine-readable reason code, e.g. electricity_low.")
    observed: Any = Field(description="The exact values the rule or model compared.")
    reference: Any = Field(description="What they were compared with (baselines, thresholds).")
    contribution: float = Field(description="The reason's share of the decision (0..1).")
    text: str = Field(description="One sentence for people.")
    detector: str | None = Field(description="The rule or model that gave this reason.")


class VitalitySnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    day: str
    score: float | None
    band: str | None
    flags: list[str]
    components: dict[str, float | None] = Field(description="Each vitality component's ratio to its baseline.")


class Alert(_Message):
    """One transition of an alert (per firm and cause) on ``riskmon.alerts``."""

    message_id: str = Field(description="Unique per transition; deduplicate on it.")
    alert_id: str = Field(description="The alert (episode): hash of firm, cause, raising detector and day.")
    event: Literal["raised", "escalated", "corroborated", "resolved"]
    cause: str = Field(description="activity_breakdown, revenue_decline, order_drop, growth, data_quality, ...")
    level: Level
    source: Literal["rule", "model"] | None = Field(description="Kind of the detector that triggered (null when resolved).")
    name: str = Field(description="The rule or model that triggered this transition (resolved: the one that raised).")
    action: str = Field(description="FREEZE_ADJUSTMENTS, RM_FOLLOW_UP, INCREASE_ELIGIBLE, HUMAN_REVIEW, DATA_CHECK or NONE.")
    authority: Literal["automatic", "human_review"] = Field(
        description="human_review: a model whose circuit breaker is open; a person decides.")
    raised_day: str
    detectors: list[str] = Field(description="Detectors of this cause active on the day, strongest first.")
    reasons: list[Reason] = Field(max_length=5, description="At most 5, most important first.")
    vitality: VitalitySnapshot


class CreditAction(_Message):
    """A change of a firm's credit-line state on ``riskmon.actions.credit``."""

    action_id: str = Field(description="hash(firm, action, day); deduplicate on it.")
    action: Literal["FREEZE_ADJUSTMENTS", "RELEASE", "INCREASE_ELIGIBLE"]
    before: CreditState
    after: CreditState
    alert_id: str | None = Field(description="The alert that caused it (RELEASE: the one that froze).")
    reasons: list[Reason] = Field(max_length=5)


class Split(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fiscal: float = Field(ge=0, le=100, description="Provincial fiscal fund, percent.")
    bank: float = Field(ge=0, le=100)
    guarantor: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _sums_to_100(self) -> "Split":
        if abs(self.fiscal + self.bank + self.guarantor - 100.0) > 1e-9:
            raise ValueError("a risk-share split must sum to 100%")
        return self


class RiskShareReason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Literal["health_decline_gap_widening", "recovered"]
    observed: dict[str, Any] = Field(description="The last three weeks: labels, health index, cash-flow gap.")
    reference: dict[str, Any]
    text: str


class RiskShareChange(_Message):
    """A change of a firm's loss split on ``riskmon.actions.riskshare``."""

    adjustment_id: str = Field(description="hash(firm, new split, day); deduplicate on it.")
    before: Split
    after: Split
    reason: RiskShareReason


class WatchlistEvent(_Message):
    """A firm entering or leaving the watch list, on ``riskmon.watchlist``."""

    message_id: str
    event: Literal["entered", "exited"]
    causes: list[str] = Field(description="Causes with an open alert at watch or above (empty on exit).")
    level: Level | None
    entered_day: str


#: The field a deduplicating subscriber keys on, per output kind.
ID_FIELDS: dict[str, str] = {
    "alerts": "message_id",
    "credit": "action_id",
    "riskshare": "adjustment_id",
    "watchlist": "message_id",
}

OUTPUT_MODELS: dict[str, type[BaseModel]] = {
    "alerts": Alert,
    "credit": CreditAction,
    "riskshare": RiskShareChange,
    "watchlist": WatchlistEvent,
}


def output_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each output topic's messages, keyed by topic name."""
    from riskmon.wire import ACTION_TOPICS

    return {ACTION_TOPICS[kind]: model.model_json_schema() for kind, model in OUTPUT_MODELS.items()}
