"""Redaction of log lines: what is scrubbed, what is kept, and keyed placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flows.records import CallRecord
from flows.redaction import Redactor, is_card_number, redact_calls, redact_request
from tests.test_agent_api import sample_request

PLACEHOLDER = re.compile(r"<(bearer|jwt|api_key|email|card|phone):[0-9a-f]{6}>")
KEY = b"k" * 32


def redactor() -> Redactor:
    return Redactor(KEY)


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("Authorization: Bearer tok-9f8e7d6c5b4a", "bearer", "tok-9f8e7d6c5b4a"),
        ("authorization=bearer abcdefgh.ijk-lmn_o", "bearer", "abcdefgh.ijk-lmn_o"),
        (
            "using key sk-proj-AbCdEf0123456789xyz",
            "api_key",
            "sk-proj-AbCdEf0123456789xyz",
        ),
        (
            "POST https://x.openai.azure.com/c?api-key=9a8b7c6d5e",
            "api_key",
            "9a8b7c6d5e",
        ),
        ("headers {'api-key': 'f00dbabe1234'}", "api_key", "f00dbabe1234"),
        ('{"api_key": "abc-123"}', "api_key", "abc-123"),
        ("x-api-key: QWERTY123", "api_key", "QWERTY123"),
        ("GET /maps?key=AIzaSyD-123_abc&q=1", "api_key", "AIzaSyD-123_abc"),
        ("?subscription-key=0123abcd&x=1", "api_key", "0123abcd"),
        ("Ocp-Apim-Subscription-Key: 0123456789abcdef", "api_key", "0123456789abcdef"),
        (
            "jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl ok",
            "jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        ),
        ("user jane.doe+ops@dealer.example.com asked", "email", "jane.doe+ops@dealer"),
        ("call +1 415 555 0199 now", "phone", "415 555 0199"),
        ("call +44 20 7946 0958", "phone", "7946 0958"),
        ("call (415) 555-0199 now", "phone", "555-0199"),
        ("call 415.555.0199 now", "phone", "555.0199"),
        ("card 4111 1111 1111 1111 declined", "card", "4111 1111 1111 1111"),
        ("card=5500-0000-0000-0004", "card", "5500-0000-0000-0004"),
        ("pan 378282246310005.", "card", "378282246310005"),
    ],
)
def test_each_kind_is_scrubbed(text: str, kind: str, secret: str) -> None:
    scrubber = redactor()
    scrubbed = scrubber.redact(text)
    assert secret not in scrubbed
    assert f"<{kind}:" in scrubbed
    assert scrubber.counts == {kind: 1}


@pytest.mark.parametrize(
    "line",
    [
        "2026-03-10T12:59:59.123456789Z INFO httpx HTTP Request: POST "
        'https://api.openai.com/v1/chat/completions "HTTP/1.1 429 Too Many Requests"',
        "orchestrator-7d9f8b6c5-x2x4z orchestrator 10.42.3.17:8080 latency_ms=1834",
        "request_id=req_01HQ3ZK8Y9 epoch=1741611600 ts_ms=1741611600123",
        "Retrying request to /chat/completions in 0.912000 seconds",
        "version 1.2.3, build 20260310130000",
        "uuid 6f1d8f0e-2b7a-5c1e-9a43-0c7d3b1e5a21",
        'WWW-Authenticate: Bearer error="invalid_token"',
        "monkey=banana turkey=club",
        "card-like but not Luhn 4111 1111 1111 1112",
    ],
)
def test_ordinary_log_content_is_kept(line: str) -> None:
    scrubber = redactor()
    assert scrubber.redact(line) == line
    assert not scrubber.counts


def test_the_case_logs_lose_nothing_but_secrets(cases_dir: Path) -> None:
    scrubber = redactor()
    lines = [
        line
        for path in sorted(cases_dir.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]
    assert len(lines) > 50
    assert [scrubber.redact(line) for line in lines] == lines


def test_the_same_value_gets_the_same_placeholder_within_a_run() -> None:
    scrubber = redactor()
    first = scrubber.redact("from a@example.com to b@example.com")
    again = scrubber.redact("reply to a@example.com")
    a_placeholder = first.split()[1]
    assert again == f"reply to {a_placeholder}"
    assert first.split()[1] != first.split()[3]
    assert scrubber.counts == {"email": 2}
    assert scrubber.occurrences == {"email": 3}


def test_another_run_gets_other_placeholders() -> None:
    text = "owner a@example.com"
    assert Redactor.for_run().redact(text) != Redactor.for_run().redact(text)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Redactor(b"short")


def test_the_repr_shows_counts_not_the_key() -> None:
    scrubber = redactor()
    scrubber.redact("a@example.com")
    assert repr(scrubber) == "Redactor(counts={'email': 1})"


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("411111111111", False),  # 12 digits: too short for a card
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert is_card_number(number) is valid


# --- properties ----------------------------------------------------------------

_words = st.text(alphabet=string.ascii_lowercase + " ", max_size=30)
_local = st.text(
    alphabet=string.ascii_lowercase + string.digits + "._", min_size=1, max_size=12
).filter(lambda s: s[0] not in "._" and s[-1] not in "._")
_domain = st.from_regex(r"[a-z]{2,10}\.(com|org|example|io)", fullmatch=True)
_token = st.text(
    alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=40
)


def _luhn_complete(digits: str) -> str:
    for check in "0123456789":
        if is_card_number(digits + check):
            return digits + check
    raise AssertionError("unreachable: one check digit always works")


_card = st.tuples(
    st.sampled_from("3456"), st.text("0123456789", min_size=14, max_size=14)
).map(lambda parts: _luhn_complete(parts[0] + parts[1]))
_secret = st.one_of(
    st.tuples(
        st.just("email"),
        st.builds(lambda user, host: f"{user}@{host}", _local, _domain),
    ),
    st.tuples(st.just("api_key"), _token.map(lambda t: f"sk-{t}")),
    st.tuples(st.just("bearer"), _token.map(lambda t: f"Bearer {t}")),
    st.tuples(st.just("card"), _card),
    st.tuples(
        st.just("phone"),
        st.from_regex(r"\+[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{4}", fullmatch=True),
    ),
)


@given(_words, _secret, _words)
def test_a_secret_anywhere_in_a_line_is_scrubbed(
    before: str, secret: tuple[str, str], after: str
) -> None:
    kind, value = secret
    hidden = value.removeprefix("Bearer ")
    # Plain words that happen to spell the secret are not the secret leaking.
    assume(hidden not in before and hidden not in after)
    scrubber = redactor()
    scrubbed = scrubber.redact(f"{before} {value} {after}")
    assert hidden not in scrubbed
    assert f"<{kind}:" in scrubbed
    assert scrubber.counts[kind] >= 1


@given(st.text(max_size=200))
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    scrubber = redactor()
    once = scrubber.redact(text)
    assert scrubber.redact(once) == once


@given(st.lists(_secret, min_size=1, max_size=4))
def test_placeholders_are_stable_and_only_placeholders_appear(
    secrets: list[tuple[str, str]],
) -> None:
    scrubber = redactor()
    line = " | ".join(value for _, value in secrets)
    first = scrubber.redact(line)
    assert scrubber.redact(line) == first
    assert len(PLACEHOLDER.findall(first)) == len(secrets)


@given(st.text(alphabet=string.ascii_letters + " ,:/()[]", max_size=120))
def test_text_without_digits_or_at_signs_or_keys_is_untouched(text: str) -> None:
    lowered = text.lower()
    if any(word in lowered for word in ("bearer", "key", "token", "sk-")):
        return
    assert redactor().redact(text) == text


# --- the request ---------------------------------------------------------------


def test_redact_request_scrubs_lines_paths_and_the_user_message() -> None:
    token = "tok-Zx81Qw72Er63Ty54"
    request = sample_request(
        lines=[
            "2026-03-10T12:00:01Z INFO httpx HTTP Request: POST "
            f"https://api.openai.com/v1/chat/completions?api-key={token} "
            '"HTTP/1.1 429 Too Many Requests" user=jane@dealer.example.com',
            f"2026-03-10T12:00:02Z DEBUG headers Authorization: Bearer {token}",
        ]
    )
    request.context.selected[0].path = f"/v1/chat/completions?api-key={token}"
    scrubber = redactor()

    scrubbed = redact_request(request, scrubber)

    dumped = scrubbed.model_dump_json()
    assert token not in dumped
    assert "jane@dealer.example.com" not in dumped
    assert scrubbed.context.selected[0].path is not None
    assert scrubbed.context.selected[0].path.startswith(
        "/v1/chat/completions?api-key=<api_key:"
    )
    assert scrubbed.messages[0] == request.messages[0]
    assert scrubbed.session_id == request.session_id
    assert scrubbed.context.statistics == request.context.statistics
    assert scrubber.counts == {"api_key": 1, "email": 1, "bearer": 1}
    # The original is untouched: the caller keeps both.
    assert token in request.context.selected[1].line


def test_redact_calls_scrubs_like_the_request_and_keeps_the_originals() -> None:
    token = "tok-Qa19Ws28Ed37Rf46"
    calls = [
        CallRecord(
            line=f"POST https://h.example/v1/chat/completions?key={token} 200",
            host="h.example",
            path=f"/v1/chat/completions?key={token}",
            status=200,
            repeat=3,
        ),
        CallRecord(line="mail jane@dealer.example.com", reason=None),
    ]
    scrubber = redactor()
    key = scrubber.placeholder("api_key", token)
    email = scrubber.placeholder("email", "jane@dealer.example.com")

    scrubbed = redact_calls(calls, scrubber)

    assert [call.line for call in scrubbed] == [
        f"POST https://h.example/v1/chat/completions?key={key} 200",
        f"mail {email}",
    ]
    assert scrubbed[0].path == f"/v1/chat/completions?key={key}"
    assert (scrubbed[0].host, scrubbed[0].status, scrubbed[0].repeat) == (
        "h.example",
        200,
        3,
    )
    assert scrubbed[1].reason is None
    assert scrubber.counts == {"api_key": 1, "email": 1}
    assert token in calls[0].line and token in (calls[0].path or "")
    # The request's selected calls get the very same placeholders.
    request = sample_request(lines=[calls[0].line])
    assert redact_request(request, scrubber).context.selected[0].line == (
        scrubbed[0].line
    )
