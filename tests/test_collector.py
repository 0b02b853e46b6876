"""Deciding and counting candidate lines: the fast lane agrees with the general one."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from flows.logtext import shown_text
from flows.matching import scan_logs
from flows.records import LogFile
from flows.rules import DEFAULT_INCLUDE, Matcher

T0 = datetime(2026, 3, 10, 8, tzinfo=UTC)
URL = "https://api.openai.com/v1/chat/completions"
LINES = [
    f'INFO httpx HTTP Request: POST {URL} "HTTP/1.1 200 OK"',
    f'INFO httpx HTTP Request: POST {URL} "HTTP/1.1 429 Too Many Requests"',
    f'INFO httpx HTTP Request: POST {URL}?api-key=s3cr3t "HTTP/2 503 "',
    f'{{"event": "HTTP Request: POST {URL} \\"HTTP/1.1 500 Internal Server Error\\""}}',
    f'\x1b[1mINFO\x1b[0m HTTP Request: \x1b[33mPOST\x1b[0m {URL} "HTTP/1.1 200 OK"',
    "INFO openai._base_client Retrying request to /chat/completions in 0.4 seconds",
    "INFO user asked: POST https://example.org and explain completions",
    f'INFO HTTP Request: POST {URL} "HTTP/1.1 200 OK" Retrying request in 1 seconds',
    '10.0.0.1 - - [10/Mar/2026:08:00:00 +0000] "POST /v1/chat/completions HTTP/2" 200',
    "INFO worker job done",
]


def write_both(folder: Path, picks: list[int], gaps: list[int]) -> tuple[Path, Path]:
    """The same lines as one container's `--timestamps` log and as `--prefix` output."""
    moment, plain, prefixed = T0, [], []
    for pick, gap in zip(picks, gaps, strict=False):
        moment += timedelta(minutes=gap)
        line = f"{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {LINES[pick]}\n"
        plain.append(line)
        prefixed.append(f"[pod/web-1/app] {line}")
    fast, general = folder / "fast.log", folder / "general.log"
    fast.write_text("".join(plain))
    general.write_text("".join(prefixed))
    return fast, general


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(LINES) - 1), min_size=1, max_size=60),
    gaps=st.lists(st.integers(0, 90), min_size=60, max_size=60),
    rule=st.sampled_from(["literal", "extended"]),
    block_size=st.integers(200, 5000),
)
def test_both_lanes_find_count_and_rank_the_same_calls(
    picks: list[int], gaps: list[int], rule: str, block_size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        fast, general = write_both(Path(folder), picks, gaps)
        options = {"rule": rule, "block_size": block_size, "top_n": 4}
        by_block = scan_logs(
            [LogFile(path=fast, pod="web-1", container="app")],
            **options,  # type: ignore[arg-type]
        )
        by_line = scan_logs([LogFile(path=general)], **options)  # type: ignore[arg-type]

    assert by_block.matches == by_line.matches
    assert by_block.statistics == by_line.statistics
    assert by_block.selected == by_line.selected


def test_query_secrets_never_reach_the_selected_lines(tmp_path: Path) -> None:
    fast, _ = write_both(tmp_path, [2, 2, 0], [0, 1, 2])

    result = scan_logs([LogFile(path=fast)])

    assert result.matches == 3
    assert "s3cr3t" not in result.model_dump_json()
    assert result.selected[0].path == "/v1/chat/completions?api-key=[redacted]"
    assert result.selected[0].repeat == 2


RECORD_MESSAGES = [
    f'HTTP Request: POST {URL} "HTTP/1.1 200 OK"',
    f'HTTP Request: POST {URL} "HTTP/1.1 429 Too Many Requests"',
    "Retrying request to /chat/completions in 0.4 seconds",
    "POST https://example.org/completions answered",
    "job done",
    "POST to https://example.org/completions",
]
RECORD_FIELDS = [
    {},
    {"method": "POST", "url": URL, "status": 503},
    {"method": "GET", "url": URL, "status": 200},
]


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from(["timestamp", "time", "ts", "asctime", "level"]),
            # A time holding the patterns matters when the record is shown whole.
            st.sampled_from(["2026-03-10 08:00:00,123", "POST https completions"])
            | st.text(
                st.characters(codec="utf-8", exclude_characters='"\\'), max_size=8
            ),
            st.sampled_from(["message", "msg", "event", "detail"]),
            st.integers(0, len(RECORD_MESSAGES) - 1),
            st.integers(0, len(RECORD_FIELDS) - 1),
        ),
        min_size=1,
        max_size=40,
    ),
    rule=st.sampled_from(["literal", "extended"]),
)
# Shown whole (no message member), the first record matches by its time alone.
@example(
    records=[
        ("timestamp", "POST https completions", "detail", 5, 0),
        ("timestamp", "08:00", "detail", 5, 0),
    ],
    rule="literal",
)
def test_json_records_that_differ_only_in_their_time_are_judged_one_by_one_alike(
    records: list[tuple[str, str, str, int, int]], rule: str
) -> None:
    lines = []
    for time_key, moment, message_key, message, extra in records:
        record = {time_key: moment, message_key: RECORD_MESSAGES[message]}
        lines.append(json.dumps({**record, **RECORD_FIELDS[extra]}, ensure_ascii=False))
    matcher = Matcher(DEFAULT_INCLUDE, rule)  # type: ignore[arg-type]
    expected = sum(matcher.matches(*shown_text(line)) for line in lines)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.log"
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        result = scan_logs([LogFile(path=path)], rule=rule)  # type: ignore[arg-type]

    assert result.matches == expected
