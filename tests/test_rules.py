"""The matching rules: the words every match holds, and the literal decision."""

from __future__ import annotations

import pytest

from flows.rules import DEFAULT_INCLUDE, Matcher, anchor_for, words_of

URL = "https://api.openai.com/v1/chat/completions"


def test_the_anchor_is_the_longest_word_of_the_patterns() -> None:
    assert words_of(DEFAULT_INCLUDE, "literal") == [b"completions", b"https", b"POST"]
    assert anchor_for(DEFAULT_INCLUDE, "literal") == b"completions"
    assert anchor_for(["/v1/chat/completions", "POST"], "literal") == b"completions"
    assert words_of(['"HTTP/1.1 429'], "literal") == [b"HTTP", b"429", b"1"]
    assert anchor_for(["é", "/"], "literal") == b""
    assert anchor_for(["anything"], "extended") == b"completions"


def test_the_literal_rule_needs_every_pattern_and_no_retry() -> None:
    matcher = Matcher(DEFAULT_INCLUDE, "literal")

    assert matcher.matches(f"HTTP Request: POST {URL}", None)
    assert not matcher.matches("POST https://h/v1/embeddings", None)
    assert not matcher.matches(
        "Retrying request to /chat/completions in 0.4 seconds (POST https://h)", None
    )


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        Matcher(DEFAULT_INCLUDE, "fuzzy")  # type: ignore[arg-type]


def test_the_extended_rule_needs_a_completions_post() -> None:
    matcher = Matcher(DEFAULT_INCLUDE, "extended")

    assert matcher.matches(f'HTTP Request: POST {URL} "HTTP/1.1 200 OK"', None)
    assert not matcher.matches(f'HTTP Request: GET {URL} "HTTP/1.1 200 OK"', None)
    assert not matcher.matches("please POST https://x and explain completions", None)
