"""Statistics over all calls, and the ranked, collapsed top N."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from flows.records import CallRecord
from flows.stats import MAX_KEYS, OTHER, CallCounter, TopCalls, severity

T0 = datetime(2026, 3, 10, 8, tzinfo=UTC)


def call(
    status: int | None, minute: int = 0, pod: str = "p1", **extra: object
) -> CallRecord:
    fields: dict[str, object] = {
        "timestamp": T0 + timedelta(minutes=minute),
        "pod": pod,
        "container": "app",
        "line": f"call {status} at {minute}",
        "method": "POST",
        "scheme": "https",
        "host": "api.openai.com",
        "path": "/v1/chat/completions",
        "http_version": "HTTP/1.1",
        "status": status,
        **extra,
    }
    return CallRecord.model_validate(fields)


def test_statistics_count_every_call_by_each_fact() -> None:
    counter = CallCounter()
    for record in [
        call(200, 0),
        call(200, 61, pod="p2"),
        call(429, 62),
        call(503, 63, path="/v1/completions?api-key=[redacted]"),
        CallRecord(line="raw line", pod=None),
    ]:
        counter.add(record)

    stats = counter.statistics()

    assert stats.total == 5
    assert stats.by_status == {"200": 2, "429": 1, "503": 1, "unknown": 1}
    assert stats.by_status_class == {"2xx": 2, "4xx": 1, "5xx": 1, "unknown": 1}
    assert stats.by_path == {
        "/v1/chat/completions": 3,
        "/v1/completions": 1,
        "unknown": 1,
    }
    assert stats.by_pod == {"p1": 3, "p2": 1, "unknown": 1}
    assert stats.by_hour == {
        "2026-03-10T08:00Z": 1,
        "2026-03-10T09:00Z": 3,
        "unknown": 1,
    }
    assert (stats.errors, stats.error_rate) == (2, 0.4)


def test_each_table_is_bounded_and_folds_the_rest_into_other() -> None:
    counter = CallCounter()
    for index in range(MAX_KEYS + 50):
        counter.count(
            200, "h", f"/v1/chat/completions/{index}", "p", "2026-03-10T08:00Z"
        )

    stats = counter.statistics()

    assert len(stats.by_path) == MAX_KEYS + 1
    assert stats.by_path[OTHER] == 50
    assert stats.total == MAX_KEYS + 50


def test_severity_classes() -> None:
    assert [severity(s) for s in (500, 503, 429, 400, 404, 200, 301, None)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
        2,
    ]


def test_top_calls_rank_by_severity_then_recency_and_collapse_repeats() -> None:
    top = TopCalls(4)
    for record in [
        call(200, 50),
        call(404, 40),
        call(429, 1),
        call(429, 2),
        call(500, 3),
        call(200, 51),
        call(400, 45),
    ]:
        top.add(record)

    chosen = top.selected()

    assert [(c.status, c.repeat, c.timestamp) for c in chosen] == [
        (500, 1, T0 + timedelta(minutes=3)),
        (429, 2, T0 + timedelta(minutes=2)),
        (400, 1, T0 + timedelta(minutes=45)),
        (404, 1, T0 + timedelta(minutes=40)),
    ]


def test_different_statuses_and_reasons_are_never_merged() -> None:
    top = TopCalls(5)
    for record in [call(429, 1), call(200, 2), call(429, 3), call(503, 4, reason="")]:
        top.add(record)
    top.add(call(503, 5, reason="Service Unavailable"))

    chosen = top.selected()

    assert [(c.status, c.reason, c.repeat) for c in chosen] == [
        (503, "Service Unavailable", 1),
        (503, "", 1),
        (429, None, 2),
        (200, None, 1),
    ]


def test_a_group_evicted_early_keeps_its_full_repeat_count() -> None:
    top = TopCalls(1)
    top.add(call(500, 1, pod="a"))
    top.add(call(500, 2, pod="b"))  # a is evicted
    top.add(call(500, 3, pod="a"))  # a comes back, more recent

    (chosen,) = top.selected()

    assert (chosen.pod, chosen.repeat) == ("a", 2)


def test_overflowing_distinct_calls_is_flagged() -> None:
    top = TopCalls(2, max_groups=3)
    for index in range(5):
        top.add(call(200, index, pod=f"p{index}"))

    assert top.overflowed
    assert len(top.selected()) == 2


@given(
    st.permutations(
        [
            call(s, m, pod=p)
            for s, m, p in [
                (200, 1, "a"),
                (200, 1, "b"),
                (500, 2, "a"),
                (500, 2, "a"),
                (429, 9, "c"),
                (404, 3, "a"),
                (200, 7, "a"),
                (503, 2, "b"),
                (None, 5, "a"),
                (None, 5, "b"),
            ]
        ]
    ),
    st.integers(0, 6),
)
def test_the_top_does_not_depend_on_the_order_calls_arrive(
    calls: list[CallRecord], size: int
) -> None:
    forward, shuffled = TopCalls(size), TopCalls(size)
    ordered = sorted(calls, key=lambda c: (c.line, c.pod or ""))
    for record in ordered:
        forward.add(record)
    for record in calls:
        shuffled.add(record)

    assert forward.selected() == shuffled.selected()
    assert len(forward.selected()) == min(size, 8)
