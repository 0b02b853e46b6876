"""The scrape step: gather the logs to scan, from the cluster or from files."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task
from pydantic import BaseModel

from flows.errors import ConfigurationError, LogFileError
from flows.local_files import scrape_files
from flows.records import ScrapeResult
from flows.window import Window


class LogSource(BaseModel):
    """Where the logs come from: the user's files, or every pod of a Deployment."""

    log_files: list[str] | None = None
    namespace: str
    deployment: str
    container: str | None = None
    credentials_block: str | None = None


async def scrape_cluster(
    source: LogSource, *, window: Window, spool_dir: Path
) -> ScrapeResult:
    """Download the window's logs of every pod behind the Deployment to the spool."""
    # Imported here so that reading files needs no Kubernetes client at all.
    from flows.kubernetes import kubernetes_api_client, scrape_deployment

    async with kubernetes_api_client(source.credentials_block) as api_client:
        return await scrape_deployment(
            namespace=source.namespace,
            deployment=source.deployment,
            container=source.container,
            window=window,
            spool_dir=spool_dir,
            api_client=api_client,
        )


def should_retry_scrape(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry only what a later attempt can fix: not RBAC, not a missing Deployment.

    Prefect hands the failure as the state's data; reading it there (rather than
    through `state.result()`) sees the real exception class, for sync and async
    tasks alike.
    """
    from flows.kubernetes import is_retryable

    error = state.data
    if not isinstance(error, BaseException):
        return True
    if isinstance(error, ConfigurationError | LogFileError):
        return False
    return is_retryable(error)


@task(
    name="scrape",
    retries=2,
    # Short: an unreachable API is most often a wrong context, and the user waits.
    retry_delay_seconds=[5, 20],
    retry_jitter_factor=0.5,
    retry_condition_fn=should_retry_scrape,
)
async def scrape(source: LogSource, *, window: Window, spool_dir: Path) -> ScrapeResult:
    """Read the logs: the given files, or every pod of the Deployment for the window."""
    logger = get_run_logger()
    if source.log_files:
        result = scrape_files(source.log_files)
        logger.info("Reading %d log file(s)", len(result.files))
    else:
        result = await scrape_cluster(source, window=window, spool_dir=spool_dir)
        logger.info(
            "Read %d log stream(s) of %d pod(s) behind %s/%s (selector %s)",
            len(result.files),
            len(result.pods),
            source.namespace,
            source.deployment,
            result.label_selector,
        )
    for warning in result.warnings:
        logger.warning("%s", warning)
    return result
