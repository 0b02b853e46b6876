"""Benchmark `completions-agent scan` against `grep -F … | grep -F …` on a big log.

    uv run python bench/scan_bench.py              # 1 GB, 3 runs each
    uv run python bench/scan_bench.py --size 100M  # a quick run

It generates (once, then reuses) a `--timestamps` log in `bench/data/` whose lines
mix the formats real pods write (Python logging, JSON loggers, coloured console
output, access logs, SDK retry lines, tracebacks) with a few percent of
completions calls (plain httpx lines, JSON messages and coloured lines), runs
both commands side by side, and prints the median
throughput ratio and each one's peak memory, plus the scan's peak memory on a
10 MB file of the same kind (streaming means the two peaks are about the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent
URL = "https://api.openai.com/v1/chat/completions"
STATUSES = (
    ["200 OK"] * 85
    + ["429 Too Many Requests"] * 8
    + ["500 Internal Server Error"] * 4
    + ["503 Service Unavailable"] * 3
)

# Runs a command and prints its wall time, CPU time and the peak memory of its
# largest process (ru_maxrss of the waited-for children), as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_kib": usage.ru_maxrss, "returncode": done.returncode}))
"""


def noise(rng: random.Random, app_time: str) -> str:
    """One line that is not a completions call (some contain one of the words)."""
    pick = rng.random()
    if pick < 0.40:
        job = rng.randrange(100000)
        return f"{app_time} INFO orchestrator.jobs job={job} finished in {job % 997} ms"
    if pick < 0.65:
        return json.dumps(
            {
                "timestamp": app_time,
                "level": "info",
                "logger": "orchestrator.worker",
                "event": "batch processed",
                "batch": rng.randrange(10**6),
                "tenant": rng.choice(["acme", "globex", "initech"]),
            }
        )
    if pick < 0.80:
        port = rng.randrange(30000, 60000)
        request = '"GET /healthz HTTP/1.1" 200 OK'
        return f"\x1b[32mINFO\x1b[0m:     10.42.0.7:{port} - {request}"
    if pick < 0.88:
        return (
            f"{app_time} INFO httpx HTTP Request: POST "
            'https://api.openai.com/v1/embeddings "HTTP/1.1 200 OK"'
        )
    if pick < 0.93:
        return '  File "/app/orchestrator/worker.py", line 212, in run_batch'
    path = "/v1/chat/completions" if pick > 0.995 else f"/api/v1/items/{pick:.6f}"
    return (
        f'10.42.0.9 - - [10/Mar/2026:08:00:00 +0000] "POST {path} HTTP/1.1" '
        f'200 {rng.randrange(100, 9000)} "-" "OpenAI/Python 1.66.3"'
    )


def retry(rng: random.Random, app_time: str) -> str:
    """The SDK's line after a 429 or 5xx: it announces a retry, it is not a call."""
    return (
        f"{app_time} INFO openai._base_client Retrying request to /chat/completions "
        f"in 0.{rng.randrange(100, 999)} seconds"
    )


def call(rng: random.Random, app_time: str) -> str:
    """One completions call line, in one of the forms the scan must find."""
    status = rng.choice(STATUSES)
    pick = rng.random()
    if pick < 0.75:
        return f'{app_time} INFO httpx HTTP Request: POST {URL} "HTTP/1.1 {status}"'
    if pick < 0.90:
        message = f'HTTP Request: POST {URL} "HTTP/1.1 {status}"'
        return json.dumps({"timestamp": app_time, "logger": "httpx", "event": message})
    return (
        f"\x1b[2m{app_time}\x1b[0m INFO HTTP Request: \x1b[1;33mPOST\x1b[0m "
        f'\x1b[4;94m{URL}\x1b[0m "HTTP/1.1 {status}"'
    )


def generate(path: Path, size: int, match_percent: float, seed: int = 7) -> int:
    """Write the log (24 hours of `--timestamps` lines); return how many are calls."""
    rng = random.Random(seed)
    lines_needed = max(1, size // 130)
    step = 86400 / lines_needed
    calls = written = index = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as handle:
        while written < size:
            chunk = []
            for _ in range(20000):
                seconds = index * step
                index += 1
                day, rest = divmod(int(seconds), 86400)
                hour, rest = divmod(rest, 3600)
                minute, second = divmod(rest, 60)
                nanos = int((seconds % 1) * 1e9)
                clock = f"{hour:02d}:{minute:02d}:{second:02d}"
                date = f"2026-03-{9 + day:02d}"
                app_time = f"{date} {clock},{nanos // 1000000:03d}"
                stamp = f"{date}T{clock}.{nanos:09d}Z"
                if rng.random() * 100 < match_percent:
                    text = call(rng, app_time)
                    calls += 1
                    if "HTTP/1.1 200" not in text:
                        chunk.append(f"{stamp} {text}\n")
                        text = retry(rng, app_time)
                else:
                    text = noise(rng, app_time)
                chunk.append(f"{stamp} {text}\n")
            block = "".join(chunk)
            handle.write(block)
            written += len(block.encode())
    partial.rename(path)
    path.with_suffix(".calls").write_text(str(calls))
    return calls


def ensure(size: int, match_percent: float) -> tuple[Path, int]:
    path = DATA / f"mixed-v2-{size}-{match_percent:g}pct.log"
    if not path.exists():
        print(f"generating {path} ({size / 1e6:.0f} MB) ...", flush=True)
        generate(path, size, match_percent)
    return path, int(path.with_suffix(".calls").read_text())


def measure(command: list[str]) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    result = json.loads(output.stdout)
    if result["returncode"] != 0:
        raise SystemExit(f"command failed: {' '.join(command)}")
    return result


def scan_command(path: Path, workers: int) -> list[str]:
    """The real CLI, interpreter start-up included."""
    entry = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", entry, "scan", "--workers", str(workers), str(path)]


def grep_command(path: Path) -> list[str]:
    pipeline = f"LC_ALL=C grep -F 'POST https' '{path}' | LC_ALL=C grep -F completions"
    return ["sh", "-c", pipeline]


def scan_matches(path: Path) -> int:
    output = subprocess.run(
        scan_command(path, 1), capture_output=True, check=True, cwd=REPO
    )
    return int(json.loads(output.stdout)["matches"])


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"load average {load}"
    )


def parse_size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    suffix = text[-1].upper()
    return int(float(text[:-1]) * units[suffix]) if suffix in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="size of the big file (1G)")
    parser.add_argument("--small", default="10M", help="size of the small file (10M)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (3)")
    parser.add_argument("--match-percent", type=float, default=3.0)
    parser.add_argument(
        "--workers", type=int, default=2, help="processes of the parallel scan (2)"
    )
    args = parser.parse_args()

    big, calls = ensure(parse_size(args.size), args.match_percent)
    small, _ = ensure(parse_size(args.small), args.match_percent)
    size_mb = big.stat().st_size / 1e6
    print(f"machine: {machine()}")
    print(f"file: {big.name}, {size_mb:.0f} MB, {calls} completions calls")

    found = scan_matches(big)
    if found != calls:
        raise SystemExit(f"scan found {found} calls, the generator wrote {calls}")

    grep_runs, scan_runs, parallel_runs = [], [], []
    for run in range(args.runs):
        grep_runs.append(measure(grep_command(big)))
        scan_runs.append(measure(scan_command(big, 1)))
        parallel_runs.append(measure(scan_command(big, args.workers)))
        print(
            f"run {run + 1}: grep {grep_runs[-1]['wall']:.2f} s, "
            f"scan {scan_runs[-1]['wall']:.2f} s, "
            f"scan with {args.workers} processes {parallel_runs[-1]['wall']:.2f} s",
            flush=True,
        )
    small_run = measure(scan_command(small, 1))
    # What every scan pays before reading a byte: the interpreter and the imports.
    empty = DATA / "empty.log"
    empty.touch()
    startup = statistics.median(
        measure(scan_command(empty, 1))["wall"] for _ in range(args.runs)
    )

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    grep_wall, scan_wall = median(grep_runs, "wall"), median(scan_runs, "wall")
    parallel_wall = median(parallel_runs, "wall")
    big_peak = max(r["peak_kib"] for r in scan_runs) / 1024
    small_peak = small_run["peak_kib"] / 1024
    print(f"grep pipeline: {size_mb / grep_wall:.0f} MB/s (median of {args.runs})")
    print(f"scan:          {size_mb / scan_wall:.0f} MB/s, and found all {found} calls")
    print(
        f"throughput ratio scan/grep (median wall time): {grep_wall / scan_wall:.2f}x"
    )
    print(
        f"  the same with {args.workers} processes:              "
        f"{grep_wall / parallel_wall:.2f}x"
    )
    print(
        f"  of the scan's {scan_wall:.2f} s, {startup:.2f} s are start-up "
        "(the same command on an empty file)"
    )
    cpu_ratio = median(grep_runs, "cpu") / median(scan_runs, "cpu")
    print(f"CPU time ratio scan/grep (median):             {cpu_ratio:.2f}x")
    print(
        f"peak memory: grep {max(r['peak_kib'] for r in grep_runs) / 1024:.1f} MB, "
        f"scan {big_peak:.1f} MB on {size_mb:.0f} MB, "
        f"{small_peak:.1f} MB on {small.stat().st_size / 1e6:.0f} MB "
        f"({(big_peak / small_peak - 1) * 100:+.0f} %), "
        f"largest of {args.workers} processes "
        f"{max(r['peak_kib'] for r in parallel_runs) / 1024:.1f} MB"
    )


if __name__ == "__main__":
    main()
