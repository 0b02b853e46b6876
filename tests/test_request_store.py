"""Saved requests: kept in Prefect before posting, and resent with the same key."""

from __future__ import annotations

import json

import pytest

from flows.agent_api import idempotency_key_for, post_assist
from flows.agent_server import serve_in_background
from flows.errors import AgentApiTransientError, ConfigurationError
from flows.request_store import (
    SavedAssistRequest,
    block_name,
    load_request,
    load_saved,
    resend_main,
    save_request,
)
from tests.test_agent_api import (
    TOKEN,
    FakeClock,
    config_for,
    fixed_analyse,
    sample_request,
)

pytestmark = pytest.mark.slow


def test_block_names_are_lowercase_and_dashed() -> None:
    assert block_name("6F1D8F0E-2b7a") == "assist-request-6f1d8f0e-2b7a"
    assert block_name("dealershipai/orchestrator|2026-03-10T13:00:00Z") == (
        "assist-request-dealershipai-orchestrator-2026-03-10t13-00-00z"
    )
    with pytest.raises(ConfigurationError, match="no letters or digits"):
        block_name("//")


def test_save_then_load(prefect_server: None) -> None:
    request = sample_request()
    slot = f"{request.session_id}-save-load"

    saved = save_request(request, slot)

    assert load_request(slot) == request
    again = load_saved(slot)
    assert again is not None
    assert again.idempotency_key == idempotency_key_for(request.session_id)
    assert again.saved_at == saved.saved_at


def test_nothing_saved_is_none(prefect_server: None) -> None:
    assert load_request("never-saved-slot") is None


def test_saving_again_keeps_the_first_key(prefect_server: None) -> None:
    first = sample_request()
    slot = f"{first.session_id}-keep-key"
    save_request(first, slot)
    other = first.model_copy(update={"session_id": "another-session"})

    saved = save_request(other, slot)

    assert saved.idempotency_key == idempotency_key_for(first.session_id)
    assert load_request(slot) == other


def test_a_block_that_is_not_a_saved_request_is_reported(prefect_server: None) -> None:
    SavedAssistRequest(value={"hello": "world"}).save(
        block_name("corrupt-slot"),
        overwrite=True,
        _sync=True,  # type: ignore[call-arg]
    )
    with pytest.raises(ConfigurationError, match="delete it so the next run rebuilds"):
        load_saved("corrupt-slot")


def test_a_failed_post_is_resent_with_the_same_key(
    prefect_server: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = sample_request()
    slot = request.session_id
    saved = save_request(request, slot)
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        server.script([{"status": 503}], repeat_last=True)
        with pytest.raises(AgentApiTransientError):
            post_assist(
                request,
                config_for(server.url, max_attempts=2),
                idempotency_key=saved.idempotency_key,
                clock=FakeClock(),
            )
        server.script([])
        monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)

        code = resend_main(["--slot", slot, "--base", server.url])

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"] == f"analysed {request.session_id}"
    assert [r.headers["idempotency-key"] for r in server.received] == [
        saved.idempotency_key
    ] * 3
    assert server.received[-1].json() == request.model_dump(mode="json")


def test_resend_of_an_unknown_slot_says_what_the_slot_is(
    prefect_server: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    code = resend_main(["--slot", "no-such-slot", "--base", "http://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("completions-agent resend: no request is saved for slot")
    assert "assist-request-no-such-slot" in err


def test_resend_needs_a_base_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTAPI_BASE", raising=False)
    assert resend_main(["--slot", "x"]) == 2
    assert "pass --base or set AGENTAPI_BASE" in capsys.readouterr().err
