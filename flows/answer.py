"""Turn an Agent API response body into a validated `AssistAnswer`, or say why not."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from pydantic import ValidationError

from flows.assist import AssistAnswer
from flows.errors import AnswerValidationError
from flows.redaction import Redactor

MAX_ANSWER_BYTES = 1024 * 1024
REJECTED_ANSWER_KEY = "agent-api-rejected-answer"

_BOM = b"\xef\xbb\xbf"
# One fence around the whole body, as chat models like to add: ```json ... ```
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```\s*\Z", re.DOTALL)


def parse_answer(body: bytes, *, url: str | None = None) -> AssistAnswer:
    """Validate a response body as an Assist answer.

    Tolerated: a UTF-8 BOM and one markdown code fence around the whole JSON.

    Args:
        body: The raw response body.
        url: The URL it came from, for the error.

    Returns:
        The answer. Unknown extra fields are kept in `model_extra`, never acted on.

    Raises:
        AnswerValidationError: too large, empty, not UTF-8, not JSON, not an
            object, or not valid against the model; `errors` lists every problem.
    """
    if len(body) > MAX_ANSWER_BYTES:
        _reject(
            f"the answer is {len(body)} bytes, over the {MAX_ANSWER_BYTES} cap", url
        )
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body.strip():
        _reject("the answer body is empty", url)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        _reject(
            f"the answer is not UTF-8 ({error.reason}); it begins {_head(body)}", url
        )
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        _reject(f"the answer is not JSON ({error.msg}); it begins {_head(body)}", url)
    if not isinstance(data, dict):
        _reject(f"the answer must be a JSON object, got a JSON {_json_type(data)}", url)
    try:
        return AssistAnswer.model_validate(data)
    except ValidationError as error:
        problems = [_describe(item) for item in error.errors()]
        raise AnswerValidationError(
            f"the answer does not match the Assist answer model: {'; '.join(problems)}",
            errors=problems,
            url=url,
        ) from None


def record_rejected_answer(
    body: bytes,
    error: AnswerValidationError,
    *,
    session_id: str,
    redactor: Redactor | None = None,
    secrets: tuple[str, ...] = (),
) -> str:
    """Keep a rejected answer, redacted, as a markdown artifact for review.

    Args:
        body: The raw answer body.
        error: The validation error it raised.
        session_id: The request's session id, to find the run it belongs to.
        redactor: The run's redactor, so placeholders match the request's.
        secrets: Literal values (the token) to remove as well, whatever they are.

    Returns:
        The markdown that was stored under the key `agent-api-rejected-answer`.
    """
    from prefect.artifacts import create_markdown_artifact

    text = redact_body(body, redactor or Redactor.for_run(), secrets)
    problems = "\n".join(f"- {problem}" for problem in error.errors)
    markdown = (
        f"# Rejected Agent API answer\n\nSession `{session_id}`, from "
        f"`{error.url or 'unknown URL'}`.\n\n## What is wrong\n\n{problems}\n\n"
        f"## The answer ({len(body)} bytes, redacted)\n\n````text\n{text}\n````\n"
    )
    # _sync: the artifact must exist before the error propagates, in async runs too.
    create_markdown_artifact(  # type: ignore[call-arg]
        markdown=markdown,
        key=REJECTED_ANSWER_KEY,
        description=f"Rejected answer for session {session_id}",
        _sync=True,
    )
    return markdown


def redact_body(
    body: bytes, redactor: Redactor, secrets: tuple[str, ...], limit: int = 20_000
) -> str:
    """The body as text, secrets scrubbed, cut to `limit` characters."""
    text = body.decode("utf-8", errors="replace")
    for secret in filter(None, secrets):
        text = text.replace(secret, "[token]")
    text = redactor.redact(text)
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters]"
    return text


def _reject(reason: str, url: str | None) -> NoReturn:
    raise AnswerValidationError(reason, errors=[reason], url=url)


def _head(body: bytes, size: int = 60) -> str:
    return repr(body[:size]) + (" ..." if len(body) > size else "")


def _json_type(data: Any) -> str:
    if data is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean"}.get(type(data), "number")


def _describe(item: Any) -> str:
    location = ".".join(str(part) for part in item["loc"]) or "answer"
    message = item["msg"]
    if item["type"] == "missing":
        return f"{location}: required field is missing"
    value = item.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{location}: {message} (got {shown})"
