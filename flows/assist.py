"""The Assist contract: the request we send to `/v1/assist` and the answer we accept.

The answer's JSON Schema, generated from `AssistAnswer`, is sent in every request as
`output_schema`, and the reference server publishes both models in its OpenAPI
document, so the contract is written once, here.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from flows.records import CallRecord, CallStatistics, ContainerCoverage
from flows.window import Window

ToolName = Literal[
    "open_pulse_detail", "queue_refresh", "site_inject", "auto_fix", "open_incident"
]

#: Tools whose actions change something; doctrine says a person approves them first.
MUTATING_TOOLS: frozenset[str] = frozenset({"site_inject", "auto_fix"})


# --- tool inputs ---------------------------------------------------------------


class OpenPulseDetailInput(BaseModel):
    """Open the Pulse dashboard's detail view for a metric or provider."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="What to show, e.g. 'completions.error_rate'.")
    focus: str | None = Field(
        default=None, description="A host, path or pod to filter the view by."
    )


class QueueRefreshInput(BaseModel):
    """Ask the orchestrator to re-run queued work that failed."""

    model_config = ConfigDict(extra="forbid")

    queue: str = Field(description="The work queue to refresh.")
    reason: str


class SiteInjectInput(BaseModel):
    """Inject a notice or snippet into a tenant's site (changes a live site)."""

    model_config = ConfigDict(extra="forbid")

    site_id: str
    snippet: str = Field(max_length=2000)
    placement: Literal["banner", "head", "body"] = "banner"


class AutoFixInput(BaseModel):
    """Apply a known remediation (changes the system)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="What to fix, e.g. a deployment or a config key.")
    fix: str = Field(description="The remediation's name.")
    parameters: dict[str, str] = Field(default_factory=dict)


class OpenIncidentInput(BaseModel):
    """Open an incident for people to handle."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=200)
    severity: Literal["sev1", "sev2", "sev3", "sev4"]
    description: str


TOOL_INPUTS: dict[str, type[BaseModel]] = {
    "open_pulse_detail": OpenPulseDetailInput,
    "queue_refresh": QueueRefreshInput,
    "site_inject": SiteInjectInput,
    "auto_fix": AutoFixInput,
    "open_incident": OpenIncidentInput,
}


class ToolSpec(BaseModel):
    name: ToolName
    description: str
    mutating: bool
    input_schema: dict[str, Any]


def tool_specs() -> list[ToolSpec]:
    """The five declared tools, each with the JSON Schema of its input."""
    return [
        ToolSpec(
            name=name,
            description=(model.__doc__ or "").strip(),
            mutating=name in MUTATING_TOOLS,
            input_schema=model.model_json_schema(),
        )
        for name, model in TOOL_INPUTS.items()
    ]


# --- doctrine and tenant -------------------------------------------------------


class UiLimits(BaseModel):
    """What the review screen can show; the answer should fit in it."""

    max_summary_chars: int = Field(default=600, ge=1)
    max_recommendations: int = Field(default=5, ge=0)
    max_actions: int = Field(default=5, ge=0)


class PerformanceTargets(BaseModel):
    """What "healthy" means for the orchestrator's completions calls."""

    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    p95_latency_ms: int = Field(default=4000, ge=1)
    max_rate_limited_share: float = Field(default=0.05, ge=0, le=1)


class Doctrine(BaseModel):
    """The rules the agent works under. Configurable as a flow parameter."""

    ui_limits: UiLimits = Field(default_factory=UiLimits)
    depth: Literal["brief", "standard", "deep"] = "standard"
    performance_targets: PerformanceTargets = Field(default_factory=PerformanceTargets)
    approval_required_for: list[ToolName] = Field(
        default_factory=lambda: sorted(MUTATING_TOOLS)  # type: ignore[arg-type]
    )


class TenantContext(BaseModel):
    """Who the analysis is for."""

    tenant_id: str = "dealershipai"
    environment: str = "production"
    labels: dict[str, str] = Field(default_factory=dict)


# --- request -------------------------------------------------------------------


class Message(BaseModel):
    role: Literal["system", "user"]
    content: str


class CallsContext(BaseModel):
    """The structured facts behind the user message."""

    window: Window | None = Field(
        default=None, description="None for files read without --since/--until."
    )
    source: str
    namespace: str | None = None
    deployment: str | None = None
    rule: str
    include: list[str]
    lines_read: int
    lines_in_window: int
    matches: int
    statistics: CallStatistics
    coverage: list[ContainerCoverage]
    coverage_complete: bool
    coverage_note: str | None = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    selected: list[CallRecord]


class AssistRequest(BaseModel):
    """The body of `POST /v1/assist`."""

    session_id: str
    tenant: TenantContext
    doctrine: Doctrine
    tools: list[ToolSpec]
    output_schema: dict[str, Any]
    messages: list[Message]
    context: CallsContext


# --- answer --------------------------------------------------------------------


class Action(BaseModel):
    """One thing the agent proposes to do with one of the declared tools."""

    # Extra fields are kept for the record, never acted on.
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    intent: str
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)
    requires_approval: bool
    tool: ToolName
    input: dict[str, Any] = Field(default_factory=dict)
    preview: str = ""

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence_is_a_plain_number(cls, value: Any) -> Any:
        # "0.8" is accepted and converted; "80%" and booleans are not numbers here.
        if isinstance(value, bool):
            raise ValueError("confidence must be a number in [0, 1], not a boolean")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(
                    f"confidence must be a number in [0, 1], got {value!r}"
                ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("confidence must be a finite number in [0, 1]")
        return value

    @model_validator(mode="after")
    def _mutating_tools_need_approval(self) -> Action:
        # Doctrine, whatever the answer says: a change is approved by a person first.
        if self.tool in MUTATING_TOOLS:
            self.requires_approval = True
        return self


class AssistAnswer(BaseModel):
    """The structured answer of `/v1/assist`."""

    model_config = ConfigDict(extra="allow")

    summary: str
    error_count: int = Field(ge=0)
    recommendations: list[str] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)

    @property
    def actions_needing_approval(self) -> list[Action]:
        return [action for action in self.actions if action.requires_approval]


def output_schema() -> dict[str, Any]:
    """The JSON Schema of the answer, as sent in every request."""
    return AssistAnswer.model_json_schema()
