"""Run the flow from the command line and print what it recorded."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from prefect.artifacts import Artifact
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_API_URL, PREFECT_HOME

from flows.assist import AssistRequest, TenantContext
from flows.errors import AgentApiError, CompletionsAgentError
from flows.flow import orchestrator_completions_agent
from flows.matching import DEFAULT_INCLUDE
from flows.report import artifact_keys


def run_flow_and_report(args: argparse.Namespace, log_files: list[str] | None) -> int:
    """Run the flow once with the CLI's options; print the report or the request.

    Returns:
        The exit code: 0 on success, 1 when the run failed.

    Raises:
        CompletionsAgentError: the run failed; its message is one line for the user.
    """
    if not args.traceback:
        _hide_tracebacks_on_console()
    state = asyncio.run(_run_flow(args, log_files))
    if not state.is_completed():
        error = state.result(raise_on_failure=False)
        if isinstance(error, AgentApiError) and error.slot:
            raise AgentApiError(
                f"{str(error).rstrip('. ')}. To send the saved request again: "
                f"completions-agent resend --slot {error.slot}"
            )
        if isinstance(error, CompletionsAgentError):
            raise error
        message = str(error) if isinstance(error, BaseException) else state.message
        raise CompletionsAgentError(f"the run ended {state.name}: {message}")

    result = state.result()
    if isinstance(result, AssistRequest):
        print(result.model_dump_json(indent=2))
        return 0
    source = "files" if log_files else "cluster"
    key = artifact_keys(source, args.namespace, args.deployment).report
    print(asyncio.run(_read_artifact(key)))
    _print_where(key)
    return 0


async def _run_flow(
    args: argparse.Namespace, log_files: list[str] | None
) -> State[Any]:
    return await orchestrator_completions_agent(
        namespace=args.namespace,
        deployment=args.deployment,
        container=args.container,
        window_hours=args.window_hours or 24,
        window_end=args.window_end,
        include=args.include or list(DEFAULT_INCLUDE),
        rule=args.rule,
        top_n=args.top_n,
        tenant=TenantContext(tenant_id=args.tenant_id),
        agent_api_base=args.agent_api_base,
        agent_api_token_block=args.token_block,
        kubernetes_credentials_block=args.kubernetes_credentials_block,
        log_files=log_files,
        since=args.since,
        until=args.until,
        dry_run=args.dry_run,
        return_state=True,
    )


async def _read_artifact(key: str) -> str:
    artifact = await Artifact.aget(key)
    if artifact is None or not isinstance(artifact.data, str):
        raise CompletionsAgentError(f"the run finished but artifact {key!r} is missing")
    return artifact.data


def _print_where(key: str) -> None:
    prefect = Path(sys.executable).with_name("prefect")
    command = str(prefect) if prefect.exists() else "prefect"
    api_url = PREFECT_API_URL.value()
    if not api_url:
        # A second local server on the same database: its telemetry writes collide
        # with the first one's and print errors offline.
        command = f"PREFECT_SERVER_ANALYTICS_ENABLED=false {command}"
    where = api_url or f"the local Prefect home {PREFECT_HOME.value()}"
    print(
        f"Artifacts recorded in {where}: {key} and, beside it, the -actions and "
        f"-answer keys.\nList them with:   {command} artifact ls\n"
        f"Show the report:  {command} artifact inspect {key}"
    )


class _NoTraceback(logging.Formatter):
    """Formats like the wrapped formatter but leaves the traceback out."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _hide_tracebacks_on_console() -> None:
    # Prefect logs a failed run's traceback to the console; the CLI prints the
    # error in one line instead. The API log handler keeps the full record.
    # (Prefect configured its handlers when it was imported.)
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler.formatter, _NoTraceback
            ):
                handler.setFormatter(_NoTraceback(handler.formatter))
