"""Scrub secrets and personal data from log lines before they leave the cluster."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import Counter
from collections.abc import Callable

from flows.assist import AssistRequest, Message
from flows.records import CallRecord

# Placeholders look like `<email:3f2a1c>`. Every pattern below refuses to start on
# `<`, so scrubbing a scrubbed text changes nothing.
_PLACEHOLDER_HEX = 6

_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
_NAMED_KEY = re.compile(
    r"(?i)(?<![A-Za-z0-9<])"
    r"((?:x-)?api[-_]?key|(?:ocp-apim-)?subscription[-_]key|access[-_]token)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"'&,;<>]+)"
)
# A bare `key` only in the query-string form: `key:` would also hit placeholders.
_QUERY_KEY = re.compile(r"(?i)(?<![A-Za-z0-9<_-])(key\s*=\s*)([^\s\"'&,;<>]+)")
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_CARD = re.compile(r"(?<![\w.-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-]|\.\d)")
_PHONE = re.compile(
    r"(?<![\w.+-])"
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})"
    r"(?![\w-]|\.\d)"
)

KINDS = ("bearer", "jwt", "api_key", "email", "card", "phone")


class Redactor:
    """Replaces secrets and personal data with keyed placeholders, and counts them.

    The key is random per run: within a run the same value always gets the same
    placeholder, so the agent can still tell repeated values apart, while across
    runs the placeholders cannot be correlated or reversed.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the redaction key must be at least 16 bytes")
        self._key = key
        self._seen: set[str] = set()
        #: Distinct values replaced, by kind (what the report shows).
        self.counts: Counter[str] = Counter()
        #: Every replacement, by kind (a value seen in a line and a message twice).
        self.occurrences: Counter[str] = Counter()

    @classmethod
    def for_run(cls) -> Redactor:
        """A redactor with a fresh random key."""
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return f"Redactor(counts={dict(self.counts)})"

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder for `value`, e.g. `<email:3f2a1c>`."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return f"<{kind}:{digest[:_PLACEHOLDER_HEX]}>"

    def redact(self, text: str) -> str:
        """Return `text` with every secret and personal datum replaced."""
        text = _BEARER.sub(lambda m: m.group(1) + self._swap("bearer", m[2]), text)
        text = _JWT.sub(lambda m: self._swap("jwt", m[0]), text)
        text = _SK_KEY.sub(lambda m: self._swap("api_key", m[0]), text)
        text = _NAMED_KEY.sub(lambda m: m[1] + m[2] + self._swap("api_key", m[3]), text)
        text = _QUERY_KEY.sub(lambda m: m[1] + self._swap("api_key", m[2]), text)
        text = _EMAIL.sub(lambda m: self._swap("email", m[0]), text)
        text = _CARD.sub(self._when(is_card_number, "card"), text)
        return _PHONE.sub(self._when(_is_phone_number, "phone"), text)

    def _swap(self, kind: str, value: str) -> str:
        placeholder = self.placeholder(kind, value)
        self.occurrences[kind] += 1
        if placeholder not in self._seen:
            self._seen.add(placeholder)
            self.counts[kind] += 1
        return placeholder

    def _when(
        self, check: Callable[[str], bool], kind: str
    ) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            value = match[0]
            return self._swap(kind, value) if check(value) else value

        return replace


def is_card_number(text: str) -> bool:
    """True when the digits of `text` are 13 to 19 long and pass the Luhn check."""
    digits = [int(char) for char in text if char.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_phone_number(text: str) -> bool:
    return 10 <= sum(char.isdigit() for char in text) <= 15


def redact_request(request: AssistRequest, redactor: Redactor) -> AssistRequest:
    """A copy of `request` whose log lines and user messages are scrubbed.

    The text fields of every selected call (the line, and the host, path and
    reason parsed from it) and every user message go through `redactor`; the
    system message, doctrine and schemas are ours and stay as they are.
    """
    selected = redact_calls(request.context.selected, redactor)
    messages = [
        Message(role=message.role, content=redactor.redact(message.content))
        if message.role == "user"
        else message
        for message in request.messages
    ]
    context = request.context.model_copy(update={"selected": selected})
    return request.model_copy(update={"context": context, "messages": messages})


def redact_calls(calls: list[CallRecord], redactor: Redactor) -> list[CallRecord]:
    """Copies of `calls` whose line, host, path and reason are scrubbed.

    The same scrubbing as `redact_request` applies to its selected calls, so a
    line printed locally shows the same placeholders the Agent API would see
    with the same `redactor`. The calls given are left unchanged.
    """
    return [_redact_call(call, redactor) for call in calls]


def _redact_call(call: CallRecord, redactor: Redactor) -> CallRecord:
    update = {
        name: redactor.redact(value)
        for name in ("line", "host", "path", "reason")
        if isinstance(value := getattr(call, name), str)
    }
    return call.model_copy(update=update)
