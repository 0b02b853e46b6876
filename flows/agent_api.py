"""The post step: `POST {base}/v1/assist` with retries, and a validated answer.

Retries happen inside the task, not through Prefect's task retries, for three
reasons. The wait before the next attempt depends on the response (`Retry-After`
in seconds or as an HTTP date, checked against a cap), which a fixed
`retry_delay_seconds` cannot express. The overall deadline spans every attempt and
every wait. And a `retry_condition_fn` is easy to get wrong: it has seen a wrapped
exception instead of the raised one (PrefectHQ/prefect#14745), has not run for
async tasks (#15266), and is bypassed when a task returns a Failed state
(#15826). So the task is declared with `retries=0` and raises the real exception
class from `flows.errors` once the loop below gives up; the same
`Idempotency-Key` goes out on every attempt, and on every rerun of the slot.

Retried: connection errors, timeouts, 408, 425, 429, 500, 502, 503, 504 (HTML
error pages included). Everything else that is not 2xx fails at once, as does an
answer that does not validate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.agent_config import AgentApiConfig, load_agent_api_config
from flows.answer import MAX_ANSWER_BYTES, parse_answer, record_rejected_answer
from flows.assist import AssistAnswer, AssistRequest
from flows.errors import (
    AgentApiError,
    AgentApiRejectedError,
    AgentApiTransientError,
    AnswerValidationError,
)
from flows.http_errors import describe_rejection, excerpt
from flows.retry_policy import (
    RETRIED_STATUSES,
    Clock,
    SystemClock,
    backoff_seconds,
    retry_after_seconds,
)

__all__ = [
    "AgentApiConfig",
    "Clock",
    "load_agent_api_config",
    "post_assist",
    "post_assist_task",
    "retry_after_seconds",
]

Logger = logging.Logger | logging.LoggerAdapter[Any]


#: The clock `post_assist` uses when none is passed (the task passes none).
DEFAULT_CLOCK: Clock = SystemClock()
#: Spreads backoff waits; looked up at call time so tests can make it fixed.
DEFAULT_JITTER: Callable[[], float] = random.random


@dataclass
class _Failure:
    error: AgentApiTransientError
    retry_after: str | None = None
    date: str | None = None


def idempotency_key_for(session_id: str) -> str:
    """The `Idempotency-Key` of a session: the same for every attempt and rerun."""
    return "assist-" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def post_assist(
    request: AssistRequest,
    config: AgentApiConfig,
    *,
    idempotency_key: str,
    clock: Clock | None = None,
    jitter: Callable[[], float] | None = None,
    logger: Logger | None = None,
) -> AssistAnswer:
    """POST the request, retrying what a later attempt may fix, and validate the answer.

    Args:
        request: The (already redacted) Assist request.
        config: Where to post and how long to try.
        idempotency_key: Sent on every attempt; see `idempotency_key_for`.
        clock: Time source and sleep; the real ones by default.
        jitter: Returns a number in [0, 1) that spreads the backoff waits;
            `DEFAULT_JITTER` by default.
        logger: Where to log; the module logger by default.

    Returns:
        The validated answer.

    Raises:
        AgentApiRejectedError: a status that retrying cannot fix (4xx, redirects).
        AgentApiTransientError: still failing after the last attempt, past the
            deadline, or asked to wait longer than the Retry-After cap.
        AnswerValidationError: the answer is not a valid Assist answer; the raw
            body is in its `body` attribute.
    """
    clock = clock or DEFAULT_CLOCK
    jitter = jitter or DEFAULT_JITTER
    log = logger or logging.getLogger(__name__)
    started = clock.now()
    deadline = started + config.deadline_s
    headers = {
        "Authorization": f"Bearer {config.token.get_secret_value()}",
        "Idempotency-Key": idempotency_key,
        "Accept": "application/json",
    }
    payload = request.model_dump(mode="json")
    with _client(config) as client:
        for attempt in range(1, config.max_attempts + 1):
            remaining = deadline - clock.now()
            outcome = _attempt(client, config, headers, payload, remaining, log)
            if isinstance(outcome, AssistAnswer):
                log.info(
                    "Agent API answer valid on attempt %d/%d",
                    attempt,
                    config.max_attempts,
                )
                return outcome
            failure = outcome
            elapsed = clock.now() - started
            if attempt == config.max_attempts:
                raise _give_up(failure.error, attempt, elapsed)
            wait = _next_wait(failure, attempt, config, jitter)
            if clock.now() + wait > deadline:
                raise AgentApiTransientError(
                    _then(
                        failure.error,
                        f"Gave up after {attempt} attempt(s) in {elapsed:.1f} s: "
                        f"waiting {wait:.1f} s more would pass the "
                        f"{config.deadline_s:.0f} s deadline of the post step.",
                    ),
                    url=config.assist_url,
                    status=failure.error.status,
                )
            log.warning(
                "Attempt %d/%d failed (%s); retrying in %.2f s",
                attempt,
                config.max_attempts,
                _status_label(failure.error),
                wait,
            )
            clock.sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")


def _client(config: AgentApiConfig) -> httpx.Client:
    timeout = httpx.Timeout(
        config.read_timeout_s,
        connect=config.connect_timeout_s,
        pool=config.connect_timeout_s,
    )
    # Redirects are not followed: the bearer token must not travel to another URL.
    return httpx.Client(timeout=timeout, verify=True, follow_redirects=False)


def _attempt(
    client: httpx.Client,
    config: AgentApiConfig,
    headers: dict[str, str],
    payload: dict[str, Any],
    remaining: float,
    log: Logger,
) -> AssistAnswer | _Failure:
    url = config.assist_url
    read_timeout = max(0.001, min(config.read_timeout_s, remaining))
    timeout = httpx.Timeout(read_timeout, connect=config.connect_timeout_s)
    started = time.monotonic()
    try:
        with client.stream(
            "POST", url, json=payload, headers=headers, timeout=timeout
        ) as response:
            body = _read_capped(response)
    except httpx.TimeoutException as error:
        return _Failure(
            AgentApiTransientError(
                f"POST {url} timed out ({type(error).__name__} after "
                f"{time.monotonic() - started:.1f} s; read timeout "
                f"{read_timeout:.1f} s, AGENTAPI_TIMEOUT_MS). The Agent API may "
                "still have processed it; the retry carries the same "
                "Idempotency-Key.",
                url=url,
            )
        )
    except httpx.TransportError as error:
        return _Failure(
            AgentApiTransientError(
                f"POST {url} failed to connect ({type(error).__name__}: {error}); "
                "check the base URL and that the Agent API is up.",
                url=url,
            )
        )
    status = response.status_code
    log.info("POST %s -> HTTP %d in %.2f s", url, status, time.monotonic() - started)
    secret = config.token.get_secret_value()
    if 200 <= status < 300:
        return _validated(body, url, secret)
    if status in RETRIED_STATUSES:
        return _Failure(
            AgentApiTransientError(
                f"POST {url} answered HTTP {status} {response.reason_phrase}: "
                f"{excerpt(body, secret)}",
                url=url,
                status=status,
            ),
            retry_after=response.headers.get("retry-after"),
            date=response.headers.get("date"),
        )
    raise AgentApiRejectedError(
        describe_rejection(response, body, config, secret), url=url, status=status
    )


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            # Keep one byte over the cap so validation reports the size.
            break
    return b"".join(chunks)


def _validated(body: bytes, url: str, secret: str) -> AssistAnswer:
    try:
        return parse_answer(body, url=url)
    except AnswerValidationError as error:
        # The answer is text from elsewhere: it could quote the token back.
        raise AnswerValidationError(
            str(error).replace(secret, "[token]"),
            errors=[item.replace(secret, "[token]") for item in error.errors],
            url=url,
            body=body,
        ) from None


def _next_wait(
    failure: _Failure, attempt: int, config: AgentApiConfig, jitter: Callable[[], float]
) -> float:
    asked = retry_after_seconds(failure.retry_after, date=failure.date)
    if asked is not None:
        if asked > config.retry_after_cap_s:
            raise AgentApiTransientError(
                _then(
                    failure.error,
                    f"The Agent API asked to retry after {asked:.0f} s (Retry-After: "
                    f"{failure.retry_after}), more than the "
                    f"{config.retry_after_cap_s:.0f} s cap, so the post step stops "
                    "instead of sleeping; post it again later.",
                ),
                url=config.assist_url,
                status=failure.error.status,
            )
        return asked
    return backoff_seconds(
        attempt, base=config.backoff_base_s, maximum=config.backoff_max_s, jitter=jitter
    )


def _give_up(
    error: AgentApiTransientError, attempts: int, elapsed: float
) -> AgentApiError:
    return AgentApiTransientError(
        _then(
            error,
            f"Gave up after {attempts} attempt(s) in {elapsed:.1f} s; the request "
            "can be resent later with the same Idempotency-Key.",
        ),
        url=error.url,
        status=error.status,
    )


def _then(error: AgentApiError, sentence: str) -> str:
    """The error's message, ended as a sentence, followed by `sentence`."""
    message = str(error).rstrip()
    if not message.endswith((".", "!", "?")):
        message += "."
    return f"{message} {sentence}"


def _status_label(error: AgentApiError) -> str:
    return f"HTTP {error.status}" if error.status else "no response"


@task(name="post", retries=0, cache_policy=NO_CACHE)
async def post_assist_task(
    request: AssistRequest,
    config: AgentApiConfig,
    *,
    idempotency_key: str | None = None,
) -> AssistAnswer:
    """Post the request to the Agent API; keep a rejected answer as an artifact.

    `retries=0` on purpose: the retries, Retry-After waits and deadline live in
    `post_assist` (see the module docstring).
    """
    logger = get_run_logger()
    key = idempotency_key or idempotency_key_for(request.session_id)
    try:
        return await asyncio.to_thread(
            post_assist, request, config, idempotency_key=key, logger=logger
        )
    except (AgentApiTransientError, AgentApiRejectedError):
        await asyncio.to_thread(_log_resend_hint, request.session_id, logger)
        raise
    except AnswerValidationError as error:
        await asyncio.to_thread(
            record_rejected_answer,
            error.body or b"",
            error,
            session_id=request.session_id,
            secrets=(config.token.get_secret_value(),),
        )
        logger.error(
            "The answer was rejected (%d problem(s)); kept as the artifact "
            "agent-api-rejected-answer",
            len(error.errors),
        )
        raise


def _log_resend_hint(slot_key: str, logger: Logger) -> None:
    from flows.request_store import load_saved

    if load_saved(slot_key) is not None:
        logger.error(
            "The request is saved; once the Agent API is fixed, post it again with "
            "the same Idempotency-Key: completions-agent resend --slot %s",
            slot_key,
        )
