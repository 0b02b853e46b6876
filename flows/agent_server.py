"""The reference Agent API (`serve-agent`): `/v1/assist` over HTTP, scriptable."""

from __future__ import annotations

import argparse
import errno
import hashlib
import hmac
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from flows.agent_script import (
    AgentState,
    Analyse,
    ReceivedRequest,
    ScriptedResponse,
    load_script,
)
from flows.assist import AssistAnswer, AssistRequest

ASSIST_PATH = "/v1/assist"

__all__ = [
    "AgentState",
    "BackgroundServer",
    "ReceivedRequest",
    "ScriptedResponse",
    "create_app",
    "load_script",
    "run_server",
    "serve_in_background",
    "serve_main",
]


def create_app(state: AgentState) -> FastAPI:
    """The FastAPI app; its OpenAPI document is generated from the Assist models."""
    app = FastAPI(
        title="Agent API (reference)",
        version="1",
        description="The /v1/assist contract of orchestrator-completions-agent.",
    )
    bearer = HTTPBearer(auto_error=False, description="The Agent API token.")

    @app.post(
        ASSIST_PATH,
        response_model=AssistAnswer,
        dependencies=[Security(bearer)],
        responses={
            401: {"description": "Missing or wrong bearer token"},
            409: {"description": "Another request was posted under this key"},
        },
        summary="Analyse completions calls and propose actions",
    )
    async def assist(
        request: AssistRequest,
        idempotency_key: Annotated[
            str | None,
            Header(description="Same key, same request: the first answer again."),
        ] = None,
    ) -> Any:
        scripted = state.next_response()
        if scripted is None:
            return _answer_once(state, request, idempotency_key)
        if scripted.body is None and 200 <= scripted.status < 300:
            answer = _analyse(state, request)
            scripted = scripted.model_copy(update={"body": answer.model_dump_json()})
        await state.pause(scripted.delay_s)
        return Response(
            content=(scripted.body or "").encode("utf-8"),
            status_code=scripted.status,
            headers=scripted.headers,
        )

    app.state.agent = state
    app.add_middleware(_Gate, state=state)
    return app


def _answer_once(
    state: AgentState, request: AssistRequest, key: str | None
) -> AssistAnswer | Response:
    """Answer a key once: a repeat gets the first answer, another body gets 409."""
    if key is None:
        return _analyse(state, request)
    fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
    with state._lock:
        kept = state.answers.get(key)
    if kept is not None and kept[0] != fingerprint:
        return JSONResponse(
            {"error": "a different request was already posted with this key"},
            status_code=409,
        )
    if kept is not None:
        return Response(
            kept[1],
            media_type="application/json",
            headers={"idempotent-replayed": "true"},
        )
    answer = _analyse(state, request)
    with state._lock:
        state.answers.setdefault(key, (fingerprint, answer.model_dump_json()))
    return answer


def _analyse(state: AgentState, request: AssistRequest) -> AssistAnswer:
    if state.analyse is not None:
        return state.analyse(request)
    from flows.analyser import analyse

    return analyse(request)


class _Gate:
    """Records every POST to /v1/assist and checks the token before the body is parsed.

    Checking here, not in a FastAPI dependency, answers 401 to a caller without a
    valid token even when its body is invalid too.
    """

    def __init__(self, app: Any, state: AgentState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != ASSIST_PATH:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        authorization = headers.pop("authorization", "")
        matched = _token_matches(authorization, self.state.token)
        if authorization:
            headers["authorization"] = "[redacted]"
        self.state.received.append(
            ReceivedRequest(
                method=scope["method"],
                path=scope["path"],
                headers=headers,
                body=body,
                token_matched=matched,
                at=time.monotonic(),
            )
        )
        if not matched:
            await _unauthorized(send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _token_matches(authorization: str, token: str) -> bool:
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


async def _unauthorized(send: Any) -> None:
    body = b'{"detail":"missing or invalid bearer token"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer error="invalid_token"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class BackgroundServer:
    """A running server: its base URL, what it received, and its script."""

    url: str
    state: AgentState

    @property
    def received(self) -> list[ReceivedRequest]:
        return self.state.received

    def script(
        self, responses: Sequence[ScriptedResponse | dict[str, Any]], **options: bool
    ) -> None:
        self.state.set_script(
            [ScriptedResponse.model_validate(item) for item in responses], **options
        )


@contextmanager
def serve_in_background(
    *,
    token: str,
    script: Sequence[ScriptedResponse] = (),
    analyse: Analyse | None = None,
    repeat_last: bool = False,
) -> Iterator[BackgroundServer]:
    """Run the server on 127.0.0.1 and a free port in a thread, for tests."""
    state = AgentState(token=token, analyse=analyse)
    state.set_script(script, repeat_last=repeat_last)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(create_app(state), "127.0.0.1", port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the reference Agent API did not start within 10 s")
    try:
        yield BackgroundServer(url=f"http://127.0.0.1:{port}", state=state)
    finally:
        state._stopping.set()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    # No automatic Date header: scripted responses set their own (Retry-After
    # dates are measured from it).
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        date_header=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def run_server(
    host: str,
    port: int,
    token: str,
    script: Sequence[ScriptedResponse] | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve the reference Agent API until interrupted.

    Args:
        host: the address to listen on.
        port: the TCP port to listen on.
        token: the bearer token clients must present.
        script: scripted responses to give instead of the built-in analyser.
        sock: a socket already bound to `host` and `port` (see `bind_socket`);
            without it the server binds one itself.
    """
    state = AgentState(token=token)
    state.set_script(script or ())
    server = uvicorn.Server(_config(create_app(state), host, port))
    server.run(sockets=[sock] if sock is not None else None)


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host` and `port`, for `run_server`.

    Binding before anything is announced lets a taken port fail on one line.

    Raises:
        OSError: the address cannot be bound (`errno.EADDRINUSE` when the port is
            already in use).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port left in TIME_WAIT by a stopped server is free;
        # one with a listener is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_main(argv: Sequence[str] | None = None) -> int:
    """`completions-agent serve-agent`: serve the reference Agent API."""
    parser = argparse.ArgumentParser(
        prog="completions-agent serve-agent",
        description="Serve the reference Agent API: POST /v1/assist answered by the "
        "built-in analyser, OpenAPI document at /openapi.json.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token-env",
        default="AGENTAPI_TOKEN",
        help="environment variable holding the expected bearer token",
    )
    parser.add_argument(
        "--script", type=Path, help="JSON file of scripted responses (for tests)"
    )
    parser.add_argument("--scenario", help="scenario name in a multi-scenario script")
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        print(
            f"completions-agent serve-agent: {args.token_env} is not set; it must "
            "hold the bearer token clients will present",
            file=sys.stderr,
        )
        return 2
    try:
        script = load_script(args.script, args.scenario) if args.script else None
    except (OSError, ValueError) as error:
        print(f"completions-agent serve-agent: {error}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(
            f"completions-agent serve-agent: {_bind_failure(args, error)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"Serving the reference Agent API on http://{args.host}:{args.port}"
        f"{ASSIST_PATH} (OpenAPI at /openapi.json)",
        flush=True,
    )
    with sock:
        run_server(args.host, args.port, token, script, sock=sock)
    return 0


def _bind_failure(args: argparse.Namespace, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {args.port} on {args.host} is already in use; choose another "
            "with --port"
        )
    reason = error.strerror or str(error)
    return (
        f"cannot listen on {args.host} port {args.port} ({reason}); choose another "
        "--host or --port"
    )
