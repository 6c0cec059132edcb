"""The schema: migrations to the head revision (Alembic), and the check that refuses to
serve on a schema this code does not expect."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from core.engines import async_engine

if TYPE_CHECKING:
    from core.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(url: str, revision: str = "head", *, search_path: str | None = None) -> None:
    """Bring the schema to `revision` (used by `dangol db upgrade`, `init`, `demo` and tests)."""
    engine = async_engine(url, read_only=False, search_path=search_path)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_on, revision)
    finally:
        await engine.dispose()


class SchemaOutOfDate(RuntimeError):
    pass


async def check_schema(database: Database) -> None:
    """Refuse to serve on a schema older (or newer) than this code expects."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with database.read() as conn:
        current = await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )
    if current != head:
        found = current or "empty"
        raise SchemaOutOfDate(
            f"database schema is at {found}, this dangol needs {head}: "
            "run `dangol db upgrade --config …`"
        )


def _upgrade_on(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
