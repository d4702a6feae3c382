"""Backups of the database and their restore (`flask db backup PATH`, `flask db restore PATH`).

- SQLite: Python's online backup API copies the live file page by page, consistent even while
  the app writes (docs/guarantees.md #37).
- PostgreSQL: `pg_dump --format=custom`, one consistent snapshot; restored with `pg_restore`
  in a single transaction, so a failed restore leaves the database as it was.

A restore goes only into an empty database (a new one after `flask db upgrade`, or one never
migrated): it never merges with, or overwrites, live data. Uploaded contract documents live in
CONTRACTS_FOLDER, outside the database: back that folder up beside the file this writes.

Both write the backup next to PATH first and rename it into place once complete, so PATH never
holds half a backup.
"""

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, inspect, select

from extensions import db

Progress = Callable[[str], None]

SQLITE_HEADER = b"SQLite format 3\x00"
PG_CUSTOM_HEADER = b"PGDMP"
SQLITE_PAGES_PER_STEP = 256
# Tables the migrations fill themselves: a new installation has its default program.
SEEDED_TABLES = {"programs": 1}
_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Done:
    path: Path
    size: int
    seconds: float


# --- backup --------------------------------------------------------------------------------


def backup(path: Path, progress: Progress, overwrite: bool = False) -> Done:
    path = Path(path)
    if path.exists() and not overwrite:
        raise BackupError(f"{path} already exists; choose a new name or pass --overwrite.")
    if not path.parent.is_dir():
        raise BackupError(f"The folder {path.parent} does not exist.")
    partial = path.with_name(path.name + ".partial")
    started = time.monotonic()
    try:
        if _dialect() == "sqlite":
            _backup_sqlite(partial, progress)
        else:
            _backup_postgres(partial, progress)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Done(path, path.stat().st_size, time.monotonic() - started)


def _backup_sqlite(target: Path, progress: Progress) -> None:
    database = Path(_sqlite_file())
    if not database.is_file():
        raise BackupError(f"There is no database at {database} to back up.")
    source = _read_only(database)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy, pages=SQLITE_PAGES_PER_STEP, progress=_page_progress(progress))
    except sqlite3.Error as error:
        raise BackupError(f"The SQLite backup failed: {error}") from None
    finally:
        copy.close()
        source.close()


def _backup_postgres(target: Path, progress: Progress) -> None:
    command = [_tool("pg_dump"), "--format=custom", "--verbose", f"--file={target}"]
    _run_postgres_tool(command, progress, "dumping contents of table")


# --- restore -------------------------------------------------------------------------------


def restore(path: Path, progress: Progress) -> Done:
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file.")
    made_by = _made_by(_head(path))
    if made_by is None:
        raise BackupError(f"{path} is not a backup made by `flask db backup`.")
    dialect = _dialect()
    if made_by != dialect:
        raise BackupError(
            f"{path} is a {_NAMES[made_by]} backup; this installation uses {_NAMES[dialect]}."
        )
    check_empty()
    started = time.monotonic()
    db.session.remove()
    db.engine.dispose()  # no pooled connection holds a lock the restore needs
    if made_by == "sqlite":
        _restore_sqlite(path, progress)
    else:
        _restore_postgres(path, progress)
    db.engine.dispose()  # the next connection sees the restored schema
    return Done(path, path.stat().st_size, time.monotonic() - started)


def check_empty() -> None:
    """Raise BackupError naming what the database holds, unless it holds nothing but what
    its migrations wrote."""
    existing = set(inspect(db.engine).get_table_names())
    held = []
    for table in db.metadata.sorted_tables:
        if table.name not in existing:
            continue
        rows = db.session.scalar(select(func.count()).select_from(table))
        if rows > SEEDED_TABLES.get(table.name, 0):
            held.append(f"{rows} {table.name}")
    db.session.rollback()
    if held:
        raise BackupError(
            "The database is not empty (it holds "
            + ", ".join(held)
            + "). Restore only into an empty database: create a new one, point DATABASE_URL "
            "at it, run `flask db upgrade` (or not), then restore."
        )


def _restore_sqlite(path: Path, progress: Progress) -> None:
    source = _read_only(path)
    try:
        if source.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError(f"{path} is damaged (SQLite's quick_check failed).")
        target = sqlite3.connect(_sqlite_file())
        try:
            source.backup(target, pages=SQLITE_PAGES_PER_STEP, progress=_page_progress(progress))
        finally:
            target.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} could not be read as a SQLite database: {error}") from None
    finally:
        source.close()


def _restore_postgres(path: Path, progress: Progress) -> None:
    # --clean --if-exists: a migrated but empty schema is replaced by the backup's; all in one
    # transaction, so an error leaves the database as it was.
    command = [
        _tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-acl",
        "--single-transaction",
        "--exit-on-error",
        "--verbose",
        f"--dbname={db.engine.url.database}",
        str(path),
    ]
    _run_postgres_tool(command, progress, "processing data for table")


# --- shared --------------------------------------------------------------------------------


def _dialect() -> str:
    return db.engine.dialect.name


def _sqlite_file() -> str:
    name = db.engine.url.database
    if not name or name == ":memory:":
        raise BackupError("An in-memory SQLite database has nothing to back up or restore.")
    return name


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(16)


def _made_by(header: bytes) -> str | None:
    if header.startswith(SQLITE_HEADER):
        return "sqlite"
    if header.startswith(PG_CUSTOM_HEADER):
        return "postgresql"
    return None


def _page_progress(progress: Progress):
    def report(_status, remaining: int, total: int) -> None:
        progress(f"{total - remaining}/{total} pages copied")

    return report


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; install the PostgreSQL client tools of the server's "
            "major version (e.g. the postgresql-client package)."
        )
    return found


def _postgres_environment() -> dict[str, str]:
    """libpq's variables, so the password never shows in the process list."""
    url = db.engine.url
    env = dict(os.environ)
    settings = {
        "PGHOST": url.host,
        "PGPORT": url.port,
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
    }
    env.update({name: str(value) for name, value in settings.items() if value is not None})
    return env


def _run_postgres_tool(command: list[str], progress: Progress, table_marker: str) -> None:
    """Run pg_dump or pg_restore, turning its --verbose lines about tables into progress."""
    # The command is ours: a tool found on PATH, fixed options, paths the operator gave.
    with subprocess.Popen(  # noqa: S603
        command,
        env=_postgres_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        errors = []
        for line in process.stderr:
            line = line.rstrip()
            if table_marker in line:
                progress(line.split(table_marker, 1)[1].strip().strip('"'))
            elif "error" in line.lower():
                errors.append(line)
        failed = process.wait() != 0
    if failed:
        raise BackupError(
            f"{Path(command[0]).name} failed: " + ("; ".join(errors) or "see its output above")
        )
