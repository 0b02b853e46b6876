"""The built-in analyser: counts, advice, actions and limits, from built requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.analyser import analyse
from flows.assist import (
    TOOL_INPUTS,
    AssistAnswer,
    AssistRequest,
    CallsContext,
    Doctrine,
    PerformanceTargets,
    TenantContext,
    UiLimits,
    output_schema,
    tool_specs,
)
from flows.records import CallRecord, CallStatistics
from flows.window import window_ending_at

ALL_TOOLS = [
    "open_pulse_detail",
    "queue_refresh",
    "site_inject",
    "auto_fix",
    "open_incident",
]
#: The committed sample's statuses: 50 errors in 432 calls, 6.5% of them 429.
SAMPLE_STATUSES = {"200": 382, "429": 28, "500": 9, "503": 13}


def _request(
    by_status: dict[str, int],
    *,
    tools: list[str] | None = None,
    doctrine: Doctrine | None = None,
    coverage_complete: bool = True,
    coverage_note: str | None = None,
    windowed: bool = True,
) -> AssistRequest:
    total = sum(by_status.values())
    errors = sum(n for status, n in by_status.items() if status[0] in "45")
    # Only two lines are selected: the counts must come from the statistics.
    selected = [
        CallRecord(
            line="HTTP Request: POST https://api.openai.com/v1/chat/completions "
            '"HTTP/1.1 200 OK"',
            status=200,
        )
    ] * min(total, 2)
    context = CallsContext(
        window=window_ending_at(datetime(2026, 3, 10, 13, tzinfo=UTC), 24)
        if windowed
        else None,
        source="files",
        deployment="orchestrator",
        rule="literal",
        include=["POST https", "completions"],
        lines_read=12135,
        lines_in_window=12135,
        matches=total,
        statistics=CallStatistics(
            total=total,
            by_status=by_status,
            by_host={"api.openai.com": total} if total else {},
            errors=errors,
            error_rate=errors / total if total else 0.0,
        ),
        coverage=[],
        coverage_complete=coverage_complete,
        coverage_note=coverage_note,
        first_timestamp="2026-03-09T13:00:01Z",
        last_timestamp="2026-03-10T12:59:42Z",
        selected=selected,
    )
    wanted = ALL_TOOLS if tools is None else tools
    return AssistRequest(
        session_id="orchestrator-2026-03-10T13",
        tenant=TenantContext(),
        doctrine=doctrine or Doctrine(),
        tools=[spec for spec in tool_specs() if spec.name in wanted],
        output_schema=output_schema(),
        messages=[],
        context=context,
    )


def _tools(answer: AssistAnswer) -> list[str]:
    return [action.tool for action in answer.actions]


def test_error_count_covers_every_matched_call_not_only_the_selected() -> None:
    answer = analyse(_request(SAMPLE_STATUSES))

    assert answer.error_count == 50
    assert answer.summary == (
        "432 completions calls in the 24 h window "
        "2026-03-09T13:00:00Z/2026-03-10T13:00:00Z: 50 errors (11.6%). "
        "Worst statuses: 429 x28, 503 x13, 500 x9."
    )


def test_a_sample_like_day_gets_every_kind_of_advice_and_action() -> None:
    answer = analyse(_request(SAMPLE_STATUSES))

    assert answer.recommendations[0].startswith(
        "6.5% of calls were rate limited (429), above the 5.0% target: "
        "add exponential backoff"
    )
    assert answer.recommendations[1].startswith(
        "22 calls failed with 5xx: check the provider's health"
    )
    assert "fallback" in answer.recommendations[1]
    assert answer.recommendations[2].startswith(
        "The error rate 11.6% is above the 2.0% target"
    )
    assert len(answer.recommendations) == 3
    assert _tools(answer) == [
        "open_pulse_detail",
        "open_incident",
        "auto_fix",
        "queue_refresh",
        "site_inject",
    ]
    assert [action.id for action in answer.actions] == [
        "act-1",
        "act-2",
        "act-3",
        "act-4",
        "act-5",
    ]
    assert answer.actions[1].input["severity"] == "sev2"
    assert answer.actions[2].input == {
        "target": "deployment/orchestrator",
        "fix": "enable-retry-backoff",
        "parameters": {"respect_retry_after": "true", "max_retries": "5"},
    }
    assert (
        answer.actions[3]
        .input["reason"]
        .startswith("50 completions calls failed with 429 or 5xx")
    )


def test_every_action_is_valid_for_its_tool() -> None:
    answer = analyse(_request(SAMPLE_STATUSES))

    for action in answer.actions:
        TOOL_INPUTS[action.tool].model_validate(action.input)
        assert 0 <= action.confidence <= 1
        assert action.preview.endswith(".")
        assert action.intent
    assert AssistAnswer.model_validate_json(answer.model_dump_json()) == answer


def test_mutating_tools_and_doctrine_named_tools_need_approval() -> None:
    doctrine = Doctrine(
        approval_required_for=["site_inject", "auto_fix", "open_incident"]
    )

    default = {
        a.tool: a.requires_approval for a in analyse(_request(SAMPLE_STATUSES)).actions
    }
    stricter = {
        a.tool: a.requires_approval
        for a in analyse(_request(SAMPLE_STATUSES, doctrine=doctrine)).actions
    }

    assert default == {
        "open_pulse_detail": False,
        "open_incident": False,
        "auto_fix": True,
        "queue_refresh": False,
        "site_inject": True,
    }
    assert stricter == default | {"open_incident": True}
    # Doctrine cannot waive approval for a tool that changes something.
    lax = analyse(
        _request(SAMPLE_STATUSES, doctrine=Doctrine(approval_required_for=[]))
    )
    assert {a.tool for a in lax.actions if a.requires_approval} == {
        "auto_fix",
        "site_inject",
    }


@pytest.mark.parametrize("removed", ALL_TOOLS)
def test_an_undeclared_tool_is_never_proposed(removed: str) -> None:
    tools = [tool for tool in ALL_TOOLS if tool != removed]

    answer = analyse(_request(SAMPLE_STATUSES, tools=tools))

    assert removed not in _tools(answer)
    assert sorted(_tools(answer)) == sorted(tools)
    assert [action.id for action in answer.actions] == [
        "act-1",
        "act-2",
        "act-3",
        "act-4",
    ]


def test_no_declared_tool_means_no_action_but_the_same_advice() -> None:
    answer = analyse(_request(SAMPLE_STATUSES, tools=[]))

    assert answer.actions == []
    assert answer.error_count == 50
    assert len(answer.recommendations) == 3


def test_rate_limiting_under_target_asks_for_no_backoff() -> None:
    # 4 of 1000 calls limited: 0.4%, under the 5% target; errors 0.9%, under 2%.
    answer = analyse(_request({"200": 991, "429": 4, "500": 5}))

    assert answer.error_count == 9
    assert "auto_fix" not in _tools(answer)
    assert "open_incident" not in _tools(answer)
    assert not any("rate limited" in text for text in answer.recommendations)
    assert answer.recommendations == [
        "5 calls failed with 5xx: check the provider's health and status page, "
        "and configure a fallback model or provider."
    ]
    assert _tools(answer) == ["open_pulse_detail", "queue_refresh"]


def test_a_lower_rate_limit_target_turns_the_same_counts_into_backoff_advice() -> None:
    targets = PerformanceTargets(max_rate_limited_share=0.002)

    answer = analyse(
        _request(
            {"200": 991, "429": 4, "500": 5},
            doctrine=Doctrine(performance_targets=targets),
        )
    )

    assert answer.recommendations[0].startswith(
        "0.4% of calls were rate limited (429), above the 0.2% target"
    )
    assert "auto_fix" in _tools(answer)


def test_an_error_rate_just_over_target_is_a_sev3_without_a_site_notice() -> None:
    answer = analyse(_request({"200": 97, "503": 3}))

    incident = next(
        action for action in answer.actions if action.tool == "open_incident"
    )
    assert incident.input["severity"] == "sev3"
    assert incident.input["title"] == (
        "Completions error rate 3.0% in the 24 h window "
        "2026-03-09T13:00:00Z/2026-03-10T13:00:00Z"
    )
    assert "site_inject" not in _tools(answer)


def test_client_errors_are_not_sent_to_retry() -> None:
    answer = analyse(_request({"200": 90, "401": 10}))

    assert answer.error_count == 10
    assert "10 calls failed with other 4xx statuses" in answer.recommendations[-1]
    assert "queue_refresh" not in _tools(answer)
    assert "auto_fix" not in _tools(answer)


def test_a_healthy_day_needs_no_action() -> None:
    answer = analyse(_request({"200": 500}))

    assert answer.error_count == 0
    assert answer.actions == []
    assert answer.recommendations == [
        "Errors are within target (0.0% against 2.0%): no change needed."
    ]
    assert "500 completions calls" in answer.summary
    assert "Worst statuses" not in answer.summary


def test_no_calls_at_all_says_so_and_proposes_nothing() -> None:
    answer = analyse(_request({}))

    assert answer.error_count == 0
    assert answer.actions == []
    assert answer.summary.startswith(
        "No completions calls matched the rule (literal) in the 24 h window"
    )
    assert "12135 lines read" in answer.summary
    assert len(answer.recommendations) == 1


def test_incomplete_coverage_is_reported() -> None:
    note = "orchestrator-7d9c5b8f6c-m4hzt/orchestrator starts at 2026-03-09T19:02:11Z"

    answer = analyse(
        _request({"200": 500}, coverage_complete=False, coverage_note=note)
    )

    assert answer.summary.endswith(f"Coverage incomplete: {note}")
    assert answer.recommendations[0].startswith(
        "The logs do not cover the whole window"
    )


def test_files_without_a_window_are_described_by_their_span() -> None:
    answer = analyse(_request({"200": 10}, windowed=False))

    assert answer.summary.startswith(
        "10 completions calls in the log span "
        "2026-03-09T13:00:01Z/2026-03-10T12:59:42Z:"
    )


def test_ui_limits_are_honoured() -> None:
    limits = UiLimits(max_summary_chars=60, max_recommendations=1, max_actions=2)

    answer = analyse(_request(SAMPLE_STATUSES, doctrine=Doctrine(ui_limits=limits)))

    assert answer.summary == "432 completions calls in the 24 h window…"
    assert len(answer.summary) <= 60
    assert len(answer.recommendations) == 1
    assert answer.recommendations[0].startswith("6.5% of calls were rate limited")
    assert _tools(answer) == ["open_pulse_detail", "open_incident"]
    assert [action.id for action in answer.actions] == ["act-1", "act-2"]


def test_zero_limits_give_empty_lists() -> None:
    limits = UiLimits(max_summary_chars=1, max_recommendations=0, max_actions=0)

    answer = analyse(_request(SAMPLE_STATUSES, doctrine=Doctrine(ui_limits=limits)))

    assert answer.summary == "…"
    assert answer.recommendations == []
    assert answer.actions == []
    assert answer.error_count == 50


def test_the_same_request_gives_byte_identical_answers() -> None:
    shuffled = dict(reversed(list(SAMPLE_STATUSES.items())))

    first = analyse(_request(SAMPLE_STATUSES)).model_dump_json()
    second = analyse(_request(SAMPLE_STATUSES)).model_dump_json()
    reordered = analyse(_request(shuffled)).model_dump_json()

    assert first == second == reordered


def test_equal_counts_are_ordered_by_status_code() -> None:
    answer = analyse(_request({"200": 100, "503": 5, "429": 5, "500": 5}))

    assert answer.summary.endswith("Worst statuses: 429 x5, 500 x5, 503 x5.")


def test_lines_without_a_status_are_calls_but_not_errors() -> None:
    answer = analyse(_request({"200": 8, "unknown": 2, "503": 1}))

    assert answer.error_count == 1
    assert answer.summary.startswith("11 completions calls")
    assert answer.summary.endswith("1 error (9.1%). Worst statuses: 503 x1.")
