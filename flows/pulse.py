"""The Pulse tile: the answer's summary posted to a dashboard webhook, once per slot.

Also home of `post_json`, the webhook POST with retries that the tile and the
action dispatch share. It retries what the Agent API client retries (connection
errors, timeouts, 408, 425, 429, 5xx), honours `Retry-After` up to a cap, and
sends the same `Idempotency-Key` on every attempt, so a receiver that honours the
header applies a tile or an action once, however often it is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.agent_api import RETRIED_STATUSES, retry_after_seconds
from flows.alerts import current_run_url, run_logger, scrub_secrets
from flows.assist import AssistAnswer
from flows.errors import DeliveryError
from flows.http_errors import excerpt
from flows.window import Window

PULSE_WEBHOOK_ENV = "PULSE_WEBHOOK_URL"


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


class PulseTile(BaseModel):
    """What the dashboard shows for one slot. Only answer fields, never log lines."""

    tile_id: str
    title: str
    slot: str
    window_start: datetime
    window_end: datetime
    summary: str
    error_count: int
    actions_needing_approval: int
    actions_total: int
    flow_run_url: str | None = None


class TilePublication(BaseModel):
    """Whether the tile went out, and under which keys."""

    posted: bool
    tile_id: str
    idempotency_key: str
    detail: str


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


def tile_id_for(deployment: str, window: Window) -> str:
    """A stable id per Deployment and slot, e.g. `...-orchestrator-20260310t130000z`."""
    raw = f"completions-agent-{deployment}-{window.end:%Y%m%dT%H%M%SZ}"
    return re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")


def tile_idempotency_key(deployment: str, window: Window) -> str:
    """The `Idempotency-Key` of the slot's tile: the same on every rerun."""
    seed = f"pulse|{deployment}|{window.slot()}"
    return "pulse-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def build_tile(
    answer: AssistAnswer, *, window: Window, deployment: str, run_url: str | None
) -> PulseTile:
    """The tile for this answer; free text goes through the secret scrubber."""
    return PulseTile(
        tile_id=tile_id_for(deployment, window),
        title=f"Completions calls of {deployment}",
        slot=window.slot(),
        window_start=window.start,
        window_end=window.end,
        summary=scrub_secrets(answer.summary),
        error_count=answer.error_count,
        actions_needing_approval=len(answer.actions_needing_approval),
        actions_total=len(answer.actions),
        flow_run_url=run_url,
    )


async def publish_tile(
    answer: AssistAnswer,
    *,
    window: Window,
    deployment: str,
    webhook_url: str | None = None,
    policy: RetryPolicy | None = None,
) -> TilePublication:
    """Post the slot's tile to the Pulse webhook (parameter, else PULSE_WEBHOOK_URL).

    Not configured: one INFO line, nothing sent.

    Raises:
        DeliveryError: the webhook refused the tile or kept failing.
    """
    url = webhook_url or os.environ.get(PULSE_WEBHOOK_ENV, "").strip() or None
    tile = build_tile(
        answer, window=window, deployment=deployment, run_url=current_run_url()
    )
    key = tile_idempotency_key(deployment, window)
    if url is None:
        run_logger(__name__).info(
            "No Pulse webhook configured (pulse_webhook_url or %s): tile not posted",
            PULSE_WEBHOOK_ENV,
        )
        return TilePublication(
            posted=False, tile_id=tile.tile_id, idempotency_key=key, detail="skipped"
        )
    delivery = await post_json(
        url,
        tile.model_dump(mode="json"),
        idempotency_key=key,
        what="the Pulse tile",
        policy=policy,
    )
    return TilePublication(
        posted=True,
        tile_id=tile.tile_id,
        idempotency_key=key,
        detail=f"HTTP {delivery.status} after {delivery.attempts} attempt(s)",
    )


@task(name="publish-tile", cache_policy=NO_CACHE)
async def publish_tile_task(
    answer: AssistAnswer,
    *,
    window: Window,
    deployment: str,
    webhook_url: str | None = None,
) -> TilePublication:
    """`publish_tile` as a task, so the run's graph shows it. Retries are inside."""
    return await publish_tile(
        answer, window=window, deployment=deployment, webhook_url=webhook_url
    )
