"""The platform under the features: configuration, database set-up, errors, headers."""

import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, event, inspect, select, text

from app import create_app
from config import ConfigError
from extensions import db
from models import Program
from tests.apps import TEST_SECRET, app_config, close


def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PUBLIC_URL", "https://refer.example.com")  # also required there
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    close(app)


def test_settings_come_from_the_environment_and_bad_values_stop_the_start(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("TRUSTED_PROXY_COUNT", "two")
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_COUNT"):
        create_app()
    monkeypatch.setenv("TRUSTED_PROXY_COUNT", "1")
    monkeypatch.setenv("EMAIL_CHECK_DNS", "maybe")
    with pytest.raises(ConfigError, match="EMAIL_CHECK_DNS"):
        create_app()


def test_the_http_sms_backend_needs_an_http_url(tmp_path):
    settings = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SMS_BACKEND": "http"}
    for url in (None, "ftp://sms.example.com/send", "sms.example.com/send"):
        with pytest.raises(ConfigError, match="SMS_HTTP_URL"):
            create_app({**settings, "SMS_HTTP_URL": url})
    with pytest.raises(ConfigError, match="SMS_BACKEND"):
        create_app({**settings, "SMS_BACKEND": "carrier-pigeon"})
    close(create_app({**settings, "SMS_HTTP_URL": "https://sms.example.com/send"}))


def test_a_cheap_password_hash_is_refused_outside_tests(tmp_path):
    with pytest.raises(ConfigError, match="PASSWORD_HASH_METHOD"):
        create_app(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
            }
        )


def test_postgres_urls_use_psycopg3():
    from config import database_uri

    assert database_uri("postgres://u@h/db", "/tmp").startswith("postgresql+psycopg://")
    assert database_uri("postgresql://u@h/db", "/tmp") == "postgresql+psycopg://u@h/db"


def test_default_program_exists_after_migration(app):
    with app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        assert program is not None and program.attribution_window_days == 30


def test_models_and_migrations_agree(app, backend):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; it is checked by its SQL below.
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified")
            diff = compare_metadata(context, db.metadata)
        if backend == "sqlite":
            diff = [change for change in diff if change[1].name != "ix_users_leaderboard"]
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'ix_users_leaderboard'")
            ).scalar()
            assert "(referral_count DESC, last_referral_at, id, active, on_leaderboard)" in sql
            assert sql.endswith("WHERE referral_count > 0")
    assert diff == []


def test_sqlite_runs_in_wal_with_foreign_keys_and_immediate_writes(sqlite_url):
    app = create_app(app_config(sqlite_url))
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 15000
        db.session.rollback()
        # Every transaction takes the write lock at BEGIN: a second writer waits, it is not
        # refused halfway through for having read first.
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    close(app)
    assert statements[0] == "BEGIN IMMEDIATE"


def test_health_reports_the_database_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert (response.json["status"], response.json["database"]) == ("ok", "ok")


def test_health_answers_503_when_the_database_is_unreachable(tmp_path):
    app = create_app(
        app_config("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    )
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert (response.json["status"], response.json["database"]) == ("error", "unreachable")
    page = app.test_client().get("/referral/leaderboard")
    assert page.status_code == 503
    assert "Temporarily unavailable" in page.get_data(as_text=True)
    api = app.test_client().get("/api/v1/leaderboard")
    assert api.status_code == 503
    assert api.json["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [("/no/such/page", 404, "Page not found"), ("/auth/logout", 405, "Not allowed here")],
)
def test_error_pages_are_html_for_people_and_json_for_api_clients(client, path, status, words):
    page = client.get(path)
    assert page.status_code == status
    assert words in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    api = client.get(path, headers={"Accept": "application/json"})
    assert api.status_code == status
    assert set(api.json["error"]) == {"code", "message"}


@pytest.mark.own_app  # it adds a route, which an app that has served requests refuses
def test_server_errors_show_a_plain_page_and_roll_back(app):
    @app.get("/explode")
    def explode():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/explode")
    assert response.status_code == 500
    assert "Something went wrong" in response.get_data(as_text=True)
    assert "boom" not in response.get_data(as_text=True)
    api = app.test_client().get("/explode", headers={"Accept": "application/json"})
    assert api.json == {
        "error": {"code": "internal_error", "message": "Something went wrong on our side."}
    }


def test_proxies_are_trusted_only_when_configured(database_url, make_participant, app):
    alice = make_participant()

    def recorded_prefix(proxy_count):
        trusting = create_app(app_config(database_url, TRUSTED_PROXY_COUNT=proxy_count))
        trusting.test_client().get(
            f"/r/{alice['code']}",
            headers={"X-Forwarded-For": "198.51.100.23"},
            environ_base={"REMOTE_ADDR": "10.0.0.5"},
        )
        with trusting.app_context():
            from models import Click

            prefix = db.session.scalars(select(Click.ip_prefix).order_by(Click.id.desc())).first()
        close(trusting)
        return prefix

    assert recorded_prefix(0) == "10.0.0.0/24"
    assert recorded_prefix(1) == "198.51.100.0/24"


def test_pages_carry_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    body = response.get_data(as_text=True)
    assert "cdn." not in body and "https://" not in body.split("<body")[0]


def test_production_sends_hsts(database_url):
    app = create_app(
        app_config(database_url, APP_ENV="production", PUBLIC_URL="https://refer.example.com")
    )
    assert "max-age" in app.test_client().get("/health").headers["Strict-Transport-Security"]
    close(app)


def test_bootstrap_and_scripts_are_served_locally(client):
    body = client.get("/").get_data(as_text=True)
    import re

    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', body)
    assert assets, "no stylesheet or script found"
    for asset in assets:
        assert asset.startswith("/"), asset
        with client.get(asset) as response:  # closes the file it streams
            assert response.status_code == 200, asset


def test_migrations_create_every_check_constraint_of_the_models(app):
    """Alembic's comparison skips check constraints; reflection names them on both databases."""
    with app.app_context():
        inspector = inspect(db.engine)
        for table in db.metadata.sorted_tables:
            modelled = {
                constraint.name
                for constraint in table.constraints
                if isinstance(constraint, CheckConstraint)
            }
            migrated = {check["name"] for check in inspector.get_check_constraints(table.name)}
            assert modelled == migrated, table.name


def test_compiled_templates_are_shared_through_the_template_cache_folder(sqlite_url, tmp_path):
    """TEMPLATE_CACHE_DIR: the first process compiles a page's templates and keeps them there;
    another process (a new worker) renders the same page from them without compiling."""
    folder = tmp_path / "templates"
    compiled = []

    def made_app():
        app = create_app(app_config(sqlite_url, TEMPLATE_CACHE_DIR=str(folder)))
        compile_template = app.jinja_env.compile
        app.jinja_env.compile = lambda *a, **k: compiled.append(a) or compile_template(*a, **k)
        return app

    first = made_app()
    page = first.test_client().get("/auth/login")
    assert page.status_code == 200 and b'name="password"' in page.data and compiled
    assert len(list(folder.iterdir())) == len(compiled)
    compiled.clear()
    second = made_app()
    again = second.test_client().get("/auth/login")
    assert again.status_code == 200 and b'name="password"' in again.data
    assert compiled == []
    close(first)
    close(second)
