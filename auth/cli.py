"""`flask auth ...`: housekeeping of sign-ins from the command line."""

import click
from flask.cli import AppGroup

from auth.tasks import prune_sessions

auth_cli = AppGroup("auth", help="Accounts: housekeeping of sign-ins.")


@auth_cli.command("prune-sessions")
def prune_sessions_command():
    """Delete expired sign-ins now (beat does it daily; they already count for nothing)."""
    pruned = prune_sessions.run()
    click.echo(f"Deleted {pruned} expired session(s).")
