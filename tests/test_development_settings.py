"""Settings for trying InviteLoop on one machine: a quiet log, and referrals between two
browsers that share an IP address. Production keeps its record and its checks."""

import logging

import pytest

from app import create_app
from config import ConfigError
from core.mail import send_email
from models import Referral
from tests import factories
from tests.apps import TEST_SECRET, app_config
from tests.helpers import csrf_token, take_outbox

PRODUCTION = {"APP_ENV": "production", "PUBLIC_URL": "https://refer.example.com"}


@pytest.fixture
def config_overrides(request):
    return {"MAIL_BACKEND": "locmem", **getattr(request, "param", {})}


def _friend_signs_up_from_the_referrers_machine(app, referrer_code: str) -> Referral:
    """A second browser (its own cookies) on the same machine (the same address) opens the
    referrer's link and signs up."""
    browser = app.test_client()
    browser.get(f"/r/{referrer_code}")
    browser.post(
        "/auth/signup",
        data={
            "csrf_token": csrf_token(browser, "/auth/signup"),
            "name": "Bob Baker",
            "email": "bob@example.com",
            "password": factories.PASSWORD,
        },
    )
    with app.app_context():
        bob = factories.user_by_email("bob@example.com")
        return factories.referral_of(bob.id)


def _referrer_on_this_machine(make_participant) -> dict:
    return make_participant("Alice Zimmer", ip="127.0.0.1")  # the test client's address


def test_two_browsers_on_one_machine_are_held_for_review_by_default(app, make_participant):
    alice = _referrer_on_this_machine(make_participant)
    referral = _friend_signs_up_from_the_referrers_machine(app, alice["code"])
    assert referral.status == "review" and referral.reason == "same_ip"


@pytest.mark.parametrize("config_overrides", [{"FRAUD_SAME_IP_REVIEW": False}], indirect=True)
def test_with_the_development_setting_off_the_referral_counts_at_once(app, make_participant):
    alice = _referrer_on_this_machine(make_participant)
    referral = _friend_signs_up_from_the_referrers_machine(app, alice["code"])
    assert referral.status == "pending" and referral.counted
    assert referral.risk_reasons == []


def test_production_refuses_to_start_with_the_ip_checks_off(tmp_path):
    settings = app_config(f"sqlite:///{tmp_path / 'x.db'}", **PRODUCTION)
    with pytest.raises(ConfigError, match="FRAUD_SAME_IP_REVIEW"):
        create_app({**settings, "FRAUD_SAME_IP_REVIEW": False})


def test_an_unknown_log_level_stops_the_start(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        create_app(app_config(f"sqlite:///{tmp_path / 'x.db'}"))


@pytest.mark.own_app
@pytest.mark.parametrize(
    ("config_overrides", "line_written"),
    [
        ({}, False),  # development, LOG_LEVEL unset: quiet
        ({"LOG_LEVEL": "info"}, True),  # asked for
        ({**PRODUCTION, "SECRET_KEY": TEST_SECRET}, True),  # the operator's record
    ],
    indirect=["config_overrides"],
)
def test_a_log_line_per_email_only_in_production_or_when_asked(app, caplog, line_written):
    caplog.set_level(logging.INFO)
    with app.app_context():
        send_email.run("ann@example.com", "Your reward is approved", "Hello Ann")
    assert len(take_outbox(app)) == 1  # sent either way
    written = [record for record in caplog.records if "Your reward is approved" in record.message]
    assert bool(written) is line_written
