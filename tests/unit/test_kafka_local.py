"""Unit tests of the local Kafka launcher: config generation and pid bookkeeping (no JVM started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kafka_local


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    """The broker is a combined KRaft node listening only on 127.0.0.1 at the given ports."""
    cfg = kafka_local.BrokerConfig(tmp_path, port=4001, controller_port=4002)
    props = _props(kafka_local.render_properties(cfg))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:4002"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:4001,CONTROLLER://127.0.0.1:4002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:4001"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert "0.0.0.0" not in kafka_local.render_properties(cfg)


def test_properties_fit_a_single_node(tmp_path: Path) -> None:
    """Every internal topic uses replication factor 1 and topics are never auto-created."""
    props = _props(kafka_local.render_properties(kafka_local.BrokerConfig(tmp_path)))
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_log4j_writes_to_the_data_dir(tmp_path: Path) -> None:
    """Broker logs go to a file inside the data dir, not to the caller's terminal."""
    cfg = kafka_local.BrokerConfig(tmp_path)
    assert f"appender.file.fileName = {tmp_path / 'broker.log'}" in kafka_local.render_log4j(cfg)


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    """A pid file naming a dead process is treated as 'not running' and deleted."""
    cfg = kafka_local.BrokerConfig(tmp_path)
    cfg.pid_file.write_text("999999999\n")
    assert kafka_local.running_pid(cfg) is None
    assert not cfg.pid_file.exists()


def test_reused_pid_is_not_mistaken_for_the_broker(tmp_path: Path) -> None:
    """A live pid that belongs to another program is stale too, and never signalled."""
    cfg = kafka_local.BrokerConfig(tmp_path)
    cfg.pid_file.write_text(f"{os.getpid()}\n")
    assert kafka_local.running_pid(cfg) is None
    assert kafka_local.stop(cfg) is False


def test_garbage_pid_file_is_stale(tmp_path: Path) -> None:
    """An unreadable pid file does not crash the launcher."""
    cfg = kafka_local.BrokerConfig(tmp_path)
    cfg.pid_file.write_text("not-a-pid")
    assert kafka_local.running_pid(cfg) is None


def test_data_dir_of_another_version_is_refused(tmp_path: Path) -> None:
    """A data dir formatted by another Kafka version is never started with this one."""
    cfg = kafka_local.BrokerConfig(tmp_path, version="4.3.1")
    (tmp_path / "kafka.version").write_text("4.0.0\n")
    with pytest.raises(RuntimeError, match=r"formatted by Kafka 4\.0\.0"):
        kafka_local.format_storage(cfg, tmp_path)


def test_free_port_is_bindable() -> None:
    """free_port returns a loopback port in the unprivileged range."""
    assert 1024 < kafka_local.free_port() < 65536


def test_jar_cache_is_keyed_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A completed download is found by its version stamp without calling Maven again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stamp = tmp_path / "anomstream" / "kafka" / "9.9.9" / "COMPLETE"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("9.9.9\n")
    monkeypatch.setenv("PATH", "")  # mvn unreachable: the cache must be enough
    assert kafka_local.ensure_jars("9.9.9") == stamp.parent / "libs"


def test_cluster_ids_never_start_with_a_dash() -> None:
    """StorageTool would parse an id starting with '-' as an option: 2,000 fresh ids never do."""
    ids = [kafka_local.new_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
