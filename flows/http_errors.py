"""Messages for Agent API failures: the status, a body excerpt, and what to check."""

from __future__ import annotations

import re

import httpx

from flows.agent_config import AgentApiConfig
from flows.redaction import Redactor

EXCERPT_CHARS = 200

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


def excerpt(body: bytes, secret: str = "", limit: int = EXCERPT_CHARS) -> str:
    """A one-line, secret-free excerpt of a response body for an error message.

    HTML tags are dropped (load balancer error pages say little else), whitespace
    is collapsed, the token is removed wherever it is quoted back, and the rest
    goes through a fresh `Redactor`.
    """
    text = body.decode("utf-8", errors="replace")
    if secret:
        text = text.replace(secret, "[token]")
    if "<html" in text[:500].lower() or "<!doctype" in text[:500].lower():
        text = _TAG.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    if not text:
        return "(empty body)"
    text = Redactor.for_run().redact(text)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def describe_rejection(
    response: httpx.Response, body: bytes, config: AgentApiConfig, secret: str
) -> str:
    """The message of a non-retried error status: what happened and what to check."""
    status = response.status_code
    url = config.assist_url
    head = f"POST {url} answered HTTP {status} {response.reason_phrase}"
    shown = excerpt(body, secret)
    if status in (401, 403):
        verdict = "refused the token" if status == 401 else "forbids this token"
        return (
            f"{head}: the Agent API {verdict} ({shown}). Check the token in "
            f"{config.token_source}: the `agentapi-cred` Secret block or "
            "AGENTAPI_TOKEN must hold a valid, unexpired token for this Agent API. "
            "Not retried."
        )
    if status == 404:
        return (
            f"{head} ({shown}): there is no /v1/assist here. Check AGENTAPI_BASE: it "
            "is the base URL, without /v1/assist. Not retried."
        )
    if status == 409:
        return (
            f"{head} ({shown}): the Agent API holds a different request under the "
            "same Idempotency-Key, or is still processing it. Not retried."
        )
    if status == 413:
        return (
            f"{head} ({shown}): the request is too large for the Agent API; lower "
            "top_n or the doctrine's depth. Not retried."
        )
    if status in (400, 422):
        return (
            f"{head}: the Agent API says the request is invalid ({shown}). The "
            "request and the Agent API disagree on the /v1/assist contract; the "
            "request is saved for resending once that is fixed. Not retried."
        )
    if 300 <= status < 400:
        location = response.headers.get("location", "(no Location header)")
        return (
            f"{head} to {location}: redirects are not followed, so the token never "
            "goes to another URL. Set AGENTAPI_BASE to the final base URL."
        )
    return f"{head} ({shown}). This status is not retried."
