"""The in-memory twin of the LMDB log, for ``Engine.open(None)`` and tests.

Same interface (`Log`), same commit semantics (both commit through
`_batch.py`), nothing durable: the whole history stays in memory until
close, and it never trims.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from ..core import OPEN_STATES, EffectRecord, Receipt, SessionMeta, decode_event_head, encode, read_snapshot_head
from ._batch import WriteBatch, advance_meta, encode_batches
from ._interfaces import AUDIT_KEEP, CONTROL_DBS, JOB_RUNS_KEEP, Retention, SnapshotInfo, TrimReport
from ._layout import pack, unpack

__all__ = ["MemoryLog"]


class MemoryLog:
    """The same interface, kept in dicts: for ``Engine.open(None)`` and tests.

    Nothing is durable and the whole history stays in memory until close.
    """

    def __init__(self) -> None:
        self.last_lsn = 0
        self.upgraded_from: int | None = None  # memory is never upgraded
        self.backup_path: Path | None = None
        self._records: dict[int, bytes] = {}
        self._seq: dict[tuple[str, str], dict[int, int]] = {}
        self._dedupe: dict[tuple[str, str], Receipt] = {}
        self._heads: dict[tuple[str, str], SessionMeta] = {}
        self._control: dict[str, dict[bytes, bytes]] = {name: {} for name in CONTROL_DBS}
        self._snapshots: dict[tuple[str, str], bytes] = {}
        self._effects: dict[tuple[str, str, int, int], bytes] = {}  # kept encoded: readers get copies
        self._open: set[tuple[str, str, int, int]] = set()
        # Reads come from other threads while the writer commits.
        self._lock = threading.Lock()

    def reset_trim_cursors(self) -> None:
        """Nothing to reset: a memory log never trims (see `trim`)."""

    def probe(self) -> None:
        """Memory always takes writes."""

    def commit(self, batches: Sequence[WriteBatch], now_ms: int, effect_states: Sequence[EffectRecord] = ()) -> None:
        plan = encode_batches(batches, self.last_lsn)
        last, records, dedupes = plan.last_lsn, plan.records, plan.dedupes
        with self._lock:
            for key, data in records:
                self._records[unpack(key)[0]] = data
            for batch in batches:
                index = self._seq.setdefault((batch.tenant, batch.session), {})
                for offset, event in enumerate(batch.events):
                    index[event.seq] = batch.first_lsn + offset
                sid = (batch.tenant, batch.session)
                # Copy so a reader never sees a head half-way through an update.
                head = self._heads.get(sid)
                if head is not None:
                    head = msgspec.structs.replace(head, counts=list(head.counts), types=dict(head.types))
                self._heads[sid] = advance_meta(head, batch, now_ms)
            for tenant, key, receipt in dedupes:
                self._dedupe[(tenant, key)] = receipt
            for batch in batches:
                for record in batch.effects:
                    self._effects[_effect_key(record)] = encode(record)
                    self._open.add(_effect_key(record))
            self._put_effect_states(effect_states)
            self.last_lsn = last

    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        with self._lock:
            for db_name, key, value in puts:
                db = self._control[db_name]
                if key is None:
                    key = pack(unpack(max(db))[0] + 1 if db else 1)
                if value is None:
                    db.pop(key, None)
                else:
                    db[key] = value
            for name, keep in (("audit", AUDIT_KEEP), ("job_runs", JOB_RUNS_KEEP)):
                records = self._control[name]
                for key in sorted(records)[: max(0, len(records) - keep)]:
                    del records[key]

    def read_control(self, db: str) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return sorted(self._control[db].items())

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None:
        return self._dedupe.get((tenant, dedupe_key))

    def dedupe_key_with_prefix(self, tenant: str, prefix: str) -> str | None:
        with self._lock:
            return min((k for t, k in self._dedupe if t == tenant and k.startswith(prefix)), default=None)

    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]:
        with self._lock:
            index = self._seq.get((tenant, session), {})
            seqs = sorted(s for s in index if s > after_seq)[:limit]
            return [self._records[index[s]] for s in seqs]

    def record_at(self, lsn: int) -> bytes | None:
        return self._records.get(lsn)

    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]:
        with self._lock:
            index = self._seq.get((tenant, session), {})
            records = [self._records[index[s]] for s in sorted(index)]
        wanted = [regular_count, priority_count]
        out: list[bytes] = []
        for data in reversed(records):
            head = decode_event_head(data)
            if head.ts < min_ts:
                break
            kind = 1 if head.priority else 0
            if wanted[kind] > 0:
                wanted[kind] -= 1
                out.append(data)
        out.reverse()
        return out

    def session_meta(self, tenant: str, session: str) -> SessionMeta | None:
        return self._heads.get((tenant, session))

    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]:
        with self._lock:
            rows = list(self._heads.items())
        for (tenant, session), meta in rows:
            yield tenant, session, meta

    def write_snapshots(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        with self._lock:
            for tenant, session, data in items:
                self._snapshots[(tenant, session)] = data

    def get_snapshot(self, tenant: str, session: str) -> bytes | None:
        return self._snapshots.get((tenant, session))

    def snapshot_infos(self) -> list[SnapshotInfo]:
        with self._lock:
            rows = list(self._snapshots.items())
        return [SnapshotInfo(t, s, read_snapshot_head(data), len(data)) for (t, s), data in rows]

    def set_epoch(self, tenant: str, session: str, epoch: int) -> None:
        with self._lock:
            head = self._heads.get((tenant, session))
            if head is not None:
                self._heads[(tenant, session)] = msgspec.structs.replace(head, epoch=epoch)

    def trim(self, periods: Sequence[int], retention: Retention, now_ms: int, budget: int) -> TrimReport:
        """A memory engine keeps its whole history until it closes."""
        return TrimReport()

    def write_effects(self, records: Sequence[EffectRecord]) -> None:
        with self._lock:
            self._put_effect_states(records)

    def _put_effect_states(self, records: Sequence[EffectRecord]) -> None:
        """Under `_lock`."""
        for record in records:
            key = _effect_key(record)
            self._effects[key] = encode(record)
            if record.state in OPEN_STATES:
                self._open.add(key)
            else:
                self._open.discard(key)

    def open_effects(self) -> list[EffectRecord]:
        with self._lock:
            return [_decode_effect(self._effects[key]) for key in sorted(self._open)]

    def effects(
        self, tenant: str, session: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[EffectRecord]:
        with self._lock:
            keys = sorted(k for k in self._effects if k[0] == tenant and (session is None or k[1] == session))
            rows = [_decode_effect(self._effects[k]) for k in keys]
        return [r for r in rows if state is None or r.state == state][:limit]

    def get_effect(self, tenant: str, session: str, seq: int, index: int) -> EffectRecord | None:
        raw = self._effects.get((tenant, session, seq, index))
        return _decode_effect(raw) if raw is not None else None

    def close(self) -> None:
        pass


_decode_effect = msgspec.msgpack.Decoder(EffectRecord).decode


def _effect_key(record: EffectRecord) -> tuple[str, str, int, int]:
    return (record.tenant, record.session, record.seq, record.index)
