"""The record step: the answer as Prefect artifacts under stable keys.

Keys are stable, lowercase and dash-separated (`<namespace>-<deployment>-completions-
report`), so every run of a deployment adds to one history in the Prefect UI.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel

from flows.assist import AssistAnswer, AssistRequest, CallsContext
from flows.window import iso_utc


class RecordedArtifacts(BaseModel):
    """The keys the record step wrote, for the CLI to read back and print."""

    report: str
    actions: str
    answer: str


def artifact_keys(
    source: str, namespace: str | None, deployment: str | None
) -> RecordedArtifacts:
    """`dealershipai-orchestrator-completions-report` and its siblings.

    Files get `files-completions-...`: they have no deployment to name.
    """
    if source == "cluster":
        raw = f"{namespace}-{deployment}-completions"
    else:
        raw = "files-completions"
    # Artifact keys allow only lowercase letters, digits and dashes.
    prefix = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    return RecordedArtifacts(
        report=f"{prefix}-report",
        actions=f"{prefix}-actions",
        answer=f"{prefix}-answer",
    )


def render_report(
    request: AssistRequest,
    answer: AssistAnswer,
    *,
    redactions: dict[str, int] | None = None,
    analyser: str = "Agent API",
) -> str:
    """The markdown report operators read: window, counts, answer and actions."""
    context = request.context
    sections = [
        _header(context, analyser),
        _counts_section(context, redactions),
        _coverage_section(context),
        _answer_section(answer),
        _actions_section(answer),
        _calls_section(context),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def actions_rows(answer: AssistAnswer) -> list[dict[str, Any]]:
    """One row per action, for the table artifact."""
    return [
        {
            "id": action.id,
            "tool": action.tool,
            "intent": action.intent,
            "confidence": action.confidence,
            "requires_approval": action.requires_approval,
            "preview": action.preview,
            "input": json.dumps(action.input, ensure_ascii=False, sort_keys=True),
        }
        for action in answer.actions
    ]


def _header(context: CallsContext, analyser: str) -> str:
    if context.source == "cluster":
        title = f"Completions calls of {context.namespace}/{context.deployment}"
    else:
        title = "Completions calls in log files"
    lines = [f"# {title}", ""]
    window = context.window
    if window is None:
        lines.append(
            "- Window: none (files read whole); timestamps seen from "
            f"{context.first_timestamp or 'n/a'} to {context.last_timestamp or 'n/a'}"
        )
    else:
        lines.append(f"- Window: {iso_utc(window.start)} to {iso_utc(window.end)}")
        if window.scheduled:
            lines.append(f"- Scheduled start (the slot): {iso_utc(window.scheduled)}")
        if window.actual_start:
            lines.append(f"- Run started: {iso_utc(window.actual_start)}")
    lines.append(f"- Analysed by: {analyser}")
    return "\n".join(lines)


def _counts_section(context: CallsContext, redactions: dict[str, int] | None) -> str:
    stats = context.statistics
    lines = [
        "## Counts",
        "",
        f"- Lines read: {context.lines_read} ({context.lines_in_window} in the window)",
        f"- Completions calls ({context.rule} rule): {context.matches}",
        f"- Errors: {stats.errors} ({stats.error_rate:.1%})",
    ]
    lines += [
        f"- {label}: {_inline_counts(counts)}"
        for label, counts in (
            ("By status", stats.by_status),
            ("By status class", stats.by_status_class),
            ("By host", stats.by_host),
            ("By path", stats.by_path),
            ("By pod", stats.by_pod),
            ("By hour (UTC)", stats.by_hour),
        )
    ]
    if redactions:
        lines.append(f"- Redacted before sending: {_inline_counts(redactions)}")
    return "\n".join(lines)


def _coverage_section(context: CallsContext) -> str:
    if context.coverage_complete:
        verdict = "Complete: every log reaches back to the window start."
    else:
        verdict = f"**Coverage {context.coverage_note}**"
    if not context.coverage:
        return f"## Coverage\n\n{verdict}"
    lines = [
        "## Coverage",
        "",
        verdict,
        "",
        "| pod | container | instance | restarts | lines read | earliest | latest |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(c.pod or '-')} | {_cell(c.container or '-')} "
        f"| {'previous' if c.previous else 'current'} | {c.restarts} "
        f"| {c.lines_read} | {_time(c.earliest)} | {_time(c.latest)} |"
        for c in context.coverage
    ]
    return "\n".join(lines)


def _answer_section(answer: AssistAnswer) -> str:
    lines = [
        "## Answer",
        "",
        answer.summary,
        "",
        f"Error count: **{answer.error_count}**",
    ]
    if answer.recommendations:
        lines += ["", "### Recommendations", ""]
        lines += [f"- {_one_line(item)}" for item in answer.recommendations]
    return "\n".join(lines)


def _actions_section(answer: AssistAnswer) -> str:
    if not answer.actions:
        return "## Actions\n\nNone proposed."
    lines = [
        "## Actions",
        "",
        "| id | tool | intent | confidence | needs approval | preview |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(a.id)} | {a.tool} | {_cell(a.intent)} | {a.confidence:.2f} "
        f"| {'**yes**' if a.requires_approval else 'no'} | {_cell(a.preview)} |"
        for a in answer.actions
    ]
    return "\n".join(lines)


def _calls_section(context: CallsContext) -> str:
    if not context.selected:
        return ""
    rows = []
    for call in context.selected:
        where = "/".join(part for part in (call.pod, call.container) if part)
        repeat = f" (x{call.repeat})" if call.repeat > 1 else ""
        rows.append(f"{where + ': ' if where else ''}{call.line}{repeat}")
    return f"## Selected calls\n\n{_fence(chr(10).join(rows))}"


def _fence(text: str, language: str = "text") -> str:
    # A fence longer than any run of backticks in the text cannot be closed by it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _time(moment: datetime | None) -> str:
    return iso_utc(moment) if moment else "-"


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _inline_counts(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{key} {value}" for key, value in counts.items())


@task(name="record")
def record(
    request: AssistRequest,
    answer: AssistAnswer,
    *,
    redactions: dict[str, int] | None = None,
    analyser: str = "Agent API",
) -> RecordedArtifacts:
    """Keep the answer in Prefect: a report, a table of actions and the full JSON."""
    context = request.context
    keys = artifact_keys(context.source, context.namespace, context.deployment)
    report = render_report(request, answer, redactions=redactions, analyser=analyser)
    create_markdown_artifact(
        key=keys.report,
        markdown=report,
        description=f"Completions report, session {request.session_id}",
    )
    create_table_artifact(
        key=keys.actions,
        table=actions_rows(answer),
        description="Actions proposed by the agent, with approval flags",
    )
    answer_json = answer.model_dump_json(indent=2)
    create_markdown_artifact(
        key=keys.answer,
        markdown=_fence(answer_json, "json"),
        description="The full validated answer",
    )
    get_run_logger().info(
        "Recorded artifacts %s, %s and %s", keys.report, keys.actions, keys.answer
    )
    return keys
