"""The Pulse tile: the answer's summary posted to a dashboard webhook, once per slot."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from flows.alerts import current_run_url, run_logger, scrub_secrets
from flows.assist import AssistAnswer
from flows.webhook import RetryPolicy, post_json
from flows.window import Window

PULSE_WEBHOOK_ENV = "PULSE_WEBHOOK_URL"


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
