"""``laneway snapshot``: list, inspect, verify, export, restore, backup on
real data dirs, including bad input and a backup taken while an engine
writes in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import pytest

from laneway import Engine, EngineConfig, TenantConfig
from laneway.cli import main

from .conftest import FakeClock

CONFIG = EngineConfig(sweep_interval_s=0, defaults=TenantConfig(regular_max_events=10))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["snapshot", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    with Engine.open(path, CONFIG) as eng:
        for i in range(40):
            eng.submit("acme", f"s{i % 3}", "Stop" if i % 6 == 0 else "T", {"i": i, "text": "héllo"}, dedupe_key=f"k{i}")
        eng.submit("globex", "g", "T", [1, 2, 3])
        eng.passivate("acme", ["s0"])
    return path


def observable(path: Path) -> dict[str, object]:
    """What an engine on `path` shows of every session (LSNs aside: a
    restore renumbers them, keeping their order)."""
    with Engine.open(path, CONFIG) as eng:
        out: dict[str, object] = {}
        for tenant in eng.tenants():
            for session in eng.sessions(tenant):
                history = eng.events(tenant, session)
                stats = eng.statistics(tenant, session)
                out[f"{tenant}:{session}"] = (
                    [(e.seq, e.epoch, e.ts, e.type, e.priority, e.dedupe_key, e.payload) for e in history],
                    [e.seq for e in eng.recent(tenant, session, limit=1000)],
                    sorted(range(len(history)), key=lambda i: history[i].lsn) == list(range(len(history))),
                    stats.epoch,
                    stats.by_priority,
                    stats.regular_bucket.events,
                )
        return out


def test_list_and_inspect(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--data", str(data), "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["tenant"], r["session"], r["last_seq"]) for r in rows] == [
        ("acme", "s0", 14), ("acme", "s1", 13), ("acme", "s2", 13), ("globex", "g", 1)
    ]
    assert all(r["snapshot_seq"] == r["last_seq"] for r in rows)  # close snapshotted everything
    code, out, _ = run(capsys, "list", "--data", str(data))
    assert code == 0 and "acme" in out and "snapshot" in out
    code, out, _ = run(capsys, "inspect", "acme:s0", "--data", str(data), "--json")
    detail = json.loads(out)
    assert detail["last_seq"] == 14 and detail["wal"]["records"] == 14
    assert detail["snapshot"]["checksum_ok"] and detail["snapshot"]["buffered"] == {"priority": 7, "regular": 7}
    code, out, _ = run(capsys, "inspect", "acme:s0", "--data", str(data))
    assert "snapshot: seq 14" in out and "checksum ok" in out


def test_list_shows_whole_names_on_an_80_column_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    long_session = "agent-run-2026-12-02T03-30-00Z-" + "f00dfeed" * 6
    with Engine.open(tmp_path / "d", CONFIG) as eng:
        eng.submit("acme-observability-team", long_session, "T")
        eng.submit("acme-observability-team", "short", "T")
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "list", "--data", str(tmp_path / "d"))
    assert code == 0 and "…" not in out, out
    assert "1 session" not in out and "2 sessions" in out  # the title counts right
    assert max(len(line) for line in out.splitlines()) <= 80
    # The session column's pieces, read down the table, spell the whole name.
    cells = [line.split("│")[2].strip() for line in out.splitlines() if line.count("│") > 3]
    assert long_session in "".join(cells)


def test_counts_take_the_noun_in_its_number() -> None:
    from laneway._text import plural

    assert [plural(n, "session") for n in (0, 1, 2, 1234)] == ["0 sessions", "1 session", "2 sessions", "1,234 sessions"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "acme:nope"], "no session acme:nope"),
        (["inspect", "acme"], "expected TENANT:SESSION"),
        (["inspect", "bad tenant:s"], "tenant"),
        (["list", "--data", "/nonexistent/laneway"], "does not exist"),
        (["export", "nobody", "-o", "x.jsonl"], "nothing to export"),
    ],
)
def test_bad_input_is_one_clear_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if "--data" not in argv:
        argv = [*argv, "--data", str(data)]
    os.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_verify_passes_clean_data_and_names_each_problem(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "--data", str(data))
    assert code == 0 and "checked 4 sessions" in out and "no problems" in out
    env = lmdb.open(str(data / "wal"), max_dbs=16)
    with env.begin(write=True) as txn:
        snapshots = env.open_db(b"snapshots", txn=txn)
        value = bytearray(txn.get(b"acme\x00s1", db=snapshots))
        value[-2] ^= 0xFF
        txn.put(b"acme\x00s1", bytes(value), db=snapshots)
        seq = env.open_db(b"seq", txn=txn)
        lsn = txn.get(b"acme\x00s2\x00" + (5).to_bytes(8, "big"), db=seq)[:8]
        txn.delete(lsn, db=env.open_db(b"events", txn=txn))
    env.close()
    code, out, _ = run(capsys, "verify", "--data", str(data), "--json")
    report = json.loads(out)
    assert code == 1
    problems = {(p["where"], p["message"].split(" (")[0].split(":")[0]) for p in report["problems"]}
    assert ("acme:s1", "snapshot is damaged") in problems
    assert any(where == "acme:s2" and "missing" in msg for where, msg in problems)


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
def test_export_then_restore_into_a_new_data_dir_gives_the_same_sessions(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    export = tmp_path / f"acme{suffix}"
    code, out, _ = run(capsys, "export", "acme", "-o", str(export), "--data", str(data))
    assert code == 0 and "exported 3 sessions, 40 events" in out
    target = tmp_path / "restored"
    code, out, _ = run(capsys, "restore", str(export), "--data", str(target))
    assert code == 0 and "restored 3 sessions, 40 events" in out
    before = {k: v for k, v in observable(data).items() if k.startswith("acme:")}
    assert observable(target) == before
    code, _, _ = run(capsys, "verify", "--data", str(target))
    assert code == 0
    with Engine.open(target, CONFIG) as eng:  # dedupe keys came along, seqs go on
        assert eng.submit("acme", "s1", "T", dedupe_key="k1").duplicate
        assert eng.submit("acme", "s1", "T").seq == 14


def test_restore_refuses_newer_state_unless_forced(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "s1.msgpack"
    run(capsys, "export", "acme:s1", "-o", str(export), "--data", str(data))
    with Engine.open(data, CONFIG) as eng:
        eng.submit("acme", "s1", "T", "newer")
    before = observable(data)
    code, _, err = run(capsys, "restore", str(export), "--data", str(data))
    assert code == 2 and "acme:s1 is newer here (seq 14" in err and "nothing changed" in err
    assert observable(data) == before
    code, out, _ = run(capsys, "restore", str(export), "--data", str(data), "--force")
    assert code == 0 and "forced" in out
    with Engine.open(data, CONFIG) as eng:
        assert eng.statistics("acme", "s1").last_seq == 13


def test_restore_refuses_a_dedupe_key_owned_by_another_session(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "s1.jsonl"
    run(capsys, "export", "acme:s1", "-o", str(export), "--data", str(data))
    other = tmp_path / "other"
    with Engine.open(other, CONFIG) as eng:
        eng.submit("acme", "elsewhere", "T", dedupe_key="k1")
    code, _, err = run(capsys, "restore", str(export), "--data", str(other))
    assert code == 2 and "dedupe key 'k1' belongs to acme:elsewhere" in err


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[: len(raw) - 40])
    elif how == "flip":
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1 :])
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
@pytest.mark.parametrize(
    ("how", "message"),
    [("truncate", "incomplete"), ("flip", ""), ("empty", "empty")],
)
def test_a_damaged_export_is_refused_and_changes_nothing(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, how: str, message: str
) -> None:
    export = tmp_path / f"acme{suffix}"
    run(capsys, "export", "acme", "-o", str(export), "--data", str(data))
    damage(export, how)
    target = tmp_path / "target"
    with Engine.open(target, CONFIG) as eng:
        eng.submit("acme", "s0", "T", "mine")
    before = observable(target)
    code, _, err = run(capsys, "restore", str(export), "--data", str(target))
    assert code == 2 and message in err and "Traceback" not in err
    assert observable(target) == before


def test_restore_of_a_missing_file_or_a_newer_export_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "restore", str(tmp_path / "nope.jsonl"), "--data", str(tmp_path / "d"))
    assert code == 2 and "does not exist" in err
    future = tmp_path / "future.jsonl"
    future.write_text('{"kind":"header","laneway_export":99,"data_format":9,"created_ms":0,"source":"x","selection":"t"}\n')
    code, _, err = run(capsys, "restore", str(future), "--data", str(tmp_path / "d"))
    assert code == 2 and "export version 99" in err


def test_restore_refuses_a_data_dir_an_engine_has_open(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "acme.jsonl"
    run(capsys, "export", "acme", "-o", str(export), "--data", str(data))
    with Engine.open(tmp_path / "busy", CONFIG):
        code, _, err = run(capsys, "restore", str(export), "--data", str(tmp_path / "busy"))
    assert code == 2 and "already open by process" in err


WRITER = textwrap.dedent(
    """
    import sys, threading
    from laneway import Engine, EngineConfig
    engine = Engine.open(sys.argv[1], EngineConfig(sweep_interval_s=0))
    n = 0
    while True:
        engine.submit_many([("acme", f"s{n % 7}", "T", {"n": n + j}) for j in range(20)])
        n += 20
        if n == 2000:
            print("ready", flush=True)
    """
)


def test_backup_while_an_engine_writes_is_consistent(tmp_path: Path) -> None:
    data = tmp_path / "live"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        dest = tmp_path / "copy"
        done = subprocess.run(
            [sys.executable, "-m", "laneway.cli", "snapshot", "backup", str(dest), "--data", str(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "backed up" in done.stdout
        checked = subprocess.run(
            [sys.executable, "-m", "laneway.cli", "snapshot", "verify", "--data", str(dest)],
            capture_output=True, text=True, timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        writer.kill()
        writer.wait()
    with Engine.open(dest, CONFIG) as eng:
        total = 0
        for session in eng.sessions("acme"):
            history = eng.events("acme", session, limit=100_000)
            assert [e.seq for e in history] == list(range(1, len(history) + 1))
            total += len(history)
        assert total >= 2000 and total % 20 == 0  # whole batches only: one transaction each
    # The copy is a data dir of its own: the original is untouched by it.
    assert (dest / "wal" / "data.mdb").stat().st_size > 0


def test_backup_refuses_a_non_empty_destination(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "full"
    dest.mkdir()
    (dest / "something").write_text("x")
    code, _, err = run(capsys, "backup", str(dest), "--data", str(data))
    assert code == 2 and "not empty" in err


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
def test_buffered_events_that_retention_removed_from_the_wal_travel_in_the_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clock: FakeClock, suffix: str
) -> None:
    # Buffers keep events forever (retention 0); the WAL keeps them a minute.
    config = EngineConfig(
        sweep_interval_s=0,
        defaults=TenantConfig(regular_retention_s=0, priority_retention_s=0, wal_regular_retention_s=60, wal_priority_retention_s=60),
    )
    source = tmp_path / "source"
    with Engine.open(source, config, clock=clock) as eng:
        for i in range(6):
            eng.submit("acme", "s", "T", {"i": i})
        eng.checkpoint()
        clock.advance(120)
        eng.submit("acme", "s", "T", {"i": 6})
        assert eng.housekeeping(trim=True).trimmed == 6
        assert [e.seq for e in eng.events("acme", "s")] == [7]
        expected = [(e.seq, e.payload) for e in eng.recent("acme", "s")]
    assert len(expected) == 7
    export = tmp_path / f"s{suffix}"
    assert run(capsys, "export", "acme", "-o", str(export), "--data", str(source))[0] == 0
    target = tmp_path / "target"
    assert run(capsys, "restore", str(export), "--data", str(target))[0] == 0
    assert run(capsys, "verify", "--data", str(target))[0] == 0
    with Engine.open(target, config, clock=clock) as eng:
        assert [(e.seq, e.payload) for e in eng.recent("acme", "s")] == expected
        lsns = [e.lsn for e in eng.recent("acme", "s")]
        assert lsns == sorted(lsns) and len(set(lsns)) == 7
        stats = eng.statistics("acme", "s")
        assert stats.history_losses == 0 and stats.snapshot_failures == 0
        assert eng.submit("acme", "s", "T").seq == 8
