"""The commands the containers run, in one place. compose.yaml's services run exactly these
(tests/test_compose.py parses it and compares) and the production-topology test starts exactly
these as processes (tests/test_deployment.py), so the two cannot drift apart."""

COMMANDS = {
    "migrate": ["sh", "-c", "flask --app app db upgrade && flask --app app admin ensure-admin"],
    "web": ["gunicorn", "--config", "gunicorn.conf.py"],
    "worker": ["celery", "-A", "worker", "worker", "--loglevel", "INFO"],
    "beat": ["celery", "-A", "worker", "beat", "--loglevel", "INFO"],
}
# The services that wait for the migrations to have succeeded.
AFTER_MIGRATE = ("web", "worker", "beat")
