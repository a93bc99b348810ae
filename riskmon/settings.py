"""One settings object for every riskmon process; each option has a ``RISKMON_*`` environment twin.

>>> s = Settings(partitions=4)
>>> s.partitions, s.bootstrap_servers is None
(4, True)
>>> import os; os.environ["RISKMON_PARTITIONS"] = "12"; Settings().partitions
12
>>> del os.environ["RISKMON_PARTITIONS"]

Secrets (the SASL and TLS-key passwords) never show in a repr, a str or a dump
(docs/security.md); only ``kafka_client_kwargs()`` hands them to the Kafka client:

>>> s = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
...              sasl_username="riskmon", sasl_password="hunter2", ssl_password="key-pw")
>>> [secret in text for secret in ("hunter2", "key-pw")
...  for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()))]
[False, False, False, False, False, False, False, False]
>>> s.sasl_password
SecretStr('**********')
>>> s.kafka_client_kwargs()["sasl_plain_password"]
'hunter2'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """riskmon configuration. Environment variables are the field names upper-cased with the
    ``RISKMON_`` prefix, e.g. ``RISKMON_BOOTSTRAP_SERVERS``."""

    model_config = SettingsConfigDict(env_prefix="RISKMON_", extra="ignore", validate_default=True)

    # --- Kafka connection -------------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated host:port list. Unset: commands that need a broker start the "
        "embedded one (noida-db) on 127.0.0.1.",
    )
    partitions: int = Field(default=8, ge=1, le=1024, description="Partitions of every event topic.")
    replication_factor: int = Field(default=1, ge=1, le=16, description="Replication of new topics.")
    client_id: str = Field(default="riskmon", min_length=1)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none",
        description="Compression of every record batch riskmon produces (replay, ingest, "
        "workers). Off by default: with the broker on the same cores, lz4 cost more client CPU "
        "than it saved (README, measured figures); across a network to Apache Kafka, lz4 or zstd "
        "make batches several times smaller.",
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="Never logged.")
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    ssl_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted ssl_keyfile. Never logged."
    )

    # --- embedded broker --------------------------------------------------------------------
    embedded_host: str = Field(default="127.0.0.1", description="Address the embedded broker binds.")
    embedded_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    embedded_data_dir: Path | None = Field(
        default=None, description="Data dir of the embedded broker; unset: a fresh temporary dir."
    )

    # --- event time -------------------------------------------------------------------------
    timezone: str = Field(default="Asia/Shanghai", description="Firms' local time zone for firm-days.")
    lateness_electricity_s: float = Field(default=2 * 3600.0, ge=0, description="Allowed lateness, s.")
    lateness_invoice_s: float = Field(default=36 * 3600.0, ge=0, description="T+1 plus a 12 h margin.")
    lateness_logistics_s: float = Field(default=3600.0, ge=0)
    lateness_payment_s: float = Field(default=3600.0, ge=0)
    firms_file: Path | None = Field(
        default=None,
        description="Firm register (JSON lines with firm_id and industry, e.g. a simulation's "
        "truth.jsonl or firms.jsonl). Firms missing from it use the default thresholds.",
    )

    # --- stream worker ----------------------------------------------------------------------
    detection_enabled: bool = Field(
        default=True, description="Run the detection engine on every closed firm-day."
    )
    detection_config_file: Path | None = Field(
        default=None,
        description="JSON file with the detection engine's configuration (rules and models, see "
        "detectors.engine.EngineConfig.from_dict); unset: the defaults.",
    )
    alerts_enabled: bool = Field(
        default=True,
        description="Turn detections into alerts, credit-line actions and risk-share changes "
        "(needs detection_enabled).",
    )
    alert_resolve_after_days: int = Field(
        default=7, ge=1, description="An alert resolves after this many clean days with data."
    )
    credit_release_after_days: int = Field(
        default=7, ge=1, description="A frozen credit line is released after this many clean days with data."
    )
    breaker_open: str = Field(
        default="",
        description="Comma-separated models whose circuit breaker is open: their alerts go to human "
        "review and cannot freeze a credit line.",
    )
    governance_enabled: bool = Field(
        default=True,
        description="Model governance in the stream: drift (PSI/CSI) and circuit-breaker decisions per "
        "7-day period, applied by every partition (needs detection_enabled; see detectors.governance).",
    )
    governance_retrain_action: Literal["reset", "mark"] = Field(
        default="reset",
        description="What a retrain event (a model's PSI > 0.25 on regular days) does at the next period: "
        "reset the model for the segment's performing firms, or only mark it.",
    )
    governance_config_file: Path | None = Field(
        default=None,
        description="JSON file with the governance configuration (detectors.governance.GovernanceConfig: "
        "drift, breaker); governance_retrain_action overrides its retrain_action.",
    )
    alert_policy_file: Path | None = Field(
        default=None,
        description="JSON file with the full alert policy (alerts.policy.PolicyConfig fields); "
        "the three options above override it.",
    )
    app_id: str = Field(default="riskmon", min_length=1, description="Faust app id (consumer group).")
    worker_id: str = Field(
        default="0", min_length=1, description="Stable id of this worker: static group membership."
    )
    checkpoint_records: int = Field(
        default=2000, ge=1, description="Checkpoint state at least every this many input records."
    )
    stream_buffer_records: int = Field(
        default=64,
        ge=1,
        description="Input records a worker reads ahead of its agent (Faust's "
        "stream_buffer_maxsize). Records are envelopes of up to 1000 events, so this bounds the "
        "worker's memory when it lags: 64 is about 13 MB of events; Faust's default of 4096 "
        "let a lagging worker buffer ~1 GB.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Faust's data directory; unset: a fresh temporary one (state lives in "
        "changelog topics, so nothing there needs to survive a restart).",
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics from the ingest stage and the workers."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the Prometheus metrics endpoint binds."
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of the Prometheus metrics endpoint; 0 picks a free one."
    )
    web_enabled: bool = Field(default=False, description="Faust's web server (off by default).")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)

    # --- ingest stage -----------------------------------------------------------------------
    ingest_max_future_s: float | None = Field(
        default=None,
        ge=0,
        description="Dead-letter events delivered, and watermarks dated, more than this many "
        "seconds after the ingest stage's clock (e.g. 86400). Unset: no check (replays of "
        "simulated future data keep working); recommended in production.",
    )
    ingest_redo_after_failure_s: float = Field(
        default=10.0,
        ge=0,
        description="After a broker failure, the ingest stage forwards again every transaction "
        "it committed this many seconds before noticing it (the stream workers drop the "
        "duplicates), in case the broker lost some it had acknowledged. 0: no redo.",
    )

    def lateness_s(self) -> dict[str, float]:
        return {
            "electricity": self.lateness_electricity_s,
            "invoice": self.lateness_invoice_s,
            "logistics": self.lateness_logistics_s,
            "payment": self.lateness_payment_s,
        }

    def policy_config(self) -> Any:
        """The alert policy (:class:`alerts.policy.PolicyConfig`) these settings describe."""
        import orjson

        from alerts.policy import PolicyConfig

        base: dict[str, Any] = {}
        if self.alert_policy_file is not None:
            base = orjson.loads(Path(self.alert_policy_file).read_bytes())
        base["resolve_after_clean_days"] = self.alert_resolve_after_days
        base["release_after_clean_days"] = self.credit_release_after_days
        opened = {m.strip() for m in self.breaker_open.split(",") if m.strip()}
        base["breaker_open"] = sorted(set(base.get("breaker_open", ())) | opened)
        return PolicyConfig.from_dict(base)

    def governance_config(self) -> Any:
        """The governance configuration (:class:`detectors.governance.GovernanceConfig`), or None
        when governance or detection is disabled."""
        if not (self.governance_enabled and self.detection_enabled):
            return None
        import orjson

        from detectors.governance import GovernanceConfig

        base: dict[str, Any] = {}
        if self.governance_config_file is not None:
            base = orjson.loads(Path(self.governance_config_file).read_bytes())
        base["retrain_action"] = self.governance_retrain_action
        return GovernanceConfig.from_dict(base)

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    def producer_compression(self) -> str | None:
        """``compression_type`` for aiokafka producers (None: uncompressed)."""
        return None if self.compression == "none" else self.compression

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection and security options for aiokafka clients (producer, consumer, admin)."""
        from riskmon.kafka_tuning import apply_aiokafka_patches

        # Every riskmon aiokafka client is built from these options, so this is where the
        # empty-fetch backoff is ensured: without it an idle consumer (ingest caught up, tail,
        # demo, bench) spins on brokers that answer empty fetches at once (noida-db: 0.9 core).
        apply_aiokafka_patches()
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            ctx = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
                password=self.ssl_password.get_secret_value() if self.ssl_password else None,
            )
            ctx.check_hostname = self.ssl_check_hostname
            kwargs["ssl_context"] = ctx
        if self.security_protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
                raise ValueError(
                    "RISKMON_SECURITY_PROTOCOL is SASL_*: set RISKMON_SASL_MECHANISM, "
                    "RISKMON_SASL_USERNAME and RISKMON_SASL_PASSWORD"
                )
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs
