"""The container files say what the README and the tests say (docs/guarantees.md #34): compose
runs the commands the production-topology test runs, the others wait for the migrations, every
service has a health check, the image runs as a non-root user, and .env.example documents every
setting compose passes on."""

import json
import re
import subprocess

import pytest
import yaml

import config
from tests import databases
from tests.deployment import (
    AFTER_MIGRATE,
    COMMANDS,
    ENTRYPOINT,
    METRICS_FOLDERS,
    command_environment,
    metrics_setting,
)
from tests.server import ROOT, SERVER_SECRET

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The Dockerfile's instructions of one kind, continuation lines joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line[len(name) :].strip() for line in joined.splitlines() if line.startswith(name)]


def test_compose_runs_the_commands_the_topology_test_runs():
    app_services = {name for name, service in SERVICES.items() if "build" in service}
    assert app_services == set(COMMANDS)
    for name, command in COMMANDS.items():
        assert SERVICES[name]["command"] == command, name
    # The image's own command is the web server's, and every command starts through the
    # entrypoint the topology test runs too.
    assert json.loads(instructions("CMD")[-1]) == COMMANDS["web"]
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ENTRYPOINT
    assert (ROOT / ENTRYPOINT[-1]).is_file()


def test_web_and_worker_keep_their_counters_in_one_shared_volume():
    """Several gunicorn workers and the Celery worker: every process's counters in files that
    web's /metrics adds up, each service in a folder of its own (docs/guarantees.md #36)."""
    shared = "/app/instance/metrics"
    for name in METRICS_FOLDERS:
        service = SERVICES[name]
        assert f"metrics:{shared}" in service["volumes"], name
        expected = metrics_setting(name, shared)["PROMETHEUS_MULTIPROC_DIR"]
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == expected, name
        assert service["environment"]["APP_ENV"] == "production", "the shared settings kept"
    folders = {
        metrics_setting(name, shared)["PROMETHEUS_MULTIPROC_DIR"] for name in METRICS_FOLDERS
    }
    assert len(folders) == len(METRICS_FOLDERS)
    for name in set(COMMANDS) - set(METRICS_FOLDERS):
        assert "PROMETHEUS_MULTIPROC_DIR" not in SERVICES[name].get("environment", {}), name
    assert "metrics" in COMPOSE["volumes"]
    assert "instance/metrics/worker" in DOCKERFILE, "the volume starts owned by the app's user"


def test_the_app_waits_for_the_migrations_and_the_migrations_for_the_database():
    for name in AFTER_MIGRATE:
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
    assert SERVICES["migrate"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert SERVICES["migrate"]["restart"] == "no"
    assert "postgres:/var/lib/postgresql/data" in SERVICES["db"]["volumes"]


def test_every_long_running_service_is_health_checked():
    for name in ("db", "redis", "worker"):
        assert SERVICES[name]["healthcheck"]["test"], name
    # web: the image's HEALTHCHECK, on /health.
    assert "healthcheck" not in SERVICES["web"]
    (check,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/health" in check


def test_the_image_runs_as_a_user_without_root_and_installs_dependencies_first():
    assert instructions("USER") == ["inviteloop"]
    copies = instructions("COPY")
    assert copies[0] == "requirements.txt ./", "dependencies get a layer of their own"
    assert DOCKERFILE.index("pip install -r requirements.txt") < DOCKERFILE.index("COPY . .")
    compile_step = "RUN pybabel compile -d translations"
    assert DOCKERFILE.index("COPY . .") < DOCKERFILE.index(compile_step), "catalogues compiled in"


def compose_settings() -> set[str]:
    """Every variable compose.yaml reads from .env or sets for the app's containers."""
    text = (ROOT / "compose.yaml").read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)", text))
    for name in COMMANDS:
        names |= set(SERVICES[name].get("environment", {}))
    return names


def test_env_example_documents_every_setting_compose_passes():
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert compose_settings() - documented == set()
    assert set(config._ENV_TYPES) - documented == set()
    assert {"POSTGRES_PASSWORD", "ADMIN_EMAIL", "ADMIN_PASSWORD", "SECRET_KEY"} <= documented


@pytest.mark.server
def test_the_example_settings_start_the_web_server(tmp_path):
    """.env.example copied to .env as it is, plus what compose.yaml and the operator add: every
    value parses and gunicorn loads the app."""
    example = (ROOT / ".env.example").read_text()
    settings = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE))
    settings.update(
        APP_ENV="production",
        SECRET_KEY=SERVER_SECRET,
        PUBLIC_URL="https://refer.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'check.db'}",
        REDIS_URL=databases.REDIS_URL,
    )
    env = command_environment(**settings)
    check = subprocess.run(
        [*COMMANDS["web"], "--check-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
