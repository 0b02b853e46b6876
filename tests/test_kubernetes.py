"""The cluster scrape against a fake Kubernetes API, through the real client."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client.exceptions import ApiException
from prefect_kubernetes.credentials import (
    KubernetesClusterConfig,
    KubernetesCredentials,
)

from flows.errors import (
    ConfigurationError,
    DeploymentNotFound,
    KubernetesError,
    NoPodsFound,
    PermissionDenied,
)
from flows.kube_client import label_selector, unreachable
from flows.kube_logs import SINCE_MARGIN_SECONDS, LineSpool
from flows.kubernetes import is_retryable, kubernetes_api_client, scrape_deployment
from flows.matching import scan_logs
from flows.records import FilterResult, ScrapeResult
from flows.window import window_ending_at
from tests.kube_fake import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    TOKEN,
    Container,
    Drop,
    FakeCluster,
    Pod,
    nanos,
    serve,
    stamp,
    write_kubeconfig,
)

NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
WINDOW = window_ending_at(NOW, 24)
WINDOW_SINCE = 24 * 3600 + SINCE_MARGIN_SECONDS

_APP_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[.,](\d+))?")
_PREFIXED = re.compile(rb"\[pod/([^/]+)/([^\]]+)\] (.*)")


# --- fixtures and helpers -----------------------------------------------------


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: the bearer token never shows in any log record."""
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(record.args) for record in caplog.records)


@pytest.fixture
def cluster() -> FakeCluster:
    fake = FakeCluster(NOW)
    fake.add_deployment("orchestrator", {"app": "orchestrator"})
    return fake


@pytest.fixture
def api_url(cluster: FakeCluster, tmp_path: Path, monkeypatch) -> Iterator[str]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with serve(cluster) as url:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", url)))
        yield url


def scrape(
    tmp_path: Path, container: str | None = None, **options: Any
) -> ScrapeResult:
    async def run() -> ScrapeResult:
        async with kubernetes_api_client() as api_client:
            return await scrape_deployment(
                namespace=NAMESPACE,
                deployment="orchestrator",
                container=container,
                window=WINDOW,
                spool_dir=tmp_path / "spool",
                api_client=api_client,
                now=NOW,
                **options,
            )

    return asyncio.run(run())


def kubelet_time(text: bytes) -> int:
    """When the kubelet stamped a line: a little after the app's own timestamp."""
    found = _APP_TIME.search(text.decode())
    assert found, text
    moment = datetime.fromisoformat(f"{found[1]}T{found[2]}+00:00")
    fraction = (found[3] or "0")[:6].ljust(6, "0")
    return nanos(moment + timedelta(microseconds=int(fraction))) + 250_000


def case_streams(path: Path) -> dict[tuple[str, str], list[tuple[int, bytes]]]:
    """The `[pod/NAME/CONTAINER] line` rows of a case file, by pod and container."""
    streams: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
    for row in path.read_bytes().splitlines():
        if found := _PREFIXED.fullmatch(row):
            key = (found[1].decode(), found[2].decode())
            streams.setdefault(key, []).append((kubelet_time(found[3]), found[3]))
    return streams


def with_stamps(lines: list[tuple[int, bytes]]) -> bytes:
    """What the API sends for these lines with timestamps=true."""
    return b"".join(f"{stamp(at)} ".encode() + text + b"\n" for at, text in lines)


def filter_matches(result: ScrapeResult) -> FilterResult:
    """The filter step over the scraped files, inside the window."""
    return scan_logs(
        result.files, start=WINDOW.start, end=WINDOW.end, restarts=result.restarts
    )


def literal_matches(path: Path) -> int:
    """The literal rule: lines holding both `POST https` and `completions`."""
    lines = path.read_bytes().splitlines()
    return sum(b"POST https" in line and b"completions" in line for line in lines)


def since_of(request: Any) -> int:
    return int(request.param("sinceSeconds"))


def assert_log_query(request: Any, container: str, previous: bool) -> None:
    """Timestamps on, the container named, no tail limit, the window's since."""
    assert request.param("timestamps") == "True"
    assert request.param("container") == container
    assert request.param("previous") == str(previous)
    assert "tailLines" not in request.query
    assert "follow" not in request.query
    assert WINDOW_SINCE <= since_of(request) <= WINDOW_SINCE + 2


# --- the real-world cases -----------------------------------------------------


def test_case03_every_pod_behind_the_selector_is_read(
    cluster: FakeCluster, api_url: str, tmp_path: Path, cases_dir: Path, caplog
) -> None:
    streams = case_streams(cases_dir / "03-deploy-one-pod.log")
    for (pod, container), lines in sorted(streams.items()):
        cluster.pods.append(Pod(pod, [Container(container, list(lines))]))
    # Before the window: the API must leave it out because of sinceSeconds.
    stale = (nanos(NOW - timedelta(days=2)), b"2026-03-08 13:00:00,000 stale line")
    cluster.pods[0].containers[0].lines.insert(0, stale)
    cluster.pods.append(
        Pod("orchestrator-canary-x1", [Container("orchestrator")], {"app": "canary"})
    )

    result = scrape(tmp_path)

    pods = sorted(pod for pod, _ in streams)
    assert result.pods == pods
    assert result.label_selector == "app=orchestrator"
    assert [(f.pod, f.container, f.previous, f.format) for f in result.files] == [
        (pod, "orchestrator", False, "timestamps") for pod in pods
    ]
    for log_file in result.files:
        expected = streams[(log_file.pod, "orchestrator")]
        assert log_file.path.read_bytes() == with_stamps(expected)
    counts = {f.pod: literal_matches(f.path) for f in result.files}
    assert counts == {
        "orchestrator-6c9f7d5b8-q2xkz": 1,
        "orchestrator-6c9f7d5b8-w7m4p": 3,
        "orchestrator-6c9f7d5b8-zz9rt": 2,
    }
    assert sum(counts.values()) == 6
    assert result.warnings == []
    scanned = filter_matches(result)
    assert scanned.matches == 6
    assert scanned.statistics.by_pod == counts

    requests = cluster.log_requests()
    assert sorted(r.path.split("/")[6] for r in requests) == pods
    for request in requests:
        assert_log_query(request, "orchestrator", previous=False)
    listing = [r for r in cluster.requests if r.path.endswith("/pods")]
    assert [r.param("labelSelector") for r in listing] == ["app=orchestrator"]
    assert {r.authorization for r in cluster.requests} == {f"Bearer {TOKEN}"}
    # One INFO line per API call: the Deployment, the pod list, three logs.
    calls = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("flows.kube") and r.levelno == logging.INFO
    ]
    assert len(calls) == 1 + 1 + 1 + 3
    assert calls[1].endswith("HTTP 200, selector app=orchestrator, 4 replica(s)")
    assert calls[2].endswith("HTTP 200, 3 pod(s)")
    assert calls[0] == f"Kubernetes API at {api_url}"
    assert any(
        re.fullmatch(
            r"GET log of pod orchestrator-6c9f7d5b8-w7m4p container orchestrator "
            r"sinceSeconds=\d+: HTTP 200, 3 line\(s\), \d+ byte\(s\)",
            call,
        )
        for call in calls[3:]
    )


def _sidecar_pod(cases_dir: Path) -> Pod:
    streams = case_streams(cases_dir / "05-multi-container-sidecar.log")
    pod = "orchestrator-6c9f7d5b8-q2xkz"
    return Pod(
        pod,
        [
            Container("orchestrator", streams[(pod, "orchestrator")]),
            Container("istio-proxy", streams[(pod, "istio-proxy")]),
        ],
        init_containers=["istio-init"],
    )


def test_case05_named_container_is_the_one_read(
    cluster: FakeCluster, api_url: str, tmp_path: Path, cases_dir: Path
) -> None:
    cluster.pods.append(_sidecar_pod(cases_dir))

    result = scrape(tmp_path, container="orchestrator")

    [log_file] = result.files
    assert (log_file.pod, log_file.container) == (
        "orchestrator-6c9f7d5b8-q2xkz",
        "orchestrator",
    )
    assert literal_matches(log_file.path) == 2
    assert b"istio" not in log_file.path.read_bytes()
    assert filter_matches(result).matches == 2
    [request] = cluster.log_requests()
    assert_log_query(request, "orchestrator", previous=False)


def test_case05_all_app_containers_without_the_init_container(
    cluster: FakeCluster, api_url: str, tmp_path: Path, cases_dir: Path
) -> None:
    cluster.pods.append(_sidecar_pod(cases_dir))

    result = scrape(tmp_path)

    by_container = {f.container: f.path for f in result.files}
    assert sorted(by_container) == ["istio-proxy", "orchestrator"]
    assert literal_matches(by_container["orchestrator"]) == 2
    assert literal_matches(by_container["istio-proxy"]) == 0
    scanned = filter_matches(result)
    assert scanned.matches == 2
    assert {c.container for c in scanned.selected} == {"orchestrator"}
    proxy_lines = by_container["istio-proxy"].read_bytes().splitlines()
    assert len(proxy_lines) == 2
    assert b'"POST /v1/chat/completions HTTP/1.1" 200' in proxy_lines[0]
    asked = sorted(r.param("container") for r in cluster.log_requests())
    assert asked == ["istio-proxy", "orchestrator"]
    assert result.restarts == {
        "orchestrator-6c9f7d5b8-q2xkz/orchestrator": 0,
        "orchestrator-6c9f7d5b8-q2xkz/istio-proxy": 0,
    }


def _case06_sections(path: Path) -> dict[tuple[str, bool], list[tuple[int, bytes]]]:
    sections: dict[tuple[str, bool], list[tuple[int, bytes]]] = {}
    key: tuple[str, bool] | None = None
    for row in path.read_bytes().splitlines():
        if header := re.match(
            rb"# --- kubectl logs pod/(\S+) -c \S+( --previous)?", row
        ):
            key = (header[1].decode(), header[2] is not None)
            sections[key] = []
        elif key and row and not row.startswith((b"#", b"Error from server")):
            sections[key].append((kubelet_time(row), row))
    return sections


def test_case06_previous_instance_is_read_and_a_missing_one_tolerated(
    cluster: FakeCluster, api_url: str, tmp_path: Path, cases_dir: Path
) -> None:
    sections = _case06_sections(cases_dir / "06-previous-container.log")
    restarted, other = "orchestrator-6c9f7d5b8-q2xkz", "orchestrator-6c9f7d5b8-w7m4p"
    assert sections[(other, True)] == []
    cluster.pods.append(
        Pod(
            restarted,
            [
                Container(
                    "orchestrator",
                    lines=sections[(restarted, False)],
                    previous=sections[(restarted, True)],
                    restart_count=1,
                )
            ],
        )
    )
    # Restarted too, but the node no longer has the previous instance's log.
    quiet = [(nanos(NOW - timedelta(hours=3)), b"2026-03-10 10:00:00,000 INFO idle")]
    cluster.pods.append(
        Pod(other, [Container("orchestrator", quiet, previous=None, restart_count=1)])
    )

    result = scrape(tmp_path)

    files = {(f.pod, f.previous): f.path for f in result.files}
    assert sorted(files) == [(restarted, False), (restarted, True), (other, False)]
    assert files[(restarted, True)].read_bytes() == with_stamps(
        sections[(restarted, True)]
    )
    assert files[(restarted, False)].read_bytes() == with_stamps(
        sections[(restarted, False)]
    )
    assert sum(literal_matches(path) for path in files.values()) == 3
    assert filter_matches(result).matches == 3
    assert result.restarts == {
        f"{restarted}/orchestrator": 1,
        f"{other}/orchestrator": 1,
    }
    [warning] = result.warnings
    assert other in warning
    assert f'previous terminated container "orchestrator" in pod "{other}"' in warning
    previous_asked = [
        r for r in cluster.log_requests() if r.param("previous") == "True"
    ]
    assert len(previous_asked) == 2
    for request in previous_asked:
        assert_log_query(request, "orchestrator", previous=True)
    # The previous instance's file comes before the current one: log order.
    order = [(f.pod, f.previous) for f in result.files]
    assert order.index((restarted, True)) < order.index((restarted, False))


# --- pods that cannot be read -------------------------------------------------


def _lines(count: int, start: datetime, label: str) -> list[tuple[int, bytes]]:
    return [
        (nanos(start) + i * 10**9, f"{label} line {i}".encode()) for i in range(count)
    ]


def test_container_in_crash_loop_is_read_once_through_its_previous_instance(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    crashed = _lines(4, NOW - timedelta(hours=1), "crashed")
    cluster.pods.append(
        Pod(
            "orchestrator-a",
            [Container("orchestrator", [], crashed, 3, waiting="CrashLoopBackOff")],
        )
    )

    result = scrape(tmp_path)

    [log_file] = result.files
    assert log_file.previous
    assert log_file.path.read_bytes() == with_stamps(crashed)
    [request] = cluster.log_requests()
    assert request.param("previous") == "True"
    assert result.warnings == []


def test_pending_and_vanished_pods_are_skipped_with_warnings(
    cluster: FakeCluster, api_url: str, tmp_path: Path, caplog
) -> None:
    running = _lines(3, NOW - timedelta(hours=2), "running")
    cluster.pods += [
        Pod("orchestrator-a", [Container("orchestrator", running)]),
        Pod(
            "orchestrator-b",
            [Container("orchestrator")],
            phase="Pending",
            scheduled=False,
        ),
        Pod(
            "orchestrator-c",
            [Container("orchestrator", waiting="ContainerCreating")],
            phase="Pending",
        ),
        Pod("orchestrator-d", [Container("orchestrator", running)], gone=True),
    ]

    result = scrape(tmp_path)

    assert [f.pod for f in result.files] == ["orchestrator-a"]
    assert result.files[0].path.read_bytes() == with_stamps(running)
    assert result.pods == [f"orchestrator-{x}" for x in "abcd"]
    assert len(result.warnings) == 3
    b, c, d = result.warnings
    assert "orchestrator-b" in b and "has not started (pod phase Pending)" in b
    assert "orchestrator-c" in c and "waiting to start (ContainerCreating" in c
    assert "orchestrator-d" in d and '404: pods "orchestrator-d" not found' in d
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(w in line for line in logged) for w in result.warnings)
    asked = {r.path.split("/")[6] for r in cluster.log_requests()}
    assert asked == {"orchestrator-a", "orchestrator-d"}
    assert not (tmp_path / "spool" / "orchestrator-d_orchestrator.log").exists()


def test_pod_gone_mid_read_keeps_what_was_read(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    lines = _lines(40, NOW - timedelta(hours=2), "short-lived")
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    body = with_stamps(lines)
    cut = body.index(b"line 10\n") + 3
    cluster.drops[("orchestrator-a", "orchestrator", False)] = [
        Drop(cut, then_gone=True)
    ]

    result = scrape(tmp_path)

    [log_file] = result.files
    assert log_file.path.read_bytes() == with_stamps(lines[:10])
    [warning] = result.warnings
    assert "is gone (404" in warning and "kept the 10 line(s)" in warning


def test_no_readable_pod_is_an_error_not_an_empty_result(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.pods.append(
        Pod(
            "orchestrator-b",
            [Container("orchestrator")],
            phase="Pending",
            scheduled=False,
        )
    )

    with pytest.raises(NoPodsFound) as caught:
        scrape(tmp_path)

    assert "none of the 1 pod(s)" in str(caught.value)
    assert "orchestrator-b" in str(caught.value)
    assert not is_retryable(caught.value)


def test_no_pod_matching_the_selector_is_an_error(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.pods.append(Pod("other-a", [Container("app")], {"app": "other"}))

    with pytest.raises(NoPodsFound) as caught:
        scrape(tmp_path)

    message = str(caught.value)
    assert "'app=orchestrator'" in message and "'dealershipai'" in message
    assert "not the same as no calls" in message
    assert not is_retryable(caught.value)
    assert cluster.log_requests() == []


def test_named_container_in_no_pod_is_a_configuration_error(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.pods.append(
        Pod("orchestrator-a", [Container("orchestrator"), Container("istio-proxy")])
    )

    with pytest.raises(ConfigurationError) as caught:
        scrape(tmp_path, container="orchestrater")

    assert "'orchestrater'" in str(caught.value)
    assert "istio-proxy, orchestrator" in str(caught.value)


# --- the selector -------------------------------------------------------------


def test_match_expressions_become_the_label_selector(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.add_deployment(
        "orchestrator",
        {"app": "orchestrator"},
        [
            {"key": "tier", "operator": "In", "values": ["api", "worker"]},
            {"key": "track", "operator": "NotIn", "values": ["shadow"]},
            {"key": "release", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    )
    labels = {
        "orchestrator-api": {"tier": "api", "release": "1"},
        "orchestrator-worker": {"tier": "worker", "release": "1", "track": "main"},
        "orchestrator-web": {"tier": "web", "release": "1"},
        "orchestrator-shadow": {"tier": "api", "release": "1", "track": "shadow"},
        "orchestrator-unreleased": {"tier": "api"},
        "orchestrator-canary": {"tier": "api", "release": "1", "canary": "yes"},
    }
    for name, extra in labels.items():
        lines = _lines(1, NOW - timedelta(hours=1), name)
        pod = Pod(
            name, [Container("orchestrator", lines)], {"app": "orchestrator", **extra}
        )
        cluster.pods.append(pod)

    result = scrape(tmp_path)

    assert result.label_selector == (
        "app=orchestrator,tier in (api,worker),track notin (shadow),release,!canary"
    )
    assert result.pods == ["orchestrator-api", "orchestrator-worker"]


def test_pod_list_pages_are_all_read(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.page_size = 2
    for index in range(5):
        lines = _lines(2, NOW - timedelta(hours=1), f"pod{index}")
        cluster.pods.append(
            Pod(f"orchestrator-{index}", [Container("orchestrator", lines)])
        )

    result = scrape(tmp_path)

    assert len(result.pods) == 5 and len(result.files) == 5
    listing = [r for r in cluster.requests if r.path.endswith("/pods")]
    assert [r.param("continue") for r in listing] == [None, "2", "4"]


def test_label_selector_rejects_an_empty_selector() -> None:
    class Empty:
        match_labels = None
        match_expressions = None

    with pytest.raises(ConfigurationError, match=r"empty spec\.selector"):
        label_selector(Empty())


# --- refusals: RBAC and missing Deployment -----------------------------------


def _three_pods(cluster: FakeCluster) -> None:
    for name in "abc":
        lines = _lines(3, NOW - timedelta(hours=1), name)
        cluster.pods.append(
            Pod(f"orchestrator-{name}", [Container("orchestrator", lines)])
        )


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("get", "pods/log"), ("list", "pods"), ("get", "deployments")],
)
def test_forbidden_fails_at_once_naming_permission_and_account(
    cluster: FakeCluster, api_url: str, tmp_path: Path, verb: str, resource: str
) -> None:
    _three_pods(cluster)
    cluster.forbidden.add((verb, resource))

    with pytest.raises(PermissionDenied) as caught:
        scrape(tmp_path)

    message = str(caught.value)
    assert f"`{verb} {resource}`" in message
    assert "'dealershipai'" in message
    assert SERVICE_ACCOUNT in message
    assert "k8s/log-reader-rbac.yaml" in message
    assert TOKEN not in message
    assert caught.value.status == 403
    assert not is_retryable(caught.value)
    paths = [r.path for r in cluster.requests]
    if resource == "deployments":
        assert len(paths) == 1
    elif resource == "pods":
        assert len(paths) == 2
    else:
        # No retry: each pod's log was asked at most once.
        logs = [p for p in paths if p.endswith("/log")]
        assert 1 <= len(logs) == len(set(logs)) <= 3


def test_missing_deployment_names_namespace_and_name(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.deployments.clear()

    with pytest.raises(DeploymentNotFound) as caught:
        scrape(tmp_path)

    assert "Deployment 'orchestrator' not found in namespace 'dealershipai'" in str(
        caught.value
    )
    assert caught.value.status == 404
    assert not is_retryable(caught.value)
    assert len(cluster.requests) == 1


def test_rejected_token_is_not_retried(
    cluster: FakeCluster, tmp_path: Path, monkeypatch
) -> None:
    with serve(cluster) as url:
        config = write_kubeconfig(tmp_path / "kc", url, token="expired-token-0000")
        monkeypatch.setenv("KUBECONFIG", str(config))
        with pytest.raises(KubernetesError) as caught:
            scrape(tmp_path)

    assert caught.value.status == 401
    assert "refused the credentials" in str(caught.value)
    assert "expired-token-0000" not in str(caught.value)
    assert not is_retryable(caught.value)


def test_an_api_server_refusing_connections_is_named_with_what_to_check(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The socket is closed: nothing listens on that port.
    server = f"https://127.0.0.1:{port}"
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", server)))

    with pytest.raises(KubernetesError) as caught:
        scrape(tmp_path)

    assert str(caught.value) == (
        f"cannot reach the Kubernetes API at {server}: connection refused (on GET "
        f"Deployment {NAMESPACE}/orchestrator); check the kubeconfig's current "
        "context (KUBECONFIG) or the KubernetesCredentials block, run inside the "
        "cluster with its service account, or check the network to the API server"
    )
    assert TOKEN not in str(caught.value)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert caught.value.status is None
    # A server that is restarting refuses connections too: a later attempt may pass.
    assert is_retryable(caught.value)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError(), "no answer before the timeout"),
        (
            aiohttp.ServerDisconnectedError(),
            "the server closed the connection without answering",
        ),
        (aiohttp.ClientPayloadError("cut"), "ClientPayloadError: cut"),
    ],
)
def test_unreachable_names_the_host_without_its_user_part(
    error: BaseException, reason: str
) -> None:
    found = unreachable(
        "https://admin:hunter2@10.96.0.1:443", "LIST pods", NAMESPACE, error
    )

    assert str(found).startswith(
        f"cannot reach the Kubernetes API at https://10.96.0.1:443: {reason} (on "
        "LIST pods); check"
    )
    assert "hunter2" not in str(found)
    assert found.namespace == NAMESPACE


# --- streams that drop --------------------------------------------------------


def _bursty_lines() -> list[tuple[int, bytes]]:
    """Lines a second apart, some in bursts that share one timestamp (split lines)."""
    start = nanos(NOW - timedelta(hours=3)) + 123_456_789
    lines = []
    for second in range(60):
        burst = 3 if second % 7 == 3 else 1
        for part in range(burst):
            text = f"{second:02d}/{part} " + "x" * (second % 5) * 9
            lines.append((start + second * 10**9, text.encode()))
    return lines


def _stamp_before(body: bytes, cut: int) -> int | None:
    """The timestamp (whole seconds) of the last complete line before `cut`."""
    complete = body[: body.rfind(b"\n", 0, cut) + 1]
    if not complete:
        return None
    last = complete.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    moment = datetime.fromisoformat(last[:19].decode() + "+00:00")
    return int((NOW - moment).total_seconds())


@pytest.mark.parametrize("where", ["mid-line", "line-end", "in-burst", "first-line"])
def test_dropped_stream_resumes_without_duplicates(
    cluster: FakeCluster, api_url: str, tmp_path: Path, caplog, where: str
) -> None:
    lines = _bursty_lines()
    body = with_stamps(lines)
    cut = {
        "mid-line": body.index(b"20/0") + 2,
        "line-end": body.index(b"\n", body.index(b"30/0")) + 1,
        "in-burst": body.index(b"24/2"),
        "first-line": 10,
    }[where]
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    cluster.drops[("orchestrator-a", "orchestrator", False)] = [Drop(cut)]

    result = scrape(tmp_path)

    assert result.files[0].path.read_bytes() == body
    first, resumed = cluster.log_requests()
    assert_log_query(first, "orchestrator", previous=False)
    behind = _stamp_before(body, cut)
    if behind is None:
        assert WINDOW_SINCE <= since_of(resumed) <= WINDOW_SINCE + 2
    else:
        expected = behind + SINCE_MARGIN_SECONDS
        assert expected <= since_of(resumed) <= expected + 2
    assert "tailLines" not in resumed.query
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_stream_dropping_twice_and_stalling_still_yields_every_line_once(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    lines = _bursty_lines()
    body = with_stamps(lines)
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    cluster.drops[("orchestrator-a", "orchestrator", False)] = [
        Drop(body.index(b"10/0") + 3),
        Drop(500, stall_seconds=1.5),
        Drop(700),
    ]

    result = scrape(tmp_path, read_timeout=0.5, max_resumes=6)

    assert result.files[0].path.read_bytes() == body
    # Three planned breaks; a loaded machine may add a spurious read timeout.
    assert len(cluster.log_requests()) >= 4


def test_stream_that_keeps_dropping_gives_up_retryably(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    lines = _bursty_lines()
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    cluster.drops[("orchestrator-a", "orchestrator", False)] = [Drop(300)] * 5

    with pytest.raises(KubernetesError) as caught:
        scrape(tmp_path, max_resumes=2)

    assert "pod orchestrator-a container orchestrator" in str(caught.value)
    assert "failed 3 times" in str(caught.value)
    assert isinstance(caught.value.__cause__, aiohttp.ClientPayloadError)
    assert is_retryable(caught.value)
    assert len(cluster.log_requests()) == 3


def test_unavailable_log_is_asked_again(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    lines = _lines(5, NOW - timedelta(hours=1), "busy")
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    cluster.failures[("orchestrator-a", "orchestrator", False)] = [503]

    result = scrape(tmp_path)

    assert result.files[0].path.read_bytes() == with_stamps(lines)
    assert len(cluster.log_requests()) == 2


def test_persistently_unavailable_log_fails_retryably(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator")]))
    cluster.failures[("orchestrator-a", "orchestrator", False)] = [503, 503]

    with pytest.raises(KubernetesError) as caught:
        scrape(tmp_path, max_resumes=1)

    assert caught.value.status == 503
    assert is_retryable(caught.value)


# --- concurrency and memory ---------------------------------------------------


def test_pods_are_read_concurrently_within_the_bound(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    for index in range(6):
        lines = _lines(20, NOW - timedelta(hours=1), f"pod{index}")
        cluster.pods.append(
            Pod(f"orchestrator-{index}", [Container("orchestrator", lines)])
        )
    cluster.chunk_bytes = 64
    cluster.chunk_delay = 0.01

    result = scrape(tmp_path, max_concurrency=2)

    assert len(result.files) == 6
    assert cluster.max_streaming == 2


def test_a_concurrency_below_one_is_refused(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency must be at least 1"):
        scrape(tmp_path, max_concurrency=0)

    assert cluster.requests == []


def test_a_large_log_is_streamed_not_held_in_memory(
    cluster: FakeCluster, api_url: str, tmp_path: Path
) -> None:
    import tracemalloc

    line = b"INFO orchestrator.jobs " + b"y" * 1000
    start = nanos(NOW - timedelta(hours=20))
    lines = [(start + i * 1000, line) for i in range(34_000)]
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    cluster.chunk_bytes = 64 * 1024

    tracemalloc.start()
    try:
        result = scrape(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    size = result.files[0].path.stat().st_size
    # The client's read buffer (2 MiB, kubernetes_asyncio's setting) and a few
    # chunks bound the peak, whatever the size of the log.
    assert size > 32 * 2**20
    assert peak < 12 * 2**20, f"peak {peak} bytes for a {size}-byte log"


# --- credentials --------------------------------------------------------------


def test_client_from_a_credentials_block_object(
    cluster: FakeCluster, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    lines = _lines(2, NOW - timedelta(hours=1), "block")
    cluster.pods.append(Pod("orchestrator-a", [Container("orchestrator", lines)]))
    with serve(cluster) as url:
        config = KubernetesClusterConfig.from_file(
            write_kubeconfig(tmp_path / "kc", url)
        )
        credentials = KubernetesCredentials(cluster_config=config)

        async def run() -> ScrapeResult:
            async with kubernetes_api_client(credentials) as api_client:
                assert api_client.configuration.host == url
                return await scrape_deployment(
                    namespace=NAMESPACE,
                    deployment="orchestrator",
                    container=None,
                    window=WINDOW,
                    spool_dir=tmp_path / "spool",
                    api_client=api_client,
                    now=NOW,
                )

        result = asyncio.run(run())

    assert result.files[0].path.read_bytes() == with_stamps(lines)


@pytest.mark.slow
def test_client_from_a_saved_credentials_block_by_name(
    prefect_server: None, cluster: FakeCluster, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with serve(cluster) as url:
        config = KubernetesClusterConfig.from_file(
            write_kubeconfig(tmp_path / "kc", url)
        )

        async def run() -> str:
            await KubernetesCredentials(cluster_config=config).save(
                "orchestrator-logs-test", overwrite=True
            )
            async with kubernetes_api_client("orchestrator-logs-test") as api_client:
                return str(api_client.configuration.host)

        assert asyncio.run(run()) == url

        async def missing() -> None:
            async with kubernetes_api_client("no-such-block"):
                pass

        with pytest.raises(ConfigurationError, match="'no-such-block'"):
            asyncio.run(missing())


@pytest.mark.parametrize(
    "content",
    [None, f"users: [{{name: r, user: {{token: {TOKEN}}}}}\nclusters: [", "kind: x\n"],
)
def test_unusable_kubeconfig_is_a_configuration_error(
    tmp_path: Path, monkeypatch, content: str | None
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))

    async def run() -> None:
        async with kubernetes_api_client():
            pass

    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(run())

    assert str(path) in str(caught.value)
    assert "KUBECONFIG" in str(caught.value)
    assert TOKEN not in str(caught.value)


# --- retry decisions and the spool ---------------------------------------------


def _caused(error: KubernetesError, cause: BaseException) -> KubernetesError:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (PermissionDenied("x", namespace="n", status=403), False),
        (DeploymentNotFound("x", namespace="n", status=404), False),
        (NoPodsFound("x", namespace="n"), False),
        (ConfigurationError("x"), False),
        (KubernetesError("x", namespace="n", status=401), False),
        (KubernetesError("x", namespace="n", status=400), False),
        (KubernetesError("x", namespace="n", status=429), True),
        (KubernetesError("x", namespace="n", status=500), True),
        (KubernetesError("x", namespace="n", status=503), True),
        (_caused(KubernetesError("x", namespace="n"), ConnectionResetError()), True),
        (_caused(KubernetesError("x", namespace="n"), ValueError()), False),
        (KubernetesError("x", namespace="n"), False),
        (ApiException(status=502), True),
        (ApiException(status=422), False),
        (aiohttp.ClientPayloadError("cut"), True),
        (aiohttp.ServerDisconnectedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
    ],
)
def test_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def _redelivered(body: bytes, written: bytes) -> bytes:
    """What the API resends on resume: from the last written line's whole second
    (minus the margin, here one more second), as the kubelet's sinceSeconds does."""
    if not written:
        return body
    last = written.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    since = datetime.fromisoformat(last[:19].decode() + "+00:00") - timedelta(seconds=1)
    start = 0
    for row in body.splitlines(keepends=True):
        if datetime.fromisoformat(row[:19].decode() + "+00:00") >= since:
            break
        start += len(row)
    return body[start:]


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=3),
    chunk=st.integers(min_value=1, max_value=300),
)
def test_spool_rebuilds_the_body_whatever_the_breaks(
    cuts: list[int], chunk: int
) -> None:
    body = with_stamps(_bursty_lines())
    sink = _Sink()
    spool = LineSpool(sink)  # type: ignore[arg-type]
    delivery = body
    for cut in cuts:
        for start in range(0, min(cut, len(delivery)), chunk):
            spool.feed(delivery[start : min(start + chunk, cut)])
        spool.begin_resume()
        delivery = _redelivered(body, bytes(sink.data))
    for start in range(0, len(delivery), chunk):
        spool.feed(delivery[start : start + chunk])
    spool.finish()

    assert bytes(sink.data) == body
