"""`dangol backup`: everything a shop would lose with its disk, in one file to copy away.

The archive (`dangol-YYYYMMDD-HHMMSS.tar.gz`, the shop's local time) holds `dangol.db` — a
consistent copy made with SQLite's online backup API, safe while dangol is serving, and
checked with `PRAGMA integrity_check` before it is packed — the photos directory as
`uploads/`, and the config file (secrets are not in it: they live in the environment).
The archive is written under a temporary name and renamed, so a backup that exists is
complete. It holds every customer's data, so it is readable by its owner only (0600), and a
backups directory it creates is 0700. PostgreSQL has its own tool for this (pg_dump); this
covers the embedded default.
"""

from __future__ import annotations

import os
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from core.config import Settings
from core.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite, sqlite_path

DATABASE_NAME = "dangol.db"
PHOTOS_NAME = "uploads"
CONFIG_NAME = "config.toml"


class BackupError(Exception):
    """What stopped the backup, in words for the person running it."""


@dataclass(frozen=True)
class Backup:
    path: Path
    database_bytes: int
    photos: int


def make_backup(settings: Settings, config_file: Path, into: Path, now: datetime) -> Backup:
    """Write a backup archive into the directory `into` (created if missing)."""
    if not is_sqlite(settings.database.url):
        raise BackupError(
            "the database is PostgreSQL: back it up with pg_dump, and copy the photos in "
            f"{settings.storage.path} with it; `dangol backup` covers the SQLite default"
        )
    source = Path(sqlite_path(settings.database.url))
    if not source.is_file():
        raise BackupError(f"no database at {source}: nothing to back up yet")
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = into / f"dangol-{now:%Y%m%d-%H%M%S}.tar.gz"
    if target.exists():
        raise BackupError(f"{target} exists already")
    photos_dir = Path(settings.storage.path)
    with tempfile.TemporaryDirectory(dir=into, prefix=".dangol-backup-") as work:
        copy = Path(work) / DATABASE_NAME
        _copy_database(source, copy)
        partial = Path(work) / target.name
        with _private_file(partial) as out, tarfile.open(fileobj=out, mode="w:gz") as archive:
            archive.add(copy, DATABASE_NAME)
            photos = _add_photos(archive, photos_dir)
            archive.add(config_file, CONFIG_NAME)
        partial.replace(target)
        size = copy.stat().st_size
    return Backup(target, size, photos)


def _private_file(path: Path) -> BinaryIO:
    """A new file only its owner can read: the archive is every customer's data. Created
    0600 rather than narrowed afterwards, so there is no moment another user could open it."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _copy_database(source: Path, copy: Path) -> None:
    """A transactionally consistent copy, taken while writers may be running."""
    src = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)  # only read
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)  # all pages in one step: one snapshot, not a mix of two
        (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy the database {source}: {exc}") from None
    finally:
        dst.close()
        src.close()
    if verdict != "ok":
        raise BackupError(f"the copy of {source} failed its integrity check: {verdict}")


def _add_photos(archive: tarfile.TarFile, photos_dir: Path) -> int:
    if not photos_dir.is_dir():
        return 0
    count = 0
    for photo in sorted(photos_dir.rglob("*")):
        if photo.is_file() and not photo.name.startswith("."):  # not a write in progress
            archive.add(photo, f"{PHOTOS_NAME}/{photo.relative_to(photos_dir)}")
            count += 1
    return count
