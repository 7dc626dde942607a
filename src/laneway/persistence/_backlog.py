"""Which queued batches go into the next commit.

While everything queued fits in one commit, the writer takes it all, in
arrival order: no choice to make, and nothing here costs anything. When
more is queued than one commit takes (`max_events`, `max_bytes`), the
next commit is filled in `FairQueue` order (event priority strictly, then
tenant tiers by weight, tenants of a tier in turn, oldest first), so under
overload a high-tier tenant's events become durable first and a low-tier
one's are delayed, never starved.

Per-session order is never broken: a session's batches form a chain, and
only the chain's head competes. The next batch of that session joins the
queue when the head is taken (possibly into the same commit, after it).
A batch ranks by the highest priority among its events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..core import FairQueue
from ._batch import WriteBatch

__all__ = ["CommitBacklog"]

_Chain = deque[WriteBatch]


class CommitBacklog:
    """Batches waiting for a commit (the writer thread's; not thread-safe).

    tier_of(tenant): the tenant's tier when its batch reaches the front of
        its session's chain; must not raise (the engine's `Tiers.tier_of`
        falls back to medium, logs and counts by itself).
    """

    def __init__(self, tier_of: Callable[[str], str]) -> None:
        self._tier_of = tier_of
        self._arrived: list[WriteBatch] = []  # in arrival order, not ranked yet
        self._chains: dict[tuple[str, str], _Chain] = {}
        self._fair: FairQueue[tuple[str, str], _Chain] = FairQueue(self._classify)
        self.events = 0  # queued here, all batches
        self.nbytes = 0
        self.ordered = 0  # commits that had to choose (more queued than one takes)

    def __bool__(self) -> bool:
        return bool(self._arrived) or bool(self._chains)

    def add(self, batch: WriteBatch) -> None:
        self._arrived.append(batch)
        self.events += len(batch.events)
        self.nbytes += batch.nbytes

    def _classify(self, chain: _Chain) -> tuple[int, str, str]:
        head = chain[0]
        return max((event.priority for event in head.events), default=0), self._tier_of(head.tenant), head.tenant

    def take(self, max_events: int, max_bytes: int) -> tuple[list[WriteBatch], int]:
        """The next commit's batches and their event count. A commit holds
        batches until it reaches either bound (so at least one batch)."""
        if not self._chains and self.events <= max_events and self.nbytes <= max_bytes:
            group, self._arrived = self._arrived, []
            count, self.events, self.nbytes = self.events, 0, 0
            return group, count
        self.ordered += 1
        chains, fair = self._chains, self._fair
        for batch in self._arrived:
            key = (batch.tenant, batch.session)
            chain = chains.get(key)
            if chain is not None:
                chain.append(batch)  # behind its session's earlier batches
            else:
                chain = chains[key] = deque((batch,))
                fair.push(key, chain, 0, 0)
        self._arrived = []
        group: list[WriteBatch] = []
        count = nbytes = 0
        while count < max_events and nbytes < max_bytes:
            chain = fair.pop(0)
            if chain is None:
                break
            batch = chain.popleft()
            key = (batch.tenant, batch.session)
            if chain:
                fair.push(key, chain, 0, 0)
            else:
                del chains[key]
            group.append(batch)
            count += len(batch.events)
            nbytes += batch.nbytes
        self.events -= count
        self.nbytes -= nbytes
        return group, count
