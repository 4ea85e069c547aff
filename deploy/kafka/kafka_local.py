"""Run a real single-node Apache Kafka (KRaft) broker from its Maven Central jars, without Docker.

Owns jar download/caching, ``server.properties`` generation, storage format, start/stop by pid and the
readiness wait. Used by ``make kafka-up``/``kafka-down``, ``make run`` and the pytest broker fixture.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

DEFAULT_VERSION = "4.3.1"
HERE = Path(__file__).resolve().parent
JVM_FLAGS = (
    "-Xms128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def cache_root() -> Path:
    """Per-user cache holding one jar folder per Kafka version."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anomstream" / "kafka"


def free_port() -> int:
    """Return a loopback port that was free a moment ago (bind 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """Where and how one local broker runs; every field is a launcher parameter."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    version: str = DEFAULT_VERSION
    session_timeout_floor_ms: int = 2000
    node_id: int = 1
    voters: str = ""  # controller.quorum.voters; default: this node alone
    cluster_id: str = ""  # default: a fresh one at format time (a cluster shares one)
    heap: str = "512m"
    # Secured brokers and clusters (kafka_secure.py, kafka_cluster.py) override these:
    properties: dict[str, str] = dataclasses.field(default_factory=dict)  # merged over the defaults
    format_args: tuple[str, ...] = ()  # extra StorageTool format arguments (e.g. --add-scram)
    client: dict[str, str] = dataclasses.field(default_factory=dict)  # admin conf for the ready probe

    @property
    def bootstrap(self) -> str:
        """The client bootstrap address."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """File holding the broker's pid while it runs."""
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        """The generated ``server.properties``."""
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        """Broker log (log4j output and stdout/stderr)."""
        return self.data_dir / "broker.log"


def render_properties(cfg: BrokerConfig) -> str:
    """Render a KRaft single-node ``server.properties`` bound to loopback only."""
    props = {
        "process.roles": "broker,controller",
        "node.id": str(cfg.node_id),
        "controller.quorum.voters": cfg.voters or f"{cfg.node_id}@127.0.0.1:{cfg.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{cfg.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.data_dir / "logs"),
        # One node: every internal topic must accept a replication factor of 1.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fast start and fast rebalances for tests and demos (defaults are 50 partitions and 3 s).
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": str(cfg.session_timeout_floor_ms),
        "group.consumer.min.session.timeout.ms": str(cfg.session_timeout_floor_ms),
        "group.consumer.session.timeout.ms": "10000",
        "group.consumer.min.heartbeat.interval.ms": "500",
        "group.consumer.heartbeat.interval.ms": "1000",
        # Missing topic creation must fail loudly, not be papered over.
        "auto.create.topics.enable": "false",
        # Small footprint: the default cleaner buffer alone is 128 MiB on-heap.
        "log.cleaner.dedupe.buffer.size": "16777216",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.segment.bytes": "16777216",
        **cfg.properties,
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def render_log4j(cfg: BrokerConfig) -> str:
    """Log4j2 properties sending broker logs to a file, WARN and up for the chatty packages."""
    return (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {cfg.log_file}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
    )


def ensure_jars(version: str = DEFAULT_VERSION, offline: bool = False) -> Path:
    """Download the broker's runtime jars once into the per-user cache and return their folder.

    A stamp file marks a complete download, so an interrupted one is retried rather than trusted.
    """
    target = cache_root() / version
    libs = target / "libs"
    stamp = target / "COMPLETE"
    if stamp.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is required to fetch the Kafka jars; install Maven 3.8+")
    shutil.rmtree(libs, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(HERE / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
        f"-Dkafka.version={version}",
    ]
    if offline:
        cmd.insert(1, "-o")
    subprocess.run(cmd, check=True)
    stamp.write_text(version + "\n")
    return libs


def _java(libs: Path, *args: str, log4j: Path | None = None, heap: str = "512m") -> list[str]:
    flags = [*JVM_FLAGS, f"-Xmx{heap}"]
    if log4j is not None:
        flags.append(f"-Dlog4j2.configurationFile={log4j}")
    return ["java", *flags, "-cp", f"{libs}/*", *args]


def format_storage(cfg: BrokerConfig, libs: Path) -> None:
    """Write config files and format the data dir once; refuse a dir formatted by another version."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    version_stamp = cfg.data_dir / "kafka.version"
    if version_stamp.exists() and version_stamp.read_text().strip() != cfg.version:
        raise RuntimeError(
            f"{cfg.data_dir} was formatted by Kafka {version_stamp.read_text().strip()}, "
            f"not {cfg.version}; remove it or choose another data dir"
        )
    cfg.properties_file.write_text(render_properties(cfg))
    (cfg.data_dir / "log4j2.properties").write_text(render_log4j(cfg))
    if version_stamp.exists():
        return
    cluster_id = cfg.cluster_id or new_cluster_id()
    subprocess.run(
        _java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(cfg.properties_file),
            "--ignore-formatted",
            *cfg.format_args,
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    version_stamp.write_text(cfg.version + "\n")


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding, never starting with ``-``.

    StorageTool's argument parser reads an id like ``-R8Uds...`` as an option and fails (1 time in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def running_pid(cfg: BrokerConfig) -> int | None:
    """Pid of this config's broker if it runs; a stale pid file (dead or reused pid) is removed."""
    try:
        pid = int(cfg.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        cfg.pid_file.unlink(missing_ok=True)
        return None
    if str(cfg.properties_file).encode() not in cmdline:
        cfg.pid_file.unlink(missing_ok=True)
        return None
    return pid


def wait_ready(bootstrap: str, timeout: float = 60.0, client: dict[str, str] | None = None) -> None:
    """Block until a metadata request succeeds (log lines are not a readiness signal)."""
    from confluent_kafka.admin import AdminClient  # the venv has it; the stdlib path does not

    admin = AdminClient({**(client or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout}s") from exc
            time.sleep(0.25)


def launch(cfg: BrokerConfig) -> int:
    """Start the broker process in the background without waiting (a running one is reused)."""
    pid = running_pid(cfg)
    if pid is None:
        libs = ensure_jars(cfg.version)
        format_storage(cfg, libs)
        log4j = cfg.data_dir / "log4j2.properties"
        with cfg.log_file.open("ab") as log:
            proc = subprocess.Popen(
                _java(libs, "kafka.Kafka", str(cfg.properties_file), log4j=log4j, heap=cfg.heap),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the caller's terminal must not kill the broker
            )
        pid = proc.pid
        cfg.pid_file.write_text(f"{pid}\n")
    return pid


def start(cfg: BrokerConfig, timeout: float = 60.0) -> int:
    """Start the broker in the background (idempotent: a running one is reused) and wait until ready."""
    pid = launch(cfg)
    try:
        wait_ready(cfg.bootstrap, timeout, cfg.client)
    except TimeoutError:
        tail = cfg.log_file.read_text(errors="replace")[-3000:] if cfg.log_file.exists() else ""
        stop(cfg)
        raise TimeoutError(f"broker did not become ready; log tail:\n{tail}") from None
    return pid


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap if it is our child, so it does not linger as a zombie
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def stop(cfg: BrokerConfig, timeout: float = 30.0) -> bool:
    """Stop the broker by pid: SIGTERM (clean), SIGKILL after ``timeout``. True if one was running."""
    pid = running_pid(cfg)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        _wait_exit(pid, 10)
    cfg.pid_file.unlink(missing_ok=True)
    return True


def kill(cfg: BrokerConfig) -> bool:
    """SIGKILL the broker (a crash, for fault tests); a later ``start`` needs no re-format."""
    pid = running_pid(cfg)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    _wait_exit(pid, 10)
    cfg.pid_file.unlink(missing_ok=True)
    return True


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (what ``ps -o rss`` prints)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``kafka_local.py up|down|status|fetch [--port P] [--data-dir D] ...``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--data-dir", type=Path, default=Path(".kafka"))
    parser.add_argument("--version", default=os.environ.get("KAFKA_VERSION", DEFAULT_VERSION))
    parser.add_argument("--secure", action="store_true", help="SASL_SSL + SCRAM + ACLs (kafka_secure.py)")
    parser.add_argument("--internal-port", type=int, default=9094, help="with --secure: mTLS broker port")
    args = parser.parse_args(argv)
    cfg = BrokerConfig(args.data_dir.resolve(), args.port, args.controller_port, args.version)
    if args.secure:
        import kafka_secure

        ports = (cfg.port, cfg.controller_port, args.internal_port)
        cfg, creds = kafka_secure.secure_config(cfg.data_dir, *ports)
        print(f"secured: CA {creds.ca}, passwords {creds.folder}/<user>.password, users {creds.users}")
    if args.action == "fetch":
        print(ensure_jars(cfg.version))
    elif args.action == "up":
        was = running_pid(cfg)
        began = time.monotonic()
        pid = start(cfg)
        state = "already running" if was else f"started in {time.monotonic() - began:.1f}s"
        print(
            f"kafka {cfg.version} {state}: pid {pid}, bootstrap {cfg.bootstrap}, "
            f"rss {rss_kib(pid) // 1024} MiB, data {cfg.data_dir}"
        )
    elif args.action == "down":
        print("kafka stopped" if stop(cfg) else "kafka was not running")
    else:
        current = running_pid(cfg)
        print(f"kafka running: pid {current}, bootstrap {cfg.bootstrap}" if current else "kafka not running")
        return 0 if current else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
