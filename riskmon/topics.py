"""Every topic riskmon's pipeline reads or writes, created together so they stay co-partitioned."""

from __future__ import annotations

from riskmon.settings import Settings
from riskmon.wire import (
    ACTION_TOPICS,
    DETECTIONS_TOPIC,
    EVENT_TOPICS,
    LATE_TOPIC,
    REPLAY_DLQ_TOPIC,
    VITALITY_TOPIC,
    dlq_topic,
)

INTERNAL_TOPIC = "riskmon.internal.events"
#: governance reports (rows and marks) from every partition, and operator requests; 1 partition
GOVERNANCE_INPUT_TOPIC = "riskmon.governance.input"
#: governance decisions, one per period, key = period; 1 partition (every worker reads it all)
GOVERNANCE_TOPIC = "riskmon.governance"
#: single-partition topics: a total order for the governance stage
GOVERNANCE_TOPICS = (GOVERNANCE_INPUT_TOPIC, GOVERNANCE_TOPIC)


def pipeline_topics() -> list[str]:
    """Input, internal and output topics, all with the configured partition count."""
    events = list(EVENT_TOPICS.values())
    return [
        *events,
        *(dlq_topic(t) for t in events),
        REPLAY_DLQ_TOPIC,
        INTERNAL_TOPIC,
        LATE_TOPIC,
        VITALITY_TOPIC,
        DETECTIONS_TOPIC,
        *ACTION_TOPICS.values(),
    ]


async def ensure_pipeline_topics(settings: Settings) -> list[str]:
    from riskmon.broker import ensure_topics

    created = await ensure_topics(settings, pipeline_topics(), settings.partitions)
    return created + await ensure_topics(settings, GOVERNANCE_TOPICS, 1)
