"""`dangol backup`: one archive with a consistent database copy, the photos and the config."""

from __future__ import annotations

import os
import sqlite3
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from bot.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def installed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A config written by `dangol init`, its database migrated, one photo uploaded."""
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
    config = tmp_path / "config.toml"
    code, _, _ = run(capsys, "init", "--config", str(config))
    assert code == 0
    uploads = tmp_path / "var" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / "a1b2c3.jpg").write_bytes(b"\xff\xd8photo")
    (uploads / ".a1b2c4.jpg.0000.tmp").write_bytes(b"half a photo")  # being written
    return config


def test_backup_while_dangol_writes_is_consistent_and_complete(
    capsys: pytest.CaptureFixture[str], installed: Path, tmp_path: Path
) -> None:
    database = tmp_path / "var" / "dangol.db"
    stop, under_way = threading.Event(), threading.Event()
    written: list[int] = []

    def writer() -> None:  # another process's writes, as the server's would be
        conn = sqlite3.connect(database, timeout=5, isolation_level=None)
        conn.execute("CREATE TABLE busy (n INTEGER)")
        n = 0
        while not stop.is_set():
            n += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO busy VALUES (?)", (n,))
            conn.execute("COMMIT")
            written.append(n)
            if n == 50:
                under_way.set()
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        under_way.wait()  # the writer is well under way
        code, out, err = run(
            capsys, "backup", "--config", str(installed), "--to", str(tmp_path / "bk")
        )
    finally:
        stop.set()
        thread.join()

    assert code == 0, err
    (archive_path,) = (tmp_path / "bk").iterdir()  # no temporary files left behind
    assert archive_path.name.startswith("dangol-")
    assert archive_path.name.endswith(".tar.gz")
    assert f"backup: {archive_path} (database " in out
    assert "1 photo(s)" in out

    with tarfile.open(archive_path) as archive:
        names = sorted(archive.getnames())
        assert names == ["config.toml", "dangol.db", "uploads/a1b2c3.jpg"]
        archive.extractall(tmp_path / "restored", filter="data")
    restored = tmp_path / "restored"
    assert (restored / "uploads" / "a1b2c3.jpg").read_bytes() == b"\xff\xd8photo"
    assert (restored / "config.toml").read_text("utf-8") == installed.read_text("utf-8")
    copy = sqlite3.connect(restored / "dangol.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT username FROM users").fetchall() == [("demo",)]
        # one snapshot: rows 1…k with none missing, however far the writer had got
        count, top = copy.execute("SELECT count(*), max(n) FROM busy").fetchone()
        assert count == top
        assert count >= 50
    finally:
        copy.close()


def test_backup_refuses_postgresql_and_says_what_to_use(
    capsys: pytest.CaptureFixture[str], installed: Path, tmp_path: Path
) -> None:
    text = installed.read_text("utf-8")
    pg = tmp_path / "pg.toml"
    pg.write_text(
        text.replace(
            'url = "sqlite+aiosqlite:///var/dangol.db"',
            'url = "postgresql+asyncpg://dangol@127.0.0.1:5432/dangol"',
        ),
        "utf-8",
    )
    assert pg.read_text("utf-8") != text
    code, out, err = run(capsys, "backup", "--config", str(pg), "--to", str(tmp_path / "bk"))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "backup: the database is PostgreSQL: back it up with pg_dump" in err
    assert not (tmp_path / "bk").exists()


def test_backup_without_a_database_is_one_line(
    capsys: pytest.CaptureFixture[str], installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "var" / "dangol.db").unlink()
    code, _, err = run(capsys, "backup", "--config", str(installed), "--to", str(tmp_path / "bk"))
    assert code == 1
    assert (
        err.strip()
        == f"dangol: backup: no database at {tmp_path / 'var' / 'dangol.db'}: nothing to back up yet"
    )


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_backup_archive_is_readable_by_its_owner_only(
    capsys: pytest.CaptureFixture[str], installed: Path, tmp_path: Path, umask: int
) -> None:
    # The archive is the whole customer database: not for every user of the machine, whatever
    # the umask of the shell that ran the backup.
    previous = os.umask(umask)
    try:
        code, _, err = run(
            capsys, "backup", "--config", str(installed), "--to", str(tmp_path / "bk")
        )
    finally:
        os.umask(previous)
    assert code == 0, err
    (archive_path,) = (tmp_path / "bk").iterdir()
    assert stat.S_IMODE(archive_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "bk").stat().st_mode) == 0o700  # created by the backup
    with tarfile.open(archive_path) as archive:
        assert "dangol.db" in archive.getnames()
