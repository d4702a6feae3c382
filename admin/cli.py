"""`flask admin ...`: staff accounts from the command line, through the same services."""

from datetime import date

import click
from flask.cli import AppGroup

from admin.analytics import rollup
from admin.people import roles
from core import api_keys
from core.errors import DomainError
from extensions import db
from models import ROLES, utcnow

admin_cli = AppGroup("admin", help="Staff accounts and roles; the analytics roll-up.")


@admin_cli.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, name: str, password: str):
    """Create an administrator account (asks for whatever is not given)."""
    try:
        user = roles.create_admin(email=email, name=name, password=password)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    click.echo(f"Admin {user.email} created.")


@admin_cli.command("ensure-admin")
@click.option("--email", envvar="ADMIN_EMAIL", help="Default: $ADMIN_EMAIL.")
@click.option("--name", envvar="ADMIN_NAME", default="Administrator", show_default=True)
@click.option("--password", envvar="ADMIN_PASSWORD", help="Default: $ADMIN_PASSWORD.")
def ensure_admin(email: str | None, name: str, password: str | None):
    """Create the first administrator from ADMIN_EMAIL and ADMIN_PASSWORD, once.

    Safe on every start (the containers' migrate step runs it): an existing account with that
    email is left exactly as it is, password and role included. Without ADMIN_EMAIL it does
    nothing."""
    if not email:
        click.echo("ADMIN_EMAIL is not set: no administrator created.")
        return
    if not password:
        raise click.ClickException("ADMIN_EMAIL is set but ADMIN_PASSWORD is not.")
    try:
        user, created = roles.ensure_admin(email=email, name=name, password=password)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    if created:
        click.echo(f"Admin {user.email} created.")
    elif user.role == "admin":
        click.echo(f"Admin {user.email} exists; left as it is.")
    else:
        click.echo(
            f"Warning: {user.email} exists with the role {user.role!r} and was not made an "
            "administrator (use `flask admin set-role` if it should be).",
            err=True,
        )


@admin_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def set_role(email: str, role: str):
    """Change the role of the account with EMAIL."""
    try:
        user, before = roles.set_role(email, role)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    click.echo(f"{user.email}: {before} -> {role}")


@admin_cli.command("create-api-key")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(sorted(api_keys.SCOPES)),
    help="What the key may do; repeat for several.",
)
def create_api_key(name: str, scopes: tuple[str, ...]):
    """Create an API key for another system. The key is printed once and never again."""
    _key, secret = api_keys.create_api_key(name, list(scopes))
    db.session.commit()
    click.echo(f"API key {name!r} ({', '.join(scopes)}). Store it now; it is not shown again:")
    click.echo(secret)


@admin_cli.command("rollup-analytics")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Recompute every day, not only the days since the last run.",
)
def rollup_analytics_command(rebuild: bool):
    """Roll up the analytics home's daily counts for every closed day (before today, UTC).

    The job does this every 10 minutes, and recounts the days the database marked stale
    (rows that changed or arrived late for a day already rolled up)."""

    def progress(done: date, until: date) -> None:
        click.echo(f"Rolled up the days before {done.isoformat()} (of {until.isoformat()})")

    days = rollup.rollup_analytics(utcnow().date(), rebuild=rebuild, progress=progress)
    db.session.commit()
    click.echo(f"Analytics roll-up: {days} days computed; complete before {rollup.watermark()}.")
