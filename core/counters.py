"""The counters of /metrics (core/metrics.py serves them), moved where each thing happens.

Names are given without `_total`: the client adds it to every counter's series."""

from prometheus_client import Counter, Histogram

from core.database import after_commit

HTTP_REQUESTS = Counter(
    "inviteloop_http_requests",
    "HTTP requests answered, by Flask endpoint, method and status code.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "inviteloop_http_request_duration_seconds",
    "Time to answer an HTTP request, by Flask endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CLICKS = Counter("inviteloop_clicks", "Clicks on referral links recorded.")
SIGNUPS = Counter("inviteloop_signups", "Participants who signed up (any way).")
EVENTS = Counter(
    "inviteloop_events",
    "Conversion events received, by source and outcome (accepted, duplicate, unattributed, "
    "ignored, rejected; rejected also counts events refused before parsing: bad signature, "
    "malformed body).",
    ["source", "outcome"],
)
JOB_FAILURES = Counter(
    "inviteloop_job_failures",
    "Background job runs that failed (an outbox attempt or a periodic job), by job name.",
    ["job"],
)
WEBHOOK_DELIVERIES = Counter(
    "inviteloop_webhook_deliveries",
    "Outbound webhook attempts, by result (succeeded, retrying, failed).",
    ["result"],
)


def count_on_commit(counter) -> None:
    """Add one to `counter` (a labelled child or a plain counter) once the current
    transaction commits; nothing if it rolls back."""
    after_commit(counter.inc)


def count_refused_event(source: str) -> None:
    """An event refused at the door (signature, body): nothing was stored, count it now."""
    EVENTS.labels(source, "rejected").inc()
