"""Where photo files live: JPEGs in one directory, each under a random name, written
atomically and fsynced before the row that points at them commits; the MMS-ready copy is
made once and kept next to the original."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from bot.photos.cleaning import DECODE_ERRORS, broken, for_mms

# secrets.token_urlsafe(24) is 32 URL-safe characters; nothing else is ever a stored name.
STORED_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.jpg")
# The MMS copy of <token>.jpg is <token>.mms.jpg: never a stored name, so never served.
MMS_SUFFIX = ".mms.jpg"


def new_stored_name() -> str:
    return secrets.token_urlsafe(24) + ".jpg"


def is_stored_name(name: str) -> bool:
    """True only for names we could have made: no dots, slashes or anything else."""
    return STORED_NAME.fullmatch(name) is not None


class PhotoStore:
    """JPEG files in one directory, each under a random name; written atomically."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def path_of(self, stored_name: str) -> Path:
        if not is_stored_name(stored_name):
            raise ValueError("not a stored photo name")
        return self.root / stored_name

    def save(self, jpeg: bytes) -> str:
        """Write `jpeg` under a new random name and return the name (blocking)."""
        self._ensure_root()
        name = new_stored_name()
        self._write(self.path_of(name), jpeg)
        return name

    def mms_path_of(self, stored_name: str) -> Path:
        original = self.path_of(stored_name)
        return original.with_name(original.name.removesuffix(".jpg") + MMS_SUFFIX)

    def mms_file(self, stored_name: str) -> Path:
        """The photo's copy within SOLAPI's MMS limits (`for_mms`), made on first use and
        kept next to the original (blocking: file and CPU work).

        FileNotFoundError when the photo is gone (a copy left behind does not count);
        PhotoRejected("broken") when the stored file cannot be decoded.
        """
        original = self.path_of(stored_name)
        copy = self.mms_path_of(stored_name)
        if not original.is_file():
            raise FileNotFoundError(stored_name)
        if copy.is_file():
            return copy
        jpeg = original.read_bytes()
        try:
            smaller = for_mms(jpeg)
        except DECODE_ERRORS:  # for_mms works in memory: these are about the picture
            raise broken() from None
        # Two senders making it at once write the same bytes; the rename is atomic.
        self._write(copy, smaller)
        return copy

    def _write(self, final: Path, data: bytes) -> None:
        tmp = self.root / f".{final.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                # On disk before the row that points at it is committed.
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def read(self, stored_name: str) -> bytes:
        """The file's bytes (blocking); FileNotFoundError when it is gone."""
        return self.path_of(stored_name).read_bytes()

    def remove(self, stored_name: str) -> None:
        self.path_of(stored_name).unlink(missing_ok=True)
        self.mms_path_of(stored_name).unlink(missing_ok=True)

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.root.mkdir(mode=0o700)
        except FileExistsError:
            return
        self.root.chmod(0o700)  # mkdir's mode was filtered by the umask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
