"""Reading log files: formats, blocks, split lines, text cleaning and timestamps."""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.errors import LogFileError
from flows.logfiles import MAX_LINE_BYTES, Layout, detect_layout, read_blocks
from flows.logtext import strip_ansi
from flows.matching import scan_logs
from flows.records import FilterResult, LogFile

T0 = datetime(2026, 3, 10, 8, tzinfo=UTC)
JSON_500 = (
    '{"msg": "HTTP Request: POST https:\\/\\/h\\/v1\\/chat\\/completions '
    '\\"HTTP/1.1 500 \\""}'
)
JSON_429 = (
    '{"msg": "HTTP Request: POST https://h/v1/chat/completions \\"HTTP/2 429 \\""}'
)


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def httpx(status: str = "200 OK") -> str:
    url = "https://api.openai.com/v1/chat/completions"
    return f'INFO httpx HTTP Request: POST {url} "HTTP/1.1 {status}"'


def write(tmp_path: Path, text: str | bytes, name: str = "pod.log") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def counts(result: FilterResult) -> tuple[object, ...]:
    return (
        result.lines_read,
        result.lines_in_window,
        result.matches,
        result.statistics,
        [
            (c.pod, c.lines_read, c.lines_in_window, c.earliest, c.latest)
            for c in result.coverage
        ],
    )


@pytest.mark.parametrize(
    ("first_line", "layout"),
    [
        ("2026-03-10T08:00:00.1Z stdout F hello", Layout.CRI),
        ("2026-03-10T08:00:00.123456789Z hello", Layout.TIMESTAMPS),
        ("[pod/web-1/app] hello", Layout.PREFIX),
        ("[pod/web-1/app] 2026-03-10T08:00:00Z hello", Layout.PREFIX_TIMESTAMPS),
        ("2026-03-10 08:00:00,001 INFO hello", Layout.PLAIN),
        ("\x1b[32m2026-03-10T08:00:00Z\x1b[0m hello", Layout.TIMESTAMPS),
    ],
)
def test_layout_is_detected_from_the_first_lines(
    first_line: str, layout: Layout
) -> None:
    head = (first_line + "\n") * 3

    assert detect_layout(LogFile(path=Path("x")), head.encode()) is layout


def test_a_declared_format_wins_over_detection() -> None:
    head = b"2026-03-10T08:00:00Z hello\n"

    assert detect_layout(LogFile(path=Path("x"), format="plain"), head) is Layout.PLAIN


@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_blocks_hold_whole_lines_whatever_their_size(
    tmp_path: Path, block_size: int
) -> None:
    text = b"one\ntwo two\n\nthree three three\nno newline at the end"
    path = write(tmp_path, text)

    blocks = [chunk[:limit] for chunk, limit in read_blocks(path, block_size)]

    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == text + b"\n"


def test_a_line_longer_than_the_limit_is_cut_and_counted_once(tmp_path: Path) -> None:
    text = b"x" * (MAX_LINE_BYTES + 10) + b"\nafter\n"
    path = write(tmp_path, text)

    blocks = b"".join(chunk[:limit] for chunk, limit in read_blocks(path, 4096))

    assert blocks.count(b"\n") == 2
    assert blocks.endswith(b"\nafter\n")


def test_a_missing_file_raises_a_log_file_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogFileError, match=r"missing\.log"):
        scan_logs([LogFile(path=tmp_path / "missing.log")])


def test_cri_partial_records_join_only_within_their_stream(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{stamp(0)} stdout P INFO HTTP Request: POST https://api.openai.com/v1/\n"
        f"{stamp(1)} stderr F POST https between, no call\n"
        f'{stamp(2)} stdout F chat/completions "HTTP/1.1 503 Service Unavailable"\n',
    )

    result = scan_logs([LogFile(path=path)])

    assert (result.lines_read, result.matches) == (2, 1)
    assert result.selected[0].status == 503
    assert result.selected[0].timestamp == T0


def test_a_16_kib_fragment_with_another_timestamp_is_not_joined(tmp_path: Path) -> None:
    fragment = "a" * 16384
    path = write(
        tmp_path,
        f"{stamp(0)} {fragment}\n{stamp(1)} completions POST https\n",
    )

    result = scan_logs([LogFile(path=path)])

    assert (result.lines_read, result.matches) == (2, 1)


def test_a_long_matched_line_is_shown_truncated_with_a_marker(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"{stamp(0)} {httpx('500 Internal Server Error')} {'z' * 5000}\n"
    )

    result = scan_logs([LogFile(path=path)])

    line = result.selected[0].line
    assert len(line) < 2100
    assert "characters truncated]" in line
    assert result.selected[0].status == 500


def test_lines_without_a_timestamp_take_the_one_before(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orphan line with POST https completions\n"
        "2026-03-10 07:00:00,000 before the window\n"
        "  traceback line POST https completions\n"
        "2026-03-10 09:00:00,000 inside\n"
        "  traceback line POST https completions\n",
    )

    result = scan_logs([LogFile(path=path)], start=T0, end=T0 + timedelta(hours=2))

    assert (result.lines_read, result.lines_in_window, result.matches) == (5, 3, 2)
    assert result.selected[0].timestamp == T0 + timedelta(hours=1)
    assert any(
        "1 lines without any timestamp" in warning for warning in result.warnings
    )


def clean_log(seconds: list[int], kinds: list[int]) -> bytes:
    """A well-formed `--timestamps` log in time order, with every kind of line."""
    lines = []
    for offset, kind in zip(sorted(seconds), kinds, strict=False):
        when = stamp(offset)
        if kind == 0:
            lines.append(f"{when} {httpx('200 OK')}")
        elif kind == 1:
            lines.append(f"{when} {httpx('429 Too Many Requests')}")
        elif kind == 2:
            lines.append(f"{when} {JSON_500}")
        elif kind == 3:
            lines.append(
                f"{when} \x1b[1mPOST\x1b[0m https://h/v1/chat/\x1b[35mcompletions"
            )
        elif kind == 4:
            head = "HTTP Request: POST https://h/v1/chat/".ljust(16384, "x")
            lines.append(f"{when} {head}")
            lines.append(f'{when} completions "HTTP/1.1 503 Service Unavailable"')
        else:
            lines.append(f"{when} INFO worker job={offset} done")
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seconds=st.lists(st.integers(0, 7200), min_size=1, max_size=40),
    kinds=st.lists(st.integers(0, 7), min_size=40, max_size=40),
    block_sizes=st.lists(st.integers(1, 40000), min_size=2, max_size=2),
    bounded=st.booleans(),
)
def test_block_size_never_changes_the_counts(
    seconds: list[int], kinds: list[int], block_sizes: list[int], bounded: bool
) -> None:
    window = {"start": T0 + timedelta(minutes=30), "end": T0 + timedelta(minutes=90)}
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), clean_log(seconds, kinds))
        results = [
            scan_logs(
                [LogFile(path=path)], block_size=size, **(window if bounded else {})
            )
            for size in [*block_sizes, 1 << 20]
        ]

    assert counts(results[0]) == counts(results[1]) == counts(results[2])
    assert results[0].selected == results[2].selected


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    fmt=st.sampled_from(["auto", "plain", "timestamps", "prefix", "cri"]),
    block_size=st.integers(1, 5000),
    rule=st.sampled_from(["literal", "extended"]),
)
def test_arbitrary_bytes_never_raise(
    data: bytes, fmt: str, block_size: int, rule: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), data)
        result = scan_logs(
            [LogFile(path=path, format=fmt)],  # type: ignore[arg-type]
            block_size=block_size,
            rule=rule,  # type: ignore[arg-type]
            start=T0,
            end=T0 + timedelta(hours=1),
        )

    assert result.lines_read >= result.lines_in_window >= 0
    assert result.matches == result.statistics.total
    result.model_dump_json()


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from(
            [
                httpx(),
                httpx("503 Service Unavailable"),
                "Retrying request to /chat/completions in 0.5 seconds",
                JSON_429,
                "\x1b[31mPOST\x1b[0m https://h/v1/completions",
                "plain noise",
            ]
        ),
        max_size=30,
    ),
    block_size=st.integers(1, 600),
)
def test_plain_files_count_the_same_in_any_block_size(
    lines: list[str], block_size: int
) -> None:
    text = "".join(
        f"2026-03-10 08:00:{index:02d},000 {line}\n" for index, line in enumerate(lines)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), text)
        small = scan_logs([LogFile(path=path)], block_size=block_size)
        large = scan_logs([LogFile(path=path)])

    assert counts(small) == counts(large)
    assert small.selected == large.selected
    assert small.matches == sum(
        1
        for line in lines
        if "POST https" in strip_ansi(line.encode()).decode() and "Retrying" not in line
    )


def test_a_pipe_is_read_like_the_same_file(tmp_path: Path) -> None:
    text = "".join(f"{stamp(i)} {httpx('429 Too Many Requests')}\n" for i in range(50))
    file_path = write(tmp_path, text)
    pipe_path = tmp_path / "pipe"
    os.mkfifo(pipe_path)
    writer = threading.Thread(target=pipe_path.write_text, args=(text,))
    writer.start()

    from_pipe = scan_logs([LogFile(path=pipe_path)], block_size=100)
    writer.join()
    from_file = scan_logs([LogFile(path=file_path)])

    assert counts(from_pipe) == counts(from_file)
    assert from_pipe.matches == 50
