"""Generate `orchestrator-24h.log`: a day of orchestrator logs with real SDK call lines.

The LLM call lines are not typed by hand: the script serves a scripted OpenAI-like
API on 127.0.0.1, calls it with the OpenAI Python SDK (and the orchestrator's other
HTTP calls with httpx), and keeps the log records those libraries emit at INFO. The
rest of the day (jobs, health probes, warnings, a traceback) is orchestrator noise
drawn from a seeded random generator. Timestamps are assigned by the script, so a
rerun writes the same bytes.

    uv run --group examples python examples/generate_sample.py
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_noise import Entry, job_lines, pod_noise
from sample_upstream import Upstream

SEED = 20260310
#: The reference slot: Tuesday 09:00 in New York; the log covers the 24 h before it.
END = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
START = END - timedelta(hours=24)
#: In the order kubectl reads them: the API lists pods sorted by name.
PODS = (
    "orchestrator-7d9c5b8f6c-9wrvn",
    "orchestrator-7d9c5b8f6c-m4hzt",
    "orchestrator-7d9c5b8f6c-x2kqp",
)
CONTAINER = "orchestrator"
#: The orchestrator's logging format (Python's default date format, in UTC).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OUTPUT = Path(__file__).resolve().parent / "orchestrator-24h.log"

# The generator cannot reach the internet, so every upstream is a local server and
# the URLs the libraries log start with http://127.0.0.1:<port>. Only that prefix is
# replaced, by the host the orchestrator really calls; the scheme becomes https for
# public APIs because that is what production logs say (and what a rule looking for
# `POST https` relies on). Method, path, HTTP version, status and reason are the
# libraries' own words.
PUBLIC_BASES = {
    "openai": "https://api.openai.com",
    "inventory": "http://inventory.dealershipai.svc.cluster.local:8080",
    "crm": "https://crm.dealershipai.com",
}

NS = 1_000_000_000
#: The status in an httpx request line, e.g. `"HTTP/1.1 429 Too Many Requests"`.
_STATUS = re.compile(r'"HTTP/[0-9.]+ (\d{3})')


@dataclass
class Job:
    """One unit of orchestrator work and the statuses its LLM call will meet."""

    pod: str
    start_ns: int
    kind: str
    job_id: int = 0
    statuses: list[int] = field(default_factory=list)
    retry_after_ms: list[int] = field(default_factory=list)
    crash: bool = False


class Capture(logging.Handler):
    """Keeps the records the libraries emit, to be stamped and formatted later."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


def main(argv: list[str] | None = None) -> int:
    """Write the sample log and print its counts as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    rng = random.Random(SEED)
    jobs = plan_jobs(rng)
    entries = {pod: pod_noise(rng, pod, _ns(START), _ns(END)) for pod in PODS}
    for pod, job_entries in run_jobs(rng, jobs).items():
        entries[pod].extend(job_entries)

    lines = render(rng, entries)
    args.output.write_bytes("".join(line + "\n" for line in lines).encode())
    counts = count(lines, jobs)
    print(counts_table(counts))
    return 0


# --- the plan ------------------------------------------------------------------


def plan_jobs(rng: random.Random) -> list[Job]:
    """Draw the day's jobs: more in US business hours, a 429 burst, a 503 outage."""
    jobs = []
    for pod in PODS:
        moment = _ns(START) + rng.randrange(60 * NS)
        while True:
            hour = _hour(moment)
            busy = hour >= 13 or hour < 1  # 09:00-21:00 in New York
            moment += int(rng.expovariate(9 if busy else 3.5) * 3600 * NS)
            if moment >= _ns(END) - 180 * NS:
                break
            jobs.append(_job(rng, pod, moment))
    jobs.sort(key=lambda job: (job.start_ns, job.pod))
    for job_id, job in enumerate(jobs, start=48_100):
        job.job_id = job_id
    return jobs


def _job(rng: random.Random, pod: str, moment: int) -> Job:
    kind = rng.choices(
        ["listing_description", "lead_reply", "lead_summary", "vehicle_embedding"],
        weights=[45, 35, 8, 12],
    )[0]
    job = Job(pod=pod, start_ns=moment, kind=kind)
    if kind == "vehicle_embedding":
        job.statuses = [200]
    elif kind == "listing_description" and rng.random() < 0.01:
        job.crash = True
    else:
        job.statuses = _statuses(rng, moment)
    job.retry_after_ms = [rng.randint(1, 25) for _ in job.statuses[1:]]
    return job


def _statuses(rng: random.Random, moment: int) -> list[int]:
    """The answers one SDK call meets: up to three attempts (max_retries=2)."""
    clock = datetime.fromtimestamp(moment // NS, UTC)
    minute = clock.hour * 60 + clock.minute
    rate_limited = clock.day == 9 and 17 * 60 <= minute < 18 * 60
    outage = clock.day == 10 and 2 * 60 <= minute < 3 * 60 + 10
    statuses: list[int] = []
    while len(statuses) < 3:
        if rate_limited:
            status = 429 if rng.random() < (0.45 if not statuses else 0.4) else 200
        elif outage:
            status = 503 if rng.random() < (0.6 if not statuses else 0.5) else 200
        elif statuses:
            status = 200 if rng.random() < 0.8 else statuses[-1]
        else:
            status = rng.choices([200, 429, 500, 503], weights=[925, 40, 20, 15])[0]
        statuses.append(status)
        if status == 200:
            break
    return statuses


# --- running the real libraries -------------------------------------------------


def run_jobs(rng: random.Random, jobs: list[Job]) -> dict[str, list[Entry]]:
    """Run every job's HTTP calls for real and stamp the records they produced."""
    capture = Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    entries: dict[str, list[Entry]] = {pod: [] for pod in PODS}
    with (
        Upstream("openai") as llm,
        Upstream("inventory") as inventory,
        Upstream("crm") as crm,
        # trust_env=False: a proxy set in the environment must not see these calls.
        httpx.Client(timeout=10, trust_env=False) as http,
        openai.OpenAI(
            api_key="sk-sample-not-a-key",
            base_url=f"{llm.base}/v1",
            max_retries=2,
            timeout=10,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        ) as sdk,
    ):
        rewrite = {
            llm.base: PUBLIC_BASES["openai"],
            inventory.base: PUBLIC_BASES["inventory"],
            crm.base: PUBLIC_BASES["crm"],
        }

        def call_llm(job: Job) -> str | None:
            llm.script(job.statuses, job.retry_after_ms)
            try:
                if job.kind == "vehicle_embedding":
                    sdk.embeddings.create(
                        model="text-embedding-3-small",
                        input=f"vehicle {job.job_id}",
                        encoding_format="float",
                    )
                elif job.kind == "lead_summary":
                    sdk.completions.create(
                        model="gpt-3.5-turbo-instruct",
                        prompt=f"Summarise lead {job.job_id}",
                        max_tokens=120,
                    )
                else:
                    sdk.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": f"job {job.job_id}"}],
                    )
            except openai.APIStatusError as error:
                return f"{type(error).__name__}: {error}"
            return None

        services = {"inventory": inventory.base, "crm": crm.base}

        def http_call(service: str, method: str, path: str) -> list[logging.LogRecord]:
            body = {"note": "reply sent"} if method == "POST" else None
            response = http.request(method, f"{services[service]}{path}", json=body)
            response.raise_for_status()
            return capture.take()

        for job in jobs:
            stamped = job_lines(
                rng,
                job,
                http=http_call,
                call_llm=lambda job=job: (call_llm(job), capture.take()),
            )
            entries[job.pod].extend(_rewrite(entry, rewrite) for entry in stamped)
    root.removeHandler(capture)
    return entries


def _rewrite(entry: Entry, bases: dict[str, str]) -> Entry:
    message = entry.message
    for local, public in bases.items():
        message = message.replace(local, public)
    return Entry(entry.ns, entry.logger, entry.level, message)


# --- rendering ------------------------------------------------------------------


def render(rng: random.Random, entries: dict[str, list[Entry]]) -> list[str]:
    """Format the records as `kubectl logs --prefix --timestamps` prints them.

    kubectl reads the pods one after the other, so each pod's lines are together and
    in time order; a multi-line record gives one log line per text line.
    """
    formatter = logging.Formatter(LOG_FORMAT)
    formatter.converter = time.gmtime
    lines = []
    for pod in PODS:
        stamped = []
        for entry in sorted(entries[pod], key=lambda entry: entry.ns):
            # The runtime stamps a line a little after the application wrote it.
            received = entry.ns + rng.randint(20_000, 400_000)
            text = formatter.format(_record(entry))
            for offset, part in enumerate(text.split("\n")):
                stamped.append((received + offset * 1_000, part))
        for received, text in sorted(stamped, key=lambda item: item[0]):
            if received < _ns(END):
                lines.append(f"[pod/{pod}/{CONTAINER}] {_rfc3339(received)} {text}")
    return lines


def _record(entry: Entry) -> logging.LogRecord:
    record = logging.LogRecord(
        entry.logger, entry.level, "", 0, entry.message, None, None
    )
    record.created = entry.ns / NS
    record.msecs = float(entry.ns // 1_000_000 % 1000)
    return record


def _rfc3339(ns: int) -> str:
    # kubelet writes log timestamps with a fixed nine-digit fraction.
    seconds = datetime.fromtimestamp(ns // NS, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{ns % NS:09d}Z"


# --- counting -------------------------------------------------------------------


def count(lines: list[str], jobs: list[Job]) -> dict[str, int]:
    """The file's counts; the literal rule's matches must equal the planned calls."""
    matched = [line for line in lines if "POST https" in line and "completions" in line]
    # A matched line without a status shows up as a difference from the plan.
    by_status = Counter(m.group(1) for line in matched if (m := _STATUS.search(line)))
    llm_jobs = [job for job in jobs if job.statuses and job.kind != "vehicle_embedding"]
    planned = Counter(str(code) for job in llm_jobs for code in job.statuses)
    if by_status != planned:
        raise RuntimeError(f"literal rule found {by_status}, the plan made {planned}")

    counts = {"lines": len(lines), "matches": len(matched)}
    counts |= {f"status {code}": n for code, n in sorted(by_status.items())}
    counts["chat completions lines"] = sum("/chat/completions" in m for m in matched)
    counts["legacy completions lines"] = sum("/v1/completions" in m for m in matched)
    counts["retry lines"] = sum("Retrying request" in line for line in lines)
    counts["llm requests"] = len(llm_jobs)
    counts["llm requests failed after retries"] = sum(
        job.statuses[-1] != 200 for job in llm_jobs
    )
    counts["other POST https lines"] = sum(
        "POST https" in line and "completions" not in line for line in lines
    )
    for pod in PODS:
        prefix = f"[pod/{pod}/"
        counts[f"lines of {pod}"] = sum(line.startswith(prefix) for line in lines)
    return counts


def counts_table(counts: dict[str, int]) -> str:
    """The counts as the Markdown table that examples/README.md shows."""
    rows = [f"| {name} | {value} |" for name, value in counts.items()]
    return "\n".join(["| count | value |", "|---|---|", *rows])


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def _hour(ns: int) -> int:
    return datetime.fromtimestamp(ns // NS, UTC).hour


if __name__ == "__main__":
    sys.exit(main())
