"""Keep each slot's Assist request in Prefect before posting it, and resend it later.

The flow runs in a Kubernetes Job whose filesystem goes away with the pod, and the
logs it read may rotate away, so the request is saved in the Prefect API's database
as a `saved-assist-request` block named `assist-request-<slot>` (Prefect 3.9 has no
generic JSON block any more). A rerun of the slot
reuses it, and `completions-agent resend --slot <slot>` posts it again with the
Idempotency-Key it was first posted with.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ValidationError

from flows.agent_api import idempotency_key_for, post_assist
from flows.agent_config import AgentApiConfig, load_agent_api_config
from flows.assist import AssistAnswer, AssistRequest
from flows.errors import CompletionsAgentError, ConfigurationError

logger = logging.getLogger(__name__)

BLOCK_PREFIX = "assist-request-"


class SavedAssistRequest(Block):
    """A slot's Assist request, kept so that it can be posted again."""

    _block_type_name: ClassVar[str] = "Saved Assist Request"
    _block_type_slug: ClassVar[str] = "saved-assist-request"
    _description: ClassVar[str] = (
        "The Assist request built for one slot of orchestrator-completions-agent, "
        "and the Idempotency-Key it is posted with."
    )

    value: dict[str, Any]


class SavedRequest(BaseModel):
    """What is kept for a slot: the request and the key it is posted with."""

    slot_key: str
    idempotency_key: str
    saved_at: datetime
    request: AssistRequest


def block_name(slot_key: str) -> str:
    """The block name for a slot: lowercase letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", slot_key.lower()).strip("-")
    if not slug:
        raise ConfigurationError(f"slot key {slot_key!r} has no letters or digits")
    return BLOCK_PREFIX + slug


def save_request(request: AssistRequest, slot_key: str) -> SavedRequest:
    """Save the request for `slot_key`, before it is posted.

    Saving again for the same slot keeps the first Idempotency-Key, so a rerun
    can never post the slot under a second key.

    Returns:
        What was saved.
    """
    existing = load_saved(slot_key)
    key = (
        existing.idempotency_key
        if existing
        else idempotency_key_for(request.session_id)
    )
    saved = SavedRequest(
        slot_key=slot_key,
        idempotency_key=key,
        saved_at=datetime.now(UTC),
        request=request,
    )
    name = block_name(slot_key)
    # _sync: called from async flows too, where save() would return a coroutine.
    SavedAssistRequest(value=saved.model_dump(mode="json")).save(
        name,
        overwrite=True,
        _sync=True,  # type: ignore[call-arg]
    )
    logger.info("Saved the Assist request for slot %s as block %s", slot_key, name)
    return saved


def load_saved(slot_key: str) -> SavedRequest | None:
    """The saved request and key for `slot_key`, or None if none was saved.

    Raises:
        ConfigurationError: the block exists but does not hold a saved request.
    """
    name = block_name(slot_key)
    try:
        loaded = SavedAssistRequest.load(name, _sync=True)  # type: ignore[call-arg]
        block = cast(SavedAssistRequest, loaded)
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            return None
        raise
    try:
        return SavedRequest.model_validate(block.value)
    except ValidationError as error:
        raise ConfigurationError(
            f"the block {name} does not hold a saved Assist request "
            f"({error.error_count()} problem(s)); delete it so the next run "
            "rebuilds the request"
        ) from None


def load_request(slot_key: str) -> AssistRequest | None:
    """The request saved for `slot_key`, or None if none was saved."""
    saved = load_saved(slot_key)
    return saved.request if saved else None


def resend(slot_key: str, config: AgentApiConfig) -> AssistAnswer:
    """Post the request saved for `slot_key` again, with its original Idempotency-Key.

    Raises:
        ConfigurationError: nothing is saved for the slot.
        AgentApiError: as `post_assist`.
    """
    saved = load_saved(slot_key)
    if saved is None:
        raise ConfigurationError(
            f"no request is saved for slot {slot_key!r} (block "
            f"{block_name(slot_key)}); the slot is the session id the failed run "
            "logged"
        )
    logger.info(
        "Resending the request saved at %s for slot %s", saved.saved_at, slot_key
    )
    return post_assist(saved.request, config, idempotency_key=saved.idempotency_key)


def resend_main(argv: Sequence[str] | None = None) -> int:
    """`completions-agent resend`: post a saved request again; print the answer."""
    parser = argparse.ArgumentParser(
        prog="completions-agent resend",
        description="Post the Assist request saved for a slot again, with the same "
        "Idempotency-Key, and print the validated answer as JSON.",
    )
    parser.add_argument(
        "--slot", required=True, help="the slot key (the session id of the run)"
    )
    parser.add_argument("--base", help="Agent API base URL (default AGENTAPI_BASE)")
    parser.add_argument(
        "--token-block",
        help="Prefect Secret block holding the token (default AGENTAPI_TOKEN)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=None,
        help="accept a plain http:// base URL to a remote host",
    )
    args = parser.parse_args(argv)
    try:
        config = load_agent_api_config(
            args.base, args.token_block, allow_insecure_http=args.allow_insecure_http
        )
        if config is None:
            raise ConfigurationError(
                "no Agent API base URL: pass --base or set AGENTAPI_BASE"
            )
        answer = resend(args.slot, config)
    except CompletionsAgentError as error:
        print(f"completions-agent resend: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigurationError) else 1
    print(json.dumps(answer.model_dump(mode="json"), indent=2))
    return 0
