"""Scripts for the reference Agent API: the file forms, and the case 20 scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.agent_script import AgentState, ScriptedResponse, load_script


def test_load_script_reads_the_case_20_scenarios(cases_dir: Path) -> None:
    responses = load_script(
        cases_dir / "20-agent-api-retry-sequences.json", "transient-then-ok"
    )
    assert [r.status for r in responses] == [503, 429, 200]
    assert responses[1].headers == {
        "content-type": "application/json",
        "retry-after": "2",
    }
    timeout = load_script(
        cases_dir / "20-agent-api-retry-sequences.json", "read-timeout-after-send"
    )
    assert timeout[0].delay_s == 200


def test_load_script_names_the_scenarios_it_has(cases_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"'always-503'.*pick one with --scenario"):
        load_script(cases_dir / "20-agent-api-retry-sequences.json", "nope")


@pytest.mark.parametrize(
    "content",
    [[{"status": 502}], {"responses": [{"status": 502}]}],
)
def test_load_script_plain_forms(tmp_path: Path, content: object) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(content))
    assert load_script(path) == [ScriptedResponse(status=502)]


def test_responses_are_served_in_order_then_the_analyser_takes_over() -> None:
    state = AgentState(token="t" * 16)
    state.set_script([ScriptedResponse(status=503), ScriptedResponse(status=429)])
    served = [state.next_response() for _ in range(3)]
    assert [r.status if r else None for r in served] == [503, 429, None]


def test_repeat_last_serves_the_last_response_forever() -> None:
    state = AgentState(token="t" * 16)
    state.set_script(
        [ScriptedResponse(status=500), ScriptedResponse(status=503)], repeat_last=True
    )
    served = [state.next_response() for _ in range(4)]
    assert [r.status if r else None for r in served] == [500, 503, 503, 503]
