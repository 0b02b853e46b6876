"""The build step: turn what the filter found into an Assist request."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from flows.assist import (
    AssistRequest,
    CallsContext,
    Doctrine,
    Message,
    TenantContext,
    output_schema,
    tool_specs,
)
from flows.records import CallRecord, ContainerCoverage, FilterResult, ScrapeResult
from flows.window import Window, iso_utc

# A fixed namespace, so the same slot gives the same session id on every machine.
_SESSION_NAMESPACE = uuid.UUID("6f1d8f0e-2b7a-5c1e-9a43-0c7d3b1e5a21")

SYSTEM_PROMPT = """\
You analyse the LLM completions calls made by the `{deployment}` service over one \
time window, for the platform engineers who run it.
Work under the doctrine given in the request: stay within its UI limits, go to the \
requested depth, and judge health against its performance targets.
Propose actions only with the declared tools, with inputs that match each tool's \
input schema. Actions with tools listed in approval_required_for must set \
requires_approval to true.
Answer with one JSON object that validates against output_schema, and nothing else."""


def session_id_for(source_key: str, window: Window | None) -> str:
    """A session id that is the same for every run of one deployment and window.

    A rerun of a slot (or a duplicate scheduled run) therefore continues the same
    session instead of opening a new one.
    """
    slot = window.slot() if window else "unbounded"
    return str(uuid.uuid5(_SESSION_NAMESPACE, f"{source_key}|{slot}"))


def source_key(scrape: ScrapeResult, scan: FilterResult) -> str:
    """`namespace/deployment` for the cluster; for files, a digest of what was found.

    Files have no slot of their own: two different files must not share a session
    (nor an Idempotency-Key), while the same file read twice should.
    """
    if scrape.source == "cluster":
        return f"{scrape.namespace}/{scrape.deployment}"
    digest = hashlib.sha256(scan.model_dump_json().encode()).hexdigest()
    return f"files/{digest[:16]}"


def build_assist_request(
    *,
    scrape: ScrapeResult,
    scan: FilterResult,
    window: Window | None,
    tenant: TenantContext,
    doctrine: Doctrine,
) -> AssistRequest:
    """Build the Assist request for one window.

    Args:
        scrape: What was read (source, namespace, deployment).
        scan: Counts, statistics, coverage and the selected calls.
        window: The window analysed; None for files read without bounds.
        tenant: Who the analysis is for.
        doctrine: UI limits, depth and performance targets.

    Returns:
        The request, with a session id stable for the deployment and window.
    """
    incomplete = [c for c in scan.coverage if not c.complete]
    coverage_note = _coverage_note(incomplete, window)
    context = CallsContext(
        window=window,
        source=scrape.source,
        namespace=scrape.namespace,
        deployment=scrape.deployment,
        rule=scan.rule,
        include=scan.include,
        lines_read=scan.lines_read,
        lines_in_window=scan.lines_in_window,
        matches=scan.matches,
        statistics=scan.statistics,
        coverage=scan.coverage,
        coverage_complete=not incomplete,
        coverage_note=coverage_note,
        first_timestamp=_iso(scan.first_timestamp),
        last_timestamp=_iso(scan.last_timestamp),
        selected=scan.selected,
    )
    system = SYSTEM_PROMPT.format(deployment=scrape.deployment or "orchestrator")
    return AssistRequest(
        session_id=session_id_for(source_key(scrape, scan), window),
        tenant=tenant,
        doctrine=doctrine,
        tools=tool_specs(),
        output_schema=output_schema(),
        messages=[
            Message(role="system", content=system),
            Message(role="user", content=user_message(context)),
        ],
        context=context,
    )


def user_message(context: CallsContext) -> str:
    """The user message: the window, the counts and the selected lines, in words."""
    stats = context.statistics
    parts = [
        f"Window: {_describe_window(context)}.",
        f"Source: {_describe_source(context)}.",
        f"Lines read: {context.lines_read}; in the window: {context.lines_in_window}.",
        f"Completions calls matched ({context.rule} rule, "
        f"include {json.dumps(context.include)}): {context.matches}.",
        f"By status: {_counts(stats.by_status)}.",
        f"By status class: {_counts(stats.by_status_class)}.",
        f"Errors: {stats.errors} ({stats.error_rate:.1%}).",
        f"By host: {_counts(stats.by_host)}.",
        f"By path: {_counts(stats.by_path)}.",
        f"By pod: {_counts(stats.by_pod)}.",
        f"By hour (UTC): {_counts(stats.by_hour)}.",
    ]
    if context.coverage_note:
        parts.append(f"Coverage: {context.coverage_note}")
    if context.selected:
        parts.append(f"The {len(context.selected)} most severe calls:")
        parts.extend(
            f"{number}. {_describe_call(call)}"
            for number, call in enumerate(context.selected, start=1)
        )
    else:
        parts.append("No completions call was found in the window.")
    return "\n".join(parts)


def _describe_window(context: CallsContext) -> str:
    if context.window is None:
        span = f"{context.first_timestamp or '?'} to {context.last_timestamp or '?'}"
        return f"unbounded (files); timestamps seen from {span}"
    window = context.window
    return f"{_iso(window.start)} to {_iso(window.end)} ({window.hours:g} h)"


def _describe_source(context: CallsContext) -> str:
    if context.source == "cluster":
        return f"Deployment {context.namespace}/{context.deployment}, every pod"
    return "log files"


def _describe_call(call: CallRecord) -> str:
    where = "/".join(part for part in (call.pod, call.container) if part)
    repeat = f" (x{call.repeat})" if call.repeat > 1 else ""
    prefix = f"[{where}] " if where else ""
    return f"{prefix}{json.dumps(call.line, ensure_ascii=False)}{repeat}"


def _coverage_note(
    incomplete: list[ContainerCoverage], window: Window | None
) -> str | None:
    if not incomplete:
        return None
    starts = ", ".join(
        f"{c.pod}/{c.container} from {_iso(c.earliest)}" for c in incomplete
    )
    begin = _iso(window.start) if window else "the window start"
    return f"incomplete: logs begin after {begin} for {starts}."


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{key}: {value}" for key, value in counts.items())


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None
