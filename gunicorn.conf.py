"""gunicorn's settings for InviteLoop: `gunicorn --config gunicorn.conf.py`.

Options given on the command line override these (tests/server.py sets its own bind, workers
and timeouts that way).
"""

wsgi_app = "app:create_app()"
bind = "0.0.0.0:8000"
workers = 4


def on_starting(server):
    """Answer without naming the server software: gunicorn has no setting for its `Server:
    gunicorn` header and writes it from `gunicorn.http.wsgi.SERVER`. Set here in the master,
    before any worker is forked, so every worker inherits the empty value."""
    import gunicorn.http.wsgi

    gunicorn.http.wsgi.SERVER = ""


def child_exit(server, worker):
    """Tell prometheus-client a worker is gone, so its live gauges drop out of /metrics
    (multiprocess mode: PROMETHEUS_MULTIPROC_DIR, core/metrics.py)."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
