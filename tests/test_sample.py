"""The committed sample log: reproducible by its script, counted as its README says."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
SAMPLE = EXAMPLES / "orchestrator-24h.log"
README = EXAMPLES / "README.md"

_ROW = re.compile(r"^\| ([^|]+?) \| (\d+) \|$", re.MULTILINE)
_STATUS = re.compile(r'"HTTP/[0-9.]+ (\d{3})')
_LINE = re.compile(
    r"^\[pod/(orchestrator-[a-z0-9]{10}-[a-z0-9]{5})/orchestrator\] "
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9})Z ."
)


def _table(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in _ROW.findall(text)}


def _readme_counts() -> dict[str, int]:
    text = README.read_text()
    block = text.split("<!-- counts: begin -->")[1].split("<!-- counts: end -->")[0]
    return _table(block)


def _lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


def test_literal_rule_counts_equal_the_readme() -> None:
    lines = _lines()
    matched = [line for line in lines if "POST https" in line and "completions" in line]
    statuses = Counter(m.group(1) for line in matched if (m := _STATUS.search(line)))
    counts = _readme_counts()

    assert counts["lines"] == len(lines)
    assert counts["matches"] == len(matched)
    assert sum(statuses.values()) == len(matched)
    assert {name: n for name, n in counts.items() if name.startswith("status ")} == {
        f"status {status}": n for status, n in statuses.items()
    }
    assert counts["retry lines"] == sum("Retrying request in" in line for line in lines)
    assert sorted(statuses) == ["200", "429", "500", "503"]
    assert 0.01 < len(matched) / len(lines) < 0.06
    assert 5_000 <= len(lines) <= 20_000


def test_the_sample_reads_like_kubectl_logs_prefix_timestamps() -> None:
    window_start = datetime(2026, 3, 9, 13, tzinfo=UTC)
    window_end = datetime(2026, 3, 10, 13, tzinfo=UTC)
    pods: list[str] = []
    previous = ""

    for number, line in enumerate(_lines(), start=1):
        match = _LINE.match(line)
        assert match, f"line {number} is not in kubectl --prefix --timestamps form"
        pod, stamp = match.groups()
        # kubectl prints one pod after the other, each in time order.
        if not pods or pods[-1] != pod:
            assert pod not in pods, f"line {number}: pod {pod} comes back"
            pods.append(pod)
            previous = ""
        assert previous <= stamp, f"line {number} goes back in time"
        previous = stamp
        moment = datetime.fromisoformat(stamp[:26]).replace(tzinfo=UTC)
        assert window_start <= moment < window_end

    assert pods == sorted(pods)
    assert len(pods) == 3
    assert SAMPLE.stat().st_size < 3_000_000


def test_call_and_retry_lines_are_the_libraries_own() -> None:
    lines = _lines()
    matched = [line for line in lines if "POST https" in line and "completions" in line]
    retries = [line for line in lines if "Retrying request" in line]

    assert all(
        " INFO httpx2: HTTP Request: POST https://api.openai.com/v1/" in line
        for line in matched
    )
    assert all(
        re.search(
            r" INFO openai\._base_client: Retrying request in "
            r"\d+\.\d{6} seconds \(retry [12] of 2\)$",
            line,
        )
        for line in retries
    )
    assert not any("127.0.0.1" in line for line in lines)


@pytest.mark.slow
def test_regenerating_reproduces_the_committed_file(tmp_path) -> None:
    pytest.importorskip("openai", reason="needs the `examples` dependency group")
    output = tmp_path / "sample.log"

    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "generate_sample.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    regenerated = output.read_bytes().splitlines()
    committed = SAMPLE.read_bytes().splitlines()
    first_difference = next(
        (
            n
            for n, pair in enumerate(zip(regenerated, committed, strict=False), 1)
            if pair[0] != pair[1]
        ),
        None,
    )
    assert first_difference is None, f"line {first_difference} differs"
    assert len(regenerated) == len(committed)
    assert output.read_bytes() == SAMPLE.read_bytes()
    assert _table(result.stdout) == _readme_counts()
