"""Runtime configuration: pydantic-settings tree read from ``ANOMSTREAM_*`` env (nested with ``__``).

The only module that reads the environment. ``load`` is called once, by the CLI; invalid values raise
``ConfigError`` naming the field, before any Kafka client exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from anomstream.detect import catalog
from anomstream.detect.spec import DetectorSpecs, load_specs
from anomstream.errors import ConfigError
from anomstream.sizes import parse_bytes


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Kafka client settings; security options pass straight through to librdkafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "anomstream"
    client_id: str = "anomstream"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="a mounted file holding the SASL password (trailing newline ignored)"
    )
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    connect_timeout_s: float = Field(
        default=30.0, gt=0, description="start-up: how long to retry an unreachable broker before giving up"
    )
    transactional_id: str | None = Field(
        default=None,
        description="exactly-once only: a stable id per worker (e.g. a StatefulSet pod name) lets a "
        "restarted worker fence its predecessor at once; default is unique per process",
    )
    transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="exactly-once only: how long a crashed worker's open transaction blocks readers",
    )
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="more librdkafka properties, e.g. {'socket.timeout.ms': '5000'}",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name at least one host:port")
        return value.strip()

    @model_validator(mode="after")
    def _one_password_source(self) -> KafkaSettings:
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set sasl_password or sasl_password_file, not both")
        if self.sasl_password_file is not None and not self.sasl_password_file.is_file():
            raise ValueError(f"sasl_password_file {self.sasl_password_file} is not a readable file")
        for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
            location = getattr(self, name)
            if location not in (None, "probe") and not Path(location).exists():
                raise ValueError(f"{name} {location} does not exist")
        return self

    def password(self) -> SecretStr | None:
        """The SASL password, from the environment or the mounted file (read when a client is built)."""
        if self.sasl_password_file is not None:
            return SecretStr(self.sasl_password_file.read_text().strip())
        return self.sasl_password

    def client_config(self) -> dict[str, str]:
        """Librdkafka properties shared by every client (secrets revealed only here)."""
        conf = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        optional: dict[str, str | SecretStr | None] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.password(),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password,
        }
        for key, value in optional.items():
            if value is not None:
                conf[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        conf.update(self.extra)
        return conf


class TopicSettings(_Section):
    """Topic names and the shape used when anomstream creates them."""

    events: str = "anomstream.events"
    alerts: str = "anomstream.alerts"
    dlq: str = "anomstream.dlq"
    state: str = "anomstream.state"
    scores: str = Field(default="", description="per-event score stream; empty disables it")
    feedback: str = Field(
        default="anomstream.feedback", description="people's verdicts, co-partitioned; empty disables it"
    )
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class WorkerSettings(_Section):
    """Consume loop, commit cadence and the dead-letter brake."""

    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=0.5, gt=0)
    commit_interval_s: float = Field(
        default=5.0, gt=0
    )  # bounds duplicates after a crash; snapshots cost per commit
    # A commit is also due once this many records await one (bounds duplicates under heavy load).
    commit_max_records: int = Field(default=500_000, ge=1)
    max_message_bytes: int = Field(default=1_000_000, ge=64)
    dlq_max_ratio: float = Field(default=0.95, gt=0, le=1)
    dlq_window: int = Field(default=2000, ge=10)
    dlq_max_consecutive: int = Field(default=2000, ge=1)
    max_keys: int = Field(default=100_000, ge=1)
    max_state_bytes: int | None = Field(
        default=None,
        description="bound on the encoded size of all keys' state (bytes, or with a unit: 512MB, 2GiB); "
        "least recently used keys are evicted beyond it; unset: no bound",
    )
    # Snapshots of a commit are encoded in slices of this many keys between polls (no stall at the commit).
    snapshot_slice: int = Field(default=200, ge=1, le=1_000_000)
    # ... or fewer once a slice took this long (large states, e.g. forests): at least one key per iteration.
    snapshot_budget_s: float = Field(default=0.005, gt=0, le=10)
    key_ttl_s: float = Field(default=24 * 3600, gt=0)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    score_bands: bool = Field(
        default=False, description="score records carry each event's expected band (the explorer plots it)"
    )
    # Silence watching: a partition without records for this long advances its event-time watermark by
    # wall time (the bounded fallback that still notices a stream that stopped entirely).
    idle_watermark_s: float = Field(default=60.0, gt=0)

    @field_validator("max_state_bytes", mode="before")
    @classmethod
    def _bytes_with_unit(cls, value: Any) -> Any:
        return parse_bytes(value) if isinstance(value, str) else value

    @field_validator("max_state_bytes")
    @classmethod
    def _at_least_a_key(cls, value: int | None) -> int | None:
        if value is not None and value < 1024:
            raise ValueError("must be at least 1024 bytes (one key's state is hundreds of bytes or more)")
        return value


class MetricsSettings(_Section):
    """The HTTP endpoint serving ``/metrics``, ``/healthz`` and ``/readyz``."""

    host: str = "0.0.0.0"
    port: int = Field(default=9108, ge=0, le=65535)
    heartbeat_timeout_s: float = Field(default=30.0, gt=0)


class StateSettings(_Section):
    """Model-state snapshots: the HMAC key authenticates them before anything is unpickled.

    The key comes from ``ANOMSTREAM_STATE__HMAC_KEY`` or a mounted file (``__HMAC_KEY_FILE``); without
    one, snapshots are off and state does not survive restarts.
    """

    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _readable_key_file(self) -> StateSettings:
        if self.hmac_key_file is not None and not self.hmac_key_file.is_file():
            raise ValueError(f"hmac_key_file {self.hmac_key_file} is not a readable file")
        return self

    def secret(self) -> bytes | None:
        """The HMAC key bytes, or None when snapshots cannot be authenticated (so are disabled)."""
        if self.hmac_key is not None:
            key = self.hmac_key.get_secret_value().encode()
        elif self.hmac_key_file is not None:
            key = self.hmac_key_file.read_bytes().strip()
        else:
            return None
        return key or None


class UiSettings(_Section):
    """The explorer (``anomstream ui``): where it listens, what it keeps, who may send feedback.

    Feedback needs the token from ``ANOMSTREAM_UI__FEEDBACK_TOKEN`` or a mounted file
    (``__FEEDBACK_TOKEN_FILE``); without one the explorer is read-only.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    feedback_token: SecretStr | None = None
    feedback_token_file: Path | None = None
    max_alerts: int = Field(default=10_000, ge=10, description="alerts kept in memory, newest first")
    series_points: int = Field(default=2_000, ge=10, description="score records kept per entity")

    @model_validator(mode="after")
    def _one_token_source(self) -> UiSettings:
        if self.feedback_token is not None and self.feedback_token_file is not None:
            raise ValueError("set feedback_token or feedback_token_file, not both")
        if self.feedback_token_file is not None and not self.feedback_token_file.is_file():
            raise ValueError(f"feedback_token_file {self.feedback_token_file} is not a readable file")
        return self

    def token(self) -> bytes | None:
        """The feedback token's bytes, or None when the explorer is read-only."""
        if self.feedback_token is not None:
            raw = self.feedback_token.get_secret_value().encode()
        elif self.feedback_token_file is not None:
            raw = self.feedback_token_file.read_bytes().strip()
        else:
            return None
        return raw or None


class Settings(BaseSettings):
    """Every runtime setting; environment names follow the tree (``ANOMSTREAM_KAFKA__GROUP_ID``).

    Examples
    --------
    >>> s = Settings.model_validate({"kafka": {"group_id": "g1"}})
    >>> s.kafka.group_id, s.topics.events
    ('g1', 'anomstream.events')
    """

    model_config = SettingsConfigDict(
        env_prefix="ANOMSTREAM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    worker: WorkerSettings = WorkerSettings()
    metrics: MetricsSettings = MetricsSettings()
    state: StateSettings = StateSettings()
    ui: UiSettings = UiSettings()
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    detectors_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        env = "ANOMSTREAM_" + "__".join(str(p).upper() for p in err["loc"])
        lines.append(f"{field} ({env}): {err['msg']} [got {err.get('input')!r}]")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load(overrides: Mapping[str, Any] | None = None) -> tuple[Settings, DetectorSpecs]:
    """Read settings from the environment (plus CLI overrides) and the detector-spec file.

    Plain ``KAFKA_BOOTSTRAP_SERVERS`` is honoured when ``ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS`` is unset.
    Overrides use dotted names (``{"kafka.group_id": "g"}``) and win over the environment.
    Raises ``ConfigError`` with every offending field named.
    """
    init: dict[str, Any] = {}
    plain = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if plain and "ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS" not in os.environ:
        init["kafka"] = {"bootstrap_servers": plain}
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if name:
            init.setdefault(section, {})[name] = value
        else:
            init[key] = value
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    specs = load_specs(settings.detectors_file)
    catalog.validate(specs)  # an unknown detector or parameter fails here, before any client exists
    return settings, specs


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by ``**********``."""
    return settings.model_dump(mode="json")  # SecretStr serialises masked in JSON mode
