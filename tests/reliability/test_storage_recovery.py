"""After a storage failure the engine names the cause, shows it, and goes
back to work by itself once a write succeeds, without acknowledging
anything it did not write and without a gap (issue 9, item 13)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from laneway import Engine, EngineConfig
from laneway.core import StorageError


class Disk:
    """A switch between a working disk and a full one, for LmdbLog's env."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.full = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.env, name)

    def begin(self, **kwargs: object) -> lmdb.Transaction:
        if self.full and kwargs.get("write"):
            raise lmdb.DiskError("mdb_txn_commit: No space left on device")
        return self.env.begin(**kwargs)


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
def test_a_full_disk_is_named_shown_and_recovered_from_without_a_gap(tmp_path: Path, journal: bool) -> None:
    from laneway.gateway import GatewayConfig, serve_in_thread

    config = EngineConfig(sweep_interval_s=0, storage_retry_s=0.05, journal_bytes=(4 << 20) if journal else 0)
    engine = Engine.open(tmp_path / "d", config)
    running = serve_in_thread(engine, GatewayConfig(port=0, jwt_secret="s" * 40))
    kept: list[tuple[int, str]] = []
    try:
        assert engine.submit("acme", "s", "T", "before").seq == 1
        disk = Disk(engine._log.env)  # type: ignore[attr-defined]
        engine._log.env = disk  # type: ignore[attr-defined]
        disk.full = True
        if journal:
            # The journal is preallocated: the event is synced there and
            # acknowledged; LMDB's copy of it is what the full disk stops,
            # which the next read (it waits for LMDB) and submit find.
            assert engine.submit("acme", "s", "T", "kept").seq == 2
            kept.append((2, "kept"))
            with pytest.raises(StorageError, match="disk full"):
                engine.events("acme", "s")
        with pytest.raises(StorageError, match="disk full") as failed:
            engine.submit("acme", "s", "T", "lost")
        assert failed.value.cause == "disk full"
        with pytest.raises(StorageError, match=r"storage is failing \(disk full\)"):
            engine.submit("acme", "s", "T", "refused")
        assert not engine.wait_for_storage(0)
        health = _get(running.url + "/healthz")
        assert health[0] == 503 and "disk full" in health[1]["problems"]["storage"]
        metrics = _get(running.url + "/metrics")[1]
        assert "laneway_storage_failing 1" in metrics and 'laneway_component_up{component="storage"} 0' in metrics
        disk.full = False  # space freed
        assert engine.wait_for_storage(30)
        receipt = engine.submit("acme", "s", "T", "after")
        assert receipt.seq == 2 + len(kept)  # the seq "lost" had taken, handed out again
        assert _get(running.url + "/healthz")[0] == 200
        assert "laneway_storage_recoveries_total 1" in _get(running.url + "/metrics")[1]
    finally:
        running.stop()
        engine.close()
    with Engine.open(tmp_path / "d", EngineConfig(sweep_interval_s=0)) as again:
        after = (2 + len(kept), "after")
        assert [(e.seq, e.payload) for e in again.events("acme", "s")] == [(1, "before"), *kept, after]


def _get(url: str) -> tuple[int, object]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("journal_bytes", [512 << 10, 0], ids=["journal", "no-journal"])
def test_a_real_full_tmpfs_under_load_loses_and_duplicates_nothing(tmp_path: Path, journal_bytes: int) -> None:
    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (2 << 20))  # space to free later
        config = EngineConfig(sweep_interval_s=0, storage_retry_s=0.05, map_size_bytes=1 << 20, journal_bytes=journal_bytes)
        engine = Engine.open(disk / "d", config)
        acked: dict[str, list[int]] = {}
        refused = threading.Event()

        def produce(name: str) -> None:
            seqs = acked.setdefault(name, [])
            for n in range(100_000):
                try:
                    seqs.append(engine.submit("acme", name, "T", {"n": n, "pad": "z" * 500}).seq)
                except StorageError as exc:
                    assert exc.cause in ("disk full", "map full (the LMDB map could not grow)"), exc
                    refused.set()
                    return

        producers = [threading.Thread(target=produce, args=(f"p{i}",)) for i in range(4)]
        for p in producers:
            p.start()
        for p in producers:
            p.join(120)
        assert refused.is_set(), "the disk never filled"
        assert engine.storage_problem is not None
        os.unlink(filler)
        assert engine.wait_for_storage(60), engine.storage_problem
        after = {name: engine.submit("acme", name, "T", {"after": True}).seq for name in acked}
        engine.close()
        with Engine.open(disk / "d", EngineConfig(sweep_interval_s=0, journal_bytes=journal_bytes)) as again:
            for name, seqs in acked.items():
                history = again.events("acme", name, limit=100_000)
                assert [e.seq for e in history] == list(range(1, len(history) + 1))  # gapless
                assert seqs == list(range(1, len(seqs) + 1))  # every ack is there, once
                assert len(history) == len(seqs) + 1 and history[-1].seq == after[name]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (lmdb.DiskError("mdb_txn_commit: No space left on device"), "disk full"),
        (OSError(28, "No space left on device"), "disk full"),
        (OSError(122, "Disk quota exceeded"), "disk quota exceeded"),
        (lmdb.MapFullError("MDB_MAP_FULL: Environment mapsize limit reached"), "map full (the LMDB map could not grow)"),
        (lmdb.Error("mdb_txn_commit: Input/output error"), "I/O error (the disk or its filesystem failed a write)"),
        (OSError(30, "Read-only file system"), "read-only file system"),
        (lmdb.Error("something else"), "storage error"),
    ],
)
def test_causes_are_named(error: BaseException, cause: str, tmp_path: Path) -> None:
    from laneway.persistence._faults import storage_cause

    assert storage_cause(error, tmp_path) == cause  # tmp_path has room: EIO stays EIO
