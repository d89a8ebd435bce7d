"""Which split each record lands in: records grouped, groups cut into every file's shares.

1. A group is every record reachable from another through a shared user_id or a shared prompt
   text, so no user and no prompt is in two splits (the same Alpaca instruction imported as a
   demonstration and as a prompt is one group, in whichever files it appears).
2. Groups are ordered by a seeded hash of their key and cut where the running weight crosses
   each fraction. A group weighs its share of each file, summed over files, so every file is cut
   near the fractions, a file of 175 prompts as well as one of 20,000.
3. A split a file needs but did not get takes that file's group nearest to it, if the move
   empties no other file's split; a file that still misses a split has too few groups, and the
   caller says so.

Stable: a group keeps its place in the hash order when records are added, so only groups next
to a cut can cross it, and only as far as the weight that was added.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence

Links = Callable[[str, dict], list[str]]  # (file name, record) -> the keys that tie records into groups
Needs = Callable[[str, str], bool]  # (file name, split) -> must this file have records in this split?


class _Groups:
    """Union-find over link keys."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, keys: list[str]) -> str:
        roots = sorted({self.find(k) for k in keys})  # the smallest key names the group: stable across runs
        for other in roots[1:]:
            self.parent[other] = roots[0]
        return roots[0]


def group_of_records(files: Mapping[str, Sequence[dict]], links: Links) -> dict[str, list[str]]:
    """Each record's group, per file; a group is named by the smallest key it holds."""
    groups = _Groups()
    for name, records in files.items():
        for r in records:
            groups.union(links(name, r))
    return {name: [groups.find(links(name, r)[0]) for r in records] for name, records in files.items()}


def _order_key(seed: int, group: str) -> bytes:
    return hashlib.sha256(f"{seed}:{group}".encode()).digest()


def assign(
    files: Mapping[str, Sequence[dict]], fractions: Mapping[str, float], seed: int, links: Links, needs: Needs
) -> dict[str, list[str]]:
    """The split of each record, per file, in the records' order (see the module's docstring)."""
    record_groups = group_of_records(files, links)
    sizes = {name: len(records) for name, records in files.items()}
    weight: dict[str, float] = defaultdict(float)
    members: dict[str, Counter] = defaultdict(Counter)  # group -> records per file
    for name, groups in record_groups.items():
        for g in groups:
            weight[g] += 1 / sizes[name]
            members[g][name] += 1
    order = sorted(weight, key=lambda g: _order_key(seed, g))
    cuts = _cuts(fractions)
    total = sum(weight.values())
    position, split_of, running = {}, {}, 0.0
    for g in order:
        position[g] = (running + weight[g] / 2) / total  # the group's midpoint in [0, 1)
        running += weight[g]
        split_of[g] = next((s for s, (lo, hi) in cuts.items() if lo <= position[g] < hi), list(cuts)[-1])
    _fill(split_of, position, members, cuts, needs)
    return {name: [split_of[g] for g in groups] for name, groups in record_groups.items()}


def _cuts(fractions: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Each split's interval of [0, 1): the fractions laid end to end."""
    cuts, lo = {}, 0.0
    for split, share in fractions.items():
        if share > 0:
            cuts[split] = (lo, lo + share)
            lo += share
    return cuts


def _fill(
    split_of: dict[str, str],
    position: dict[str, float],
    members: dict[str, Counter],
    cuts: dict[str, tuple[float, float]],
    needs: Needs,
) -> None:
    """Move groups into the splits a file needs and did not get, nearest first, emptying none."""

    def holders(name: str, split: str) -> int:
        return sum(1 for g, s in split_of.items() if s == split and members[g][name])

    def movable(g: str) -> bool:  # its current split keeps a group of every file it has records in
        return all(holders(name, split_of[g]) > 1 or not needs(name, split_of[g]) for name in members[g])

    def distance(g: str, split: str) -> float:
        lo, hi = cuts[split]
        return max(lo - position[g], position[g] - hi, 0.0)

    files = sorted({name for counts in members.values() for name in counts})
    for name in files:
        for split in cuts:
            if not needs(name, split) or holders(name, split):
                continue
            candidates = [g for g in split_of if members[g][name] and movable(g)]
            if candidates:
                split_of[min(candidates, key=lambda g: (distance(g, split), g))] = split
