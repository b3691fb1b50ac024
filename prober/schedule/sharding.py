"""Sharded mode: each scenario runs on exactly R of N replicas, chosen by rendezvous hashing.

Rendezvous (highest-random-weight) hashing ranks every shard for every scenario by a
stable hash of the pair and keeps the top R. Adding a shard takes over only the pairs
where it now ranks in the top R (about R/N of them), so a scale-out moves few scenarios
and every replica computes the same assignment without talking to the others.
The hash is blake2b, never Python's `hash()`, which is salted per process.
"""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from prober.contracts.config import Scenario

_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """Shard settings that cannot describe this replica; the message names the setting."""


@dataclass(frozen=True)
class Shard:
    """This replica's place among `count` replicas, each scenario on `replicas` of them."""

    index: int
    count: int
    replicas: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"PROBER_SHARD_COUNT must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"shard index {self.index} is outside 0..{self.count - 1} "
                f"(PROBER_SHARD_COUNT={self.count})"
            )
        if not 1 <= self.replicas <= self.count:
            raise ShardError(
                f"PROBER_SHARD_REPLICAS={self.replicas} must be between 1 and "
                f"PROBER_SHARD_COUNT={self.count}"
            )

    def owns(self, scenario: str) -> bool:
        return self.index in owners(scenario, self.count, self.replicas)

    def select(self, scenarios: Iterable[Scenario]) -> tuple[Scenario, ...]:
        """The scenarios this replica runs, in file order."""
        return tuple(scenario for scenario in scenarios if self.owns(scenario.name))


def weight(scenario: str, shard: int) -> int:
    digest = hashlib.blake2b(f"{scenario}\0{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owners(scenario: str, count: int, replicas: int) -> list[int]:
    """The `replicas` shards (of `count`) that run `scenario`, best-ranked first."""
    ranked = sorted(range(count), key=lambda shard: weight(scenario, shard), reverse=True)
    return ranked[:replicas]


def shard_from_settings(
    index: int | None, count: int | None, replicas: int, pod_name: str | None
) -> Shard | None:
    """None when sharding is off (no count); the index may come from a StatefulSet pod name.

    R above the shard count is clamped: a StatefulSet scaled down to one pod still probes.
    """
    if count is None:
        if index is not None:
            raise ShardError("PROBER_SHARD_INDEX is set but PROBER_SHARD_COUNT is not")
        return None
    if index is None:
        if pod_name is None:
            raise ShardError(
                "PROBER_SHARD_COUNT is set but neither PROBER_SHARD_INDEX nor "
                "PROBER_POD_NAME (a StatefulSet pod name like prober-3) is"
            )
        match = _ORDINAL.search(pod_name)
        if match is None:
            raise ShardError(
                f"PROBER_POD_NAME={pod_name!r} does not end in a StatefulSet ordinal (-N)"
            )
        index = int(match.group(1))
    return Shard(index=index, count=count, replicas=min(replicas, count))
