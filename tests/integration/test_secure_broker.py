"""A SASL/SCRAM-SHA-512 + TLS broker with the StandardAuthorizer on: minimum ACLs, refusals, secrets.

One throw-away secured jar broker per module; the worker runs as a real ``anomstream`` process logging
in as ``worker`` (password from a mounted file), while ``admin`` (super user) creates topics and ACLs.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import kafka_local
from anomstream.cli import main
from anomstream.config import Settings
from anomstream.stream import preflight
from anomstream.wire.codec import encode_event
from integration import secure
from integration.faults import stream, wait_for_log
from integration.harness import drain, env_for, produce, start_process
from kafka_fixtures import SecureBroker, secure_broker, unique

pytestmark = pytest.mark.secure
EVENTS = 3000
CliRunner = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """The module's secured broker."""
    with secure_broker(tmp_path_factory.mktemp("secure")) as running:
        yield running


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[CliRunner]:
    """``anomstream`` run in this process (``main(argv)``) with a settings-derived environment."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def run(settings: Settings, *argv: str) -> tuple[int, str]:
        for name in [k for k in os.environ if k.startswith(("ANOMSTREAM_", "KAFKA_"))]:
            monkeypatch.delenv(name)
        for name, value in env_for(settings).items():
            if name.startswith("ANOMSTREAM_"):
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    yield run
    for sig, handler in saved.items():  # `run` installs its own; give pytest its handlers back
        signal.signal(sig, handler)


def _granted(broker: SecureBroker, settings: Settings, skip: tuple[str, str] | None = None) -> None:
    """Create the topics and grant the worker every ACL of ``preflight.needs`` except ``skip``."""
    secure.create_topics(broker, settings)
    acls = secure.bindings(preflight.needs(settings), "User:worker")
    kept = secure.bindings(preflight.needs(settings), "User:worker", skip)
    assert len(kept) == len(acls) - (skip is not None), f"{skip} is not among the needs"
    secure.grant(broker, kept)


def test_worker_with_minimum_acls_scores_everything_and_leaks_no_secret(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """Exactly-once worker on just the documented ACLs scores every event; no log/metric has a secret."""
    port = kafka_local.free_port()
    settings = secure.worker_settings(
        broker,
        processing_guarantee="exactly_once",
        metrics={"port": port},
        log_level="DEBUG",
        # librdkafka's own debug lines of the login and TLS set-up go through the same log
        kafka={"extra": {"debug": "security,broker"}},
    )
    _granted(broker, settings)
    log = tmp_path / "worker.log"
    proc = start_process(env_for(settings), log)
    try:
        wait_for_log(log, '"worker_started"', 1)
        events = stream(EVENTS, entities=6)
        admin = broker.client("admin")
        pairs = ((x.event.entity_id.encode(), encode_event(x.event)) for x in events)
        produce(broker.bootstrap, settings.topics.events, pairs, client=admin)
        scored = drain(broker.bootstrap, settings.topics.scores, lambda g: len(g) >= EVENTS, 120, admin)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert len(scored) == EVENTS
    assert f"anomstream_events_consumed_total {float(EVENTS)}" in metrics
    secret_values = [broker.creds.password("worker"), broker.creds.password("admin")]
    assert settings.state.hmac_key is not None
    secret_values.append(settings.state.hmac_key.get_secret_value())
    for secret in secret_values:
        assert secret not in text, "a secret appears in the worker's log"
        assert secret not in metrics, "a secret appears in /metrics"
    assert text.count("SASL") > 3, "the scan did not see librdkafka's login lines"


def test_worker_cannot_read_a_topic_without_an_acl(broker: SecureBroker) -> None:
    """The worker principal reading a topic it has no ACL for gets TOPIC_AUTHORIZATION_FAILED."""
    settings = secure.worker_settings(broker)
    _granted(broker, settings)
    private = settings.topics.alerts  # worker may WRITE alerts, never READ them
    produce(broker.bootstrap, private, [(b"k", b"{}")], client=broker.client("admin"))
    consumer = Consumer({**broker.client("worker"), "group.id": settings.kafka.group_id})
    try:
        consumer.assign([TopicPartition(private, 0, 0)])
        errors: list[int] = []
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                err = msg.error()
                assert err is not None, "the worker read a record it has no ACL for"
                errors.append(err.code())
    finally:
        consumer.close()
    assert errors == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


MISSING = [
    ("events", "READ", "topic"),
    ("alerts", "WRITE", "topic"),
    ("dlq", "WRITE", "topic"),
    ("scores", "WRITE", "topic"),
    ("state", "READ", "topic"),
    ("state", "WRITE", "topic"),
    ("group", "READ", "group"),
    ("transactional_id", "WRITE", "transactional id"),
]


def _withhold(broker: SecureBroker, resource: str, operation: str) -> tuple[Settings, str]:
    settings = secure.worker_settings(broker, processing_guarantee="exactly_once")
    name = {
        "group": settings.kafka.group_id,
        "transactional_id": f"{settings.kafka.group_id}-",
    }.get(resource) or getattr(settings.topics, resource)
    _granted(broker, settings, skip=(name, operation))
    return settings, name


@pytest.mark.parametrize(("resource", "operation", "named"), MISSING)
def test_a_missing_acl_fails_fast_and_is_named(
    broker: SecureBroker, cli: CliRunner, resource: str, operation: str, named: str
) -> None:
    """With one documented ACL withheld, ``anomstream run`` exits 6 within seconds naming it."""
    settings, name = _withhold(broker, resource, operation)
    began = time.monotonic()
    code, output = cli(settings, "run")
    took = time.monotonic() - began
    lines = [line for line in output.splitlines() if line.startswith("anomstream:")]
    assert code == 6, output[-3000:]
    assert len(lines) == 1, lines
    assert "AuthorizationError" in lines[0]
    assert named in lines[0]
    assert (name if resource != "transactional_id" else "WRITE on TransactionalId") in lines[0]
    assert took < 20, f"took {took:.0f}s to fail"


def test_a_missing_acl_exits_6_from_a_real_process(broker: SecureBroker, tmp_path: Path) -> None:
    """As a real OS process: exit code 6, the group named on one line, no traceback."""
    settings, name = _withhold(broker, "group", "READ")
    log = tmp_path / "run.log"
    code = secure.run_cli(settings, log, "run")
    text = log.read_text()
    assert code == 6, text[-3000:]
    assert [line for line in text.splitlines() if line.startswith("anomstream:")] == [
        line for line in text.splitlines() if name in line and "AuthorizationError" in line
    ]
    assert "Traceback" not in text


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A way to be refused at start-up and what the one-line error must say."""

    case: str
    code: int
    says: str


REFUSALS = [
    Refusal("wrong_password", 5, "refused SCRAM-SHA-512 login of user 'worker'"),
    Refusal("untrusted_ca", 5, "TLS handshake with"),
    Refusal("dead_address", 4, "no Kafka broker answered at 127.0.0.1:"),
    Refusal("plaintext_to_tls", 4, "security.protocol PLAINTEXT matches its listener"),
]


def _refused_settings(broker: SecureBroker, case: str, tmp_path: Path) -> Settings:
    kafka: dict[str, object] = {"connect_timeout_s": 4}
    if case == "wrong_password":
        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-the-password\n")
        kafka["sasl_password_file"] = str(wrong)
    elif case == "untrusted_ca":
        kafka["ssl_ca_location"] = str(_other_ca(tmp_path))
    elif case == "dead_address":
        kafka["bootstrap_servers"] = f"127.0.0.1:{kafka_local.free_port()}"
    else:
        kafka.update(security_protocol="PLAINTEXT", sasl_mechanism=None, sasl_username=None)
        kafka.update(sasl_password_file=None, ssl_ca_location=None)
    return secure.worker_settings(broker, kafka=kafka)


def _other_ca(tmp_path: Path) -> Path:
    import kafka_secure

    folder = tmp_path / "other-pki"
    kafka_secure.make_pki(folder)
    return folder / "ca.pem"


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.case)
@pytest.mark.parametrize("command", ["run", "replay"])
def test_refused_start_is_one_line_with_its_exit_code(
    broker: SecureBroker, cli: CliRunner, tmp_path: Path, refusal: Refusal, command: str
) -> None:
    """Wrong password, untrusted CA, dead address, wrong protocol: one line, exit 5 or 4, bounded."""
    settings = _refused_settings(broker, refusal.case, tmp_path)
    args = ("replay", "--from-kafka", unique("t")) if command == "replay" else ("run",)
    began = time.monotonic()
    code, output = cli(settings, *args)
    took = time.monotonic() - began
    errors = [line for line in output.splitlines() if line.startswith("anomstream:")]
    assert code == refusal.code, output[-2000:]
    assert len(errors) == 1, errors
    assert refusal.says in errors[0]
    assert settings.kafka.bootstrap_servers in errors[0]
    assert took < settings.kafka.connect_timeout_s + 5, f"took {took:.0f}s: the retry is not bounded"
    if refusal.code == 4:
        assert '"broker_unreachable"' in output, "the retry was not logged"


@pytest.mark.parametrize("refusal", [REFUSALS[0], REFUSALS[2]], ids=lambda r: r.case)
def test_refused_start_from_a_real_process(broker: SecureBroker, tmp_path: Path, refusal: Refusal) -> None:
    """As a real OS process: the exit code, one ``anomstream:`` line, and no traceback."""
    settings = _refused_settings(broker, refusal.case, tmp_path)
    log = tmp_path / "out.log"
    code = secure.run_cli(settings, log, "run", timeout=60)
    text = log.read_text()
    assert code == refusal.code, text[-2000:]
    assert len([line for line in text.splitlines() if line.startswith("anomstream:")]) == 1
    assert "Traceback" not in text


def test_replay_from_kafka_logs_in_with_the_mounted_password(broker: SecureBroker, tmp_path: Path) -> None:
    """``replay --from-kafka`` reads a topic it has READ on with the worker's credentials."""
    settings = secure.worker_settings(broker)
    _granted(broker, settings)
    events = stream(50, entities=2)
    pairs = ((x.event.entity_id.encode(), encode_event(x.event)) for x in events)
    produce(broker.bootstrap, settings.topics.events, pairs, client=broker.client("admin"))
    out = tmp_path / "scores.csv"
    log = tmp_path / "replay.log"
    code = secure.run_cli(settings, log, "replay", "--from-kafka", settings.topics.events, "--out", str(out))
    assert code == 0, log.read_text()[-2000:]
    assert len(out.read_text().splitlines()) == 1 + len(events)
