"""`flask rewards ...`: hold release, expiry and program rules from the command line."""

from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from core.database import reading_only
from core.errors import DomainError
from extensions import db
from models import Program, Referral, utcnow
from rewards import (
    outbound,
    programs,
    review,
    saleor_fulfilment,
    saleor_reconcile,
    saleor_usage,
    services,
)

rewards_cli = AppGroup("rewards", help="Rewards: release holds, expire, program rules.")


@rewards_cli.command("release-held")
def release_held_command():
    """Approve the rewards whose hold period has ended."""
    released = services.release_held_rewards(utcnow())
    db.session.commit()
    click.echo(f"Approved {released} reward(s) whose hold had ended.")


@rewards_cli.command("expire")
def expire_command():
    """Expire approved rewards past their expiry date."""
    expired = services.expire_rewards(utcnow())
    db.session.commit()
    click.echo(f"Expired {expired} reward(s).")


@rewards_cli.command("retry-webhooks")
def retry_webhooks_command():
    """Send the outbound webhook deliveries whose retry is due (cron this without workers)."""
    queued = outbound.retry_due(utcnow(), current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    db.session.commit()
    click.echo(f"Tried {queued} webhook delivery(ies) again.")


@rewards_cli.command("saleor-queue")
def saleor_queue_command():
    """Queue the approved rewards Saleor pays that are not sent yet (cron this without workers)."""
    queued = saleor_fulfilment.queue_rewards()
    db.session.commit()
    click.echo(f"Queued {queued} reward(s) for Saleor.")


@rewards_cli.command("saleor-usage")
def saleor_usage_command():
    """Mark the Saleor gift cards and vouchers the shop reports used (cron this without
    workers)."""
    used = saleor_usage.reconcile_usage()
    db.session.commit()
    click.echo(f"{used} reward(s) reported used by Saleor.")


@rewards_cli.command("saleor-reconcile")
def saleor_reconcile_command():
    """Record the recent paid Saleor orders the webhooks missed (cron this without workers)."""
    found = saleor_reconcile.reconcile_orders()
    db.session.commit()
    if found is None:
        raise click.ClickException("The Saleor app is not installed.")
    click.echo(f"{found} missed order(s) recorded.")


@rewards_cli.group("program")
def program_group():
    """Show or change a program's rules."""


@program_group.command("show")
@click.argument("slug", default="default")
def show_program(slug: str):
    """Print a program's rules (default: the default program)."""
    with reading_only():  # beside the web's writers on SQLite, never queued behind them
        program = _program(slug)
        for field in programs.RULE_FIELDS:
            click.echo(f"{field:32} {_shown(getattr(program, field))}")


@program_group.command("create")
@click.argument("slug")
@click.argument("settings", nargs=-1)
def create_program(slug: str, settings: tuple[str, ...]):
    """Create a program: `flask rewards program create spring name="Spring promo"
    trigger_event=every_purchase referrer_reward_value=500`."""
    try:
        values = dict(_parse_setting(setting) for setting in settings)
        programs.create_program(slug, values, current_app.config["DEFAULT_CURRENCY"])
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"Created program {slug!r}.")


@program_group.command("set")
@click.argument("slug")
@click.argument("settings", nargs=-1, required=True)
def set_program(slug: str, settings: tuple[str, ...]):
    """Change rules: `flask rewards program set default referrer_reward_value=1500
    level_shares=50,20 friend_reward_kind=none`."""
    program = _program(slug)
    try:
        changes = dict(_parse_setting(setting) for setting in settings)
        programs.update_program(program, changes)
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"Saved {len(changes)} setting(s) of program {slug!r}.")


def _program(slug: str) -> Program:
    program = db.session.scalar(select(Program).where(Program.slug == slug))
    if program is None:
        raise click.ClickException(f"No program {slug!r}.")
    return program


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    if isinstance(value, datetime):
        return value.isoformat()
    return "-" if value is None else str(value)


def _parse_setting(setting: str) -> tuple[str, object]:
    field, sep, raw = setting.partition("=")
    if not sep:
        raise programs.InvalidRules(field, f"Write settings as name=value, not {setting!r}.")
    kind = programs.RULE_FIELDS.get(field)
    if kind is None:
        raise programs.InvalidRules(field, f"{field} is not a program setting.")
    if raw.lower() in ("none", "null", ""):
        return field, [] if kind is list else None
    try:
        return field, _parse_value(kind, raw)
    except ValueError:
        raise programs.InvalidRules(field, f"{field}={raw!r} is not a valid value.") from None


def _parse_value(kind, raw: str):
    if kind is int:
        return int(raw)
    if kind is bool:
        if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "yes", "1")
    if kind is list:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        return [int(item) if item.lstrip("-").isdigit() else item for item in items]
    if kind is datetime:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(raw)
        return moment
    return raw


@rewards_cli.group("review")
def review_group():
    """List and decide referrals held for review."""


@review_group.command("list")
def list_review():
    """The referrals waiting for a decision, with their reasons."""
    with reading_only():  # beside the web's writers on SQLite, never queued behind them
        held = db.session.scalars(
            select(Referral).where(Referral.status == "review").order_by(Referral.created_at)
        ).all()
    if not held:
        click.echo("Nothing is waiting for review.")
    for referral in held:
        reasons = ", ".join(reason["code"] for reason in referral.risk_reasons)
        click.echo(
            f"#{referral.id} {referral.referred.email or referral.referred.name}"
            f" invited by {referral.referrer.email} - score {referral.risk_score}: {reasons}"
        )


@review_group.command("approve")
@click.argument("referral_id", type=int)
@click.option("--reason", default=None, help="Why, for the audit log.")
def approve_review(referral_id: int, reason: str | None):
    """Count a held referral and let its rewards continue."""
    _decide(referral_id, lambda referral: review.approve_referral(referral, utcnow(), reason))
    click.echo(f"Referral #{referral_id} approved.")


@review_group.command("reject")
@click.argument("referral_id", type=int)
@click.option("--reason", default="rejected_by_staff", help="Reason code kept on the records.")
def reject_review(referral_id: int, reason: str):
    """Refuse a held referral and its rewards."""
    _decide(referral_id, lambda referral: review.reject_referral(referral, reason, utcnow()))
    click.echo(f"Referral #{referral_id} rejected ({reason}).")


def _decide(referral_id: int, decision) -> None:
    referral = db.session.get(Referral, referral_id)
    if referral is None:
        raise click.ClickException(f"No referral #{referral_id}.")
    try:
        decision(referral)
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
