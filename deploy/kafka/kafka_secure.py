"""A secured local broker: SASL/SCRAM-SHA-512 over TLS for clients, the StandardAuthorizer on.

* A throw-away CA and a broker certificate (IP 127.0.0.1 + ``localhost``) made with ``cryptography``;
  PEM files the broker reads directly (``ssl.keystore.type=PEM``).
* SCRAM users created by Kafka's own tooling: ``StorageTool format --add-scram`` bootstraps their
  credentials into the cluster metadata, so they exist before the first client connects.
* Listeners: ``SASL_SSL`` for clients; ``INTERNAL`` and ``CONTROLLER`` are mutual-TLS only (the broker's
  own certificate is the super user there), so no listener accepts an unauthenticated principal.
* ``admin`` is a super user (creates topics and ACLs); every other user starts with no ACL at all.

Secrets live in ``<data_dir>/secure`` (mode 0600): ``ca.pem``, ``broker.pem``, ``<user>.password``.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from kafka_local import BrokerConfig

BROKER_CN = "anomstream-broker"
MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where a secured broker's CA and users' passwords are; ``client(user)`` builds librdkafka conf."""

    folder: Path
    users: tuple[str, ...]

    @property
    def ca(self) -> Path:
        """The CA certificate clients must trust."""
        return self.folder / "ca.pem"

    def password_file(self, user: str) -> Path:
        """The file holding ``user``'s SCRAM password."""
        return self.folder / f"{user}.password"

    def password(self, user: str) -> str:
        """``user``'s SCRAM password."""
        return self.password_file(user).read_text().strip()

    def client(self, user: str) -> dict[str, str]:
        """Librdkafka properties that log in as ``user`` over TLS."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca),
        }


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def make_pki(folder: Path) -> None:
    """A CA and a CA-signed broker certificate as PEM files (idempotent: kept if present)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if (folder / "broker.pem").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("anomstream throw-away CA", ca_key, "anomstream throw-away CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    broker = cert(BROKER_CN, key, "anomstream throw-away CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    pkcs8 = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # 1. The broker's PEM keystore: its private key, then its certificate chain (leaf first).
    _write_private(folder / "broker.pem", pkcs8 + broker.public_bytes(pem) + ca_cert.public_bytes(pem))


def secure_properties(cfg: BrokerConfig, internal_port: int, ca: Path, keystore: Path) -> dict[str, str]:
    """Listener, TLS and authoriser properties over ``kafka_local``'s single-node defaults."""
    c, i, p = cfg.controller_port, internal_port, cfg.port
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{p},INTERNAL://127.0.0.1:{i},CONTROLLER://127.0.0.1:{c}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{p},INTERNAL://127.0.0.1:{i}",
        "listener.security.protocol.map": "CONTROLLER:SSL,INTERNAL:SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": AUTHORIZER,
        "super.users": f"User:admin;User:CN={BROKER_CN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def secure_config(
    data_dir: Path,
    port: int,
    controller_port: int,
    internal_port: int,
    users: tuple[str, ...] = ("admin", "worker"),
) -> tuple[BrokerConfig, Credentials]:
    """A secured single-node ``BrokerConfig`` and its credentials (CA and passwords made once)."""
    creds = Credentials(data_dir / "secure", users)
    make_pki(creds.folder)
    for user in users:
        if not creds.password_file(user).exists():
            _write_private(creds.password_file(user), (secrets.token_hex(24) + "\n").encode())
    # 2. SCRAM users: Kafka's StorageTool writes their credentials into the metadata at format time.
    scram = [
        arg
        for user in users
        for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={creds.password(user)}]")
    ]
    base = BrokerConfig(data_dir, port, controller_port)
    props = secure_properties(base, internal_port, creds.ca, creds.folder / "broker.pem")
    cfg = dataclasses.replace(base, properties=props, format_args=tuple(scram), client=creds.client("admin"))
    return cfg, creds
