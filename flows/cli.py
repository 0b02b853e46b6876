"""The `completions-agent` command: run the flow, scan files, serve the agent, resend.

Every failure ends with one line on stderr and a non-zero exit, never a traceback
(`--traceback` shows it when debugging).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flows.errors import CompletionsAgentError, ConfigurationError

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `completions-agent` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Callable[[list[str]], int]] = {
        "run": run_main,
        "scan": scan_main,
        "serve-agent": _serve_agent,
        "resend": _resend,
        "automations": _automations,
    }
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else EXIT_USAGE
    command = commands.get(args[0])
    if command is None:
        return _fail(
            f"unknown command {args[0]!r}; expected one of {', '.join(commands)}"
        )
    return command(args[1:])


_USAGE = """\
usage: completions-agent COMMAND [options]

Find the orchestrator's LLM completions calls in its Kubernetes logs and have an
Agent API analyse them.

commands:
  run          run the Prefect flow on the cluster or on log files
  scan         count and rank completions calls in log files (no Prefect, no network)
  serve-agent  serve the reference Agent API (/v1/assist) over HTTP
  resend       post the request saved for a slot again
  automations  create or update the failure alerts on the Prefect server

Run `completions-agent COMMAND --help` for a command's options."""


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"completions-agent: error: {message}", file=sys.stderr)
    return code


def _timestamp(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-03-10T13:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def _positive_hours(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        hours = 0
    if not hours > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hours > 0")
    return hours


def _pattern(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("an empty --include would match every line")
    return value


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--include",
        action="append",
        type=_pattern,
        metavar="TEXT",
        help="a line must contain every --include (default: 'POST https' and "
        "'completions')",
    )
    parser.add_argument(
        "--rule",
        choices=["literal", "extended"],
        default="literal",
        help="literal: every --include; extended: also nginx, envoy, Node SDK and "
        "JSON access-log formats (default: literal)",
    )
    parser.add_argument(
        "--top-n", type=_positive_int, default=5, help="calls kept in full (default: 5)"
    )
    parser.add_argument(
        "--since", type=_timestamp, help="files only: keep lines at or after this time"
    )
    parser.add_argument(
        "--until", type=_timestamp, help="files only: keep lines before this time"
    )


# --- scan ----------------------------------------------------------------------


def scan_main(argv: list[str]) -> int:
    """`completions-agent scan FILE...`: the filter alone, JSON on stdout."""
    parser = argparse.ArgumentParser(
        prog="completions-agent scan",
        description="Count and rank the completions calls in kubectl-logs files, "
        "and print the result as JSON. Needs no Prefect server and no network.",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="log files, - for stdin"
    )
    _filter_options(parser)
    parser.add_argument(
        "--workers",
        type=int,
        help="processes that may share one big file (default: one per CPU; files "
        "under 64 MB are always read by one)",
    )
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        return _fail("--workers must be at least 1", EXIT_USAGE)

    from flows.local_files import scrape_files
    from flows.matching import DEFAULT_INCLUDE, scan_logs
    from flows.parallel import available_cpus
    from flows.redaction import Redactor, redact_calls

    with _stdin_spooled(args.files) as paths:
        try:
            scrape_result = scrape_files(paths)
            result = scan_logs(
                scrape_result.files,
                include=args.include or list(DEFAULT_INCLUDE),
                rule=args.rule,
                top_n=args.top_n,
                start=args.since,
                end=args.until,
                # Like `grep | grep`, a big file is worth every CPU here. (The
                # flow's filter task stays in one process: it must not fork.)
                workers=args.workers or available_cpus(),
            )
        except ConfigurationError as exc:
            return _fail(str(exc), EXIT_USAGE)
        except CompletionsAgentError as exc:
            return _fail(str(exc))
    result.warnings[:0] = scrape_result.warnings
    # The same placeholders as in the request: secrets never reach the terminal.
    result.selected = redact_calls(result.selected, Redactor.for_run())
    return _print_output(result.model_dump_json(indent=2))


def _print_output(text: str) -> int:
    """Print to stdout; a reader that stops early (`| head`) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


@contextmanager
def _stdin_spooled(names: list[str]) -> Iterator[list[str]]:
    """Replace `-` by a temporary copy of stdin, removed afterwards.

    A stream can be read once only; a retried step must see the same lines.
    """
    if "-" not in names:
        yield names
        return
    directory = Path(tempfile.mkdtemp(prefix="completions-agent-stdin-"))
    try:
        spool = directory / "stdin.log"
        with spool.open("wb") as target:
            shutil.copyfileobj(sys.stdin.buffer, target, length=1 << 20)
        yield [str(spool) if name == "-" else name for name in names]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- run -----------------------------------------------------------------------


def run_main(argv: list[str]) -> int:
    """`completions-agent run`: the Prefect flow, on the cluster or on files."""
    parser = argparse.ArgumentParser(
        prog="completions-agent run",
        description="Run the orchestrator-completions-agent flow once. Without "
        "--logs it reads every pod of the Deployment for the window ending now; "
        "with --logs it reads the files (whole, unless --since/--until).",
    )
    parser.add_argument(
        "--logs", nargs="+", metavar="FILE", help="kubectl-logs files, - for stdin"
    )
    parser.add_argument("--namespace", default="dealershipai")
    parser.add_argument("--deployment", default="orchestrator")
    parser.add_argument("--container", help="only this container (default: all)")
    parser.add_argument(
        "--window-hours",
        type=_positive_hours,
        help="cluster only: length of the window (default: 24)",
    )
    parser.add_argument(
        "--window-end",
        type=_timestamp,
        help="cluster only: end of the window (default: now)",
    )
    _filter_options(parser)
    parser.add_argument("--tenant-id", default="dealershipai")
    parser.add_argument(
        "--agent-api-base",
        help="Agent API base URL (default: $AGENTAPI_BASE; none: built-in analyser)",
    )
    parser.add_argument("--token-block", help="Prefect Secret block with the token")
    parser.add_argument("--kubernetes-credentials-block")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the request, do not post it"
    )
    parser.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        _check_run_options(args)
    except ConfigurationError as exc:
        return _fail(str(exc), EXIT_USAGE)

    prepare_prefect_environment()
    from flows.runner import run_flow_and_report

    with _stdin_spooled(args.logs or []) as paths:
        try:
            return run_flow_and_report(args, paths or None)
        except CompletionsAgentError as exc:
            if args.traceback:
                raise
            return _fail(str(exc))


def _check_run_options(args: argparse.Namespace) -> None:
    """Refuse contradictory options before a Prefect server is started for nothing.

    Raises:
        ConfigurationError: the options cannot work together, or the Agent API URL
            is unusable (checked here too, so that a URL with credentials in it is
            never stored as a flow run parameter).
    """
    if args.logs and (args.window_hours or args.window_end):
        raise ConfigurationError(
            "--window-hours and --window-end choose the cluster's window; with "
            "--logs, use --since and --until"
        )
    if not args.logs and (args.since or args.until):
        raise ConfigurationError(
            "--since and --until apply to --logs; for the cluster, use --window-end "
            "and --window-hours"
        )
    if args.since and args.until and args.since >= args.until:
        raise ConfigurationError("--since must be before --until")
    if args.agent_api_base:
        from flows.agent_config import check_base_url, insecure_http_allowed

        check_base_url(args.agent_api_base, allow_insecure_http=insecure_http_allowed())


def prepare_prefect_environment() -> None:
    """Defaults that let a first run work on a small offline machine.

    The ephemeral Prefect server needs more than its default 20 s to create a fresh
    database on 2 cores, and its telemetry cannot reach the internet from here.
    Values the user set are kept.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The Kubernetes and Agent API modules log through `flows.*` loggers; this
    # sends their lines to the flow run's logs too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flows")


# --- commands that live in their own modules -------------------------------------


def _serve_agent(argv: list[str]) -> int:
    from flows.agent_server import serve_main

    return _guarded(serve_main, argv)


def _resend(argv: list[str]) -> int:
    prepare_prefect_environment()
    from flows.request_store import resend_main

    return _guarded(resend_main, argv)


def _automations(argv: list[str]) -> int:
    prepare_prefect_environment()
    from flows.automations import automations_main

    return _guarded(automations_main, argv)


def _guarded(command: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return command(argv)
    except ConfigurationError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except CompletionsAgentError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
