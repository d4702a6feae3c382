"""`flask auth ...`: housekeeping of sign-ins from the command line."""

import click
from flask.cli import AppGroup

from auth import sessions
from extensions import db

auth_cli = AppGroup("auth", help="Accounts: housekeeping of sign-ins.")


@auth_cli.command("prune-sessions")
def prune_sessions_command():
    """Delete expired sign-ins (cron it daily; they already count for nothing)."""
    pruned = sessions.prune_expired()
    db.session.commit()
    click.echo(f"Deleted {pruned} expired session(s).")
