"""Deciding and counting candidate lines: the fast lane agrees with the general one."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.matching import scan_logs
from flows.records import LogFile

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
