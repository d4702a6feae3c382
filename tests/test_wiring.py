"""The wiring is in the app factory: it lists who reacts to each signal and every background
job, and importing a module connects or registers nothing by itself."""

import ast
import json
import subprocess
import sys

import pytest

from app import BACKGROUND_JOBS, create_app
from referral.signals import referral_announced, referral_qualified, referral_recorded
from rewards.signals import rewards_approved, rewards_paid, rewards_reversed
from tests.apps import app_config, close
from tests.server import ROOT

SIGNALS = {
    "referral recorded": referral_recorded,
    "referral announced": referral_announced,
    "referral qualified": referral_qualified,
    "rewards approved": rewards_approved,
    "rewards paid": rewards_paid,
    "rewards reversed": rewards_reversed,
}
# A new receiver is a visible change: add it here, in the order create_app connects it.
RECEIVERS = {
    "referral recorded": [
        "rewards.conversions.on_referral_recorded",
        "referral.announcements.announce_after_commit",
    ],
    "referral announced": [
        "rewards.notifications.on_referral_announced",
        "admin.crm.services.lead_from_referral",
        "rewards.outbound.publish_referral_created",
    ],
    "referral qualified": ["rewards.outbound.publish_referral_qualified"],
    "rewards approved": [
        "rewards.saleor_fulfilment.on_rewards_approved",
        "rewards.outbound.publish_rewards_approved",
    ],
    "rewards paid": ["rewards.outbound.publish_rewards_paid"],
    "rewards reversed": ["rewards.saleor_fulfilment.on_rewards_reversed"],
}
JOB_NAMES = [
    "admin.rollup_analytics",
    "auth.prune_sessions",
    "auth.send_code_text",
    "auth.send_reset_link",
    "events.process_queued",
    "outbox.deliver",
    "outbox.prune",
    "outbox.sweep",
    "referral.announce",
    "referral.move_clicks",
    "rewards.deliver_webhook",
    "rewards.expire",
    "rewards.release_held",
    "rewards.retry_webhooks",
    "rewards.send_email",
    "saleor.deactivate_gift_card",
    "saleor.fulfil_reward",
    "saleor.queue_rewards",
    "saleor.reconcile_orders",
    "saleor.reconcile_usage",
    "saleor.write_ref_code",
]
PACKAGES = ["admin", "auth", "core", "demo", "referral", "rewards"]
# worker.py is left out: it is the process entry point that makes an app at import.
MODULES = ["app", "config", "extensions", "models"]


def receivers_of(signal) -> list[str]:
    return [f"{fn.__module__}.{fn.__qualname__}" for fn in signal.receivers_for(None)]


@pytest.fixture
def two_apps(sqlite_url):
    apps = [create_app(app_config(sqlite_url)) for _ in range(2)]
    yield apps
    for app in apps:
        close(app)


def test_each_signal_has_exactly_the_listed_receivers_in_order_once(two_apps):
    assert {name: receivers_of(signal) for name, signal in SIGNALS.items()} == RECEIVERS


def test_every_background_job_is_a_task_of_each_app(two_apps):
    assert sorted(job.name for job in BACKGROUND_JOBS) == JOB_NAMES
    for app in two_apps:
        known = app.extensions["celery"].tasks
        assert sorted(name for name in known if not name.startswith("celery.")) == JOB_NAMES


# Imports every project module in a fresh interpreter, then reports what got connected.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import celery.app.builtins  # Celery's own tasks, shared when imported
from celery import _state
finalizers = len(_state._on_app_finalizers)
names = list(sys.argv[2:])
for package in json.loads(sys.argv[1]):
    names.append(package)
    names += [m.name for m in pkgutil.walk_packages(
        importlib.import_module(package).__path__, package + ".")]
for name in names:
    importlib.import_module(name)
from referral.signals import referral_announced, referral_qualified, referral_recorded
from rewards.signals import rewards_approved, rewards_paid
signals = (
    referral_recorded, referral_announced, referral_qualified, rewards_approved, rewards_paid
)
print(json.dumps({
    "modules": len(names),
    "receivers": sum(len(signal.receivers) for signal in signals),
    "celery_finalizers": len(_state._on_app_finalizers) - finalizers,
}))
"""


def test_importing_every_module_connects_and_registers_nothing():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, json.dumps(PACKAGES), *MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["modules"] > 60
    assert report["receivers"] == 0
    assert report["celery_finalizers"] == 0


@pytest.mark.parametrize(
    ("module", "allowed"), [("models", {"extensions"}), ("extensions", set()), ("config", set())]
)
def test_the_lowest_layers_import_no_project_module_above_them(module, allowed):
    """import-linter cannot take a single-file module as a root, so this checks their imports."""
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    project = set(PACKAGES) | set(MODULES) | {"worker"}
    assert imported & project <= allowed
