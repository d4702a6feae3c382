"""`flask demo seed`: fill an empty database with a believable referral program."""

import random
from datetime import timedelta

import click
from flask.cli import AppGroup

from admin.analytics.rollup import rollup_analytics
from core import outbox
from demo import crm, people, shop
from extensions import db
from models import utcnow

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
@click.option("--participants", default=300, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=120, show_default=True, type=click.IntRange(1, 3650))
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has participants.")
def seed(participants: int, days: int, if_empty: bool):
    """Create demo participants, referral chains and clicks over the last DAYS days."""
    if not people.database_is_empty():
        if if_empty:
            click.echo("The database already has participants; demo seed skipped.")
            return
        raise click.ClickException("The database is not empty; demo data goes only into a new one.")

    def progress(done: int, total: int) -> None:
        click.echo(f"Seeding participants: {done}/{total}")

    # Demo people are not real: their emails and webhooks never enter the outbox.
    with outbox.discarding():
        report = people.seed(participants, days, progress)
        click.echo("Seeding purchases, refunds and rewards...")
        purchases, refunds = shop.seed_purchases(
            random.Random(days), utcnow(), utcnow() - timedelta(days=days + 1)
        )
        crm.seed(random.Random(days), utcnow())
        rollup_analytics(utcnow().date(), rebuild=True)  # the seed backdates its rows
        db.session.commit()
    click.echo(
        f"Created {report.participants} participants, {report.referrals} referrals, "
        f"{report.clicks} clicks, {purchases} purchases and {refunds} refunds.\n"
        f"Log in as {people.ADMIN_EMAIL} (staff: {', '.join(people.STAFF_EMAILS.values())}; "
        f"or any demo participant) with the password '{people.DEMO_PASSWORD}'."
    )
