"""A JSON POST to a webhook, retried on transient failures with one Idempotency-Key."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from flows.agent_api import RETRIED_STATUSES, retry_after_seconds
from flows.alerts import run_logger
from flows.errors import DeliveryError
from flows.http_errors import excerpt


class RetryPolicy(BaseModel):
    """How hard a webhook POST tries before it gives up."""

    attempts: int = Field(default=4, ge=1)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_cap_s: float = Field(default=120.0, ge=0)
    timeout_s: float = Field(default=10.0, gt=0)


class Delivery(BaseModel):
    """A POST the receiver accepted."""

    status: int
    attempts: int
    idempotency_key: str


def where(url: str) -> str:
    """The scheme and host of a URL: webhook paths and queries often hold secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def post_json(
    url: str,
    body: dict[str, Any],
    *,
    idempotency_key: str,
    what: str,
    policy: RetryPolicy | None = None,
    headers: dict[str, str] | None = None,
) -> Delivery:
    """POST `body` as JSON, retrying transient failures with the same key.

    Retries what the Agent API client retries (connection errors, timeouts, 408,
    425, 429, 5xx) and honours `Retry-After` up to a cap. The same
    `Idempotency-Key` goes with every attempt, so a receiver that honours the
    header applies the body once, however often it is sent.

    Args:
        url: The receiver.
        body: The JSON body.
        idempotency_key: Sent as `Idempotency-Key` on every attempt.
        what: Names the thing sent, for logs and errors ("the Pulse tile").
        policy: Attempts, backoff and timeouts.
        headers: Extra headers (never logged).

    Raises:
        DeliveryError: a status retrying cannot fix, the last attempt failed, or
            the receiver asked to wait longer than the Retry-After cap.
    """
    policy = policy or RetryPolicy()
    sent_headers = {"Idempotency-Key": idempotency_key, **(headers or {})}
    timeout = httpx.Timeout(policy.timeout_s, connect=min(5.0, policy.timeout_s))
    async with httpx.AsyncClient(timeout=timeout) as client:
        for attempt in range(1, policy.attempts + 1):
            try:
                response = await client.post(url, json=body, headers=sent_headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__} talking to {where(url)}"
                retry_after = None
                status = None
            else:
                status = response.status_code
                run_logger(__name__).info(
                    "POST %s for %s: HTTP %d", where(url), what, status
                )
                if status < 300:
                    return Delivery(
                        status=status, attempts=attempt, idempotency_key=idempotency_key
                    )
                problem = (
                    f"{where(url)} answered HTTP {status} {excerpt(response.content)}"
                )
                if status not in RETRIED_STATUSES:
                    raise DeliveryError(
                        f"{what}: {problem}; not retried, check the URL and the "
                        "receiver's credentials",
                        url=where(url),
                        status=status,
                    )
                retry_after = response.headers.get("Retry-After")
            if attempt == policy.attempts:
                break
            wait = _wait(policy, attempt, retry_after, what, problem)
            run_logger(__name__).warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                what,
                attempt,
                policy.attempts,
                problem,
                wait,
            )
            await asyncio.sleep(wait)
    raise DeliveryError(
        f"{what}: gave up after {policy.attempts} attempt(s); last: {problem}",
        url=where(url),
        status=status,
    )


def _wait(
    policy: RetryPolicy, attempt: int, retry_after: str | None, what: str, problem: str
) -> float:
    asked = retry_after_seconds(retry_after)
    if asked is None:
        delay = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
        return delay * (0.5 + 0.5 * random.random())
    if asked > policy.retry_after_cap_s:
        raise DeliveryError(
            f"{what}: {problem}; the receiver asked to retry after {asked:.0f} s, "
            f"more than the {policy.retry_after_cap_s:.0f} s cap; rerun the slot later"
        )
    return asked
