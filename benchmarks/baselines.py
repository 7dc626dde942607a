"""Baselines without laneway, on the same disk: what the hardware and CPython
allow, so laneway's figures can be read against a floor rather than a guess."""

from __future__ import annotations

import queue
import struct
import threading
import time
from concurrent.futures import Future
from typing import Any

import lmdb
from _common import data_dir, percentiles, run_threads


def lmdb_sync_commit(quick: bool = False) -> dict[str, Any]:
    """A bare LMDB sync commit of one 150-byte record (both syncs), one at a time."""
    count = 500 if quick else 5000
    with data_dir() as path:
        env = lmdb.open(str(path), map_size=256 << 20, sync=True, metasync=True)
        samples = []
        for i in range(count):
            started = time.perf_counter()
            with env.begin(write=True) as txn:
                txn.put(struct.pack(">Q", i), b"x" * 150, append=True)
            samples.append(time.perf_counter() - started)
        env.close()
    return {"commits": count, **percentiles(samples)}


def lmdb_group_commit_threads(quick: bool = False) -> dict[str, Any]:
    """The least a Python group commit can do: 8 threads, each put one record
    and wait on a Future; one writer thread commits whatever is queued (sync
    on) and completes the futures. No actors, no validation, no buckets: the
    ceiling for laneway's ingest_threads scenario on this machine."""
    per_thread = 300 if quick else 3000
    with data_dir() as path:
        env = lmdb.open(str(path), map_size=256 << 20, sync=True, metasync=True)
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = object()
        groups: list[int] = []

        def writer() -> None:
            lsn = 0
            while True:
                first = inbox.get()
                if first is stop:
                    return
                group = [first]
                while True:
                    try:
                        group.append(inbox.get_nowait())
                    except queue.Empty:
                        break
                with env.begin(write=True) as txn:
                    cursor = txn.cursor()
                    items = []
                    for _ in group:
                        lsn += 1
                        items.append((struct.pack(">Q", lsn), b"x" * 150))
                    cursor.putmulti(items, append=True)
                groups.append(len(group))
                for future in group:
                    future.set_result(None)

        def producer() -> None:
            for _ in range(per_thread):
                future: Future[None] = Future()
                inbox.put(future)
                future.result()

        w = threading.Thread(target=writer)
        w.start()
        elapsed = run_threads(8, lambda _: producer())
        inbox.put(stop)
        w.join()
        env.close()
    return {"events_per_s": round(8 * per_thread / elapsed), "mean_group": round(sum(groups) / len(groups), 1)}


SCENARIOS = {
    "baseline_lmdb_sync_commit": lmdb_sync_commit,
    "baseline_lmdb_group_commit_8_threads": lmdb_group_commit_threads,
}
