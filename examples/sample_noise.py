"""The orchestrator's own lines around the calls: jobs, probes, warnings, a crash."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from generate_sample import Job

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
MS = 1_000_000
S = 1_000 * MS

#: A crash in the orchestrator's own code, as `logger.exception` writes it.
TRACEBACK = """Traceback (most recent call last):
  File "/app/orchestrator/worker.py", line 88, in run_job
    result = handler(job)
             ^^^^^^^^^^^^
  File "/app/orchestrator/jobs/listing.py", line 41, in describe_vehicle
    trim = vehicle["trim"]
           ~~~~~~~^^^^^^^^
KeyError: 'trim'"""

#: Milliseconds an upstream takes to answer, by what it answered.
_LATENCY_MS = {200: (700, 4500), 429: (30, 200), 500: (300, 2500), 503: (20, 150)}
_FAST_LATENCY_MS = {"vehicle_embedding": (80, 300), "lead_summary": (400, 2000)}

Records = list[logging.LogRecord]


class Entry(NamedTuple):
    """One log record: when the application wrote it, by which logger, what."""

    ns: int
    logger: str
    level: int
    message: str


def job_lines(
    rng: random.Random,
    job: Job,
    http: Callable[[str, str, str], Records],
    call_llm: Callable[[], tuple[str | None, Records]],
) -> list[Entry]:
    """Run one job's calls through the callbacks and stamp every line it logs.

    Args:
        rng: The seeded generator for latencies and identifiers.
        job: The planned job.
        http: Makes a real HTTP call (service, method, path) and returns its records.
        call_llm: Makes the job's real SDK call; returns the failure text, if any,
            and the records the SDK and its HTTP client emitted.
    """
    jobs_logger = "orchestrator.jobs"
    dealer = f"dlr-{rng.randint(100, 999):04d}"
    out = [Entry(job.start_ns, jobs_logger, INFO, _started(job, dealer))]
    moment = job.start_ns + rng.randint(2, 30) * MS

    if job.kind in ("listing_description", "vehicle_embedding"):
        path = f"/api/v2/vehicles/{_vin(rng)}"
        moment = _stamp(out, http("inventory", "GET", path), moment, rng.randint(8, 60))
    else:
        lead = f"/api/v1/leads/L-{rng.randint(10000, 99999)}"
        moment = _stamp(out, http("crm", "GET", lead), moment, rng.randint(40, 250))

    if job.crash:
        message = f"job {job.job_id} crashed\n{TRACEBACK}"
        out.append(Entry(moment + 2 * MS, "orchestrator.worker", ERROR, message))
        return out

    failure, records = call_llm()
    moment = _stamp_llm(rng, out, job, records, moment)
    attempts = len(job.statuses)
    if failure:
        text = f"job {job.job_id} failed after {attempts} attempts: {failure}"
        out.append(Entry(moment + MS, jobs_logger, ERROR, text))
        text = f"job {job.job_id} requeued, next attempt in 300s"
        out.append(Entry(moment + 2 * MS, jobs_logger, WARNING, text))
        return out

    tokens_in, tokens_out = rng.randint(120, 1900), rng.randint(20, 420)
    text = (
        f"llm call done job={job.job_id} attempts={attempts} "
        f"prompt_tokens={tokens_in} completion_tokens={tokens_out}"
    )
    moment += rng.randint(1, 5) * MS
    out.append(Entry(moment, "orchestrator.llm", INFO, text))
    if job.kind == "lead_reply":
        notes = f"{lead}/notes"
        moment = _stamp(out, http("crm", "POST", notes), moment, rng.randint(60, 300))
    elapsed = (moment - job.start_ns) / S + 0.004
    out.append(Entry(moment + 4 * MS, jobs_logger, INFO, _done(job, elapsed)))
    return out


def _started(job: Job, dealer: str) -> str:
    return f"job {job.job_id} started kind={job.kind} dealer={dealer}"


def _done(job: Job, elapsed: float) -> str:
    return f"job {job.job_id} done in {elapsed:.3f}s"


def _stamp(out: list[Entry], records: Records, moment: int, latency_ms: int) -> int:
    moment += latency_ms * MS
    out.extend(_entry(record, moment) for record in records)
    return moment


def _stamp_llm(
    rng: random.Random, out: list[Entry], job: Job, records: Records, moment: int
) -> int:
    """Stamp the SDK's lines: answers after their latency, retries after their wait."""
    http_records = [record for record in records if record.name.startswith("httpx")]
    if len(http_records) != len(job.statuses):
        raise RuntimeError(
            f"job {job.job_id}: expected {len(job.statuses)} HTTP lines from the SDK, "
            f"got {len(http_records)}; did the SDK's retry behaviour change?"
        )
    attempt = 0
    for record in records:
        if record.name.startswith("httpx"):
            status = job.statuses[attempt]
            low, high = _LATENCY_MS[status]
            if status == 200:
                low, high = _FAST_LATENCY_MS.get(job.kind, (low, high))
            moment += rng.randint(low, high) * MS + rng.randrange(MS)
            attempt += 1
        else:
            # The retry line follows its answer at once; the next attempt waits.
            moment += rng.randint(200, 1500) * 1_000
            out.append(_entry(record, moment))
            moment += job.retry_after_ms[attempt - 1] * MS
            continue
        out.append(_entry(record, moment))
    return moment


def _entry(record: logging.LogRecord, moment: int) -> Entry:
    return Entry(moment, record.name, record.levelno, record.getMessage())


def _vin(rng: random.Random) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(17))


def pod_noise(rng: random.Random, pod: str, start: int, end: int) -> list[Entry]:
    """A pod's periodic and occasional lines that are not part of a job."""
    node = int(pod[-5:], 36) % 8 + 1
    out = []
    moment = start + rng.randint(200, 5000) * MS
    while moment < end:
        port = rng.randint(32768, 60999)
        text = f'10.42.{node}.1:{port} - "GET /healthz HTTP/1.1" 200'
        out.append(Entry(moment, "uvicorn.access", INFO, text))
        moment += 30 * S + rng.randint(-300, 300) * MS

    moment = start + rng.randint(1, 299) * S
    while moment < end:
        depth, in_flight = rng.choice([0, 0, 1, 1, 2, 3, 5]), rng.randint(0, 4)
        text = f"queue=completions depth={depth} in_flight={in_flight} workers=4"
        out.append(Entry(moment, "orchestrator.scheduler", INFO, text))
        moment += 300 * S + rng.randint(-900, 900) * MS

    moment = start + rng.randint(1, 3599) * S
    while moment < end:
        text = "refreshed service token for crm (expires in 3600s)"
        out.append(Entry(moment, "orchestrator.auth", INFO, text))
        moment += 3600 * S

    for _ in range(rng.randint(5, 10)):
        ms, table = rng.randint(1100, 4800), rng.choice(["leads", "vehicles", "jobs"])
        text = (
            f"slow query took {ms} ms: SELECT id, status FROM {table} "
            "WHERE dealer_id = $1 ORDER BY updated_at DESC LIMIT 50"
        )
        out.append(Entry(_any(rng, start, end), "orchestrator.db", WARNING, text))

    moment = _any(rng, start, end)
    text = "redis connection reset by peer; reconnecting (attempt 1)"
    out.append(Entry(moment, "orchestrator.cache", WARNING, text))
    delay_ms = rng.randint(80, 900)
    text = f"redis reconnected after {delay_ms / 1000:.2f}s"
    out.append(Entry(moment + delay_ms * MS, "orchestrator.cache", INFO, text))

    dealer = f"dlr-{rng.randint(100, 999):04d}"
    text = f"webhook delivery to {dealer} failed: 410 Gone; webhook disabled"
    out.append(Entry(_any(rng, start, end), "orchestrator.webhooks", ERROR, text))
    return out


def _any(rng: random.Random, start: int, end: int) -> int:
    return rng.randrange(start + 60 * S, end - 60 * S)
