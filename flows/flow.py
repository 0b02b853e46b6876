"""The `orchestrator-completions-agent` flow: scrape, filter, build, post, record."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import State
from prefect.tasks import Task

from flows import agent_api, request_store
from flows.alerts import notify_run_ended_badly
from flows.analyser import analyse
from flows.assist import AssistAnswer, AssistRequest, Doctrine, TenantContext
from flows.build import build_assist_request, session_id_for
from flows.dispatch import DispatchSettings, act_on_answer
from flows.errors import AgentApiError, ConfigurationError, NoLogLinesError
from flows.matching import DEFAULT_INCLUDE, scan_logs
from flows.pulse import publish_tile_task
from flows.records import FilterResult, ScrapeResult
from flows.redaction import Redactor, redact_request
from flows.report import record
from flows.scrape import LogSource, scrape
from flows.window import Window, window_ending_at

BUILT_IN_ANALYSER = "the built-in analyser"


def _retry_unless_configuration(task: Task, task_run: TaskRun, state: State) -> bool:
    # A bad pattern or window fails the same way every time.
    return not isinstance(state.data, ConfigurationError)


@task(
    name="filter",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_configuration,
)
def filter_calls(
    scrape_result: ScrapeResult,
    *,
    include: list[str],
    rule: Literal["literal", "extended"],
    top_n: int,
    start: datetime | None,
    end: datetime | None,
) -> FilterResult:
    """Keep the completions calls in the window: counts, statistics and the top N."""
    result = scan_logs(
        scrape_result.files,
        include=include,
        rule=rule,
        top_n=top_n,
        start=start,
        end=end,
        restarts=scrape_result.restarts,
    )
    logger = get_run_logger()
    logger.info(
        "Scanned %d lines (%d in the window): %d completions calls, %d selected",
        result.lines_read,
        result.lines_in_window,
        result.matches,
        len(result.selected),
    )
    for warning in result.warnings:
        logger.warning("%s", warning)
    if result.lines_read == 0:
        raise NoLogLinesError(
            "no log line was read at all, so there is nothing to analyse; check that "
            "the Deployment's pods are running and logging, or that the files are "
            "not empty"
        )
    return result


@task(name="build", retries=1, retry_delay_seconds=5)
def build(
    scrape_result: ScrapeResult,
    scan: FilterResult,
    *,
    window: Window | None,
    tenant: TenantContext,
    doctrine: Doctrine,
) -> tuple[AssistRequest, dict[str, int]]:
    """Build the Assist request and scrub secrets and personal data from its lines."""
    request = build_assist_request(
        scrape=scrape_result, scan=scan, window=window, tenant=tenant, doctrine=doctrine
    )
    redactor = Redactor.for_run()
    request = redact_request(request, redactor)
    get_run_logger().info(
        "Built Assist request %s with %d selected call(s); redacted %s",
        request.session_id,
        len(request.context.selected),
        dict(redactor.counts) or "nothing",
    )
    return request, dict(redactor.counts)


@flow(
    name="orchestrator-completions-agent",
    log_prints=False,
    on_failure=[notify_run_ended_badly],
    on_crashed=[notify_run_ended_badly],
)
async def orchestrator_completions_agent(
    namespace: str = "dealershipai",
    deployment: str = "orchestrator",
    container: str | None = None,
    window_hours: float = 24,
    window_end: datetime | None = None,
    include: list[str] = list(DEFAULT_INCLUDE),  # noqa: B006 - shown in the UI
    rule: Literal["literal", "extended"] = "literal",
    top_n: int = 5,
    tenant: TenantContext = TenantContext(),  # noqa: B008 - shown in the UI
    doctrine: Doctrine = Doctrine(),  # noqa: B008 - shown in the UI
    agent_api_base: str | None = None,
    agent_api_token_block: str | None = None,
    kubernetes_credentials_block: str | None = None,
    log_files: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reuse_saved_request: bool = True,
    dry_run: bool = False,
    notification_block: str | None = None,
    pulse_webhook_url: str | None = None,
    dispatch_actions: bool = False,
    approval_timeout_seconds: int = 3600,
    incident_block: str | None = None,
    action_endpoints: dict[str, str] | None = None,
) -> AssistAnswer | AssistRequest:
    """Analyse one window of the orchestrator's completions calls with the Agent API.

    The window ends at the run's scheduled start time (or `window_end`), so a late
    run or a rerun of a slot analyses the same hours. With `log_files`, the files
    are read instead of the cluster, whole unless `since`/`until` are given.

    Args:
        namespace: Kubernetes namespace of the Deployment.
        deployment: Name of the Deployment whose pods' logs are read.
        container: Only this container; default every app container.
        window_hours: Length of the window, ending at the scheduled start time.
        window_end: End of the window, to analyse another slot than the scheduled one.
        include: Patterns a line must all contain (literal rule).
        rule: `literal` (every include pattern) or `extended` (also nginx, envoy,
            Node SDK and JSON access-log formats).
        top_n: How many calls to send in full, the most severe first.
        tenant: Who the analysis is for.
        doctrine: UI limits, depth and performance targets the agent works under.
        agent_api_base: Agent API base URL; default the AGENTAPI_BASE variable.
            Without either, a local run uses the built-in analyser; a deployment
            run fails.
        agent_api_token_block: Name of a Prefect Secret block holding the token;
            default the AGENTAPI_TOKEN variable.
        kubernetes_credentials_block: Name of a KubernetesCredentials block;
            default in-cluster credentials, else the local kubeconfig.
        log_files: Read these files (kubectl logs output) instead of the cluster.
        since: With log_files: keep only lines at or after this time.
        until: With log_files: keep only lines before this time.
        reuse_saved_request: Post the request saved for this slot by an earlier
            run, instead of reading the logs again.
        dry_run: Build the request and return it without posting.
        notification_block: Notification block (`type-slug/name`) that the
            failure hooks send to; default `COMPLETIONS_AGENT_NOTIFICATION_BLOCK`.
        pulse_webhook_url: Where the summary tile is posted; default
            `PULSE_WEBHOOK_URL`; none: no tile.
        dispatch_actions: Act on the answer's actions; off: only record them.
        approval_timeout_seconds: How long actions wait for a person's approval;
            after it, nothing that needed approval runs.
        incident_block: Notification block that `open_incident` actions go to.
        action_endpoints: URL per tool for the other actions; `*` for any tool.

    Returns:
        The validated answer, or the request on a dry run.
    """
    logger = get_run_logger()
    config = (
        None if dry_run else _agent_api_config(agent_api_base, agent_api_token_block)
    )

    window = _window(window_hours, window_end, log_files, since, until)
    request: AssistRequest | None = None
    redactions: dict[str, int] = {}
    deployment_key = f"{namespace}/{deployment}"
    slot_key = session_id_for(deployment_key, window)
    if not log_files and reuse_saved_request and not dry_run:
        request = request_store.load_request(slot_key)
        if request is not None:
            logger.info("Reusing the request saved for slot %s", window.slot())

    if request is None:
        source = LogSource(
            log_files=log_files,
            namespace=namespace,
            deployment=deployment,
            container=container,
            credentials_block=kubernetes_credentials_block,
        )
        request, redactions = await _read_and_build(
            source,
            window=window,
            bounds=(since, until) if log_files else (window.start, window.end),
            include=include,
            rule=rule,
            top_n=top_n,
            tenant=tenant,
            doctrine=doctrine,
        )
        if dry_run:
            logger.info("Dry run: the request is built and not posted")
            return request
        # Saved before posting, so a failed post can be sent again without the logs.
        request_store.save_request(request, request.session_id)

    answer, analyser = await _post(request, config)
    record(request, answer, redactions=redactions, analyser=analyser)

    # Not in a task: approving actions may suspend the run, which a task cannot.
    if not log_files:
        await publish_tile_task(
            answer,
            window=window,
            deployment=deployment_key,
            webhook_url=pulse_webhook_url,
        )
    await act_on_answer(
        answer,
        window=window,
        deployment=deployment_key,
        settings=DispatchSettings(
            dispatch_actions=dispatch_actions,
            approval_timeout_seconds=approval_timeout_seconds,
            incident_block=incident_block,
            action_endpoints=action_endpoints or {},
        ),
    )
    return answer


async def _post(
    request: AssistRequest, config: agent_api.AgentApiConfig | None
) -> tuple[AssistAnswer, str]:
    """The answer, and who gave it: the Agent API, or the built-in analyser."""
    if config is None:
        get_run_logger().warning(
            "No Agent API base URL is configured: analysing with %s, not a real "
            "Agent API",
            BUILT_IN_ANALYSER,
        )
        return analyse(request), BUILT_IN_ANALYSER
    try:
        answer = await agent_api.post_assist_task(request, config)
    except AgentApiError as error:
        # The CLI turns this into the command that sends the saved request again.
        error.slot = request.session_id
        raise
    return answer, f"Agent API at {config.base_url}"


async def _read_and_build(
    source: LogSource,
    *,
    window: Window,
    bounds: tuple[datetime | None, datetime | None],
    include: list[str],
    rule: Literal["literal", "extended"],
    top_n: int,
    tenant: TenantContext,
    doctrine: Doctrine,
) -> tuple[AssistRequest, dict[str, int]]:
    spool_dir = Path(tempfile.mkdtemp(prefix="completions-agent-"))
    try:
        scrape_result = await scrape(source, window=window, spool_dir=spool_dir)
        scan = filter_calls(
            scrape_result,
            include=include,
            rule=rule,
            top_n=top_n,
            start=bounds[0],
            end=bounds[1],
        )
    finally:
        # The spool holds raw pod logs: never leave them behind on the node.
        shutil.rmtree(spool_dir, ignore_errors=True)
    request_window = _file_window(bounds) if source.log_files else window
    return build(
        scrape_result, scan, window=request_window, tenant=tenant, doctrine=doctrine
    )


def _agent_api_config(
    base: str | None, token_block: str | None
) -> agent_api.AgentApiConfig | None:
    """Check the Agent API settings before any log is read.

    A deployment run never falls back to the built-in analyser: it would post
    nothing anywhere, and the weekly report would look real.
    """
    config = agent_api.load_agent_api_config(base, token_block)
    if config is None and runtime_deployment.id is not None:
        raise ConfigurationError(
            "no Agent API is configured for this deployment: set the AGENTAPI_BASE "
            "environment variable in the work pool's job variables, or the "
            "agent_api_base parameter"
        )
    return config


def _window(
    hours: float,
    window_end: datetime | None,
    log_files: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> Window:
    if not log_files and (since or until):
        raise ConfigurationError(
            "since/until apply to log files only; for the cluster use window_end "
            "and window_hours"
        )
    if since and until and since >= until:
        raise ConfigurationError(f"since ({since}) must be before until ({until})")
    actual_start = datetime.now(UTC)
    scheduled = runtime_flow_run.scheduled_start_time
    if scheduled is not None:
        # prefect.runtime may hand a Pendulum datetime; the window uses stdlib ones.
        scheduled = datetime.fromisoformat(scheduled.isoformat())
    end = window_end or scheduled or actual_start
    return window_ending_at(end, hours, actual_start=actual_start)


def _file_window(bounds: tuple[datetime | None, datetime | None]) -> Window | None:
    since, until = bounds
    if since and until:
        return Window(start=since, end=until)
    return None
