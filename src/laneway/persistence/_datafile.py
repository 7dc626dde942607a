"""Checking an LMDB data file before it is mapped.

LMDB maps ``data.mdb`` into memory and trusts it: a file cut short (a copy
killed half way, a full disk during a restore by hand) makes the first read
past its end a SIGBUS, which kills the process with no error to catch. So
the file's two meta pages are read with plain I/O first: the newer one
(higher transaction id) says how many pages the environment uses, and a
file shorter than that is refused with a clear error before anything maps
it.

Meta page layout (LMDB 0.9, 64-bit builds, as py-lmdb bundles it): a
16-byte page header, then ``mm_magic`` (u32 0xBEEFC0DE), ``mm_version``,
``mm_address``, ``mm_mapsize``, two 48-byte ``MDB_db`` records (the first
one's ``md_pad`` holds the page size), ``mm_last_pg``, ``mm_txnid``.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..core import StorageError

__all__ = ["check_data_file", "required_size"]

_MAGIC = 0xBEEFC0DE
_MAGIC_AT = 16
_PSIZE_AT = 40
_LAST_PAGE_AT = 136
_META_END = 152


def required_size(head: bytes) -> int | None:
    """Bytes the environment whose file starts with `head` needs, from its
    newest valid meta page; None if `head` holds no valid meta page."""
    if len(head) < _META_END:
        return None
    magic, _version = struct.unpack_from("<II", head, _MAGIC_AT)
    if magic != _MAGIC:
        return None
    psize = struct.unpack_from("<I", head, _PSIZE_AT)[0]
    if psize < 512 or psize & (psize - 1) or psize > 1 << 16:
        return None
    metas = []
    for page in (0, 1):
        start = page * psize
        if len(head) < start + _META_END:
            continue
        if struct.unpack_from("<I", head, start + _MAGIC_AT)[0] != _MAGIC:
            continue
        last_page, txnid = struct.unpack_from("<QQ", head, start + _LAST_PAGE_AT)
        metas.append((txnid, last_page))
    if not metas:
        return None
    _, last_page = max(metas)
    return (last_page + 1) * psize


def check_data_file(directory: Path) -> None:
    """Refuse an environment whose ``data.mdb`` is shorter than its own meta
    page says, or is not an LMDB file at all (`StorageError`). A missing
    file is fine: LMDB creates it."""
    path = directory / "data.mdb"
    try:
        with path.open("rb") as f:
            head = f.read(2 * (1 << 16))
            size = f.seek(0, 2)
    except FileNotFoundError:
        return
    if size == 0:
        return  # created but never written: LMDB initialises it
    needed = required_size(head)
    if needed is None:
        raise StorageError(f"cannot open the WAL at {directory}: {path.name} is not an LMDB data file (no valid meta page); restore it from a backup")
    if size < needed:
        raise StorageError(
            f"cannot open the WAL at {directory}: {path.name} is truncated: {size:,} bytes, but its last commit needs {needed:,}; "
            "it was cut short (an interrupted copy?): restore it from a complete backup"
        )
