"""Snapshot encoding: round trip, head-only reads, and damage detection."""

from __future__ import annotations

import struct

import pytest

from laneway.core import (
    BufferedEvent,
    DataFormatError,
    DualBucket,
    MemoryBudget,
    SnapshotCorrupt,
    SnapshotHead,
    TenantConfig,
    decode_snapshot,
    encode_snapshot,
    read_snapshot_head,
    verify_snapshot,
)


def entry(seq: int, priority: int = 0, ts: int = 1_000, size: int = 20) -> BufferedEvent:
    return BufferedEvent(seq, ts + seq, priority, "Stop" if priority else "T", bytes([seq % 256]) * size)


def head(**changes: object) -> SnapshotHead:
    fields: dict[str, object] = dict(
        tenant="acme", session="s1", epoch=7, lsn=42, last_seq=5, taken_ts=9_000, counters=(1, 2, 3, 4), fill=(1, 164, 2, 328)
    )
    fields.update(changes)
    return SnapshotHead(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_and_entry() -> None:
    priority = [entry(2, 1)]
    regular = [entry(1), entry(3), entry(5)]
    data = encode_snapshot(head(handler_state={"summary": {"n": 3}}), priority, regular)
    snap = decode_snapshot(data)
    assert snap.head == head(handler_state={"summary": {"n": 3}})
    assert snap.priority == priority and snap.regular == regular
    assert read_snapshot_head(data) == snap.head
    assert verify_snapshot(data) == snap.head


def test_the_head_reads_without_the_events_even_when_the_body_is_damaged() -> None:
    data = bytearray(encode_snapshot(head(), [], [entry(i) for i in range(1, 50)]))
    data[-5] ^= 0xFF
    assert read_snapshot_head(bytes(data)).lsn == 42
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        decode_snapshot(bytes(data))
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        verify_snapshot(bytes(data))


def test_every_single_flipped_bit_is_caught() -> None:
    good = encode_snapshot(head(), [entry(2, 1)], [entry(1), entry(3)])
    for position in range(len(good)):
        for bit in range(8):
            damaged = bytearray(good)
            damaged[position] ^= 1 << bit
            with pytest.raises((SnapshotCorrupt, DataFormatError)):
                decode_snapshot(bytes(damaged))
            with pytest.raises((SnapshotCorrupt, DataFormatError)):
                verify_snapshot(bytes(damaged))


@pytest.mark.parametrize("keep", [0, 5, 11, 30])
def test_truncation_is_caught(keep: int) -> None:
    good = encode_snapshot(head(), [], [entry(1), entry(2)])
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(good[:keep])


def test_not_a_snapshot_and_a_newer_version() -> None:
    with pytest.raises(SnapshotCorrupt, match="magic"):
        decode_snapshot(b"PNG\x00" + b"\x00" * 40)
    good = bytearray(encode_snapshot(head(), [], []))
    struct.pack_into(">H", good, 4, 99)
    with pytest.raises(DataFormatError, match="version 99"):
        decode_snapshot(bytes(good))


def test_restore_gives_the_bucket_the_snapshot_was_taken_of() -> None:
    config = TenantConfig(priority_max_events=3, regular_max_events=4)
    budget = MemoryBudget(0)
    original = DualBucket(config, budget)
    for seq in range(1, 12):
        original.offer(entry(seq, priority=1 if seq % 3 == 0 else 0), now_ms=2_000)
    data = encode_snapshot(head(), original.priority, original.regular)
    snap = decode_snapshot(data)
    restored = DualBucket(config, budget)
    assert restored.restore(snap.priority, snap.regular, now_ms=2_000) == []
    assert restored.entries() == original.entries()
    assert (restored.priority_bytes, restored.regular_bytes) == (original.priority_bytes, original.regular_bytes)
    assert restored.version == 1  # one change: the restore itself


def test_restore_applies_todays_limits_and_retention() -> None:
    old = [entry(seq) for seq in range(1, 9)]
    smaller = TenantConfig(regular_max_events=3, regular_retention_s=60)
    bucket = DualBucket(smaller, MemoryBudget(0))
    # Entries carry ts 1001..1008; at now=61_004 the first three are older than 60 s.
    evicted = bucket.restore([], old, now_ms=61_004)
    assert [e.seq for e in bucket.entries()] == [6, 7, 8]
    assert bucket.counters.expired == 3 and [e.seq for e in evicted] == [4, 5]
