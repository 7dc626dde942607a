"""The commit journal in front of LMDB (`_journal.py`, `_applier.py`).

The property that matters: whatever point the applier had reached when the
process died (nothing applied, some, all; before or after the journal
wrapped around), reopening the data dir gives exactly the LMDB contents a
log without a journal has after the same acknowledged commits."""

from __future__ import annotations

import struct
from pathlib import Path

import lmdb
import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import EffectRecord, Event, PriorityMetadata, StorageError, encode
from laneway.persistence import LmdbLog, WriteBatch
from laneway.persistence._front import FRAME_MAX as JOURNAL_FRAME_MAX
from laneway.persistence._journal import FIRST_FRAME, Journal, JournalState, read_frames

META = PriorityMetadata("default")
SMALL = 512 << 10  # the smallest journal: wraps after a few big frames

# A commit: batches of (session, events, dedupe keys?, payload pad, effect?)
# plus effects of earlier commits to mark done.
_batch = st.tuples(st.sampled_from("abc"), st.integers(1, 4), st.booleans(), st.sampled_from([0, 0, 15_000, 40_000, 70_000]), st.booleans())
_commit = st.tuples(st.lists(_batch, min_size=0, max_size=3), st.integers(0, 2))


class _Builder:
    """Builds the same WriteBatches for two logs (a commit stamps them)."""

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}
        self.effects: list[EffectRecord] = []

    def commit(self, spec: tuple[list[tuple[str, int, bool, int, bool]], int]) -> tuple[list[tuple], list[EffectRecord]]:
        batches, finish = spec
        plans = []
        for session, n, dedupe, pad, effect in batches:
            first = self.seqs.get(session, 0) + 1
            self.seqs[session] = first + n - 1
            plans.append((session, first, n, dedupe, pad, effect))
        done = [msgspec.structs.replace(record, state="done", attempts=1) for record in self.effects[:finish]]
        del self.effects[:finish]
        for session, first, _n, _dedupe, _pad, effect in plans:
            if effect:
                self.effects.append(_effect(session, first))
        return plans, done


def _effect(session: str, seq: int) -> EffectRecord:
    return EffectRecord("t", session, seq, 0, "T", "webhook", None, msgspec.Raw(encode({})), f"e{session}{seq}", 0, 0, None, 5)


def _batches(plans: list[tuple]) -> list[WriteBatch]:
    out = []
    for session, first, n, dedupe, pad, effect in plans:
        events = [
            Event(0, "t", session, seq, 1, 1000 + seq, "T", 0, META, None, f"k{session}{seq}" if dedupe else None,
                  msgspec.Raw(encode({"seq": seq, "pad": "x" * pad})))
            for seq in range(first, first + n)
        ]
        encoded = [encode(e) for e in events]
        effects = [_effect(session, first)] if effect else None
        out.append(WriteBatch("t", session, events, encoded, sum(map(len, encoded)), None, effects=effects))
    return out


def dump(wal: Path) -> dict[str, list[tuple[bytes, bytes]]]:
    env = lmdb.open(str(wal), max_dbs=16, readonly=True, lock=False)
    try:
        out = {}
        for name in (b"events", b"seq", b"dedupe", b"sessions", b"effects", b"effects_open"):
            with env.begin(db=env.open_db(name, create=False)) as txn:
                out[name.decode()] = [(bytes(k), bytes(v)) for k, v in txn.cursor()]
        with env.begin(db=env.open_db(b"meta", create=False)) as txn:
            out["last_lsn"] = [(b"", bytes(txn.get(b"last_lsn") or b""))]
        return out
    finally:
        env.close()


class _Stall:
    """The applier's LMDB write, letting `allowed` applies through and
    failing every later one: the process "dies" with the rest pending."""

    def __init__(self, log: LmdbLog, allowed: int) -> None:
        assert log._front is not None
        self.applier = log._front.applier
        self.inner = self.applier._apply
        self.allowed = allowed
        self.applier._apply = self

    def __call__(self, pending: object) -> None:
        if self.allowed <= 0:
            raise StorageError("stalled by the test", cause="I/O error (test)")
        self.allowed -= 1
        self.inner(pending)


@settings(max_examples=40, deadline=None)
@given(commits=st.lists(_commit, min_size=1, max_size=14), allowed=st.integers(0, 4))
def test_a_reopen_gives_what_direct_commits_give_wherever_the_applier_stopped(
    tmp_path_factory: pytest.TempPathFactory, commits: list, allowed: int
) -> None:
    root = tmp_path_factory.mktemp("journal")
    journaled = LmdbLog(root / "j", journal_bytes=SMALL)
    stall = _Stall(journaled, allowed)
    builder = _Builder()
    acknowledged = []
    for n, spec in enumerate(commits):
        plans, done = builder.commit(spec)
        try:
            journaled.commit(_batches(plans), 5000 + n, done)
        except StorageError:
            break  # the stall reached the writer (a wrap waits for LMDB): not acknowledged
        acknowledged.append((plans, done, 5000 + n))
    journaled.close()  # with commits pending: as if the process had died
    left = stall.applier.pending  # close tries once more; what that left

    direct = LmdbLog(root / "d", journal_bytes=0)
    for plans, done, now in acknowledged:
        direct.commit(_batches(plans), now, done)
    direct.close()

    again = LmdbLog(root / "j", journal_bytes=SMALL)
    assert again._front is not None and again._front.replayed == left
    again.close()
    assert dump(root / "j") == dump(root / "d")


def _small_journal_log(tmp_path: Path) -> LmdbLog:
    return LmdbLog(tmp_path / "wal", journal_bytes=SMALL)


def test_reads_see_a_commit_the_applier_has_not_written_yet(tmp_path: Path) -> None:
    log = _small_journal_log(tmp_path)
    try:
        assert log._front is not None
        applier = log._front.applier
        applier._interval_s = 3600.0  # only a catch-up writes it
        log.commit(_batches([("a", 1, 2, True, 0, False)]), 1)
        assert applier.pending == 1
        receipt = log.get_receipt("t", "ka1")  # from the pending receipts: no wait
        assert receipt is not None and receipt.seq == 1 and applier.catch_ups == 0
        assert len(log.read_session("t", "a", 0, 10)) == 2
        assert applier.catch_ups == 1 and applier.pending == 0
        assert log.get_receipt("t", "ka2") is not None  # now from LMDB
        assert log._front._receipts == {}
    finally:
        log.close()


def test_a_commit_too_big_for_a_frame_goes_straight_to_lmdb(tmp_path: Path) -> None:
    log = _small_journal_log(tmp_path)
    try:
        assert log._front is not None
        journal = log._front.journal
        jseq = journal.next_jseq
        log.commit(_batches([("a", 1, 2, False, JOURNAL_FRAME_MAX, False)]), 1)
        assert journal.next_jseq == jseq  # no frame
        log.commit(_batches([("a", 3, 1, False, 0, False)]), 2)
        assert journal.next_jseq == jseq + 1
        assert [len(r) > JOURNAL_FRAME_MAX for r in log.read_session("t", "a", 0, 10)] == [True, True, False]
    finally:
        log.close()


def test_the_journal_wraps_once_everything_is_applied(tmp_path: Path) -> None:
    log = _small_journal_log(tmp_path)
    try:
        assert log._front is not None
        for seq in range(1, 31):  # ~50 KB frames: ten fit
            log.commit(_batches([("a", seq, 1, False, 50_000, False)]), seq)
        assert log._front.journal.position < SMALL
        assert log._front.applier.applied_jseq >= 20  # each wrap waited for LMDB
        assert len(log.read_session("t", "a", 0, 40)) == 30
    finally:
        log.close()


def test_frames_read_back_and_stop_at_a_torn_or_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path, SMALL, next_jseq=8)
    ends = [journal.append(f"frame {n}".encode() * 50)[1] for n in range(3)]
    journal.close()
    state = JournalState(journal.journal_id, 7, FIRST_FRAME)
    assert [(j, p[:7]) for j, p, _ in read_frames(path, state)] == [(8, b"frame 0"), (9, b"frame 1"), (10, b"frame 2")]
    assert [j for j, _, _ in read_frames(path, JournalState(journal.journal_id, 8, ends[0]))] == [9, 10]
    assert list(read_frames(path, JournalState(journal.journal_id + 1, 7, FIRST_FRAME))) == []  # another journal's
    data = bytearray(path.read_bytes())
    data[ends[1] - 3] ^= 0x01  # frame 9's payload: a torn write
    path.write_bytes(bytes(data))
    assert [j for j, _, _ in read_frames(path, state)] == [8]


def test_after_a_wrap_replay_finds_the_next_frame_at_the_start_not_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path, SMALL, next_jseq=1)
    payload = b"z" * 100_000
    for _ in range(4):
        journal.append(payload)
    applied_end = journal.position
    journal.rewind()  # everything applied up to jseq 4
    journal.append(b"after the wrap")
    journal.close()
    frames = list(read_frames(path, JournalState(journal.journal_id, 4, applied_end)))
    assert [(j, p) for j, p, _ in frames] == [(5, b"after the wrap")]
    # The stale frames 2-4 beyond it are never taken for 6, 7, ...
    assert [j for j, _, _ in read_frames(path, JournalState(journal.journal_id, 5, frames[0][2]))] == []


def test_a_readonly_view_counts_what_is_still_only_in_the_journal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = _small_journal_log(tmp_path)
    _Stall(log, 0)
    log.commit(_batches([("a", 1, 1, False, 0, False)]), 1)
    log.close()  # the apply fails: left in the journal
    view = LmdbLog(tmp_path / "wal", readonly=True)
    try:
        assert view.journal_pending == 1
        assert "1 acknowledged commits are still only in its journal" in caplog.text
        assert view.read_session("t", "a", 0, 10) == []
    finally:
        view.close()
    again = _small_journal_log(tmp_path)
    try:
        assert again._front is not None and again._front.replayed == 1
        assert len(again.read_session("t", "a", 0, 10)) == 1
    finally:
        again.close()


def test_a_frame_that_passes_its_checksum_but_does_not_decode_refuses_the_open(tmp_path: Path) -> None:
    log = _small_journal_log(tmp_path)
    _Stall(log, 0)
    log.commit(_batches([("a", 1, 1, False, 0, False)]), 1)
    journal_id = log._front.journal.journal_id if log._front else 0
    log.close()
    path = tmp_path / "wal" / "journal"
    data = bytearray(path.read_bytes())
    length = struct.unpack_from("<I", data, FIRST_FRAME + 4)[0]
    payload = b"\xc1" * length  # never valid msgpack
    import zlib

    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<QQ", journal_id, 1)))
    struct.pack_into("<I", data, FIRST_FRAME + 8, crc)
    data[FIRST_FRAME + 20 : FIRST_FRAME + 20 + length] = payload
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="journal frame 1 does not decode"):
        _small_journal_log(tmp_path)


def test_a_journal_too_big_for_the_disk_is_a_storage_error_naming_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(StorageError, match=r"cannot create the commit journal.*disk full.*journal_bytes") as failed:
        _small_journal_log(tmp_path)
    assert failed.value.cause == "disk full"
