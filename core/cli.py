"""Operators' commands: `flask jobs ...` (the outbox, for cron without workers) and
`flask db backup|restore` (core/backups.py)."""

import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from core import backups, outbox
from core.jobs import prune_outbox

jobs_cli = AppGroup("jobs", help="Deliver what the outbox holds.")


@jobs_cli.command("run")
@click.option("--loop", is_flag=True, help="Keep delivering until stopped (Ctrl-C).")
@with_appcontext
def run_command(loop: bool) -> None:
    """Deliver every message that is due now (emails, texts, webhook attempts)."""
    pause = current_app.config["OUTBOX_POLL_SECONDS"]
    while True:
        delivered = 0
        while True:
            ran = outbox.drain()
            delivered += ran
            if ran < outbox.DRAIN_BATCH:
                break
        click.echo(f"ran {delivered} outbox message(s)")
        if not loop:
            return
        time.sleep(pause)


@jobs_cli.command("prune")
@with_appcontext
def prune_command() -> None:
    """Delete sent messages older than OUTBOX_KEEP_SENT_DAYS (beat does it daily)."""
    click.echo(f"Deleted {prune_outbox.run()} sent outbox message(s).")


# `flask db backup` and `flask db restore`: added to Flask-Migrate's `db` group by the factory.


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@with_appcontext
def backup_command(path: Path, overwrite: bool) -> None:
    """Write a consistent backup of the database to PATH (SQLite file or pg_dump archive)."""
    try:
        done = backups.backup(path, _progress, overwrite=overwrite)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up to {done.path} ({done.size} bytes in {done.seconds:.1f} s).")
    contracts = current_app.config["CONTRACTS_FOLDER"]
    click.echo(f"Uploaded contract documents are not in it: back up {contracts} as well.")


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def restore_command(path: Path) -> None:
    """Restore the backup at PATH into this (empty) database."""
    try:
        done = backups.restore(path, _progress)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Restored {done.path} in {done.seconds:.1f} s.")


def _progress(line: str) -> None:
    click.echo(f"  {line}")
