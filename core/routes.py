"""Service endpoints that are about the application itself rather than a feature."""

from flask import Blueprint, jsonify

from core import health as probes

bp = Blueprint("core", __name__)


@bp.get("/health")
def health():
    """200 `ok` or `degraded` while the app can serve, 503 `error` when it cannot; `database`
    keeps its old values (ok / unreachable) for checks written against them."""
    found = probes.check()
    database = "ok" if found.dependencies["database"] == probes.OK else "unreachable"
    body = jsonify(status=found.status, database=database, dependencies=found.dependencies)
    return body, found.http_status
