"""Rendezvous sharding: balanced, stable across processes and versions, minimal moves."""

from collections import Counter

import pytest

from prober.contracts.config import Scenario
from prober.schedule.sharding import Shard, ShardError, owners, shard_from_settings

NAMES = [f"scenario-{i:04d}" for i in range(1000)]


def assignment(count: int, replicas: int) -> dict[str, set[int]]:
    return {name: set(owners(name, count, replicas)) for name in NAMES}


def test_every_scenario_runs_on_exactly_r_shards_and_load_is_balanced() -> None:
    assigned = assignment(5, 2)
    assert all(len(shards) == 2 for shards in assigned.values())
    load = Counter(shard for shards in assigned.values() for shard in shards)
    mean = 2 * len(NAMES) / 5
    assert set(load) == set(range(5))
    assert all(0.8 * mean <= n <= 1.2 * mean for n in load.values()), load


def test_adding_a_shard_moves_about_one_sixth_of_the_assignments() -> None:
    before, after = assignment(5, 2), assignment(6, 2)
    moved = sum(len(before[name] - after[name]) for name in NAMES)
    assert 0.12 <= moved / (2 * len(NAMES)) <= 0.22, moved
    # Only the new shard gains work: nothing moves between the old shards.
    assert all(after[name] - before[name] <= {5} for name in NAMES)


def test_assignment_is_a_pinned_function_of_the_name() -> None:
    """Replicas of different versions must agree; Python's salted hash() would not."""
    assert owners("sso-login", 5, 2) == owners("sso-login", 5, 2)
    assert owners("sso-login", 5, 2) == [4, 2]


def test_shard_selects_its_scenarios_and_the_shards_cover_each_one_r_times() -> None:
    scenarios = [Scenario(name=n, interval="60s", timeout="30s", script="m:f") for n in NAMES[:50]]
    picked = Counter(s.name for index in range(3) for s in Shard(index, 3, 2).select(scenarios))
    assert picked == Counter({s.name: 2 for s in scenarios})


def test_index_comes_from_a_statefulset_pod_name() -> None:
    assert shard_from_settings(None, 5, 2, "prober-3") == Shard(3, 5, 2)
    assert shard_from_settings(None, None, 2, "prober-3") is None
    assert shard_from_settings(1, 4, 2, "ignored-0") == Shard(1, 4, 2)
    # R above the shard count is clamped: one pod left still runs everything.
    assert shard_from_settings(0, 1, 2, None) == Shard(0, 1, 1)


@pytest.mark.parametrize(
    ("index", "count", "pod", "message"),
    [
        (None, 5, "prober", "does not end in a StatefulSet ordinal"),
        (None, 5, None, "neither PROBER_SHARD_INDEX nor"),
        (5, 5, None, "outside 0..4"),
        (2, None, None, "PROBER_SHARD_COUNT is not"),
    ],
)
def test_bad_shard_settings_name_the_setting(
    index: int | None, count: int | None, pod: str | None, message: str
) -> None:
    with pytest.raises(ShardError, match=message):
        shard_from_settings(index, count, 2, pod)
