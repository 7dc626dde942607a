"""Storage faults must never give a silently wrong history, nor a crash with
no error (issue 9, items 9 and 14). Follows the LMDB crash model: a file
is either a whole committed state or detectably damaged; a copy is only a
backup once it is complete."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig
from laneway.core import StorageError
from laneway.persistence import BACKUP_MARKER, ToolError, read_export

CONFIG = EngineConfig(sweep_interval_s=0)
CLI = [sys.executable, "-m", "laneway.cli"]


def make_data(path: Path, events: int = 3000) -> Path:
    with Engine.open(path, CONFIG) as engine:
        for start in range(0, events, 500):
            engine.submit_many([("acme", f"s{i % 13}", "T", {"i": i, "pad": "x" * 200}) for i in range(start, start + 500)])
    return path


OPEN_EACH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from laneway import Engine, EngineConfig
    from laneway.core import StorageError
    for path in sys.argv[1:]:
        try:
            Engine.open(path, EngineConfig(sweep_interval_s=0)).close()
            print("opened", flush=True)
        except StorageError as exc:
            print("refused", "truncated" in str(exc) or "not an LMDB" in str(exc), flush=True)
    """
)


def test_a_cut_short_data_file_is_refused_at_every_length_never_sigbus(tmp_path: Path) -> None:
    """Engine.open, in a child so that a SIGBUS would show as the child's
    death rather than take the test run down."""
    source = make_data(tmp_path / "source") / "wal" / "data.mdb"
    whole = source.read_bytes()
    page = 4096
    cuts = sorted({len(whole) - 1, len(whole) - page, page * 2 + 17, page * 3, *random.Random(9).sample(range(page * 2, len(whole)), 12)})
    dirs = []
    for cut in cuts:
        wal = tmp_path / f"cut{cut}" / "wal"
        wal.mkdir(parents=True)
        (wal / "data.mdb").write_bytes(whole[:cut])
        dirs.append(str(wal.parent))
    done = subprocess.run([sys.executable, "-c", OPEN_EACH, *dirs], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the child died ({done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.split("\n")[:-1] == ["refused True"] * len(cuts)


def test_verify_and_serve_name_the_truncation(tmp_path: Path) -> None:
    data = make_data(tmp_path / "d")
    mdb = data / "wal" / "data.mdb"
    os.truncate(mdb, mdb.stat().st_size // 2)
    verify = subprocess.run([*CLI, "snapshot", "verify", "--data", str(data)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 1, verify.stderr  # damage found, not "could not run"
    assert "truncated" in verify.stdout
    serve = subprocess.run([*CLI, "serve", "--data", str(data), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and "truncated" in serve.stderr, (serve.returncode, serve.stderr[-500:])
    with pytest.raises(StorageError, match="truncated"):
        Engine.open(data, CONFIG)


def test_verify_of_a_missing_dir_could_not_run(tmp_path: Path) -> None:
    verify = subprocess.run([*CLI, "snapshot", "verify", "--data", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 2


@pytest.mark.parametrize("seed", range(int(os.environ.get("LANEWAY_BACKUP_KILLS", "6"))))
def test_a_backup_killed_at_a_random_moment_leaves_a_whole_backup_or_none(tmp_path: Path, seed: int) -> None:
    data = make_data(tmp_path / "d", events=20_000)
    dest = tmp_path / "backup"
    child = subprocess.Popen([*CLI, "snapshot", "backup", str(dest), "--data", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.05, 1.0))  # the moment of the kill is what is random here
    child.send_signal(signal.SIGKILL)
    child.wait()
    if dest.exists():
        assert (dest / BACKUP_MARKER).is_file()
        with Engine.open(dest, CONFIG) as engine:
            assert engine.statistics("acme").events == 20_000
    # Whatever was left half-copied is under a temporary name, and the next
    # backup to the same place clears it and succeeds.
    again = subprocess.run([*CLI, "snapshot", "backup", str(tmp_path / "backup2"), "--data", str(data)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert not [p for p in tmp_path.glob(".backup2.partial-*")]


def _exports(tmp_path: Path) -> list[Path]:
    data = tmp_path / "small"
    with Engine.open(data, CONFIG) as engine:
        for i in range(6):
            engine.submit("acme", f"s{i % 2}", "Stop" if i % 3 == 0 else "T", {"i": i})
        engine.passivate("acme", ["s0"])
    out = []
    for name in ("acme.jsonl", "acme.msgpack"):
        path = tmp_path / name
        done = subprocess.run([*CLI, "snapshot", "export", "acme", "-o", str(path), "--data", str(data)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out.append(path)
    return out


def test_every_flipped_bit_of_an_export_is_a_one_line_tool_error(tmp_path: Path) -> None:
    rng = random.Random(3)
    for path in _exports(tmp_path):
        original = path.read_bytes()
        positions = range(len(original))
        for position in rng.sample(positions, min(400, len(original))):
            damaged = bytearray(original)
            damaged[position] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(damaged))
            try:
                read_export(path)
            except ToolError:
                continue
            raise AssertionError(f"{path.name}: a flip at byte {position} was accepted")


GROWER = textwrap.dedent(
    """
    import sys
    from laneway import Engine, EngineConfig
    engine = Engine.open(sys.argv[1], EngineConfig(sweep_interval_s=0, map_size_bytes=1 << 20))
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(40):
        engine.submit_many([("acme", f"s{i % 7}", "T", {"pad": "y" * 2000}) for i in range(200)])
    print("grown", flush=True)
    sys.stdin.readline()
    engine.close()
    """
)


def test_verify_beside_an_engine_that_grows_the_map(tmp_path: Path) -> None:
    from laneway.persistence import LmdbLog, verify

    data = tmp_path / "live"
    child = subprocess.Popen([sys.executable, "-c", GROWER, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        # Mapped at the engine's first, small size (open_wal maps 64 MiB,
        # which this test would have to outgrow: same path, more disk).
        log = LmdbLog(data / "wal", readonly=True, map_size=1 << 20)
        try:
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "grown"  # the map is now many times larger
            checked, problems = verify(log)
            assert problems == [] and checked == 7
        finally:
            log.close()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
