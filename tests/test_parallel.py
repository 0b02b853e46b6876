"""Scanning one file with several processes gives what one process finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import flows.parallel
from flows.logfiles import Layout
from flows.matching import scan_logs
from flows.parallel import plan_parts
from flows.records import LogFile

T0 = datetime(2026, 3, 10, 8, tzinfo=UTC)
URL = "https://api.openai.com/v1/chat/completions"


def timestamps_log(lines: int) -> str:
    out = []
    for index in range(lines):
        when = (T0 + timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if index % 7 == 0:
            status = ("200 OK", "429 Too Many Requests", "503 Service Unavailable")[
                index % 3
            ]
            out.append(
                f'{when} INFO httpx HTTP Request: POST {URL} "HTTP/1.1 {status}"'
            )
        elif index % 50 == 25:
            head = "HTTP Request: POST https://h/v1/chat/".ljust(16384, "x")
            out.append(f"{when} {head}")
            out.append(f'{when} completions "HTTP/1.1 500 Internal Server Error"')
        elif index % 11 == 0:
            out.append(
                f'{when} {{"event": "HTTP Request: POST {URL} \\"HTTP/2 200 OK\\""}}'
            )
        else:
            out.append(f"{when} INFO worker job={index} done")
    return "\n".join(out) + "\n"


def plain_log(lines: int) -> str:
    out = []
    for index in range(lines):
        when = (T0 + timedelta(seconds=index)).strftime("%Y-%m-%d %H:%M:%S,000")
        if index % 5 == 0:
            out.append(f"{when} ERROR worker failed")
            out.append(f'  caused by HTTP Request: POST {URL} "HTTP/1.1 500 "')
        else:
            out.append(f"{when} INFO worker job={index} done")
    return "\n".join(out) + "\n"


@pytest.fixture(autouse=True)
def small_files_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.parallel, "PARALLEL_MIN_BYTES", 0)


@pytest.mark.parametrize("make", [timestamps_log, plain_log])
@pytest.mark.parametrize("workers", [2, 3, 5])
def test_parts_give_the_same_result_as_one_process(
    tmp_path: Path, make: object, workers: int
) -> None:
    path = tmp_path / "pod.log"
    path.write_text(make(600))  # type: ignore[operator]
    log_file = LogFile(path=path, pod="web-1", container="app")
    window = {"start": T0 + timedelta(seconds=100), "end": T0 + timedelta(seconds=450)}

    one = scan_logs([log_file], block_size=4096, **window)
    many = scan_logs([log_file], block_size=4096, workers=workers, **window)

    assert len(plan_parts(log_file, workers) or []) == workers
    assert many == one
    assert one.matches > 0 and one.lines_in_window < one.lines_read


def test_a_part_never_starts_inside_a_16_kib_split_line(tmp_path: Path) -> None:
    path = tmp_path / "pod.log"
    path.write_text(timestamps_log(60))
    log_file = LogFile(path=path)
    data = path.read_bytes()

    for workers in range(2, 12):
        for part in plan_parts(log_file, workers) or []:
            previous = data[: part.start].rsplit(b"\n", 2)
            assert part.layout is Layout.TIMESTAMPS
            if part.start:
                fragment = previous[-2].split(b" ", 1)[1]
                assert len(fragment) != 16384


def test_other_formats_are_read_by_one_process(tmp_path: Path) -> None:
    path = tmp_path / "all.log"
    path.write_text("[pod/web-1/app] hello\n" * 100)

    assert plan_parts(LogFile(path=path), 4) is None
    assert plan_parts(LogFile(path=path), 1) is None
