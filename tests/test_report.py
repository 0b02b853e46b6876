from flows.assist import Action, AssistAnswer
from flows.report import actions_rows, artifact_keys, render_report
from tests.test_build import _build, _scan

ANSWER = AssistAnswer(
    summary="3 completions calls, 2 failed with 503.",
    error_count=2,
    recommendations=["Add a fallback | provider", "Watch 503s"],
    actions=[
        Action(
            id="act-1",
            intent="Open an incident for 503s",
            confidence=0.8,
            requires_approval=False,
            tool="open_incident",
            input={"title": "503s", "severity": "sev3", "description": "d"},
            preview="Opens a sev3 incident",
        ),
        Action(
            id="act-2",
            intent="Restart the provider client",
            confidence=0.55,
            requires_approval=False,
            tool="auto_fix",
            input={"target": "orchestrator", "fix": "restart"},
            preview="Restarts pods",
        ),
    ],
)


def test_artifact_keys_are_stable_lowercase_and_dashed():
    keys = artifact_keys("cluster", "DealershipAI", "orchestrator_v2")

    assert keys.report == "dealershipai-orchestrator-v2-completions-report"
    assert keys.actions == "dealershipai-orchestrator-v2-completions-actions"
    assert keys.answer == "dealershipai-orchestrator-v2-completions-answer"
    assert artifact_keys("files", None, None).report == "files-completions-report"


def test_report_has_window_counts_answer_and_actions_with_approval_flags():
    report = render_report(_build(), ANSWER, redactions={"email": 2})

    assert "- Window: 2026-03-09T13:00:00Z to 2026-03-10T13:00:00Z" in report
    assert "- Scheduled start (the slot): 2026-03-10T13:00:00Z" in report
    assert "- Lines read: 1200 (1100 in the window)" in report
    assert "- Completions calls (literal rule): 3" in report
    assert "- By status: 200 1, 503 2" in report
    assert "- Redacted before sending: email 2" in report
    assert "Error count: **2**" in report
    # A pipe in a recommendation or cell must not break the table.
    assert "- Add a fallback | provider" in report
    assert (
        "| act-1 | open_incident | Open an incident for 503s | 0.80 | no "
        "| Opens a sev3 incident |" in report
    )
    # auto_fix changes things: doctrine makes it need approval whatever was sent.
    assert (
        "| act-2 | auto_fix | Restart the provider client | 0.55 | **yes** |" in report
    )


def test_selected_lines_are_fenced_even_when_they_contain_backticks():
    scan = _scan()
    scan.selected[0].line = "POST https://x/v1/completions ```odd``` line"
    report = render_report(_build(scan), ANSWER)

    fence_open = report.index("````text\n")
    assert (
        "orchestrator-1/orchestrator: POST https://x/v1/completions"
        in report[fence_open:]
    )
    assert report.rstrip().endswith("````")


def test_actions_rows_hold_every_field_for_the_table_artifact():
    rows = actions_rows(ANSWER)

    assert rows[1] == {
        "id": "act-2",
        "tool": "auto_fix",
        "intent": "Restart the provider client",
        "confidence": 0.55,
        "requires_approval": True,
        "preview": "Restarts pods",
        "input": '{"fix": "restart", "target": "orchestrator"}',
    }


def test_coverage_table_lists_each_container_and_flags_incomplete_logs():
    from datetime import UTC, datetime

    from flows.records import ContainerCoverage

    late = ContainerCoverage(
        pod="orchestrator-2",
        container="orchestrator",
        restarts=1,
        lines_read=40,
        earliest=datetime(2026, 3, 10, 2, 30, tzinfo=UTC),
        latest=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        complete=False,
    )
    report = render_report(_build(_scan(coverage=[late])), ANSWER)

    assert (
        "**Coverage incomplete: logs begin after 2026-03-09T13:00:00Z for "
        "orchestrator-2/orchestrator from 2026-03-10T02:30:00Z.**" in report
    )
    assert (
        "| orchestrator-2 | orchestrator | current | 1 | 40 | 2026-03-10T02:30:00Z "
        "| 2026-03-10T12:00:00Z |" in report
    )
