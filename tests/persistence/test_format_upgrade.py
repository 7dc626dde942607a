"""Opening a data dir written by an older laneway: backed up, then upgraded.

The fixture is a frozen format-1 data dir (see tests/fixtures/format1/README.md).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lmdb
import pytest

from laneway import Engine, EngineConfig
from laneway.core import DataFormatError
from laneway.persistence import FORMAT_VERSION

FIXTURE = Path(__file__).parents[1] / "fixtures" / "format1"
FIXTURE2 = Path(__file__).parents[1] / "fixtures" / "format2"
FIXTURE3 = Path(__file__).parents[1] / "fixtures" / "format3"


def history(engine: Engine, tenant: str, session: str) -> list[dict[str, object]]:
    """A session's events in the shape expected.json records them."""
    return [
        {"seq": e.seq, "epoch": e.epoch, "lsn": e.lsn, "type": e.type, "priority": e.priority,
         "payload": e.payload, "dedupe_key": e.dedupe_key, "ts": e.ts}
        for e in engine.events(tenant, session)
    ]


def stored_format(wal: Path) -> int:
    env = lmdb.open(str(wal), max_dbs=16, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"meta", create=False)) as txn:
            return int(txn.get(b"format"))
    finally:
        env.close()


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "wal", data / "wal")
    return data


def test_the_fixture_is_format_1() -> None:
    assert stored_format(FIXTURE / "wal") == 1
    assert FORMAT_VERSION == 5


def test_opening_format_1_backs_up_then_upgrades_keeping_everything(
    old_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())
    clock_ms = expected["clock_ms"]
    with caplog.at_level(logging.WARNING, logger="laneway.wal"):
        engine = Engine.open(old_data, EngineConfig(sweep_interval_s=0), clock=lambda: clock_ms)
    try:
        assert "holds data format 1; upgrading it to format 5" in caplog.text
        backups = list((old_data / "backups").iterdir())
        assert len(backups) == 1 and backups[0].name.startswith("format-1-")
        assert stored_format(backups[0]) == 1  # the copy is of the data before the upgrade
        # Every event, exactly as format 1 stored it.
        for key, events in expected["sessions"].items():
            tenant, session = key.split(":")
            assert history(engine, tenant, session) == events, key
        # Dedupe keys still dedupe; seqs continue; runtime settings survive.
        again = engine.submit("acme", "s1", "ai.token", {"i": 0}, dedupe_key="k0")
        assert again.duplicate and again.seq == 1
        assert engine.submit("acme", "s1", "T", None).seq == 31
        assert engine.tenant_config("acme").regular_max_events == 50
        assert [e.seq for e in engine.recent("acme", "s2", limit=3)] == [4, 11, 12]  # seq 4 is priority 2
        upgrade = [r for r in engine.audit_log() if r.action == "upgrade"]
        assert len(upgrade) == 1 and upgrade[0].changes["from_format"] == 1
    finally:
        engine.close()
    assert stored_format(old_data / "wal") == FORMAT_VERSION
    # A second open has nothing to upgrade.
    with Engine.open(old_data, EngineConfig(sweep_interval_s=0)) as engine:
        assert len(list((old_data / "backups").iterdir())) == 1
        assert engine.statistics("acme", "s1").last_seq == 31


def test_a_newer_format_is_refused_and_left_untouched(old_data: Path) -> None:
    env = lmdb.open(str(old_data / "wal"), max_dbs=16)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"format", str(FORMAT_VERSION + 1).encode())
    env.close()
    before = (old_data / "wal" / "data.mdb").read_bytes()
    with pytest.raises(DataFormatError, match=f"format {FORMAT_VERSION + 1}, but this laneway reads up to format {FORMAT_VERSION}"):
        Engine.open(old_data, EngineConfig(sweep_interval_s=0))
    assert (old_data / "wal" / "data.mdb").read_bytes() == before
    assert not (old_data / "backups").exists()
    with pytest.raises(DataFormatError):  # and the data dir lock was released
        Engine.open(old_data, EngineConfig(sweep_interval_s=0))


def test_opening_format_2_upgrades_and_reads_its_unchecked_entries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Format 2's seq entries carry no CRC: they are read as they are, and
    everything written after the upgrade is checked."""
    assert stored_format(FIXTURE2 / "wal") == 2
    data = tmp_path / "data"
    shutil.copytree(FIXTURE2 / "wal", data / "wal")
    expected = json.loads((FIXTURE2 / "expected.json").read_text())
    with caplog.at_level(logging.WARNING, logger="laneway.wal"):
        engine = Engine.open(data, EngineConfig(sweep_interval_s=0), clock=lambda: expected["clock_ms"])
    try:
        assert "holds data format 2; upgrading it to format 5" in caplog.text
        for key, events in expected["sessions"].items():
            tenant, session = key.split(":")
            assert history(engine, tenant, session) == events, key
        # The format-2 snapshot of acme:s2 restores its buckets.
        assert [e.seq for e in engine.recent("acme", "s2", limit=3)] == [4, 11, 12]
        assert engine.submit("acme", "s1", "T", None, dedupe_key="k3").duplicate
        new = engine.submit("acme", "s1", "T", {"after": "upgrade"})
        assert new.seq == 31 and new.lsn == 44
    finally:
        engine.close()
    assert stored_format(data / "wal") == FORMAT_VERSION


def test_opening_format_3_upgrades_to_the_outbox_format_and_handlers_work_on_old_sessions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Format 4 adds the effects tables and handler state; a format-3 data
    dir keeps every event and takes effects from its old sessions on."""
    from laneway import effect

    assert stored_format(FIXTURE3 / "wal") == 3
    data = tmp_path / "data"
    shutil.copytree(FIXTURE3 / "wal", data / "wal")
    expected = json.loads((FIXTURE3 / "expected.json").read_text())
    with caplog.at_level(logging.WARNING, logger="laneway.wal"):
        engine = Engine.open(data, EngineConfig(sweep_interval_s=0, effect_threads=0), clock=lambda: expected["clock_ms"])
    try:
        assert "holds data format 3; upgrading it to format 5" in caplog.text
        assert [p.name.startswith("format-3-") for p in (data / "backups").iterdir()] == [True]
        for key, events in expected["sessions"].items():
            tenant, session = key.split(":")
            assert history(engine, tenant, session) == events, key
        assert [e.attrs for e in engine.events("acme", "s2")][:5] == [{"step": 0}, None, None, None, {"step": 4}]
        assert [e.seq for e in engine.recent("acme", "s2", limit=3)] == [4, 11, 12]
        assert engine.submit("acme", "s1", "T", None, dedupe_key="k3").duplicate
        engine.handler("Stop")(lambda event, state: effect("call", "noop", {"seq": event.seq}))
        receipt = engine.submit("acme", "s1", "Stop", {"after": "upgrade"})
        assert receipt.seq == 31
        (made,) = engine.effects("acme", "s1")
        assert (made.seq, made.state, made.kind, made.created_lsn) == (31, "pending", "call", receipt.lsn)
    finally:
        engine.close()
    assert stored_format(data / "wal") == FORMAT_VERSION
