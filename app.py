"""The application factory: the only place an app is made. Run with `flask --app app ...`."""

import atexit
import gc
import logging

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import admin
import auth
import core
import referral
import rewards
from admin import exports as csv_exports
from admin.analytics import services as analytics
from admin.analytics import tasks as analytics_tasks
from admin.cli import admin_cli
from admin.crm import queries as crm_queries
from admin.crm import services as crm
from admin.integrations import services as integrations
from admin.operations import queries as operations
from admin.people import services as people
from admin.programs import queries as programs
from admin.referrals import queries as referrals
from auth import reset, sms
from auth import tasks as auth_tasks
from auth.cli import auth_cli
from auth.services import load_user, unauthorized
from auth.widget import widget_bp
from config import load_config
from core import database, jobs
from core.background import RequestsInFlight
from core.cli import backup_command, jobs_cli, restore_command
from core.embedding import FrameAwareSessionInterface
from core.errors import register_error_handlers
from core.hosts import register_host_check
from core.i18n import register_i18n
from core.inputs import register_input_checks
from core.jobs import init_celery, register_jobs
from core.logs import configure_logging, register_request_ids
from core.mail import absolute_url, send_email
from core.metrics import register_metrics
from core.openapi import openapi_bp
from core.outbox import init_outbox
from core.security import register_security_headers
from core.templating import register_template_cache, register_template_helpers
from demo import demo_cli
from extensions import bootstrap, cache, csrf, db, limiter, login_manager, mail
from referral import announcements, board_shortcut, click_shortcut
from referral.clicks import init_click_queue, move_clicks
from referral.program_texts import program_text
from referral.signals import referral_announced, referral_qualified, referral_recorded
from rewards import (
    conversions,
    notifications,
    outbound,
    saleor_customers,
    saleor_fulfilment,
    saleor_reconcile,
    saleor_usage,
)
from rewards import tasks as rewards_tasks
from rewards.cli import rewards_cli
from rewards.signals import customer_joined, rewards_approved, rewards_paid, rewards_reversed

# Every background job, by the module that declares it (beat's schedule is in config.py).
BACKGROUND_JOBS = (
    jobs.deliver_outbox,
    jobs.sweep_outbox,
    jobs.prune_outbox,
    send_email,
    reset.send_reset_link,
    sms.send_code_text,
    rewards_tasks.release_held,
    rewards_tasks.expire,
    rewards_tasks.retry_webhooks,
    rewards_tasks.process_events,
    outbound.deliver_webhook,
    analytics_tasks.rollup_analytics,
    auth_tasks.prune_sessions,
    saleor_fulfilment.fulfil_reward,
    saleor_fulfilment.queue_due_rewards,
    saleor_fulfilment.deactivate_gift_card,
    saleor_usage.reconcile_usage_job,
    saleor_customers.write_ref_code,
    saleor_reconcile.reconcile_orders_job,
    move_clicks,
    announcements.announce,
)


class InviteLoopFlask(Flask):
    """Flask, with each view's and hook's "is it async?" asked once rather than on every
    request: Flask asks it of every hook it calls (18 on a cached board answer), and the
    answer (inspect's code-flag lookup) never changes for a function."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_callables: dict = {}

    def ensure_sync(self, func):
        try:
            return self._sync_callables[func]
        except KeyError:
            made = self._sync_callables[func] = super().ensure_sync(func)
            return made
        except TypeError:  # unhashable: asked each time, as Flask does
            return super().ensure_sync(func)


def create_app(config: dict | None = None) -> Flask:
    app = InviteLoopFlask(__name__, instance_relative_config=True)
    load_config(app, config)
    app.session_interface = FrameAwareSessionInterface()  # framed widget pages: their own
    configure_logging(app.config)
    register_extensions(app)
    register_i18n(app)
    register_metrics(app)
    register_background_jobs(app)
    register_signal_receivers()
    register_input_checks(app)
    register_blueprints(app)
    register_csv_exports(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_host_check(app)
    register_request_ids(app)  # after the host check: its before_request step runs first
    register_template_cache(app)
    register_template_helpers(app)
    app.add_template_global(absolute_url, "absolute_url")  # share previews (macros/social)
    app.add_template_global(program_text, "program_text")  # a program's texts, per language
    register_commands(app)
    # Before ProxyFix: the shortcuts read the address and host ProxyFix corrects.
    board_shortcut.install(app)
    click_shortcut.install(app)
    app.wsgi_app = app.extensions["requests_in_flight"].counting(app.wsgi_app)
    trust_proxies(app)
    register_quick_exit()
    return app


def register_quick_exit() -> None:
    """At exit, Python collects garbage over every object still alive, though all of them die
    with the process: about half a second of CPU at the end of every command, worker and test
    process that made an app. Frozen first (at exit), they are skipped. Registered once per
    process, however many apps it makes."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    database.init_app(app)
    app.extensions["migrate"] = MigrationsOnDemand(app)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    cache.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    bootstrap.init_app(app)
    mail.init_app(app)
    init_celery(app)


def register_background_jobs(app: Flask) -> None:
    register_jobs(app, BACKGROUND_JOBS)
    # Counted by a middleware (create_app): the embedded threads below give way to requests.
    app.extensions["requests_in_flight"] = RequestsInFlight()
    init_outbox(app)
    rewards_tasks.init_event_runner(app)
    init_click_queue(app)  # and the links' cache it checks against


def register_signal_receivers() -> None:
    """Who acts on what the domain announces, in the order they run. The signals are
    process-wide; connecting a receiver again (another app in the process) changes nothing."""
    referral_recorded.connect(conversions.on_referral_recorded)
    referral_recorded.connect(announcements.announce_after_commit)
    # After the referral's commit, from the outbox (referral/announcements.py).
    referral_announced.connect(notifications.on_referral_announced)
    referral_announced.connect(crm.lead_from_referral)
    referral_announced.connect(outbound.publish_referral_created)
    referral_qualified.connect(outbound.publish_referral_qualified)
    # Saleor first: a gift card's InviteLoop-only code is dropped before anyone describes it.
    rewards_approved.connect(saleor_fulfilment.on_rewards_approved)
    rewards_approved.connect(outbound.publish_rewards_approved)
    rewards_paid.connect(outbound.publish_rewards_paid)
    rewards_reversed.connect(saleor_fulfilment.on_rewards_reversed)
    customer_joined.connect(saleor_customers.on_customer_joined)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(core.bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(widget_bp)
    app.register_blueprint(referral.bp)
    app.register_blueprint(rewards.bp)
    app.register_blueprint(admin.bp)


def register_csv_exports(app: Flask) -> None:
    """Every table the staff panel offers as a CSV file, screen by screen."""
    csv_exports.register(
        app,
        analytics.CSV_EXPORTS,
        people.CSV_EXPORTS,
        referrals.CSV_EXPORTS,
        programs.CSV_EXPORTS,
        operations.CSV_EXPORTS,
        crm_queries.CSV_EXPORTS,
        integrations.CSV_EXPORTS,
    )


def register_commands(app: Flask) -> None:
    app.cli.add_command(admin_cli)
    app.cli.add_command(auth_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(rewards_cli)
    app.cli.add_command(MigrationCommands())


# Flask-Migrate imports Alembic, about a tenth of every process's start (each server, worker
# and command of the suite), for the migrations alone: it is imported when one runs.


def migration_commands() -> click.Group:
    """Flask-Migrate's `flask db` group, with `flask db backup` and `restore` beside its own."""
    # Alembic logs its built-in plugins as it is imported, unseen before the app's logging
    # was set up; unseen still.
    announcer = logging.getLogger("alembic.runtime.plugins")
    level = announcer.level
    announcer.setLevel(logging.WARNING)
    try:
        from flask_migrate.cli import db as commands
    finally:
        announcer.setLevel(level)
    commands.add_command(backup_command)
    commands.add_command(restore_command)
    return commands


def bind_migrations(app: Flask):
    """Flask-Migrate bound to `app`: its app.extensions["migrate"] and `flask db` group."""
    migration_commands()  # imports Flask-Migrate
    from flask_migrate import Migrate

    Migrate(app, db, render_as_batch=True, compare_type=True)
    return app.extensions["migrate"]


class MigrationsOnDemand:
    """app.extensions["migrate"] until a migration reads it (Flask-Migrate's functions such as
    flask_migrate.upgrade, migrations/env.py): then Flask-Migrate is bound and takes its place."""

    def __init__(self, app: Flask):
        self._app = app

    def __getattr__(self, name: str):
        return getattr(bind_migrations(self._app), name)


class MigrationCommands(click.Group):
    """`flask db`, loading Flask-Migrate's group only when it is invoked."""

    def __init__(self):
        super().__init__("db", help="Perform database migrations.")

    def make_context(self, info_name, args, parent=None, **extra):
        return migration_commands().make_context(info_name, args, parent=parent, **extra)


def trust_proxies(app: Flask) -> None:
    """Believe X-Forwarded-* only from as many proxies as the operator says sit in front."""
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
