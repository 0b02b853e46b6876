"""A local stand-in for the orchestrator's upstreams: scripted OpenAI-like answers."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ERRORS = {
    429: {
        "message": "Rate limit reached for gpt-4o-mini in organization "
        "org-dealershipai on requests per min (RPM): Limit 500, Used 500, "
        "Requested 1. Please try again in 120ms.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    },
    500: {
        "message": "The server had an error while processing your request. "
        "Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    },
    503: {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error",
        "param": None,
        "code": None,
    },
}


class Upstream:
    """An HTTP server on 127.0.0.1 that answers like the service it stands for.

    LLM endpoints answer with the statuses given to `script`, one per request, each
    error with a `retry-after-ms` header so that the SDK's retry waits stay short.
    Everything else answers 200 (GET) or 201 (POST) with a small JSON body.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._answers: deque[tuple[int, int]] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._answers))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"

    def script(self, statuses: list[int], retry_after_ms: list[int]) -> None:
        """Queue the statuses the next LLM requests get, and the waits asked for."""
        self._answers.clear()
        self._answers.extend(zip(statuses, [*retry_after_ms, 0], strict=False))

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(answers: deque[tuple[int, int]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Small header and body writes would otherwise wait on delayed ACKs.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """The server's own access log is not part of the sample."""

        def do_GET(self) -> None:
            self._reply(200, {"id": self.path.rsplit("/", 1)[-1], "status": "ok"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if not self.path.startswith("/v1/"):
                self._reply(201, {"id": "note-1", "created": True})
                return
            status, wait_ms = answers.popleft() if answers else (200, 0)
            if status != 200:
                headers = {"retry-after-ms": str(wait_ms)}
                self._reply(status, {"error": _ERRORS[status]}, headers)
            else:
                self._reply(200, _success(self.path))

        def _reply(
            self,
            status: int,
            body: dict[str, Any],
            headers: dict[str, str] | None = None,
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _success(path: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 180, "completion_tokens": 60, "total_tokens": 240}
    if path.endswith("/embeddings"):
        return {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.01, -0.02]}],
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    if path.endswith("/chat/completions"):
        message = {"role": "assistant", "content": "Done."}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return {
            "id": "chatcmpl-sample",
            "object": "chat.completion",
            "created": 1773090000,
            "model": "gpt-4o-mini",
            "choices": [choice],
            "usage": usage,
        }
    choice = {"index": 0, "text": "Done.", "finish_reason": "stop", "logprobs": None}
    return {
        "id": "cmpl-sample",
        "object": "text_completion",
        "created": 1773090000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [choice],
        "usage": usage,
    }
