import json
from datetime import UTC, datetime

from flows.assist import AssistAnswer, Doctrine, TenantContext
from flows.build import build_assist_request, session_id_for
from flows.records import (
    CallRecord,
    CallStatistics,
    ContainerCoverage,
    FilterResult,
    ScrapeResult,
)
from flows.window import window_ending_at

SLOT = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
WINDOW = window_ending_at(SLOT, 24)
SCRAPE = ScrapeResult(
    source="cluster", files=[], namespace="dealershipai", deployment="orchestrator"
)


def _scan(**overrides) -> FilterResult:
    values = dict(
        rule="literal",
        include=["POST https", "completions"],
        lines_read=1200,
        lines_in_window=1100,
        matches=3,
        selected=[
            CallRecord(
                timestamp=datetime(2026, 3, 10, 9, 1, tzinfo=UTC),
                pod="orchestrator-1",
                container="orchestrator",
                line="HTTP Request: POST https://api.openai.com/v1/chat/completions "
                '"HTTP/1.1 503 Service Unavailable"',
                status=503,
                repeat=2,
            ),
        ],
        statistics=CallStatistics(
            total=3, by_status={"200": 1, "503": 2}, errors=2, error_rate=2 / 3
        ),
        coverage=[
            ContainerCoverage(
                pod="orchestrator-1",
                container="orchestrator",
                earliest=datetime(2026, 3, 9, 13, 0, 5, tzinfo=UTC),
                latest=datetime(2026, 3, 10, 12, 59, tzinfo=UTC),
            )
        ],
    )
    values.update(overrides)
    return FilterResult(**values)


def _build(scan: FilterResult | None = None):
    return build_assist_request(
        scrape=SCRAPE,
        scan=scan or _scan(),
        window=WINDOW,
        tenant=TenantContext(),
        doctrine=Doctrine(),
    )


def test_session_id_is_stable_per_deployment_and_window():
    first = _build().session_id
    rerun = _build().session_id

    assert first == rerun == session_id_for("dealershipai/orchestrator", WINDOW)
    assert first != session_id_for("dealershipai/other", WINDOW)
    assert first != session_id_for(
        "dealershipai/orchestrator", window_ending_at(SLOT, 12)
    )


def test_request_declares_the_five_tools_and_the_answer_schema():
    request = _build()

    assert [tool.name for tool in request.tools] == [
        "open_pulse_detail",
        "queue_refresh",
        "site_inject",
        "auto_fix",
        "open_incident",
    ]
    mutating = {tool.name for tool in request.tools if tool.mutating}
    assert mutating == {"site_inject", "auto_fix"}
    incident = next(t for t in request.tools if t.name == "open_incident")
    assert incident.input_schema["required"] == ["title", "severity", "description"]
    assert request.output_schema == AssistAnswer.model_json_schema()
    assert request.doctrine.approval_required_for == ["auto_fix", "site_inject"]


def test_user_message_carries_window_counts_and_selected_lines():
    request = _build()
    system, user = request.messages

    assert system.role == "system" and "orchestrator" in system.content
    assert user.role == "user"
    lines = user.content.splitlines()
    assert lines[0] == "Window: 2026-03-09T13:00:00Z to 2026-03-10T13:00:00Z (24 h)."
    assert "Lines read: 1200; in the window: 1100." in lines
    assert "By status: 200: 1, 503: 2." in lines
    assert "Errors: 2 (66.7%)." in lines
    assert lines[-1] == (
        '1. [orchestrator-1/orchestrator] "HTTP Request: POST https://api.openai.com/'
        'v1/chat/completions \\"HTTP/1.1 503 Service Unavailable\\"" (x2)'
    )


def test_incomplete_coverage_is_said_with_the_time_logs_begin():
    late = ContainerCoverage(
        pod="orchestrator-2",
        container="orchestrator",
        earliest=datetime(2026, 3, 10, 2, 30, tzinfo=UTC),
        complete=False,
    )
    request = _build(_scan(coverage=[late]))

    assert request.context.coverage_complete is False
    assert request.context.coverage_note == (
        "incomplete: logs begin after 2026-03-09T13:00:00Z for "
        "orchestrator-2/orchestrator from 2026-03-10T02:30:00Z."
    )
    assert f"Coverage: {request.context.coverage_note}" in request.messages[1].content


def test_no_calls_is_said_plainly_and_the_request_is_valid_json():
    request = _build(_scan(matches=0, selected=[], statistics=CallStatistics()))

    assert request.messages[1].content.endswith(
        "No completions call was found in the window."
    )
    body = json.loads(request.model_dump_json())
    assert body["context"]["matches"] == 0
    assert body["context"]["window"]["end"] == "2026-03-10T13:00:00Z"


def test_files_get_a_session_per_content_not_one_for_all_files():
    files = ScrapeResult(source="files", files=[])

    def session(scan: FilterResult) -> str:
        return build_assist_request(
            scrape=files,
            scan=scan,
            window=None,
            tenant=TenantContext(),
            doctrine=Doctrine(),
        ).session_id

    assert session(_scan()) == session(_scan())
    assert session(_scan()) != session(_scan(lines_read=7))
