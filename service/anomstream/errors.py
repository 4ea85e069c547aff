"""The one exception hierarchy of anomstream; the CLI maps each family to an exit code."""

from __future__ import annotations


class AnomstreamError(Exception):
    """Base of every error anomstream raises on purpose."""

    exit_code = 1


class ConfigError(AnomstreamError):
    """Invalid configuration: reported with the offending field before any client starts."""

    exit_code = 2


class BrokerError(AnomstreamError):
    """Kafka refused or failed an operation we cannot continue without."""


class DeliveryError(BrokerError):
    """A produced record (alert, dead letter, snapshot) was not acknowledged; offsets stay uncommitted."""


class TransactionAbortedError(DeliveryError):
    """An exactly-once transaction was aborted: its outputs and offsets are discarded, the producer is clean.

    Not fatal: the checkpoint rewinds the input to the last committed offsets and restores state.
    """


class CommitRejectedError(BrokerError):
    """The group refused an offset commit (rebalance in progress, stale generation).

    Not fatal: outputs were already delivered; the partitions' next owner replays from the last
    committed offset, and restore skips snapshots newer than it.
    """


class DeadLetterLimitError(AnomstreamError):
    """Too much input is being dead-lettered: stop rather than divert the whole stream."""

    exit_code = 3


class SnapshotError(AnomstreamError):
    """A state snapshot failed authentication or could not be loaded."""


class BrokerUnreachableError(BrokerError):
    """No broker answered at start-up within the bounded retry: wrong address, broker down, firewall."""

    exit_code = 4


class AuthenticationError(BrokerError):
    """The broker refused who we are: SASL credentials, or a TLS certificate we (or it) do not trust.

    Not retried: a wrong password does not become right by waiting.
    """

    exit_code = 5


class AuthorizationError(BrokerError):
    """Authenticated, but an ACL the worker needs is missing; the message names the resource."""

    exit_code = 6
