"""The staff panel's common ground: the guard, the audit log's actor, CSV cell safety."""

from sqlalchemy import select

from admin.exports import safe_cell
from admin.people import roles as admin_services
from admin.policy import PERMISSIONS, role_can
from extensions import db
from models import AuditLog, User
from tests import factories


def test_visitors_are_sent_to_log_in_and_participants_refused(client, make_participant, login):
    page = client.get("/admin/")
    assert page.status_code == 302 and "/auth/login" in page.headers["Location"]

    member = make_participant("Mia Member")
    login(member["email"])
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/export/anything.csv").status_code == 403


def test_a_demoted_or_deactivated_user_loses_access_on_the_next_request(app, client, login):
    with app.app_context():
        manager = factories.staff("manager")
    login(manager["email"])
    assert client.get("/admin/").status_code == 200

    with app.app_context():
        admin_services.set_role(manager["email"], "member")
        db.session.commit()
    assert client.get("/admin/").status_code == 403

    with app.app_context():
        user = db.session.get(User, manager["id"])
        user.role, user.active = "manager", False
        db.session.commit()
    page = client.get("/admin/")
    assert page.status_code == 302 and "/auth/login" in page.headers["Location"]


def test_a_role_change_from_the_command_line_is_logged_with_the_command_as_actor(
    app, runner, make_participant
):
    person = make_participant("Olga Operator")
    result = runner.invoke(args=["admin", "set-role", person["email"], "operator"])
    assert result.exit_code == 0, result.output

    with app.app_context():
        entry = db.session.scalars(select(AuditLog)).one()
        assert entry.action == "user.role"
        assert entry.actor_id is None
        assert entry.actor_label.startswith("cli: ") and entry.actor_label.endswith(
            "admin set-role"
        )
        assert (entry.target_type, entry.target_id) == ("user", str(person["id"]))
        assert (entry.before, entry.after) == ({"role": "member"}, {"role": "operator"})


def test_setting_the_same_role_again_logs_nothing(app, runner, make_participant):
    person = make_participant("Sam Same")
    result = runner.invoke(args=["admin", "set-role", person["email"], "member"])
    assert result.exit_code == 0, result.output
    assert "member -> member" in result.output
    with app.app_context():
        assert db.session.scalars(select(AuditLog)).all() == []


def test_admin_holds_every_permission_and_participants_none():
    for permission in PERMISSIONS:
        assert role_can("admin", permission)
        assert not role_can("member", permission)
        assert not role_can(None, permission)


def test_cells_a_spreadsheet_would_run_are_defused():
    assert safe_cell('=HYPERLINK("http://evil")') == '\'=HYPERLINK("http://evil")'
    for dangerous in ("+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("Alice") == "Alice"
    assert safe_cell(-500) == -500  # a number is data, not a formula
    assert safe_cell(None) == ""
