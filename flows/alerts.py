"""Flow-run hooks that tell people, through a notification block, when a run fails.

Two mechanisms cover a run that goes wrong, and either can be used alone (both
together send two messages per failure):

- the hooks here (`on_failure`, `on_crashed`; a flow timeout ends in a Failed state
  named `TimedOut`, so `on_failure` covers it) send one message through the block
  named by the flow parameter `notification_block` or the
  `COMPLETIONS_AGENT_NOTIFICATION_BLOCK` variable;
- the automations in `deployments/automations.yaml` (see `flows.automations`).

Where the open-source server falls short, code here does the job: it has no
`DeclareIncident` action (Prefect Cloud only), so incidents go through a
notification block (`send_notification`, used by `flows.dispatch`); the server
renders an automation's message as it is, while the hook scrubs credentials and
personal data from it first; and a run on a server where the automations were
never applied (an ephemeral server, a local CLI run) is covered by the hook alone.
The hooks cannot see a run that never starts, or a suspended run that the server
fails when its approval times out: those are the automations' job.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.utilities.urls import url_for

from flows.errors import ConfigurationError, DeliveryError
from flows.redaction import Redactor
from flows.window import window_ending_at

logger = logging.getLogger(__name__)

NOTIFICATION_BLOCK_ENV = "COMPLETIONS_AGENT_NOTIFICATION_BLOCK"
TOKEN_ENV = "AGENTAPI_TOKEN"


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger in a flow or task run (lines reach the UI), else `name`'s."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)


def scrub_secrets(text: str) -> str:
    """Remove the Agent API token, credentials and personal data from free text.

    Messages and tiles are built from token-free, redacted material; this is the
    last guard before text leaves the cluster, e.g. an exception that quoted a
    header, or a summary that echoed an address.

    Args:
        text: Free text about to be sent to a person or a dashboard.

    Returns:
        The text with the token as `[secure]` and everything else the log
        redaction recognises as a placeholder.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        text = text.replace(token, "[secure]")
    return Redactor.for_run().redact(text)


def flow_run_url(flow_run_id: UUID | str) -> str:
    """The UI link of a flow run, or its id when `PREFECT_UI_URL` is not set."""
    url = url_for("flow-run", obj_id=str(flow_run_id))
    return url or f"flow run {flow_run_id} (set PREFECT_UI_URL for a link)"


def current_run_url() -> str | None:
    """The UI link of the flow run this code runs in, if any."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return flow_run_url(context.flow_run.id)


def slot_of(flow_run: FlowRun) -> str:
    """The slot a run analyses, worked out from its parameters as the flow does."""
    parameters = flow_run.parameters or {}
    if parameters.get("log_files"):
        return "none (log files were read, not the cluster)"
    end = parameters.get("window_end") or flow_run.expected_start_time
    if end is None:
        return "unknown (the run has no scheduled start time)"
    # Through isoformat, so a Pendulum moment from the API becomes a plain datetime.
    end = datetime.fromisoformat(end if isinstance(end, str) else end.isoformat())
    hours = float(parameters.get("window_hours") or 24)
    return window_ending_at(end, hours).slot()


def failure_message(flow_run: FlowRun, state: State) -> tuple[str, str]:
    """The subject and body of the message about a run that ended in `state`."""
    slot = slot_of(flow_run)
    what = scrub_secrets(state.message or "no message was recorded with the state")
    subject = f"{flow_run.name}: {state.name} ({slot})"
    body = "\n".join(
        [
            f"Run {flow_run.name} of orchestrator-completions-agent ended "
            f"{state.name}.",
            f"Slot: {slot}",
            f"What failed: {what}",
            f"Flow run: {flow_run_url(flow_run.id)}",
        ]
    )
    return subject, body


async def load_notification_block(reference: str) -> NotificationBlock:
    """Load a notification block by `type-slug/name`, or by a name that is unique.

    Raises:
        ConfigurationError: no such block, several blocks of that name, or a
            block that cannot send notifications.
    """
    if "/" in reference:
        try:
            block: Block = await Block.aload(reference)
        except ValueError as exc:
            raise ConfigurationError(
                f"notification block {reference!r} was not found: create it in the "
                "Prefect UI (Blocks) or fix the name"
            ) from exc
    else:
        block = await _load_by_name(reference)
    if "notify" not in block.get_block_capabilities():
        raise ConfigurationError(
            f"block {reference!r} is a {block.get_block_type_slug()} block, which "
            "cannot send notifications: name a Slack, Teams, PagerDuty, Opsgenie or "
            "custom webhook block"
        )
    return block  # type: ignore[return-value]


async def _load_by_name(name: str) -> Block:
    async with get_client() as client:
        documents = [
            document
            for document in await client.read_block_documents(include_secrets=True)
            if document.name == name
        ]
    if not documents:
        raise ConfigurationError(
            f"notification block {name!r} was not found: create it in the Prefect "
            "UI (Blocks) or fix the name"
        )
    if len(documents) > 1:
        slugs = sorted(d.block_type.slug for d in documents if d.block_type)
        raise ConfigurationError(
            f"several blocks are named {name!r} ({', '.join(slugs)}): name one as "
            f"'type-slug/{name}'"
        )
    return Block._from_block_document(documents[0])


async def send_notification(reference: str, *, subject: str, body: str) -> None:
    """Send one scrubbed message through the named notification block.

    Raises:
        ConfigurationError: the block cannot be loaded or cannot notify.
        DeliveryError: the block reported that sending failed.
    """
    block = await load_notification_block(reference)
    try:
        # Apprise-based blocks only report a failed send when asked to.
        with block.raise_on_failure():
            await block.notify(body=scrub_secrets(body), subject=scrub_secrets(subject))
    except Exception as exc:
        # Each block type fails its own way (NotificationError, httpx errors...).
        raise DeliveryError(
            f"notification block {reference!r} could not send "
            f"({type(exc).__name__}); check the block's URL and credentials"
        ) from exc
    run_logger(__name__).info(
        "Sent %r through notification block %s", subject, reference
    )


def notification_block_name(flow_run: FlowRun) -> str | None:
    """The block named by the run's parameter, else by the environment."""
    parameters: dict[str, Any] = flow_run.parameters or {}
    return parameters.get("notification_block") or os.environ.get(
        NOTIFICATION_BLOCK_ENV
    )


async def notify_run_ended_badly(flow: Any, flow_run: FlowRun, state: State) -> None:
    """Flow hook for `on_failure` and `on_crashed`: send one message, if configured.

    Raises:
        ConfigurationError: the named block cannot be loaded; Prefect logs a
            hook's error on the run and leaves the run's state as it is.
    """
    reference = notification_block_name(flow_run)
    if not reference:
        logger.info(
            "Run %s ended %s; no notification block is configured (parameter "
            "notification_block or %s)",
            flow_run.name,
            state.name,
            NOTIFICATION_BLOCK_ENV,
        )
        return
    subject, body = failure_message(flow_run, state)
    await send_notification(reference, subject=subject, body=body)
    logger.info(
        "Notified %s that run %s ended %s", reference, flow_run.name, state.name
    )
