"""Calls to a Saleor instance's GraphQL API with the app token.

One call is one POST; it must finish within SALEOR_TIMEOUT_SECONDS. A refused connection, a
timeout, a 5xx or a GraphQL error raise SaleorCallFailed with a message staff can read; the
token never appears in it, nor in the log.
"""

import json
import logging
import urllib.error
import urllib.request

from flask import current_app

from core.errors import DomainError

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024


class SaleorCallFailed(DomainError):
    status = 502
    code = "saleor_call_failed"
    message = "Saleor did not answer as expected."


def execute(api_url: str, token: str, document: str, variables: dict | None = None) -> dict:
    """Run one GraphQL operation at `api_url`; its `data`, or SaleorCallFailed."""
    body = json.dumps({"query": document, "variables": variables or {}}).encode()
    request = urllib.request.Request(  # noqa: S310 - the config allows only http(s) URLs
        api_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    timeout = current_app.config["SALEOR_TIMEOUT_SECONDS"]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read(MAX_ANSWER_BYTES + 1)[:MAX_ANSWER_BYTES])
    except urllib.error.HTTPError as error:
        raise _failed(api_url, f"Saleor answered HTTP {error.code}.") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _failed(api_url, f"Saleor could not be reached ({_describe(reason)}).") from None
    except ValueError:
        raise _failed(api_url, "Saleor's answer is not JSON.") from None
    return _data(api_url, answer)


def _data(api_url: str, answer) -> dict:
    if not isinstance(answer, dict):
        raise _failed(api_url, "Saleor's answer is not a GraphQL response.")
    errors = answer.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        text = first.get("message") if isinstance(first, dict) else None
        raise _failed(api_url, f"Saleor refused the request: {str(text or errors)[:300]}")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise _failed(api_url, "Saleor's answer has no data.")
    return data


def _describe(reason) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return type(reason).__name__ if not isinstance(reason, str) else reason


def _failed(api_url: str, message: str) -> SaleorCallFailed:
    log.warning("Saleor call to %s failed: %s", api_url, message)
    return SaleorCallFailed(message)
