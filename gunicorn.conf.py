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
