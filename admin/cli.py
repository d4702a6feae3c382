"""`flask admin ...`: staff accounts from the command line, through the same services."""

import click
from flask.cli import AppGroup

from admin import services
from core import api_keys
from core.errors import DomainError
from extensions import db
from models import ROLES

admin_cli = AppGroup("admin", help="Staff accounts and roles.")


@admin_cli.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, name: str, password: str):
    """Create an administrator account (asks for whatever is not given)."""
    try:
        user = services.create_admin(email=email, name=name, password=password)
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
        user, before = services.set_role(email, role)
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
