"""Turn a matched log line into an HTTP call, when its format is known.

Known formats:

- httpx and the OpenAI Python SDK, any logger name:
  `HTTP Request: POST https://host/path "HTTP/1.1 200 OK"` (an empty reason and
  `HTTP/2` are valid);
- the OpenAI Node SDK: `[log_…] POST https://host/path failed with status 429 in
  212ms` and the older debug form `OpenAI:DEBUG:response 429 https://host/path`;
- envoy (and istio) and nginx access logs: `"POST /path HTTP/1.1" 200 …`;
- JSON loggers: the message in any of the forms above, or the method, URL,
  status and latency in separate fields.

Query strings are kept with secret-looking values replaced by `[redacted]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

REDACTED = "[redacted]"

_HTTPX = re.compile(
    r'HTTP Request: ([A-Z]+) (\S+) "(HTTP/[\d.]+) (\d{3})(?: ([^"]*))?"'
)
_NODE = re.compile(
    r"\] ([A-Z]+) (https?://\S+) (?:succeeded|failed) with status (\d{3}) in (\d+)ms"
)
_NODE_DEBUG = re.compile(r"OpenAI:DEBUG:response(?: \(.*?\)+)? (\d{3}) (https?://\S+)")
_ACCESS = re.compile(r'"([A-Z]+) (\S+) (HTTP/[\d.]+)" (\d{3})\b')
_ENVOY_TAIL = re.compile(
    r' \S+(?: \S+ \S+ "[^"]*")? \d+ \d+ (\d+) \S+ "[^"]*" "[^"]*" "[^"]*" "([^"]*)"'
)
_LATENCY = re.compile(
    r"(?i)\b(?:latency(?:_ms)?|duration(?:_ms)?|elapsed(?:_ms)?|took|request_time|rt)"
    r"[=:]\s*\"?(\d+(?:\.\d+)?)\s*(ms|s)?\b"
)
_RETRY = re.compile(
    r"Retrying request(?: to \S+)? in [\d.]+ seconds|response error \(retrying"
)
_URL = re.compile(r"https?://[^\s\"'<>\\]+")
_SECRET_KEY = re.compile(
    r"(?i)(key|token|secret|passw|sig|auth|credential|session|code|jwt)"
)
_SECRET_VALUE = re.compile(r"^(?:sk-|eyJ)|^[A-Za-z0-9+/_=-]{24,}$")


@dataclass(frozen=True)
class ParsedCall:
    """The HTTP facts a known log format gives about one call."""

    method: str | None
    scheme: str | None
    host: str | None
    path: str | None
    http_version: str | None = None
    status: int | None = None
    reason: str | None = None
    latency_ms: float | None = None


def is_retry_line(text: str) -> bool:
    """True for an SDK line that only announces a retry (it is not a call)."""
    return _RETRY.search(text) is not None


def parse_call(text: str, fields: dict[str, Any] | None = None) -> ParsedCall | None:
    """The call a line describes, or None when its format is not known.

    Args:
        text: the line as shown (for a JSON record, its message).
        fields: the JSON record's fields, when the line is one.
    """
    if is_retry_line(text):
        return None
    call = parse_text(text)
    if call is None and fields:
        return _json_call(fields)
    return call


def parse_text(text: str) -> ParsedCall | None:
    """The call a line's text describes, without looking at JSON fields."""
    for parse in (_httpx, _node, _access):
        call = parse(text)
        if call is not None:
            return call
    return None


def redact_url(url: str) -> str:
    """The URL without user info, and with secret-looking query values redacted."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _redact_query(parts.query)
    path = parts.path + (f"?{query}" if parts.query else "")
    return f"{parts.scheme}://{netloc}{path}" if parts.scheme else path


def redact_urls(text: str) -> str:
    """The text with every URL in it redacted by `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda found: redact_url(found.group(0)), text)


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        secret = _SECRET_KEY.search(name) or _SECRET_VALUE.search(value)
        pairs.append(f"{name}={REDACTED}" if equals and secret else pair)
    return "&".join(pairs)


def _split(url: str) -> tuple[str | None, str | None, str]:
    parts = urlsplit(redact_url(url))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme or None, parts.hostname, path


def _httpx(text: str) -> ParsedCall | None:
    found = _HTTPX.search(text)
    if not found:
        return None
    method, url, version, status, reason = found.groups()
    scheme, host, path = _split(url)
    latency = _latency(text[found.end() :])
    return ParsedCall(
        method, scheme, host, path, version, int(status), reason or "", latency
    )


def _node(text: str) -> ParsedCall | None:
    found = _NODE.search(text)
    if found:
        method, url, status, millis = found.groups()
        scheme, host, path = _split(url)
        return ParsedCall(
            method, scheme, host, path, None, int(status), None, float(millis)
        )
    debug = _NODE_DEBUG.search(text)
    if debug:
        scheme, host, path = _split(debug.group(2))
        return ParsedCall(None, scheme, host, path, None, int(debug.group(1)))
    return None


def _access(text: str) -> ParsedCall | None:
    found = _ACCESS.search(text)
    if not found:
        return None
    method, target, version, status = found.groups()
    scheme, host, path = _split(target)
    envoy = _ENVOY_TAIL.match(text, found.end())
    if envoy:
        latency: float | None = float(envoy.group(1))
        host = host or (envoy.group(2) if envoy.group(2) not in ("", "-") else None)
    else:
        latency = _latency(text[found.end() :])
    return ParsedCall(method, scheme, host, path, version, int(status), None, latency)


def _latency(rest: str) -> float | None:
    found = _LATENCY.search(rest)
    if not found:
        return None
    value, unit = float(found.group(1)), found.group(2)
    key = found.group(0).lower()
    seconds = unit == "s" or (unit is None and key.startswith(("request_time", "rt")))
    return value * 1000 if seconds else value


_METHOD_KEYS = (
    "method",
    "http_method",
    "request_method",
    "http.method",
    "request.method",
    "httpRequest.requestMethod",
)
_URL_KEYS = (
    "url",
    "uri",
    "request_uri",
    "http.url",
    "request.url",
    "httpRequest.requestUrl",
    "path",
    "http.path",
    "request.path",
)
_HOST_KEYS = ("host", "http.host", "request.host")
_STATUS_KEYS = (
    "status",
    "status_code",
    "http_status",
    "response_status",
    "http.status_code",
    "response.status",
    "response.status_code",
    "httpRequest.status",
)
_LATENCY_KEYS = (
    "latency_ms",
    "duration_ms",
    "elapsed_ms",
    "response_time_ms",
    "latency",
    "duration",
    "elapsed",
    "response_time",
    "request_time",
    "httpRequest.latency",
)


def _json_call(fields: dict[str, Any]) -> ParsedCall | None:
    flat = _flatten(fields)
    method = _first(flat, _METHOD_KEYS)
    url = _first(flat, _URL_KEYS)
    if not isinstance(method, str) or not isinstance(url, str):
        return None
    scheme, host, path = _split(url)
    if host is None:
        named = _first(flat, _HOST_KEYS)
        host = named if isinstance(named, str) else None
    status = _first(flat, _STATUS_KEYS)
    code = (
        int(status)
        if isinstance(status, (int, str)) and str(status).isdigit()
        else None
    )
    return ParsedCall(
        method.upper(), scheme, host, path, None, code, None, _json_latency(flat)
    )


def _json_latency(flat: dict[str, Any]) -> float | None:
    for key in _LATENCY_KEYS:
        value = flat.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            seconds = key in ("request_time",) or key.endswith("_s")
            return float(value) * 1000 if seconds else float(value)
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(value))
        if found:
            number = float(found.group(1))
            return number * 1000 if found.group(2) == "s" else number
    return None


def _flatten(fields: dict[str, Any]) -> dict[str, Any]:
    flat = dict(fields)
    for name, value in fields.items():
        if isinstance(value, dict):
            for inner, item in value.items():
                flat.setdefault(f"{name}.{inner}", item)
    return flat


def _first(flat: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if flat.get(key) not in (None, ""):
            return flat[key]
    return None
