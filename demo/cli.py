"""`flask demo seed`: fill an empty database with a believable referral program.

`make run` calls it before starting the server, so what it prints is what a newcomer reads:
a progress bar per stage (one line each when the output is not a terminal), a summary, and
how to log in as the very last lines. The seed's own log lines, one per referral, purchase or
email, stay below WARNING unless LOG_LEVEL asks for them."""

import contextlib
import logging
import random
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from admin.analytics.rollup import rollup_analytics
from core import outbox
from demo import crm, people, shop
from extensions import db
from models import User, utcnow

demo_cli = AppGroup("demo", help="Demo data.")

DEFAULT_URL = "http://127.0.0.1:5000"  # where `make run` serves


@demo_cli.command("seed")
@click.option("--participants", default=300, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=120, show_default=True, type=click.IntRange(1, 3650))
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has participants.")
@click.option(
    "--url", help=f"The address the login hint names [default: PUBLIC_URL or {DEFAULT_URL}]"
)
def seed(participants: int, days: int, if_empty: bool, url: str | None):
    """Create demo participants, referral chains, clicks and purchases over the last DAYS days."""
    address = url or current_app.config["PUBLIC_URL"] or DEFAULT_URL
    if not people.database_is_empty():
        if not if_empty:
            raise click.ClickException(
                "The database is not empty; demo data goes only into a new one."
            )
        click.echo("The database already has participants; demo seed skipped.")
        if people.demo_accounts_exist():
            click.echo(login_hint(address))
        return

    now = utcnow()
    with _as_the_demo_happened():
        with click.progressbar(length=participants, label="Participants and referrals") as bar:
            report = people.seed(participants, days, lambda done, _: bar.update(done - bar.pos))
        since = now - timedelta(days=days + 1)
        planned = shop.plan_purchases(random.Random(days), now, since)
        payouts = crm.PayoutSchedule(random.Random(days), now, since)
        with click.progressbar(length=len(planned), label="Purchases and payouts") as bar:
            purchases, refunds = shop.record_purchases(planned, now, bar.update, payouts.catch_up)
        click.echo("Campaigns, leads, contracts and analytics...")
        crm.seed(random.Random(days), now)
        rollup_analytics(now.date(), rebuild=True)  # the seed backdates its rows
        db.session.commit()
    click.echo(
        f"Created {report.participants} participants, {report.referrals} referrals, "
        f"{report.clicks} clicks, {purchases} purchases, {refunds} refunds and "
        f"{payouts.paid} payouts."
    )
    click.echo(login_hint(address))


def login_hint(address: str) -> str:
    staff = ", ".join(email for role, email in people.STAFF_EMAILS.items() if role != "admin")
    leader = db.session.scalar(
        select(User.email)
        .where(User.role == "member", User.email.like("%@example.com"))
        .order_by(User.referral_count.desc(), User.id)
        .limit(1)
    )
    return (
        f"\nOpen {address} and log in as {people.ADMIN_EMAIL} "
        f"with the password '{people.DEMO_PASSWORD}'.\n"
        f"Each staff role has an account with the same password: {staff}.\n"
        f"So has every demo participant, e.g. {leader}, who brought in the most friends."
    )


@contextlib.contextmanager
def _as_the_demo_happened():
    """What the seed changes while it runs: demo people are not real, so their emails and
    webhooks never enter the outbox (not even to leave later); its history was made with
    every fraud check on, so held referrals wait in the review queue even where
    FRAUD_SAME_IP_REVIEW is off; and the log keeps warnings only (the summary counts the
    rest) unless LOG_LEVEL was set."""
    config = current_app.config
    root = logging.getLogger()
    saved = config["FRAUD_SAME_IP_REVIEW"], root.level
    config["FRAUD_SAME_IP_REVIEW"] = True
    if config["LOG_LEVEL"] is None:
        root.setLevel(logging.WARNING)
    try:
        with outbox.discarding():
            yield
    finally:
        config["FRAUD_SAME_IP_REVIEW"], level = saved
        root.setLevel(level)
