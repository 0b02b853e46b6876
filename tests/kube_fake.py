"""A fake Kubernetes API server on 127.0.0.1 for the cluster scrape tests.

It speaks the paths the scrape uses (Deployment read, pod list with labelSelector,
pod log with container/previous/sinceSeconds/timestamps/tailLines), answers with
real Kubernetes Status bodies, sends logs with chunked transfer encoding, and can
cut or stall a log stream mid-read. Every request is recorded for the tests.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

NAMESPACE = "dealershipai"
SERVICE_ACCOUNT = "system:serviceaccount:dealershipai:log-reader"
TOKEN = "kube-fake-token-3b9f7c1e5a80d4"

_DEPLOYMENT = re.compile(r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)")
_PODS = re.compile(r"/api/v1/namespaces/([^/]+)/pods")
_POD_LOG = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log")
# Go's strconv.ParseBool, which the API server uses for query parameters.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def nanos(moment: datetime) -> int:
    """Nanoseconds since the epoch."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def stamp(at: int) -> str:
    """The kubelet's timestamp prefix (RFC 3339, nine fraction digits)."""
    seconds = datetime.fromtimestamp(at // 10**9, UTC)
    return f"{seconds:%Y-%m-%dT%H:%M:%S}.{at % 10**9:09d}Z"


@dataclass
class Container:
    name: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)
    previous: list[tuple[int, bytes]] | None = None
    restart_count: int = 0
    waiting: str | None = None


@dataclass
class Pod:
    name: str
    containers: list[Container]
    labels: dict[str, str] = field(default_factory=lambda: {"app": "orchestrator"})
    init_containers: list[str] = field(default_factory=list)
    phase: str = "Running"
    scheduled: bool = True
    gone: bool = False


@dataclass
class Drop:
    """Cut the next response of a log stream after `after_bytes` of its body."""

    after_bytes: int
    stall_seconds: float = 0.0
    then_gone: bool = False


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    authorization: str | None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class FakeCluster:
    """The state the fake API server serves, and the requests it received."""

    def __init__(self, now: datetime, namespace: str = NAMESPACE):
        self.now = now
        self.namespace = namespace
        self.deployments: dict[str, dict[str, Any]] = {}
        self.pods: list[Pod] = []
        self.forbidden: set[tuple[str, str]] = set()
        self.drops: dict[tuple[str, str, bool], list[Drop]] = {}
        self.failures: dict[tuple[str, str, bool], list[int]] = {}
        self.chunk_bytes = 256
        self.chunk_delay = 0.0
        self.page_size = 500
        self.requests: list[Request] = []
        self.streaming = 0
        self.max_streaming = 0
        self._lock = threading.Lock()

    def add_deployment(
        self,
        name: str,
        match_labels: dict[str, str],
        match_expressions: list[dict[str, Any]] | None = None,
    ) -> None:
        selector: dict[str, Any] = {"matchLabels": match_labels}
        if match_expressions:
            selector["matchExpressions"] = match_expressions
        self.deployments[name] = selector

    def log_requests(self, pod: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.path.endswith("/log") and (pod is None or f"/pods/{pod}/" in r.path)
        ]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def stream_started(self) -> None:
        with self._lock:
            self.streaming += 1
            self.max_streaming = max(self.max_streaming, self.streaming)

    def stream_ended(self) -> None:
        with self._lock:
            self.streaming -= 1


@contextmanager
def serve(cluster: FakeCluster) -> Iterator[str]:
    """Serve `cluster` on a free port of 127.0.0.1; yields the server URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False
    server.cluster = cluster  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_kubeconfig(path: Path, server: str, token: str = TOKEN) -> Path:
    """A kubeconfig (JSON is YAML) pointing at the fake server with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "log-reader", "user": {"token": token}}],
        "contexts": [
            {
                "name": "fake",
                "context": {"cluster": "fake", "user": "log-reader"},
            }
        ],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))
    return path


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes `Status` object as the API server sends it on errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Whether a label selector string matches the labels (the API's semantics)."""
    for term in re.split(r",(?![^(]*\))", selector):
        term = term.strip()
        if found := re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, operator = found[1], found[2]
            values = {value.strip() for value in found[3].split(",")}
            if (labels.get(key) in values) != (operator == "in"):
                return False
        elif found := re.fullmatch(r"(\S+?)\s*(==|=|!=)\s*(\S*)", term):
            equal = labels.get(found[1]) == found[3]
            if equal != (found[2] != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def cluster(self) -> FakeCluster:
        return self.server.cluster  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def finish(self) -> None:
        with suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        request = Request(url.path, query, self.headers.get("Authorization"))
        self.cluster.record(request)
        try:
            if request.authorization != f"Bearer {TOKEN}":
                self._json(401, status_body(401, "Unauthorized", "Unauthorized"))
            elif found := _POD_LOG.fullmatch(url.path):
                self._pod_log(found[2], request)
            elif found := _PODS.fullmatch(url.path):
                self._pod_list(request)
            elif found := _DEPLOYMENT.fullmatch(url.path):
                self._deployment(found[2])
            else:
                self._json(
                    404,
                    status_body(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _forbidden(self, verb: str, resource: str, what: str, group: str = "") -> None:
        message = (
            f'{what} is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} resource '
            f'"{resource}" in API group "{group}" in the namespace '
            f'"{self.cluster.namespace}"'
        )
        self._json(403, status_body(403, "Forbidden", message))

    def _deployment(self, name: str) -> None:
        cluster = self.cluster
        if ("get", "deployments") in cluster.forbidden:
            return self._forbidden(
                "get", "deployments", f'deployments.apps "{name}"', "apps"
            )
        selector = cluster.deployments.get(name)
        if selector is None:
            message = f'deployments.apps "{name}" not found'
            return self._json(404, status_body(404, "NotFound", message))
        labels = selector["matchLabels"]
        self._json(
            200,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": cluster.namespace},
                "spec": {
                    "replicas": len(cluster.pods),
                    "selector": selector,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{"name": "orchestrator", "image": "x"}]
                        },
                    },
                },
            },
        )

    def _pod_list(self, request: Request) -> None:
        cluster = self.cluster
        if ("list", "pods") in cluster.forbidden:
            return self._forbidden("list", "pods", "pods")
        selector = request.param("labelSelector") or ""
        matched = [p for p in cluster.pods if selects(selector, p.labels)]
        start = int(request.param("continue") or 0)
        size = min(int(request.param("limit") or 500), cluster.page_size)
        page = matched[start : start + size]
        more = start + size < len(matched)
        self._json(
            200,
            {
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {"continue": str(start + size)} if more else {},
                "items": [_pod_json(pod, cluster.namespace) for pod in page],
            },
        )

    def _pod_log(self, name: str, request: Request) -> None:
        cluster = self.cluster
        pod = next((p for p in cluster.pods if p.name == name), None)
        if pod is None or pod.gone:
            return self._json(
                404, status_body(404, "NotFound", f'pods "{name}" not found')
            )
        if ("get", "pods/log") in cluster.forbidden:
            return self._forbidden("get", "pods/log", f'pods "{name}"')

        names = [c.name for c in pod.containers]
        container_name = request.param("container")
        if container_name is None and len(names) == 1:
            container_name = names[0]
        if container_name is None:
            message = (
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(names)}] or one of the init containers: "
                f"[{' '.join(pod.init_containers)}]"
            )
            return self._json(400, status_body(400, "BadRequest", message))
        container = next((c for c in pod.containers if c.name == container_name), None)
        if container is None:
            message = f"container {container_name} is not valid for pod {name}"
            return self._json(400, status_body(400, "BadRequest", message))

        previous = request.param("previous") in _TRUE
        key = (name, container_name, previous)
        if cluster.failures.get(key):
            code = cluster.failures[key].pop(0)
            return self._json(
                code,
                status_body(
                    code,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
            )
        lines = _instance_lines(pod, container, previous)
        if isinstance(lines, str):
            return self._json(400, status_body(400, "BadRequest", lines))

        since = request.param("sinceSeconds")
        if since is not None:
            cutoff = nanos(cluster.now) - int(since) * 10**9
            lines = [line for line in lines if line[0] >= cutoff]
        tail = request.param("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) else []
        with_stamps = request.param("timestamps") in _TRUE
        body = (
            (f"{stamp(at)} ".encode() if with_stamps else b"") + text + b"\n"
            for at, text in lines
        )
        drops = cluster.drops.get(key)
        drop = drops.pop(0) if drops else None
        if drop and drop.then_gone:
            pod.gone = True
        cluster.stream_started()
        try:
            self._chunked(body, drop)
        finally:
            cluster.stream_ended()

    def _chunked(self, body: Iterable[bytes], drop: Drop | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        for piece in _pieces(body, self.cluster.chunk_bytes):
            if drop is not None and sent + len(piece) >= drop.after_bytes:
                self._write_chunk(piece[: drop.after_bytes - sent])
                if drop.stall_seconds:
                    time.sleep(drop.stall_seconds)
                # Close without the last chunk, as a broken connection would.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._write_chunk(piece)
            sent += len(piece)
            if self.cluster.chunk_delay:
                time.sleep(self.cluster.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, piece: bytes) -> None:
        if piece:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _instance_lines(
    pod: Pod, container: Container, previous: bool
) -> list[tuple[int, bytes]] | str:
    """The lines of the instance asked for, or the kubelet's refusal."""
    if previous:
        if container.previous is None:
            return (
                f'previous terminated container "{container.name}" in pod '
                f'"{pod.name}" not found'
            )
        return container.previous
    if container.waiting or not pod.scheduled:
        # A container waiting after a crash serves its last terminated instance.
        if container.previous is not None and container.restart_count:
            return container.previous
        reason = container.waiting or "ContainerCreating"
        return (
            f'container "{container.name}" in pod "{pod.name}" is waiting to start: '
            f"{reason}"
        )
    return container.lines


def _pieces(body: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The body in pieces of `size` bytes, cutting through lines."""
    buffer = bytearray()
    for line in body:
        buffer += line
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _pod_json(pod: Pod, namespace: str) -> dict[str, Any]:
    statuses = [_container_status(pod, c) for c in pod.containers]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": namespace, "labels": pod.labels},
        "spec": {
            "containers": [
                {"name": c.name, "image": f"{c.name}:1"} for c in pod.containers
            ],
            "initContainers": [
                {"name": n, "image": f"{n}:1"} for n in pod.init_containers
            ],
        },
        "status": {
            "phase": pod.phase,
            **({"containerStatuses": statuses} if pod.scheduled else {}),
        },
    }


def _container_status(pod: Pod, container: Container) -> dict[str, Any]:
    if container.waiting:
        state: dict[str, Any] = {"waiting": {"reason": container.waiting}}
    else:
        state = {"running": {"startedAt": "2026-03-10T05:12:45Z"}}
    last: dict[str, Any] = {}
    if container.restart_count:
        last = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "containerID": f"containerd://{pod.name}-{container.name}-0",
            }
        }
    return {
        "name": container.name,
        "image": f"{container.name}:1",
        "imageID": "",
        "ready": not container.waiting,
        "restartCount": container.restart_count,
        "state": state,
        "lastState": last,
    }
