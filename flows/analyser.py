"""The built-in analyser: a deterministic answer to `/v1/assist` from the request alone.

It reads only the request's counts (`context.statistics` covers every matched call,
not only the selected lines), measures them against the doctrine's performance
targets, and proposes actions only with the tools the request declares. The same
request always gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.assist import (
    MUTATING_TOOLS,
    TOOL_INPUTS,
    Action,
    AssistAnswer,
    AssistRequest,
)
from flows.records import CallStatistics

# How many error statuses the summary names.
_WORST_STATUSES = 3


@dataclass(frozen=True)
class _Health:
    """The numbers every recommendation and action is derived from."""

    calls: int
    errors: int
    error_rate: float
    rate_limited: int
    rate_limited_share: float
    server_errors: int
    client_errors: int
    error_statuses: list[tuple[str, int]]
    top_host: str | None
    top_path: str | None


def analyse(request: AssistRequest) -> AssistAnswer:
    """Answer an Assist request deterministically from its payload.

    Args:
        request: The request as the flow builds it (or as posted to the server).

    Returns:
        An answer whose `error_count` counts the 4xx and 5xx calls among all matched
        calls, whose recommendations follow the doctrine's performance targets, and
        whose actions use only the declared tools, fit the doctrine's UI limits and
        carry `requires_approval` for mutating tools and those the doctrine names.
    """
    health = _health(request.context.statistics, request.context.matches)
    limits = request.doctrine.ui_limits
    recommendations = _recommendations(request, health)[: limits.max_recommendations]
    actions = _actions(request, health)[: limits.max_actions]
    return AssistAnswer(
        summary=_clip(_summary(request, health), limits.max_summary_chars),
        error_count=health.errors,
        recommendations=recommendations,
        actions=[
            action.model_copy(update={"id": f"act-{number}"})
            for number, action in enumerate(actions, start=1)
        ],
    )


def _health(statistics: CallStatistics, matches: int) -> _Health:
    error_statuses: list[tuple[str, int]] = []
    for status, calls in statistics.by_status.items():
        # Keys that are not three-digit codes ("unknown") are no error to count.
        if status[:1] in {"4", "5"} and status.isdigit() and calls > 0:
            error_statuses.append((status, calls))
    # Most frequent first; equal counts by status code, so the order never varies.
    error_statuses.sort(key=lambda item: (-item[1], item[0]))

    def count(prefix: str) -> int:
        return sum(n for status, n in error_statuses if status.startswith(prefix))

    errors = count("")
    total = statistics.total or matches
    rate_limited = count("429")
    return _Health(
        calls=total,
        errors=errors,
        error_rate=errors / total if total else 0.0,
        rate_limited=rate_limited,
        rate_limited_share=rate_limited / total if total else 0.0,
        server_errors=count("5"),
        client_errors=count("4") - rate_limited,
        error_statuses=error_statuses,
        top_host=_most_frequent(statistics.by_host),
        top_path=_most_frequent(statistics.by_path),
    )


def _most_frequent(counts: dict[str, int]) -> str | None:
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


# --- summary -------------------------------------------------------------------


def _summary(request: AssistRequest, health: _Health) -> str:
    context = request.context
    window = _span(request)
    if health.calls == 0:
        text = (
            f"No completions calls matched the rule ({context.rule}) in the "
            f"{window} ({context.lines_read} lines read)."
        )
    else:
        text = (
            f"{_plural(health.calls, 'completions call')} in the {window}: "
            f"{_plural(health.errors, 'error')} ({_percent(health.error_rate)})."
        )
        if health.error_statuses:
            worst = ", ".join(
                f"{status} x{count}"
                for status, count in health.error_statuses[:_WORST_STATUSES]
            )
            text += f" Worst statuses: {worst}."
    if not context.coverage_complete:
        text += " Coverage incomplete"
        text += f": {context.coverage_note}" if context.coverage_note else "."
    return text


def _span(request: AssistRequest) -> str:
    """The time the analysis covers: the window, or the span of the lines read."""
    context = request.context
    if context.window is not None:
        return f"{context.window.hours:g} h window {context.window.slot()}"
    if context.first_timestamp and context.last_timestamp:
        return f"log span {context.first_timestamp}/{context.last_timestamp}"
    return "logs read (no timestamps)"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit == 1:
        return "…"
    cut = text[: limit - 1].rstrip()
    # Prefer ending on a whole word when there is one to end on.
    if " " in cut:
        cut = cut[: cut.rindex(" ")].rstrip()
    return cut + "…"


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


# --- recommendations -----------------------------------------------------------


def _recommendations(request: AssistRequest, health: _Health) -> list[str]:
    """The advice, most urgent first, before the UI limit cuts the list."""
    targets = request.doctrine.performance_targets
    context = request.context
    advice: list[str] = []
    if health.calls == 0:
        advice.append(
            "If completions calls were expected, check that the HTTP client logs "
            "each request at INFO and that the include patterns match its lines."
        )
    if health.rate_limited_share > targets.max_rate_limited_share:
        advice.append(
            f"{_percent(health.rate_limited_share)} of calls were rate limited (429), "
            f"above the {_percent(targets.max_rate_limited_share)} target: add "
            "exponential backoff with jitter that honours Retry-After, and raise "
            "the provider quota or spread the load."
        )
    if health.server_errors:
        advice.append(
            f"{health.server_errors} calls failed with 5xx: check the provider's "
            "health and status page, and configure a fallback model or provider."
        )
    if health.error_rate > targets.max_error_rate:
        advice.append(
            f"The error rate {_percent(health.error_rate)} is above the "
            f"{_percent(targets.max_error_rate)} target: treat it as a service "
            "degradation and follow it up until it is back under target."
        )
    if health.client_errors:
        advice.append(
            f"{health.client_errors} calls failed with other 4xx statuses: check "
            "API keys, model names and request payloads; retrying will not fix them."
        )
    if not context.coverage_complete:
        advice.append(
            "The logs do not cover the whole window: keep pod logs longer or ship "
            "them to a central store so that the next run sees every call."
        )
    if health.calls and not advice:
        advice.append(
            f"Errors are within target ({_percent(health.error_rate)} against "
            f"{_percent(targets.max_error_rate)}): no change needed."
        )
    return advice


# --- actions -------------------------------------------------------------------


def _actions(request: AssistRequest, health: _Health) -> list[Action]:
    """Candidate actions, most useful first, with declared tools only."""
    if health.calls == 0 or health.errors == 0:
        return []
    declared = {spec.name: spec for spec in request.tools}
    approval = set(request.doctrine.approval_required_for) | MUTATING_TOOLS
    targets = request.doctrine.performance_targets
    over_target = health.error_rate > targets.max_error_rate
    # Five times the target is more than a blip: the tenant's users notice it.
    severe = health.error_rate > 5 * targets.max_error_rate
    deployment = request.context.deployment or "orchestrator"
    candidates: list[tuple[str, str, float, dict[str, object], str]] = []

    candidates.append(
        (
            "open_pulse_detail",
            "Show where the failing completions calls come from.",
            0.9,
            {"metric": "completions.error_rate", "focus": health.top_host},
            f"Open the Pulse error-rate view for {health.top_host or 'all hosts'}.",
        )
    )
    if over_target:
        severity = "sev2" if severe else "sev3"
        candidates.append(
            (
                "open_incident",
                "Have people follow up a completions error rate above target.",
                0.8 if severe else 0.6,
                {
                    "title": f"Completions error rate {_percent(health.error_rate)} "
                    f"in the {_span(request)}",
                    "severity": severity,
                    "description": _incident_description(request, health),
                },
                f"Open a {severity} incident for the completions error rate.",
            )
        )
    if health.rate_limited_share > targets.max_rate_limited_share:
        candidates.append(
            (
                "auto_fix",
                "Back off on 429 so that rate-limited calls succeed on retry.",
                0.7,
                {
                    "target": f"deployment/{deployment}",
                    "fix": "enable-retry-backoff",
                    "parameters": {"respect_retry_after": "true", "max_retries": "5"},
                },
                f"Enable backoff that honours Retry-After on deployment/{deployment}.",
            )
        )
    if health.server_errors or health.rate_limited:
        failed = health.server_errors + health.rate_limited
        candidates.append(
            (
                "queue_refresh",
                "Re-run the work whose completions calls failed.",
                0.6,
                {
                    "queue": "completions",
                    "reason": f"{failed} completions calls failed with 429 or 5xx "
                    f"in the {_span(request)}.",
                },
                f"Re-run the queued work behind {failed} failed calls.",
            )
        )
    if severe:
        tenant = request.tenant.tenant_id
        candidates.append(
            (
                "site_inject",
                "Tell the tenant's users that assistant answers may be slow.",
                0.4,
                {
                    "site_id": tenant,
                    "snippet": "Our assistant is answering more slowly than usual; "
                    "we are working on it.",
                    "placement": "banner",
                },
                f"Show a service notice banner on site {tenant}.",
            )
        )

    actions = []
    for tool, intent, confidence, raw_input, preview in candidates:
        if tool not in declared:
            continue
        tool_input = TOOL_INPUTS[tool].model_validate(
            {key: value for key, value in raw_input.items() if value is not None}
        )
        actions.append(
            Action(
                id="pending",
                intent=intent,
                confidence=confidence,
                requires_approval=tool in approval or declared[tool].mutating,
                tool=tool,
                input=tool_input.model_dump(mode="json", exclude_none=True),
                preview=preview,
            )
        )
    return actions


def _incident_description(request: AssistRequest, health: _Health) -> str:
    statuses = ", ".join(
        f"{status} x{count}" for status, count in health.error_statuses
    )
    return (
        f"{health.errors} of {health.calls} completions calls failed in "
        f"the {_span(request)} ({statuses}). Target error rate: "
        f"{_percent(request.doctrine.performance_targets.max_error_rate)}."
    )
