"""The `completions-agent` command: exit codes, one-line errors and printed output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.agent_server import serve_in_background
from flows.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orchestrator-24h.log"
TOKEN = "cli-test-token-4b1d"


def test_scan_prints_counts_coverage_statistics_and_top_n(capsys):
    assert main(["scan", str(SAMPLE), "--top-n", "3"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["lines_read"] == 12135
    assert result["matches"] == 432
    assert result["statistics"]["by_status"] == {
        "200": 382,
        "429": 28,
        "500": 9,
        "503": 13,
    }
    assert len(result["selected"]) == 3
    # Severe first (5xx and 429), identical calls collapsed, then most recent first.
    selected = [(call["status"], call["repeat"]) for call in result["selected"]]
    assert selected == [(503, 6), (429, 10), (500, 1)]
    assert {c["pod"] for c in result["coverage"]} == {
        "orchestrator-7d9c5b8f6c-9wrvn",
        "orchestrator-7d9c5b8f6c-m4hzt",
        "orchestrator-7d9c5b8f6c-x2kqp",
    }


def test_scan_reads_stdin(monkeypatch, capsys):
    lines = (
        b"INFO httpx: HTTP Request: POST https://api.openai.com/v1/chat/completions"
        b' "HTTP/1.1 429 Too Many Requests"\n'
        b"INFO job done\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines)))

    assert main(["scan", "-"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert (result["lines_read"], result["matches"]) == (2, 1)
    assert result["selected"][0]["status"] == 429


def test_a_file_named_twice_is_read_once_with_a_warning(capsys):
    assert main(["scan", str(SAMPLE), str(SAMPLE.parent / "." / SAMPLE.name)]) == 0

    result = json.loads(capsys.readouterr().out)
    assert (result["lines_read"], result["matches"]) == (12135, 432)
    assert result["warnings"][0].endswith(f"is the same file as {SAMPLE}: read once")


def test_a_reader_that_stops_early_is_not_an_error():
    completed = subprocess.run(
        f"'{sys.executable}' -m flows.cli scan '{SAMPLE}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.stdout == "{\n"
    assert completed.stderr == ""


def test_scan_prints_selected_lines_with_secrets_replaced(monkeypatch, capsys):
    line = (
        b"INFO httpx: HTTP Request: POST https://api.openai.com/v1/chat/completions"
        b"?user=ana@example.com&key=sk-abcdefghijklmnopqrstuvwx"
        b' "HTTP/1.1 500 Internal Server Error"\n'
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line)))

    assert main(["scan", "-"]) == 0

    out = capsys.readouterr().out
    assert json.loads(out)["matches"] == 1
    assert "ana@example.com" not in out
    assert "sk-abcdefghijklmnopqrstuvwx" not in out


def test_scan_of_a_missing_file_is_one_line_and_exit_1(capsys):
    assert main(["scan", "/nonexistent/orchestrator.log"]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("completions-agent: error: log file '/nonexistent/")


def test_unknown_command_and_bad_time_are_usage_errors(capsys):
    assert main(["frobnicate"]) == 1
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(SAMPLE), "--since", "last tuesday"])
    assert exit_info.value.code == 2
    assert "is not an ISO 8601 time" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["run", "scan", "serve-agent", "resend", "automations"]
)
def test_every_command_has_help(command):
    completed = subprocess.run(
        [sys.executable, "-m", "flows.cli", command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("usage: completions-agent")


@pytest.mark.usefixtures("prefect_server")
def test_run_prints_the_report(capsys):
    assert main(["run", "--logs", str(SAMPLE)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("# Completions calls in log files")
    assert "- Completions calls (literal rule): 432" in out
    assert "artifact inspect files-completions-report" in out


@pytest.mark.usefixtures("prefect_server")
def test_a_rejected_token_fails_in_one_line_without_the_token(monkeypatch, capsys):
    monkeypatch.setenv("AGENTAPI_TOKEN", "wrong-" + TOKEN)
    with serve_in_background(token=TOKEN) as server:
        code = main(["run", "--logs", str(SAMPLE), "--agent-api-base", server.url])

    captured = capsys.readouterr()
    assert code == 1
    last_line = captured.err.strip().splitlines()[-1]
    assert last_line.startswith("completions-agent: error: ")
    assert "401" in last_line
    # The request was saved before the post: the line says how to send it again.
    assert "To send the saved request again: completions-agent resend --slot " in (
        last_line
    )
    assert "Traceback" not in captured.err
    assert TOKEN not in captured.err + captured.out


@pytest.mark.usefixtures("prefect_server")
def test_dry_run_prints_the_request(capsys):
    assert main(["run", "--logs", str(SAMPLE), "--dry-run", "--top-n", "2"]) == 0

    out = capsys.readouterr().out
    request = json.loads(out[out.index("{") :])
    assert request["context"]["matches"] == 432
    assert len(request["context"]["selected"]) == 2
