# InviteLoop's one image: the web server (the default command), and with another command the
# Celery worker, beat and the migrate step (compose.yaml). docs/guarantees.md #34.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLASK_APP=app

WORKDIR /app

# The dependencies in a layer of their own: rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The code and static files (the app's own under static/, Bootstrap's inside its package),
# owned by root: the app can read them, not change them.
COPY . .

# The message catalogues, compiled into the image (the .mo files are not in git).
RUN pybabel compile -d translations

# The only writable places: contract documents (a volume in compose.yaml), beat's schedule and
# the counters of /metrics (PROMETHEUS_MULTIPROC_DIR, a volume web and worker share).
RUN useradd --system --user-group --no-log-init --home-dir /app --shell /usr/sbin/nologin inviteloop \
    && mkdir -p instance/contracts instance/beat instance/metrics/worker \
    && chown -R inviteloop:inviteloop instance
USER inviteloop

EXPOSE 8000
# Healthy while /health answers 200 (also "degraded": the app serves); asked under PUBLIC_URL's
# host name, so an ALLOWED_HOSTS setting does not refuse the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD \
    python -c "import os, sys, urllib.parse, urllib.request as r; \
host = urllib.parse.urlsplit(os.environ.get('PUBLIC_URL', '')).netloc or '127.0.0.1'; \
answer = r.urlopen(r.Request('http://127.0.0.1:8000/health', headers={'Host': host}), timeout=4); \
sys.exit(answer.status != 200)"

# Every command starts through it: it empties PROMETHEUS_MULTIPROC_DIR's counter files first.
ENTRYPOINT ["sh", "deploy/entrypoint.sh"]
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
