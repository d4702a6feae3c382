"""The first administrator of a container deployment comes from its environment
(ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_NAME) through `flask admin ensure-admin`, which the
migrate step runs on every start: it creates the account once and then never changes it
(docs/guarantees.md #34)."""

from models import User
from tests import factories
from tests.helpers import count

FIRST = {"ADMIN_EMAIL": "Owner@Example.com", "ADMIN_PASSWORD": "first start passphrase"}


def ensure_admin(runner, **env):
    unset = {"ADMIN_EMAIL": None, "ADMIN_PASSWORD": None, "ADMIN_NAME": None}
    return runner.invoke(args=["admin", "ensure-admin"], env={**unset, **env})


def test_the_first_start_creates_the_admin_and_later_starts_change_nothing(
    app, runner, client, login
):
    result = ensure_admin(runner, **FIRST, ADMIN_NAME="Olive Owner")
    assert result.exit_code == 0, result.output
    assert "Admin owner@example.com created." in result.output
    with app.app_context():
        owner = factories.user_by_email("owner@example.com")
        assert (owner.role, owner.name) == ("admin", "Olive Owner")

    # Every later start runs it again, even with another password in the environment.
    again = ensure_admin(runner, ADMIN_EMAIL="owner@example.com", ADMIN_PASSWORD="another one!")
    assert again.exit_code == 0, again.output
    assert "Admin owner@example.com exists; left as it is." in again.output
    assert count(app, User) == 1
    assert login("owner@example.com", "first start passphrase").status_code == 302


def test_without_admin_email_nobody_is_created(app, runner):
    result = ensure_admin(runner, ADMIN_PASSWORD="first start passphrase")
    assert result.exit_code == 0, result.output
    assert "ADMIN_EMAIL is not set: no administrator created." in result.output
    assert count(app, User) == 0


def test_a_bad_setting_stops_the_start_with_the_reason_and_creates_nothing(app, runner):
    cases = [
        ({"ADMIN_EMAIL": "owner@example.com"}, "ADMIN_PASSWORD is not"),
        ({"ADMIN_EMAIL": "owner@example.com", "ADMIN_PASSWORD": "password"}, "common"),
        ({"ADMIN_EMAIL": "not-an-email", "ADMIN_PASSWORD": "a good passphrase"}, "not valid"),
    ]
    for env, message in cases:
        result = ensure_admin(runner, **env)
        assert result.exit_code != 0, env
        assert message in result.output
    assert count(app, User) == 0


def test_an_address_someone_registered_is_not_made_admin(app, runner, make_participant):
    make_participant("Mallory Member", email="owner@example.com")
    result = ensure_admin(runner, **FIRST)
    assert result.exit_code == 0, result.output
    assert "exists with the role 'member' and was not made an administrator" in result.output
    with app.app_context():
        assert factories.user_by_email("owner@example.com").role == "member"
