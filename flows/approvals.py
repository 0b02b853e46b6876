"""The approval form: a person approves or rejects each action before it runs.

The run waits with a typed form in the Prefect UI, one approve/reject choice per
action (rejected unless someone approves it). A run of a deployment suspends: its
infrastructure exits, and on resume Prefect runs the flow again from the start,
when this same call returns the saved answer (the pause key is derived from the
actions, so a different set of actions would ask again). A run without a
deployment (a local CLI run) cannot be rescheduled, so it pauses in-process with
the same form. Past the timeout nothing is executed and Prefect fails the run
("never resumed").
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from prefect.context import FlowRunContext
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model

from flows.assist import Action
from flows.errors import ConfigurationError

Choice = Literal["approve", "reject"]
Verdict = Literal["approved", "rejected"]


class ApprovalForm(RunInput):
    """What the person resuming the run fills in; one `action_N` field per action."""

    approver: str = Field(
        default="", description="Your name, kept with the decisions for the record."
    )


class ApprovalDecision(BaseModel):
    """One action's verdict."""

    action_id: str
    tool: str
    verdict: Verdict
    approver: str | None = None


def actions_digest(actions: list[Action]) -> str:
    """A short digest of the actions awaiting approval (ids, tools and inputs)."""
    canonical = json.dumps(
        [[a.id, a.tool, a.input, a.intent] for a in actions],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def approval_form_for(actions: list[Action]) -> type[ApprovalForm]:
    """The form for these actions: field `action_N` is the N-th action's choice.

    The field's title names the action, tool and confidence; its description is
    the intent and the preview, so the form alone is enough to decide.
    """
    fields: dict[str, Any] = {}
    for number, action in enumerate(actions, start=1):
        title = f"{action.id}: {action.tool} (confidence {action.confidence:.2f})"
        preview = action.preview or "(none)"
        fields[f"action_{number}"] = (
            Choice,
            Field(
                default="reject",
                title=title,
                description=f"{action.intent}\n\nPreview: {preview}",
            ),
        )
    form = create_model("ActionApproval", __base__=ApprovalForm, **fields)
    return form.with_initial_data(description=form_description(actions))


def form_description(actions: list[Action]) -> str:
    """The markdown shown above the form: every action in a table."""
    lines = [
        "The agent proposes these actions. Approve the ones to run; anything not "
        "approved is not executed.",
        "",
        "| field | id | tool | intent | confidence | preview |",
        "|---|---|---|---|---|---|",
    ]
    for number, action in enumerate(actions, start=1):
        cells = [
            f"action_{number}",
            action.id,
            action.tool,
            action.intent,
            f"{action.confidence:.2f}",
            action.preview or "",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def decide(form: ApprovalForm, actions: list[Action]) -> list[ApprovalDecision]:
    """The verdict for each action from a filled-in form; a missing field rejects."""
    approver = form.approver.strip() or None
    return [
        ApprovalDecision(
            action_id=action.id,
            tool=action.tool,
            verdict=(
                "approved"
                if getattr(form, f"action_{number}", "reject") == "approve"
                else "rejected"
            ),
            approver=approver,
        )
        for number, action in enumerate(actions, start=1)
    ]


async def wait_for_approval(
    actions: list[Action], *, timeout_seconds: int, poll_seconds: int = 10
) -> list[ApprovalDecision]:
    """Suspend (deployment runs) or pause (local runs) until the form is answered.

    Args:
        actions: The actions that need approval, in the order shown.
        timeout_seconds: How long the form stays open.
        poll_seconds: How often a paused local run checks for the answer.

    Returns:
        One decision per action, in order.

    Raises:
        ConfigurationError: called outside a flow run.
        FlowPauseTimeout: a paused local run was not resumed in time; nothing
            was executed.
        prefect.exceptions.Pause: a deployment run suspends (raised by Prefect;
            the flow must let it through).
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise ConfigurationError("approvals need a flow run to suspend or pause")
    form = approval_form_for(actions)
    key = f"approval-{actions_digest(actions)}"
    if context.flow_run.deployment_id is not None:
        answer = await asuspend_flow_run(
            wait_for_input=form, timeout=timeout_seconds, key=key
        )
    else:
        answer = await apause_flow_run(
            wait_for_input=form,
            timeout=timeout_seconds,
            poll_interval=poll_seconds,
            key=key,
        )
    if answer is None:
        # Resumed without the form: nobody approved anything.
        answer = form()
    return decide(answer, actions)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:200]
