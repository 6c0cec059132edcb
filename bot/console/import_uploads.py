"""An uploaded customer list kept between its preview and the owner's 가져오기.

The file itself is kept — in `<storage>/imports/`, under a random id, with a small JSON
note of whose it is — not the parsed rows and not anything the browser sends back. The
confirm step reads the same bytes the preview read and plans again, so what is imported is
what was previewed (the plan's digest must match) and nothing of it is taken from the
client. An id works for its shop only and for `LIFETIME`; every upload sweeps older ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

LIFETIME = timedelta(hours=1)
_ID = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class Upload:
    id: str
    shop_id: int
    user_id: int
    file_name: str
    uploaded_at: datetime
    data: bytes


class UploadStore:
    """Files in `<root>/imports/`; every method blocks (run them in an executor)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.dir = Path(root).absolute() / "imports"

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        return self.dir / f"{upload_id}.bin", self.dir / f"{upload_id}.json"

    def save(self, shop_id: int, user_id: int, file_name: str, data: bytes, now: datetime) -> str:
        self.sweep(now)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        upload_id = secrets.token_urlsafe(24)
        body, note = self._paths(upload_id)
        # The note first: a sweep running meanwhile never sees a body without its note.
        note.write_text(
            json.dumps(
                {
                    "shop_id": shop_id,
                    "user_id": user_id,
                    "file_name": file_name,
                    "uploaded_at": now.isoformat(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            ),
            "utf-8",
        )
        body.write_bytes(data)
        return upload_id

    def load(self, upload_id: str, shop_id: int, now: datetime) -> Upload | None:
        """The upload, when it is this shop's, still fresh and whole; else None."""
        if not _ID.fullmatch(upload_id):
            return None
        body, note = self._paths(upload_id)
        try:
            meta = json.loads(note.read_text("utf-8"))
            data = body.read_bytes()
        except (OSError, ValueError):
            return None
        uploaded_at = datetime.fromisoformat(meta["uploaded_at"])
        if (
            meta.get("shop_id") != shop_id
            or now - uploaded_at > LIFETIME
            or hashlib.sha256(data).hexdigest() != meta.get("sha256")
        ):
            return None
        return Upload(
            upload_id, shop_id, int(meta["user_id"]), meta["file_name"], uploaded_at, data
        )

    def remove(self, upload_id: str) -> None:
        if _ID.fullmatch(upload_id):
            for path in self._paths(upload_id):
                path.unlink(missing_ok=True)

    def sweep(self, now: datetime) -> None:
        """Forget uploads older than `LIFETIME` (and files left without their note)."""
        if not self.dir.is_dir():
            return
        for note in self.dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                meta = json.loads(note.read_text("utf-8"))
                if now - datetime.fromisoformat(meta["uploaded_at"]) > LIFETIME:
                    self.remove(note.stem)
        for body in self.dir.glob("*.bin"):
            if not body.with_suffix(".json").exists():
                body.unlink(missing_ok=True)
