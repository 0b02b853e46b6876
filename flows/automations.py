"""Create or update, by name, the automations in `deployments/automations.yaml`.

The open-source server runs both kinds of trigger the file uses (reactive for a
failed, crashed or timed-out run; proactive for a run not completed some time
after it turned Late or Running) and the `send-notification` action. What the
server cannot do, the flow's hooks do (`flows.alerts`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import yaml
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore
from pydantic import BaseModel, ValidationError

from flows.alerts import load_notification_block
from flows.errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFINITIONS = (
    Path(__file__).resolve().parent.parent / "deployments" / "automations.yaml"
)


class AppliedAutomation(BaseModel):
    """What applying one definition did on the server."""

    name: str
    id: UUID
    change: Literal["created", "updated"]
    removed_duplicates: int = 0


def load_definitions(
    path: Path,
    *,
    block_document_id: UUID,
    deployment: str | None = None,
) -> list[AutomationCore]:
    """Read the definitions and fill in the block and the flow/deployment filter.

    Args:
        path: The YAML file.
        block_document_id: The notification block every `send-notification` uses.
        deployment: Watch this deployment instead of the file's `deployment`.

    Raises:
        ConfigurationError: the file is missing, not YAML, or a definition is not
            a valid automation.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read automations from {path}: {exc}") from exc
    if not isinstance(document, dict) or not document.get("automations"):
        raise ConfigurationError(f"{path} has no `automations` list")
    related = [
        {"prefect.resource.role": "flow", "prefect.resource.name": document["flow"]},
        {
            "prefect.resource.role": "deployment",
            "prefect.resource.name": deployment or document["deployment"],
        },
    ]
    definitions = []
    for raw in document["automations"]:
        spec: dict[str, Any] = dict(raw)
        spec["trigger"] = {**spec["trigger"], "match_related": related}
        spec["actions"] = [
            _with_block(action, block_document_id) for action in spec["actions"]
        ]
        try:
            definitions.append(AutomationCore.model_validate(spec))
        except ValidationError as exc:
            raise ConfigurationError(
                f"automation {spec.get('name')!r} in {path} is not valid: {exc}"
            ) from exc
    return definitions


def _with_block(action: dict[str, Any], block_document_id: UUID) -> dict[str, Any]:
    if action.get("type") != "send-notification":
        return action
    return {**action, "block_document_id": str(block_document_id)}


async def apply_automations(
    definitions: list[AutomationCore],
) -> list[AppliedAutomation]:
    """Create each automation, or update the one of the same name in place.

    Older copies of the same name (made by hand, say) are deleted, so exactly one
    automation per name remains.
    """
    applied = []
    async with get_client() as client:
        for definition in definitions:
            existing = await client.read_automations_by_name(definition.name)
            if not existing:
                automation_id = await client.create_automation(definition)
                applied.append(
                    AppliedAutomation(
                        name=definition.name, id=automation_id, change="created"
                    )
                )
                continue
            keep, *duplicates = sorted(existing, key=lambda a: str(a.id))
            await client.update_automation(keep.id, definition)
            for duplicate in duplicates:
                await client.delete_automation(duplicate.id)
            applied.append(
                AppliedAutomation(
                    name=definition.name,
                    id=keep.id,
                    change="updated",
                    removed_duplicates=len(duplicates),
                )
            )
    return applied


async def apply_from_file(
    block: str, *, path: Path = DEFINITIONS, deployment: str | None = None
) -> list[AppliedAutomation]:
    """Resolve the block, read the file and apply every automation in it."""
    notifier = await load_notification_block(block)
    block_document_id = notifier._block_document_id
    if block_document_id is None:
        raise ConfigurationError(f"block {block!r} has no saved document on the server")
    definitions = load_definitions(
        path, block_document_id=block_document_id, deployment=deployment
    )
    return await apply_automations(definitions)


def automations_main(argv: list[str]) -> int:
    """`completions-agent automations apply --block NAME [--file F] [--deployment D]`.

    Raises:
        ConfigurationError: unknown block, unreadable or invalid definitions.
    """
    parser = argparse.ArgumentParser(
        prog="completions-agent automations",
        description="Create or update the alerting automations on the Prefect server "
        "of the current profile.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    apply = commands.add_parser(
        "apply", help="create or update every automation in the file, by name"
    )
    apply.add_argument(
        "--block",
        required=True,
        help="notification block to send through, as type-slug/name or a unique name",
    )
    apply.add_argument("--file", type=Path, default=DEFINITIONS, help="definitions")
    apply.add_argument(
        "--deployment", help="Prefect deployment to watch (default: the file's)"
    )
    args = parser.parse_args(argv)
    applied = asyncio.run(
        apply_from_file(args.block, path=args.file, deployment=args.deployment)
    )
    for automation in applied:
        extra = (
            f", {automation.removed_duplicates} duplicate(s) removed"
            if automation.removed_duplicates
            else ""
        )
        print(f"{automation.change} {automation.name} ({automation.id}){extra}")
    return 0
