"""The two matching rules: which shown log lines count as completions calls.

- `literal` (the default): the line, as shown, contains every include pattern
  (by default `POST https` and `completions`), like `grep -F … | grep -F …`.
- `extended`: the line is a POST (or an SDK response line) to a path containing
  `completions`, in a format `flows.calls` knows (httpx / OpenAI Python SDK, OpenAI
  Node SDK, envoy and nginx access logs, JSON loggers with the method and URL in
  separate fields), over `https` or `http`. Include patterns are not used.

Under both rules an SDK line that only announces a retry is never a call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from flows.calls import ParsedCall, is_retry_line, parse_call

DEFAULT_INCLUDE: tuple[str, ...] = ("POST https", "completions")
Rule = Literal["literal", "extended"]

_WORD = re.compile(r"[A-Za-z0-9]+")


def words_of(include: Sequence[str], rule: Rule) -> list[bytes]:
    """The words (letters and digits) every matching line holds in its raw bytes.

    JSON encoders never escape letters and digits, and colour formatters put
    their ANSI sequences around words, not inside them; so a line whose raw bytes
    lack one of these words cannot match, whatever escapes or colours it has.
    """
    if rule == "extended":
        return [b"completions"]
    found = {word for pattern in include for word in _WORD.findall(pattern)}
    return sorted((word.encode() for word in found), key=lambda w: (-len(w), w))


def anchor_for(include: Sequence[str], rule: Rule) -> bytes:
    """The longest of `words_of`: the text searched for in whole blocks.

    An empty anchor (patterns without letters or digits) makes every line a
    candidate.
    """
    words = words_of(include, rule)
    return words[0] if words else b""


class Matcher:
    """Decides whether a shown line is a call under a rule."""

    def __init__(self, include: Sequence[str], rule: Rule) -> None:
        if rule not in ("literal", "extended"):
            raise ValueError(f"unknown rule {rule!r}: use 'literal' or 'extended'")
        self.include = tuple(include)
        self.rule = rule

    def matches(self, text: str, fields: dict[str, Any] | None) -> bool:
        """True when the line counts as a completions call."""
        return self.decide(text, parse_call(text, fields))

    def decide(self, text: str, call: ParsedCall | None) -> bool:
        """Like `matches`, given the call already parsed from the same line."""
        if self.rule == "literal":
            return all(pattern in text for pattern in self.include) and not (
                is_retry_line(text)
            )
        return call is not None and is_completions_call(call)


def is_completions_call(call: ParsedCall) -> bool:
    """A POST (or a line without a method) over HTTP(S) to a completions path."""
    return (
        call.method in (None, "POST")
        and call.scheme in (None, "http", "https")
        and "completions" in (call.path or "")
    )
