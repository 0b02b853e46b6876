"""The real-world log cases of tests/cases/INDEX.md, read as files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.matching import scan_logs
from flows.records import FilterResult, LogFile

WINDOW_START = datetime(2026, 3, 9, 13, tzinfo=UTC)
WINDOW_END = datetime(2026, 3, 10, 13, tzinfo=UTC)


def scan(path: Path, **options: object) -> FilterResult:
    return scan_logs([LogFile(path=path)], **options)  # type: ignore[arg-type]


def content_after_comments(source: Path, target: Path) -> Path:
    """The lines of a case file that follow its `#` explanation lines."""
    lines = source.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(line for line in lines if not line.startswith(b"#")))
    return target


def statuses(result: FilterResult) -> dict[str, int]:
    return result.statistics.by_status


@pytest.mark.parametrize("block_size", [64, 1 << 20])
def test_01_cri_partial_records_are_joined_per_stream(
    cases_dir: Path, block_size: int
) -> None:
    result = scan(cases_dir / "01-cri-partial-lines.log", block_size=block_size)

    assert result.matches == 3
    assert result.lines_read == 5  # 8 records: 2+4 and 6+7+8 are one line each
    assert statuses(result) == {"200": 2, "429": 1}
    too_many = [call for call in result.selected if call.status == 429]
    assert too_many[0].reason == "Too Many Requests"
    assert too_many[0].timestamp == datetime(2026, 3, 10, 2, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize("block_size", [100, 8192, 1 << 20])
def test_02_sixteen_kib_split_is_rejoined(cases_dir: Path, block_size: int) -> None:
    result = scan(cases_dir / "02-timestamps-16k-split.log", block_size=block_size)

    assert result.matches == 2
    assert result.lines_read == 3
    assert statuses(result) == {"200": 2}
    assert result.coverage[0].earliest == datetime(
        2026, 3, 10, 2, 59, 59, 500000, tzinfo=UTC
    )
    assert all(len(call.line) <= 2000 for call in result.selected)


def test_03_every_pod_of_the_prefix_output_is_tagged(
    cases_dir: Path, tmp_path: Path
) -> None:
    path = content_after_comments(cases_dir / "03-deploy-one-pod.log", tmp_path / "03")

    result = scan(path)

    assert result.matches == 6
    assert result.lines_read == 8
    assert result.statistics.by_pod == {
        "orchestrator-6c9f7d5b8-q2xkz": 1,
        "orchestrator-6c9f7d5b8-w7m4p": 3,
        "orchestrator-6c9f7d5b8-zz9rt": 2,
    }
    assert [(c.pod, c.container, c.lines_read) for c in result.coverage] == [
        ("orchestrator-6c9f7d5b8-q2xkz", "orchestrator", 2),
        ("orchestrator-6c9f7d5b8-w7m4p", "orchestrator", 3),
        ("orchestrator-6c9f7d5b8-zz9rt", "orchestrator", 3),
    ]
    assert {call.pod for call in result.selected} == set(result.statistics.by_pod)


def test_05_sidecar_lines_are_kept_apart_by_container(
    cases_dir: Path, tmp_path: Path
) -> None:
    path = content_after_comments(
        cases_dir / "05-multi-container-sidecar.log", tmp_path / "05"
    )

    literal = scan(path)
    extended = scan(path, rule="extended")

    assert literal.matches == 2
    assert {call.container for call in literal.selected} == {"orchestrator"}
    assert [(c.container, c.lines_read) for c in literal.coverage] == [
        ("istio-proxy", 2),
        ("orchestrator", 2),
    ]
    # The envoy access line is a completions call too, under the extended rule.
    assert extended.matches == 3
    envoy = [call for call in extended.selected if call.container == "istio-proxy"]
    assert (envoy[0].host, envoy[0].path, envoy[0].latency_ms) == (
        "api.openai.com",
        "/v1/chat/completions",
        2870.0,
    )


def test_06_previous_instance_lines_count_in_the_window(
    cases_dir: Path, tmp_path: Path
) -> None:
    sections: list[list[bytes]] = []
    for line in (cases_dir / "06-previous-container.log").read_bytes().splitlines():
        if line.startswith(b"# ---"):
            sections.append([])
        elif not line.startswith(b"#") and sections:
            sections[-1].append(line + b"\n")
    previous, current = tmp_path / "previous.log", tmp_path / "current.log"
    previous.write_bytes(b"".join(sections[0]))
    current.write_bytes(b"".join(sections[1]))
    pod = "orchestrator-6c9f7d5b8-q2xkz"

    result = scan_logs(
        [
            LogFile(path=previous, pod=pod, container="orchestrator", previous=True),
            LogFile(path=current, pod=pod, container="orchestrator"),
        ],
        start=WINDOW_START,
        end=WINDOW_END,
        restarts={f"{pod}/orchestrator": 1},
    )

    assert result.matches == 3
    assert result.lines_in_window == 5
    assert [(c.previous, c.restarts, c.lines_read) for c in result.coverage] == [
        (False, 1, 2),
        (True, 1, 3),
    ]
    # The previous instance reaches back to 22:10, long after the window start.
    assert [c.complete for c in result.coverage] == [False, False]
    assert result.first_timestamp == datetime(2026, 3, 9, 22, 10, tzinfo=UTC)


def test_06_the_whole_output_as_one_file_tolerates_the_error_line(
    cases_dir: Path, tmp_path: Path
) -> None:
    path = content_after_comments(
        cases_dir / "06-previous-container.log", tmp_path / "06"
    )

    result = scan(path, start=WINDOW_START, end=WINDOW_END)

    assert result.matches == 3
    assert result.lines_read == 6


def test_08_bytes_that_are_not_utf8_are_replaced(cases_dir: Path) -> None:
    result = scan(cases_dir / "08-non-utf8.log")

    assert result.matches == 3
    assert result.lines_read == 6
    assert statuses(result) == {"200": 2, "500": 1}
    payload = result.model_dump_json().encode("utf-8")
    assert json.loads(payload)["matches"] == 3
    assert any("\ufffd" in call.line for call in result.selected)


def test_09_ansi_colours_are_stripped_before_matching(cases_dir: Path) -> None:
    result = scan(cases_dir / "09-ansi-colour.log")

    assert result.matches == 3
    assert statuses(result) == {"200": 2, "500": 1}
    assert all("\x1b" not in call.line for call in result.selected)
    assert result.selected[0].status == 500


def test_12_httpx_variants_under_both_rules(cases_dir: Path) -> None:
    path = cases_dir / "12-httpx-line-variants.log"

    literal = scan(path)
    extended = scan(path, rule="extended")

    assert literal.matches == 10
    assert literal.statistics.by_status == {
        "200": 6,
        "429": 1,
        "500": 1,
        "529": 1,
        "unknown": 1,
    }
    assert [(c.status, c.repeat) for c in literal.selected] == [
        (529, 1),
        (500, 1),
        (429, 1),
        (200, 3),
        (None, 1),
    ]
    assert literal.selected[0].reason == ""
    assert "user asked" in literal.selected[4].line
    # The anchored rule drops the user text and keeps the in-cluster http call.
    assert extended.matches == 10
    assert "unknown" not in extended.statistics.by_status
    assert extended.statistics.by_host["vllm.ml.svc.cluster.local"] == 1
    assert extended.statistics.by_path["/v1/completions"] == 1


def test_12_the_top_calls_do_not_depend_on_line_order(
    cases_dir: Path, tmp_path: Path
) -> None:
    source = cases_dir / "12-httpx-line-variants.log"
    reversed_file = tmp_path / "reversed.log"
    reversed_file.write_bytes(b"".join(reversed(source.read_bytes().splitlines(True))))

    forward, backward = scan(source), scan(reversed_file)

    assert forward.selected == backward.selected
    assert forward.statistics == backward.statistics


def test_13_retry_lines_never_match_and_statuses_stay_apart(cases_dir: Path) -> None:
    result = scan(cases_dir / "13-openai-retry-lines.log")

    assert result.matches == 5
    assert statuses(result) == {"200": 2, "429": 2, "503": 1}
    assert [(c.status, c.repeat) for c in result.selected] == [
        (503, 1),
        (429, 2),
        (200, 2),
    ]
    assert all("Retrying" not in call.line for call in result.selected)


def test_16_json_lines_are_matched_and_shown_by_their_message(cases_dir: Path) -> None:
    result = scan(cases_dir / "16-json-structured-logger.log")

    assert result.matches == 4
    assert statuses(result) == {"200": 3, "429": 1}
    for call in result.selected:
        assert call.line.startswith("HTTP Request: POST https://api.openai.com/")
        assert "\\/" not in call.line and "\\u0022" not in call.line
        assert json.loads(json.dumps(call.line)) == call.line
    assert result.last_timestamp == datetime(2026, 3, 10, 12, 0, 3, tzinfo=UTC)
