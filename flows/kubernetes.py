"""Download the window's logs of every pod behind a Deployment into spool files."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from flows.errors import (
    CompletionsAgentError,
    ConfigurationError,
    KubernetesError,
    NoPodsFound,
    PermissionDenied,
)
from flows.kube_client import (
    api_error,
    is_retryable,
    kubernetes_api_client,
    label_selector,
    transport_reason,
    unreachable,
)
from flows.kube_logs import LogOutcome, LogRead, LogStreamer
from flows.records import LogFile, ScrapeResult
from flows.window import Window

__all__ = ["is_retryable", "kubernetes_api_client", "scrape_deployment"]

logger = logging.getLogger(__name__)

_API_TIMEOUT = (30, 60)


@dataclass
class _Plan:
    reads: list[LogRead] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


async def scrape_deployment(
    *,
    namespace: str,
    deployment: str,
    container: str | None,
    window: Window,
    spool_dir: Path,
    api_client: ApiClient,
    now: datetime | None = None,
    max_concurrency: int = 4,
    read_timeout: float = 60.0,
    max_resumes: int = 3,
) -> ScrapeResult:
    """Download the logs of every pod behind the Deployment's selector to files.

    Each app container (init containers excluded) of each pod, and its previous
    instance when it restarted, is read with timestamps since the window start (no
    tail limit) and written as it arrives to `spool_dir`, one file per stream. The
    filter later keeps the lines inside the window by their own timestamps.

    Args:
        namespace: the Deployment's namespace.
        deployment: the Deployment's name.
        container: read only this container; None reads every app container.
        window: the window to cover; logs are asked from its start onwards.
        spool_dir: where the log files go (created if missing).
        api_client: from `kubernetes_api_client()`.
        now: the current time, for tests; logs are asked relative to it.
        max_concurrency: log streams read at the same time.
        read_timeout: seconds without a byte before a stream counts as dropped.
        max_resumes: how often one stream may resume after dropping.

    Returns:
        The files written, the pods, restart counts and the warnings of what was
        skipped (pods not started, gone, or without a previous instance).

    Raises:
        PermissionDenied: RBAC refused reading the Deployment, pods or pods/log.
        DeploymentNotFound: no such Deployment in the namespace.
        NoPodsFound: no pod matches the selector, or none could be read.
        ConfigurationError: the named container is in none of the pods.
        KubernetesError: other API failures; `is_retryable` tells which may pass.
    """
    if max_concurrency < 1 or max_resumes < 0:
        raise ConfigurationError(
            f"max_concurrency must be at least 1 (got {max_concurrency}) and "
            f"max_resumes at least 0 (got {max_resumes})"
        )
    clock = _clock(now)
    host = str(api_client.configuration.host)
    selector = await _read_selector(AppsV1Api(api_client), host, namespace, deployment)
    core = CoreV1Api(api_client)
    pods = await _list_pods(core, host, namespace, selector)
    if not pods:
        raise NoPodsFound(
            f"no pod in namespace {namespace!r} matches the selector {selector!r} of "
            f"Deployment {deployment!r} (scaled to zero, or not rolled out); with no "
            "pod there are no logs, which is not the same as no calls",
            namespace=namespace,
        )

    plan = _plan_reads(pods, container, spool_dir)
    if container is not None and not plan.restarts:
        available = sorted({c.name for pod in pods for c in pod.spec.containers})
        raise ConfigurationError(
            f"container {container!r} is in none of the {len(pods)} pod(s) of "
            f"Deployment {namespace}/{deployment}; its containers are "
            f"{', '.join(available)}: name one of them, or leave container empty"
        )
    for warning in plan.warnings:
        logger.warning("%s", warning)

    spool_dir.mkdir(parents=True, exist_ok=True)
    streamer = LogStreamer(
        core=core,
        namespace=namespace,
        since=window.start,
        clock=clock,
        read_timeout=read_timeout,
        max_resumes=max_resumes,
    )
    outcomes = await _read_all(streamer, plan.reads, max_concurrency)

    files: list[LogFile] = []
    warnings = list(plan.warnings)
    for read, outcome in zip(plan.reads, outcomes, strict=True):
        warnings.extend(outcome.warnings)
        if outcome.written:
            files.append(
                LogFile(
                    path=read.path,
                    pod=read.pod,
                    container=read.container,
                    previous=read.previous,
                    format="timestamps",
                )
            )
    if not files:
        raise NoPodsFound(
            f"none of the {len(pods)} pod(s) behind Deployment {namespace}/"
            f"{deployment} could be read: {'; '.join(warnings)}",
            namespace=namespace,
        )

    return ScrapeResult(
        source="cluster",
        files=files,
        namespace=namespace,
        deployment=deployment,
        label_selector=selector,
        pods=[pod.metadata.name for pod in pods],
        restarts=plan.restarts,
        warnings=warnings,
    )


async def _read_selector(
    apps: AppsV1Api, host: str, namespace: str, deployment: str
) -> str:
    what = f"GET Deployment {namespace}/{deployment}"
    try:
        body = await apps.read_namespaced_deployment(
            name=deployment, namespace=namespace, _request_timeout=_API_TIMEOUT
        )
    except ApiException as exc:
        logger.info("%s: HTTP %s", what, exc.status)
        raise api_error(
            exc,
            verb="get",
            resource="deployments",
            namespace=namespace,
            name=deployment,
        ) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _unreachable(host, what, namespace, exc) from exc

    selector = label_selector(body.spec.selector)
    logger.info(
        "%s: HTTP 200, selector %s, %s replica(s)", what, selector, body.spec.replicas
    )
    return selector


async def _list_pods(
    core: CoreV1Api, host: str, namespace: str, selector: str
) -> list[Any]:
    what = f"LIST pods in {namespace} with labelSelector {selector!r}"
    pods: list[Any] = []
    page_token: str | None = None
    while True:
        paging: dict[str, Any] = {"_continue": page_token} if page_token else {}
        try:
            page = await core.list_namespaced_pod(
                namespace=namespace,
                label_selector=selector,
                limit=500,
                _request_timeout=_API_TIMEOUT,
                **paging,
            )
        except ApiException as exc:
            logger.info("%s: HTTP %s", what, exc.status)
            raise api_error(
                exc, verb="list", resource="pods", namespace=namespace
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(host, what, namespace, exc) from exc

        pods.extend(page.items)
        logger.info("%s: HTTP 200, %d pod(s)", what, len(page.items))
        page_token = page.metadata._continue
        if not page_token:
            return sorted(pods, key=lambda pod: pod.metadata.name)


def _plan_reads(pods: list[Any], container: str | None, spool_dir: Path) -> _Plan:
    """Which streams to read: each chosen app container, previous instance first."""
    plan = _Plan()
    for pod in pods:
        name = pod.metadata.name
        names = [c.name for c in pod.spec.containers]
        chosen = names if container is None else [c for c in names if c == container]
        if not chosen:
            plan.warnings.append(
                f"pod {name} has no container {container!r} (it has "
                f"{', '.join(names)}): skipped"
            )
        pod_status = pod.status
        phase = pod_status.phase if pod_status else None
        known = (pod_status.container_statuses if pod_status else None) or []
        statuses = {s.name: s for s in known}
        for container_name in chosen:
            status = statuses.get(container_name)
            restarts = int(status.restart_count or 0) if status else 0
            plan.restarts[f"{name}/{container_name}"] = restarts
            # Pod names have no "_" and container names no "_" nor ".".
            stem = f"{name}_{container_name}"
            if restarts > 0:
                path = spool_dir / f"{stem}.previous.log"
                plan.reads.append(LogRead(name, container_name, True, path))
            unreadable = _current_unreadable(status, phase)
            if unreadable is None:
                path = spool_dir / f"{stem}.log"
                plan.reads.append(LogRead(name, container_name, False, path))
            elif unreadable:
                plan.warnings.append(
                    f"pod {name} container {container_name} {unreadable}: skipped, "
                    "its lines are not in this analysis"
                )
    return plan


def _current_unreadable(status: Any, phase: str | None) -> str | None:
    """Why the current instance cannot be read; "" when the previous read covers it.

    For a container waiting after a crash (CrashLoopBackOff), the kubelet serves the
    last terminated instance as the current log, the same lines as `previous=true`.
    """
    if status is None or status.state is None:
        return f"has not started (pod phase {phase})"
    state, last = status.state, status.last_state
    crashed_before = bool(last and last.terminated and status.restart_count)
    if state.running or (state.terminated and state.terminated.container_id):
        return None
    if crashed_before:
        return ""
    if state.waiting:
        return f"is waiting to start ({state.waiting.reason}, pod phase {phase})"
    return None


async def _read_all(
    streamer: LogStreamer, reads: list[LogRead], max_concurrency: int
) -> list[LogOutcome]:
    semaphore = asyncio.Semaphore(max_concurrency)

    async def bounded(read: LogRead) -> LogOutcome:
        async with semaphore:
            return await streamer.read(read)

    try:
        # A task group cancels the other reads at the first failure: a 403 fails
        # the scrape at once instead of after every pod was tried.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(read)) for read in reads]
    except BaseExceptionGroup as failures:
        error = _most_telling(failures)
        # Keep the error's own cause: `is_retryable` reads it.
        raise error from error.__cause__
    return [task.result() for task in tasks]


def _most_telling(failures: BaseExceptionGroup) -> BaseException:
    for kind in (PermissionDenied, CompletionsAgentError):
        for error in failures.exceptions:
            if isinstance(error, kind):
                return error
    return failures.exceptions[0]


def _clock(now: datetime | None) -> Callable[[], datetime]:
    """The current time, shifted so that it reads `now` at the start of the scrape."""
    if now is None:
        return lambda: datetime.now(UTC)
    offset = now - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def _unreachable(
    host: str, what: str, namespace: str, exc: BaseException
) -> KubernetesError:
    logger.info("%s: no answer: %s", what, transport_reason(exc))
    return unreachable(host, what, namespace, exc)
