"""What one log line says: its text, its JSON message and its timestamps.

These helpers work on a single line that has already been cut out of a file; the
file-level work (blocks, runtime prefixes, rejoining split lines) is in
`flows.logfiles`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

# A CSI sequence: ESC [ parameters intermediates final. It never spans a newline,
# so stripping a whole block at once never merges two lines.
CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")

MAX_SHOWN_CHARS = 2000
_HEAD_CHARS = 1600
_TAIL_CHARS = 300

# Keys under which JSON loggers put the human message, in order of preference.
_MESSAGE_KEYS = ("message", "msg", "event", "log", "text")

_ISO = re.compile(
    r"\[?(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
    r" ?(Z|UTC|[+-]\d{2}:?\d{2})?"
)
_CLF = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")
_JSON_TIME = re.compile(
    r'"(?:timestamp|ts|time|@timestamp|asctime)"\s*:\s*'
    r'(?:"([^"]{8,40})"|(\d{9,13}(?:\.\d+)?))'
)


def strip_ansi(raw: bytes) -> bytes:
    """Remove ANSI CSI sequences (colours, cursor moves) from raw log bytes."""
    if b"\x1b" not in raw:
        return raw
    return CSI.sub(b"", raw)


def decode(raw: bytes) -> str:
    """Decode log bytes as UTF-8, replacing what is not UTF-8 instead of failing."""
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def json_fields(text: str) -> dict[str, Any] | None:
    """The fields of a JSON-structured log line, or None when it is not one."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        fields = json.loads(stripped)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def json_message(fields: dict[str, Any]) -> str | None:
    """The human message of a JSON log record, escapes already decoded once."""
    for key in _MESSAGE_KEYS:
        value = fields.get(key)
        if isinstance(value, str):
            return value
    return None


def shown_text(text: str) -> tuple[str, dict[str, Any] | None]:
    """The text a line is matched and shown by, and its JSON fields if any.

    A JSON-structured line is shown by its message; a JSON line without a message
    field, and any other line, by its whole text.
    """
    fields = json_fields(text)
    if fields is not None:
        message = json_message(fields)
        if message is not None:
            return message, fields
    return text, fields


def truncate(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Shorten a very long line, keeping its head and tail around a visible marker."""
    if len(text) <= limit:
        return text
    cut = len(text) - _HEAD_CHARS - _TAIL_CHARS
    return f"{text[:_HEAD_CHARS]} …[{cut} characters truncated]… {text[-_TAIL_CHARS:]}"


def parse_rfc3339(raw: bytes | str) -> datetime | None:
    """A runtime timestamp (`2026-03-09T13:00:01.123456789Z`) as an aware datetime."""
    text = raw.decode("ascii", errors="replace") if isinstance(raw, bytes) else raw
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def app_timestamp(text: str) -> datetime | None:
    """The timestamp an application wrote into its own line, if it wrote one.

    Recognised: an ISO-8601 date and time at the start of the line (also inside
    `[...]`, as envoy writes it), the common log format date of nginx, and the
    time field of a JSON record (`timestamp`, `ts`, `time`, `@timestamp`,
    `asctime`; ISO text or epoch seconds). A time without a zone is taken as UTC.
    """
    head = text[:64].lstrip()
    found = _ISO.match(head)
    if found:
        return _iso_parts(*found.groups())
    if head.startswith("{"):
        field = _JSON_TIME.search(text[:4096])
        return _json_time(field.group(1) or field.group(2)) if field else None
    clf = _CLF.search(text[:200])
    if clf:
        try:
            return datetime.strptime(clf.group(1), "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            return None
    return None


def _json_time(value: str) -> datetime | None:
    found = _ISO.match(value)
    if found:
        return _iso_parts(*found.groups())
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds > 1e11:  # milliseconds since the epoch
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso_parts(
    day: str, clock: str, fraction: str | None, zone: str | None
) -> datetime | None:
    micro = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z", "UTC") else zone
    if offset and len(offset) == 5:  # +0200
        offset = f"{offset[:3]}:{offset[3:]}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micro}{offset}")
    except ValueError:
        return None
