"""Helpers of the secured-broker tests: worker settings with credentials, ACL grants, process runs."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

# Re-exported by confluent_kafka.admin without __all__; import from where they are defined.
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from anomstream.config import Settings
from anomstream.stream import clients, preflight
from integration.harness import ROOT, env_for
from kafka_fixtures import SecureBroker, unique

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
}


def worker_settings(broker: SecureBroker, user: str = "worker", **sections: Any) -> Settings:
    """Unique topics and group; logs in as ``user`` with the password from its mounted file."""
    base: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "group_id": unique("grp"),
            "session_timeout_ms": 6000,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user,
            "sasl_password_file": str(broker.creds.password_file(user)),
            "ssl_ca_location": str(broker.creds.ca),
            "connect_timeout_s": 10,
        },
        "topics": {
            "events": unique("events"),
            "alerts": unique("alerts"),
            "dlq": unique("dlq"),
            "state": unique("state"),
            "scores": unique("scores"),
            "feedback": unique("feedback"),
            "partitions": 2,
        },
        "worker": {"commit_interval_s": 0.5, "poll_timeout_s": 0.2},
        "metrics": {"port": 0},
        "state": {"hmac_key": secrets.token_hex(16)},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            base.setdefault(name, {}).update(values)
        else:
            base[name] = values
    return Settings.model_validate(base)


def admin(broker: SecureBroker) -> AdminClient:
    """An admin client logged in as the super user."""
    conf: dict[str, Any] = dict(broker.client("admin"))
    return AdminClient(conf)


def create_topics(broker: SecureBroker, settings: Settings) -> None:
    """Create ``settings``' topics as the super user (the worker may not create topics)."""
    clients.ensure_topics(admin(broker), settings.topics)


def bindings(
    needs: list[preflight.Need], principal: str, skip: tuple[str, str] | None = None
) -> list[AclBinding]:
    """ALLOW bindings granting ``needs`` to ``principal``, but not ``skip`` = (resource name, operation)."""
    return [
        AclBinding(
            _RESOURCE[need.kind],
            need.name,
            ResourcePatternType.PREFIXED if need.prefixed else ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation[op],
            AclPermissionType.ALLOW,
        )
        for need in needs
        for op in need.operations
        if (need.name, op) != skip
    ]


def grant(broker: SecureBroker, acls: list[AclBinding]) -> None:
    """Create ``acls`` as the super user and wait for each to be acknowledged."""
    client = admin(broker)  # held: the futures fail if the client is destroyed first
    for future in client.create_acls(acls).values():
        future.result(timeout=30)
    # Acknowledged is not yet applied: the authoriser learns ACLs from the metadata log. Wait for them.
    wanted = {(a.restype, a.name, a.principal, a.operation) for a in acls}
    every = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None = any name/principal/host in a filter; stubs say str
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + 30
    while True:
        found = client.describe_acls(every).result(timeout=30)
        if wanted <= {(a.restype, a.name, a.principal, a.operation) for a in found}:
            return
        assert time.monotonic() < deadline, "granted ACLs never became visible"
        time.sleep(0.1)


def run_cli(settings: Settings, log: Path, *args: str, timeout: float = 90) -> int:
    """Run ``anomstream <args>`` to completion with ``settings`` in its environment; its exit code."""
    with log.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "anomstream", *args],
            env=env_for(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
    return proc.returncode
