"""Acting on the answer's actions: nothing by default; when enabled, approved ones once.

`act_on_answer` is the one call the flow makes after recording the answer:

- `dispatch_actions` false (the default): every action is recorded as "recorded
  only", nothing leaves the run.
- enabled: actions with `requires_approval` false are dispatched at once; the
  others wait for a person (`flows.approvals`), and only approved ones run.
- `open_incident` goes through the notification block named by `incident_block`
  (Slack, PagerDuty, Opsgenie, or a custom webhook for Jira), at most one per slot;
  every other tool is POSTed to its URL in `action_endpoints` (`"*"` for any tool
  not listed), with an `Idempotency-Key` derived from the slot and the action id.
  A tool with no endpoint is reported as such, never sent anywhere else.
- What was dispatched is remembered in a Prefect Variable per slot, so a rerun,
  or the re-execution of a suspended run after approval, sends nothing twice.

Every decision and outcome is kept in one table artifact under a stable key.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from typing import Any, Literal

from prefect.artifacts import acreate_table_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.variables import Variable
from pydantic import BaseModel, Field, ValidationError

from flows.alerts import current_run_url, run_logger, send_notification
from flows.approvals import ApprovalDecision, wait_for_approval
from flows.assist import Action, AssistAnswer, OpenIncidentInput
from flows.errors import ConfigurationError, DeliveryError
from flows.webhook import RetryPolicy, post_json
from flows.window import Window

ACTION_TOKEN_ENV = "ACTION_ENDPOINT_TOKEN"
Decision = Literal[
    "recorded-only", "automatic", "pending", "approved", "rejected", "timed-out"
]
Status = Literal[
    "not-dispatched", "dispatched", "already-dispatched", "no-endpoint", "failed"
]


class DispatchSettings(BaseModel):
    """What the flow's parameters say about acting on actions."""

    dispatch_actions: bool = False
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    incident_block: str | None = None
    action_endpoints: dict[str, str] = Field(default_factory=dict)
    approval_poll_seconds: int = Field(default=10, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class ActionOutcome(BaseModel):
    """What was decided about one action and what came of it."""

    action_id: str
    tool: str
    requires_approval: bool
    decision: Decision
    status: Status
    detail: str = ""
    approver: str | None = None
    idempotency_key: str | None = None
    http_status: int | None = None


class DispatchReport(BaseModel):
    """Every action's outcome for one slot, and where the record of it is kept."""

    slot: str
    enabled: bool
    outcomes: list[ActionOutcome]
    artifact_key: str

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def action_idempotency_key(deployment: str, window: Window, action_id: str) -> str:
    """The `Idempotency-Key` of one action in one slot: the same on every rerun."""
    seed = f"{deployment}|{window.slot()}|{action_id}"
    return "action-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def outcomes_artifact_key(deployment: str) -> str:
    """e.g. `dealershipai-orchestrator-completions-actions-dispatch`."""
    slug = re.sub(r"[^a-z0-9-]+", "-", deployment.lower()).strip("-")
    return f"{slug}-completions-actions-dispatch"


async def act_on_answer(
    answer: AssistAnswer, *, window: Window, deployment: str, settings: DispatchSettings
) -> DispatchReport:
    """Record, and when enabled dispatch, the answer's actions for this slot.

    Args:
        answer: The validated answer, already recorded.
        window: The analysed window; its slot keys deduplication.
        deployment: The analysed Deployment as `namespace/name`.
        settings: From the flow's parameters.

    Returns:
        The outcome of every action, also kept as a table artifact.

    Raises:
        DeliveryError: at least one dispatch failed after its retries (every
            outcome is recorded first).
        FlowPauseTimeout: nobody answered the approval form in time; nothing
            that needed approval was executed.
        prefect.exceptions.Pause: a deployment run suspends for approval; let
            it through.
    """
    key = outcomes_artifact_key(deployment)

    def report(outcomes: list[ActionOutcome]) -> DispatchReport:
        return DispatchReport(
            slot=window.slot(),
            enabled=settings.dispatch_actions,
            outcomes=outcomes,
            artifact_key=key,
        )

    if not settings.dispatch_actions:
        off = [
            _unsent(a, "recorded-only", "dispatch_actions is off")
            for a in answer.actions
        ]
        run_logger(__name__).info(
            "%d action(s) recorded for review; dispatch_actions is off", len(off)
        )
        await _record(report(off), "Actions recorded only: dispatch_actions is off.")
        return report(off)

    dispatcher = _Dispatcher(window, deployment, settings)
    outcomes = [
        await dispatcher.send(action, "automatic", None)
        for action in answer.actions
        if not action.requires_approval
    ]
    waiting = answer.actions_needing_approval
    if waiting:
        pending = [_unsent(a, "pending", "waiting for approval") for a in waiting]
        await _record(
            report(outcomes + pending),
            f"Waiting up to {settings.approval_timeout_seconds} s for approval.",
        )
        try:
            decisions = await wait_for_approval(
                waiting,
                timeout_seconds=settings.approval_timeout_seconds,
                poll_seconds=settings.approval_poll_seconds,
            )
        except FlowPauseTimeout:
            lapsed = [
                _unsent(a, "timed-out", "nobody answered in time") for a in waiting
            ]
            await _record(
                report(outcomes + lapsed), "Approval timed out: nothing was executed."
            )
            raise
        for action, decision in zip(waiting, decisions, strict=True):
            if decision.verdict == "approved":
                outcomes.append(
                    await dispatcher.send(action, "approved", decision.approver)
                )
            else:
                outcomes.append(_not_approved(action, decision))

    await _record(report(outcomes), "Actions decided and dispatched.")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise DeliveryError(
            f"{len(failed)} action(s) could not be dispatched for slot "
            f"{window.slot()}: "
            + "; ".join(f"{o.action_id} ({o.tool}): {o.detail}" for o in failed)
            + f". See the artifact {key}; a rerun of the slot retries only these."
        )
    return report(outcomes)


class _Dispatcher:
    """Sends actions of one slot, remembering in a Variable what already went out."""

    def __init__(self, window: Window, deployment: str, settings: DispatchSettings):
        self.window = window
        self.deployment = deployment
        self.settings = settings
        seed = f"{deployment}|{window.slot()}"
        self.variable = (
            "completions-agent-dispatched-"
            + hashlib.sha256(seed.encode()).hexdigest()[:16]
        )

    async def send(
        self, action: Action, decision: Decision, approver: str | None
    ) -> ActionOutcome:
        outcome = _unsent(action, decision, "", approver)
        # One incident per slot, whatever number of open_incident actions.
        marker = "open_incident" if action.tool == "open_incident" else action.id
        done: dict[str, Any] = await Variable.aget(self.variable, default={}) or {}
        if marker in done:
            return outcome.model_copy(
                update={
                    "status": "already-dispatched",
                    "detail": f"already dispatched at {done[marker]} for this slot",
                }
            )
        try:
            if action.tool == "open_incident":
                outcome = await self._open_incident(action, outcome)
            else:
                outcome = await self._post(action, outcome, decision, approver)
        except (DeliveryError, ConfigurationError) as exc:
            run_logger(__name__).warning(
                "Action %s (%s) failed: %s", action.id, action.tool, exc
            )
            return outcome.model_copy(
                update={
                    "status": "failed",
                    "detail": str(exc),
                    "http_status": getattr(exc, "status", None),
                }
            )
        except ValidationError as exc:
            detail = f"its input does not fit the {action.tool} schema: {exc}"
            return outcome.model_copy(update={"status": "failed", "detail": detail})
        if outcome.status == "dispatched":
            done[marker] = datetime.now(UTC).isoformat(timespec="seconds")
            await Variable.aset(self.variable, done, overwrite=True)
        return outcome

    async def _open_incident(
        self, action: Action, outcome: ActionOutcome
    ) -> ActionOutcome:
        if not self.settings.incident_block:
            return outcome.model_copy(
                update={
                    "status": "no-endpoint",
                    "detail": "no incident_block is configured; nothing was sent",
                }
            )
        incident = OpenIncidentInput.model_validate(action.input)
        body = "\n".join(
            [
                incident.description,
                "",
                f"Slot: {self.window.slot()} ({self.deployment})",
                f"Proposed by the completions agent: {action.intent} "
                f"(confidence {action.confidence:.2f})",
                f"Flow run: {current_run_url()}",
            ]
        )
        await send_notification(
            self.settings.incident_block,
            subject=f"[{incident.severity}] {incident.title}",
            body=body,
        )
        return outcome.model_copy(
            update={
                "status": "dispatched",
                "detail": f"via {self.settings.incident_block}",
            }
        )

    async def _post(
        self,
        action: Action,
        outcome: ActionOutcome,
        decision: Decision,
        approver: str | None,
    ) -> ActionOutcome:
        endpoints = self.settings.action_endpoints
        url = endpoints.get(action.tool) or endpoints.get("*")
        if not url:
            return outcome.model_copy(
                update={
                    "status": "no-endpoint",
                    "detail": f"no endpoint is configured for {action.tool}; add it "
                    "to action_endpoints to dispatch it",
                }
            )
        key = action_idempotency_key(self.deployment, self.window, action.id)
        body = {
            "action_id": action.id,
            "tool": action.tool,
            "intent": action.intent,
            "input": action.input,
            "confidence": action.confidence,
            "requires_approval": action.requires_approval,
            "decision": decision,
            "approver": approver,
            "slot": self.window.slot(),
            "deployment": self.deployment,
            "flow_run_url": current_run_url(),
        }
        token = os.environ.get(ACTION_TOKEN_ENV, "").strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        delivery = await post_json(
            url,
            body,
            idempotency_key=key,
            what=f"action {action.id} ({action.tool})",
            policy=self.settings.retry,
            headers=headers,
        )
        return outcome.model_copy(
            update={
                "status": "dispatched",
                "detail": f"HTTP {delivery.status}, attempt {delivery.attempts}",
                "idempotency_key": key,
                "http_status": delivery.status,
            }
        )


def _unsent(
    action: Action, decision: Decision, detail: str, approver: str | None = None
) -> ActionOutcome:
    return ActionOutcome(
        action_id=action.id,
        tool=action.tool,
        requires_approval=action.requires_approval,
        decision=decision,
        status="not-dispatched",
        detail=detail,
        approver=approver,
    )


def _not_approved(action: Action, decision: ApprovalDecision) -> ActionOutcome:
    return _unsent(
        action, decision.verdict, "not approved; not executed", decision.approver
    )


async def _record(report: DispatchReport, description: str) -> None:
    rows = [outcome.model_dump(mode="json") for outcome in report.outcomes]
    await acreate_table_artifact(
        rows,
        key=report.artifact_key,
        description=f"Slot {report.slot}. {description}",
    )
