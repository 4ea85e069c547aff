"""Start-up checks against the cluster: reachable, our identity accepted, every ACL the worker needs.

Each failure is one line naming the address and what to check, raised as the ``BrokerError`` subclass
whose exit code the CLI returns (4 unreachable, 5 authentication/TLS, 6 authorisation). An unreachable
broker is retried with a bounded, logged back-off; a refused identity is not retried (waiting does not
fix a wrong password or an untrusted certificate).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from anomstream.config import KafkaSettings, Settings
from anomstream.errors import AuthenticationError, AuthorizationError, BrokerUnreachableError
from anomstream.stream import clients

_AUTH_CODES = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Need:
    """One ACL the worker's principal needs: ``operations`` on resource ``kind`` ``name``."""

    kind: str  # "topic" | "group" | "transactional_id"
    name: str
    operations: tuple[str, ...]
    why: str
    prefixed: bool = False


def needs(settings: Settings) -> list[Need]:
    """The minimum ACLs of one worker with ``settings`` (docs/security.md lists the same)."""
    t = settings.topics
    out = [Need("topic", t.events, ("READ",), "consume the input")]
    feedback = t.feedback
    if feedback:
        out.append(Need("topic", feedback, ("READ",), "consume feedback verdicts"))
    out += [
        Need("topic", t.alerts, ("WRITE",), "publish alerts"),
        Need("topic", t.dlq, ("WRITE",), "dead-letter bad input"),
    ]
    if t.scores:
        out.append(Need("topic", t.scores, ("WRITE",), "publish per-event scores"))
    if settings.state.enabled and settings.state.secret() is not None:
        out.append(Need("topic", t.state, ("READ", "WRITE"), "restore and write state snapshots"))
    out.append(Need("group", settings.kafka.group_id, ("READ",), "join the consumer group, commit"))
    if settings.processing_guarantee == "exactly_once":
        txn = settings.kafka.transactional_id or f"{settings.kafka.group_id}-"
        prefixed = settings.kafka.transactional_id is None
        out.append(Need("transactional_id", txn, ("WRITE",), "transactions", prefixed=prefixed))
    return out


def _principal(kafka: KafkaSettings) -> str:
    return f"User:{kafka.sasl_username}" if kafka.sasl_username else "this client's principal"


def grant_hint(need: Need, kafka: KafkaSettings) -> str:
    """How to grant ``need`` with Kafka's ``kafka-acls`` tool."""
    kind = {"topic": "--topic", "group": "--group", "transactional_id": "--transactional-id"}[need.kind]
    ops = " ".join(f"--operation {op.capitalize()}" for op in need.operations)
    pattern = " --resource-pattern-type prefixed" if need.prefixed else ""
    return f"kafka-acls --add --allow-principal {_principal(kafka)} {ops} {kind} {need.name}{pattern}"


class _Errors:
    """``error_cb`` target: remembers librdkafka's connection-level errors during the probe."""

    def __init__(self) -> None:
        self.seen: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.seen.append(err)

    def refused_identity(self) -> KafkaError | None:
        for err in self.seen:
            if err.code() in _AUTH_CODES or _is_tls(err):
                return err
        return None

    def last(self) -> str:
        useful = [e for e in self.seen if e.code() != KafkaError._ALL_BROKERS_DOWN] or self.seen
        return useful[-1].str() if useful else "no response"


def _is_tls(err: KafkaError) -> bool:
    text = err.str().lower()
    return "ssl handshake failed" in text or "certificate verify failed" in text


def _refused(kafka: KafkaSettings, err: KafkaError) -> AuthenticationError:
    text = err.str()
    where = kafka.bootstrap_servers
    if _is_tls(err):
        return AuthenticationError(
            f"TLS handshake with {where} failed ({text}); check that ANOMSTREAM_KAFKA__SSL_CA_LOCATION "
            "names the CA that signed the broker's certificate and that the address matches its name"
        )
    return AuthenticationError(
        f"broker at {where} refused {kafka.sasl_mechanism or 'SASL'} login of user "
        f"{kafka.sasl_username!r} ({text}); check ANOMSTREAM_KAFKA__SASL_USERNAME and the password "
        "(ANOMSTREAM_KAFKA__SASL_PASSWORD or __SASL_PASSWORD_FILE)"
    )


def connect(
    settings: Settings,
    log: Any,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AdminClient:
    """An admin client whose first metadata request succeeded; bounded, logged retry until then.

    Raises ``AuthenticationError`` at once on a refused login or TLS handshake, and
    ``BrokerUnreachableError`` once ``kafka.connect_timeout_s`` has passed without an answer.
    """
    kafka = settings.kafka
    errors = _Errors()
    conf: dict[str, Any] = dict(kafka.client_config())
    conf.update({"error_cb": errors, "log_level": 0})  # our own attempt lines replace librdkafka's
    client = AdminClient(conf)
    began, attempt, backoff = clock(), 0, 1.0
    while True:
        attempt += 1
        # 1. One metadata request, bounded by what is left of the budget.
        left = kafka.connect_timeout_s - (clock() - began)
        try:
            client.list_topics(timeout=max(1.0, min(2.0, left)))
            return client
        except KafkaException:
            client.poll(0)  # serve error_cb: the connection errors behind the failure
        # 2. A refused identity is final; say so without waiting.
        refused = errors.refused_identity()
        if refused is not None:
            raise _refused(kafka, refused)
        # 3. Otherwise retry with back-off until the budget is spent.
        elapsed = clock() - began
        if elapsed + backoff > kafka.connect_timeout_s:
            raise BrokerUnreachableError(
                f"no Kafka broker answered at {kafka.bootstrap_servers} after {attempt} attempts in "
                f"{elapsed:.0f}s (last error: {errors.last()}); check the address "
                "(ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS), that the broker runs, and that "
                f"security.protocol {kafka.security_protocol} matches its listener"
            )
        log.warning(
            "broker_unreachable",
            bootstrap=kafka.bootstrap_servers,
            attempt=attempt,
            retry_in_s=backoff,
            gives_up_in_s=round(kafka.connect_timeout_s - elapsed, 1),
            error=errors.last(),
        )
        sleep(backoff)
        backoff = min(backoff * 2, 8.0)


def _denied(need: Need, kafka: KafkaSettings, missing: str) -> AuthorizationError:
    return AuthorizationError(
        f"{_principal(kafka)} lacks {missing} on {need.kind} {need.name!r} at {kafka.bootstrap_servers} "
        f"(needed to {need.why}); grant it: {grant_hint(need, kafka)}"
    )


def _topic_ops(client: AdminClient, names: list[str]) -> dict[str, set[str] | None]:
    """Authorised operations per existing topic; ``None`` when it cannot even be described."""
    futures = client.describe_topics(TopicCollection(names), include_authorized_operations=True)
    out: dict[str, set[str] | None] = {}
    for name, future in futures.items():
        try:
            desc = future.result(timeout=30)
            out[name] = {op.name for op in desc.authorized_operations or []}
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # visible to us but absent: created next, then checked again
            if code not in _DENIED:
                raise
            out[name] = None
    return out


_COORDINATOR_BUSY = {
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
}


def _group_ops(client: AdminClient, group: str, attempts: int = 20) -> set[str] | None:
    """Authorised operations on ``group`` (an unused group describes as DEAD, with its operations)."""
    for _ in range(attempts):
        future = client.describe_consumer_groups([group], include_authorized_operations=True)[group]
        try:
            desc = future.result(timeout=30)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _COORDINATOR_BUSY:  # the offsets topic is still being created: ask again
                time.sleep(0.5)
                continue
            if code not in _DENIED:
                raise
            return None
        return {op.name for op in desc.authorized_operations or []}
    raise BrokerUnreachableError(f"no group coordinator for {group!r} answered; is the cluster healthy?")


def check_access(client: AdminClient, settings: Settings) -> None:
    """Raise ``AuthorizationError`` naming the first ACL of ``needs(settings)`` the principal lacks.

    Transactional ids cannot be described; a missing one is named when transactions start.
    """
    required = needs(settings)
    topics = _topic_ops(client, [n.name for n in required if n.kind == "topic"])
    for need in required:
        if need.kind == "topic":
            if need.name not in topics:
                continue
            have = topics[need.name]
        elif need.kind == "group":
            have = _group_ops(client, need.name)
        else:
            continue
        lacking = [op for op in need.operations if have is None or op not in have]
        if lacking:
            raise _denied(need, settings.kafka, "+".join(lacking))


def start_up(settings: Settings, log: Any) -> list[str]:
    """``run``'s start-up: connect (bounded retry), create missing topics, check every ACL."""
    # 1. Reachable and our identity accepted (bounded retry), or exit 4/5.
    client = connect(settings, log)
    # 2. Every ACL on what exists, before anything is created: the error names the exact one.
    check_access(client, settings)
    # 3. Create what is missing (needs CREATE), then check the new topics too.
    created = clients.ensure_topics(client, settings.topics)
    if created:
        check_access(client, settings)
    return created
