"""What the reference Agent API is told to answer, and what it records, for tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from flows.assist import AssistAnswer, AssistRequest

Analyse = Callable[[AssistRequest], AssistAnswer]


class ScriptedResponse(BaseModel):
    """One scripted answer to one POST; without a body, a 2xx gets the analyser's."""

    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    delay_s: float = Field(default=0, ge=0)


@dataclass(frozen=True)
class ReceivedRequest:
    """A request the server received. The token itself is never kept."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    token_matched: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AgentState:
    """What the app shares with the test that drives it."""

    token: str
    analyse: Analyse | None = None
    repeat_last: bool = False
    received: list[ReceivedRequest] = field(default_factory=list)
    #: Idempotency-Key -> (request fingerprint, answer JSON).
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)
    _script: list[ScriptedResponse] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def set_script(
        self, responses: Sequence[ScriptedResponse], *, repeat_last: bool = False
    ) -> None:
        """Answer the next POSTs with `responses`, in order."""
        with self._lock:
            self._script = list(responses)
            self.repeat_last = repeat_last

    def next_response(self) -> ScriptedResponse | None:
        with self._lock:
            if not self._script:
                return None
            if self.repeat_last and len(self._script) == 1:
                return self._script[0]
            return self._script.pop(0)

    async def pause(self, seconds: float) -> None:
        # Poll so that stopping the server cuts a long scripted delay short.
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))


def load_script(path: Path, scenario: str | None = None) -> list[ScriptedResponse]:
    """Read scripted responses from JSON: a list, `{"responses": [...]}`, or
    `{"scenarios": [{"name": ..., "responses": [...]}, ...]}` with `scenario`.

    Raises:
        ValueError: the file has no such scenario or no responses.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "scenarios" in data:
        names = [item.get("name") for item in data["scenarios"]]
        if scenario not in names:
            raise ValueError(f"{path} has scenarios {names}; pick one with --scenario")
        data = data["scenarios"][names.index(scenario)]
    responses = data["responses"] if isinstance(data, dict) else data
    if not isinstance(responses, list):
        raise ValueError(f"{path} holds no list of responses")
    return [ScriptedResponse.model_validate(item) for item in responses]
