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

    The hourly job does this too. Rows that arrive late for a day already rolled up
    (backdated imports, the demo seed) are counted only after a run with --rebuild."""

    def progress(done: date, until: date) -> None:
        click.echo(f"Rolled up the days before {done.isoformat()} (of {until.isoformat()})")

    days = rollup.rollup_analytics(utcnow().date(), rebuild=rebuild, progress=progress)
    db.session.commit()
    click.echo(f"Analytics roll-up: {days} days computed; complete before {rollup.watermark()}.")
