"""`flask jobs ...`: the outbox from the command line, for operators (and cron without workers)."""

import time

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from core import outbox
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
