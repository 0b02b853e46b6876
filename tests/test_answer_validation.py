"""Answer parsing and the deliberate rules of the Assist answer model."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.answer import MAX_ANSWER_BYTES, parse_answer, redact_body
from flows.errors import AnswerValidationError
from flows.redaction import Redactor

TOOLS = [
    "open_pulse_detail",
    "queue_refresh",
    "site_inject",
    "auto_fix",
    "open_incident",
]


def action(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "a1",
        "intent": "Look at the 429 burst",
        "confidence": 0.8,
        "requires_approval": False,
        "tool": "open_pulse_detail",
        "input": {"metric": "completions.error_rate"},
        "preview": "Open Pulse",
    }
    base.update(fields)
    return base


def answer(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "summary": "5 calls, 1 rate-limited",
        "error_count": 1,
        "recommendations": ["Raise the rate limit"],
        "actions": [action()],
    }
    base.update(fields)
    return base


def encoded(data: Any) -> bytes:
    return json.dumps(data).encode()


def rejected(body: bytes) -> AnswerValidationError:
    with pytest.raises(AnswerValidationError) as caught:
        parse_answer(body, url="https://agent.example/v1/assist")
    assert caught.value.url == "https://agent.example/v1/assist"
    return caught.value


def test_a_valid_answer() -> None:
    parsed = parse_answer(encoded(answer()))
    assert parsed.summary == "5 calls, 1 rate-limited"
    assert parsed.actions[0].confidence == 0.8
    assert parsed.actions[0].requires_approval is False


def test_a_utf8_bom_is_tolerated(cases_dir: Any) -> None:
    # Case 23: the body starts with EF BB BF; its shape is replaced by the Assist one.
    original = json.loads((cases_dir / "23-json-bom.json").read_bytes()[3:])
    body = b"\xef\xbb\xbf" + encoded(answer(summary=original["summary"]))
    assert parse_answer(body).summary == "3 distinct endpoints, 1 error burst"


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "```\n{}\n```",
        "  ```json\r\n{}\r\n```  \n",
        "```JSON\n{}```",
    ],
)
def test_one_enclosing_code_fence_is_stripped(wrap: str) -> None:
    body = wrap.replace("{}", json.dumps(answer())).encode()
    assert parse_answer(body).error_count == 1


def test_text_around_a_fence_is_not_json() -> None:
    body = f"Here is the answer:\n```json\n{json.dumps(answer())}\n```".encode()
    error = rejected(body)
    assert "not JSON" in str(error)
    assert "b'Here is the answer:" in str(error)


def test_a_non_json_body_shows_its_first_bytes() -> None:
    error = rejected(b"<html><body>Internal Server Error</body></html>")
    assert str(error).startswith("the answer is not JSON (Expecting value)")
    assert "b'<html><body>Internal Server Error</body></html>'" in str(error)


def test_a_non_utf8_body_shows_its_first_bytes() -> None:
    error = rejected(b'{"summary": "caf\xe9"}')
    assert "not UTF-8" in str(error)
    assert "caf\\xe9" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the answer body is empty"),
        (b"  \n", "the answer body is empty"),
        (b"\xef\xbb\xbf", "the answer body is empty"),
        (b"[]", "the answer must be a JSON object, got a JSON array"),
        (b"null", "the answer must be a JSON object, got a JSON null"),
        (b'"fine"', "the answer must be a JSON object, got a JSON string"),
        (b"42", "the answer must be a JSON object, got a JSON number"),
    ],
)
def test_bodies_that_are_not_an_object(body: bytes, expected: str) -> None:
    error = rejected(body)
    assert error.errors == [expected]


def test_an_oversized_answer_is_rejected_before_parsing() -> None:
    body = b'{"summary": "' + b"x" * MAX_ANSWER_BYTES + b'"}'
    error = rejected(body)
    assert error.errors == [f"the answer is {len(body)} bytes, over the 1048576 cap"]


def test_nulls_and_wrong_types_give_a_readable_list() -> None:
    body = encoded(
        {
            "summary": None,
            "error_count": "many",
            "recommendations": "one",
            "actions": [action(requires_approval="perhaps", id="")],
        }
    )
    error = rejected(body)
    assert error.errors == [
        "summary: Input should be a valid string (got None)",
        "error_count: Input should be a valid integer, unable to parse string as an "
        "integer (got 'many')",
        "recommendations: Input should be a valid list (got 'one')",
        "actions.0.id: String should have at least 1 character (got '')",
        "actions.0.requires_approval: Input should be a valid boolean, unable to "
        "interpret input (got 'perhaps')",
    ]
    assert str(error).startswith("the answer does not match the Assist answer model: ")


def test_missing_required_fields_are_listed() -> None:
    error = rejected(encoded({"actions": [{"id": "a1"}]}))
    assert error.errors == [
        "summary: required field is missing",
        "error_count: required field is missing",
        "actions.0.intent: required field is missing",
        "actions.0.confidence: required field is missing",
        "actions.0.requires_approval: required field is missing",
        "actions.0.tool: required field is missing",
    ]


# --- confidence ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "kept"), [("0.8", 0.8), (" 1 ", 1.0), (0, 0.0)]
)
def test_confidence_numeric_strings_are_converted(
    given_value: Any, kept: float
) -> None:
    parsed = parse_answer(encoded(answer(actions=[action(confidence=given_value)])))
    assert parsed.actions[0].confidence == kept


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"confidence": NaN}', "finite number"),
        (b'{"confidence": Infinity}', "finite number"),
        (b'{"confidence": "nan"}', "finite number"),
        (b'{"confidence": "80%"}', "got '80%'"),
        (b'{"confidence": 80}', "less than or equal to 1"),
        (b'{"confidence": 1.01}', "less than or equal to 1"),
        (b'{"confidence": -0.1}', "greater than or equal to 0"),
        (b'{"confidence": true}', "not a boolean"),
        (b'{"confidence": null}', "valid number"),
    ],
)
def test_confidence_outside_zero_to_one_is_rejected(body: bytes, message: str) -> None:
    fields = dict(action())
    fields.pop("confidence")
    raw_action = json.dumps(fields)[:-1] + ", " + body.decode()[1:]
    error = rejected(
        b'{"summary": "s", "error_count": 0, "actions": [' + raw_action.encode() + b"]}"
    )
    assert len(error.errors) == 1
    assert error.errors[0].startswith("actions.0.confidence: ")
    assert message in error.errors[0]


@given(st.floats(min_value=0, max_value=1))
def test_any_confidence_in_range_is_kept(value: float) -> None:
    parsed = parse_answer(encoded(answer(actions=[action(confidence=value)])))
    assert parsed.actions[0].confidence == value


@given(st.floats().filter(lambda value: not 0 <= value <= 1))
def test_any_confidence_out_of_range_is_rejected(value: float) -> None:
    body = encoded(answer(actions=[action(confidence=value)]))
    with pytest.raises(AnswerValidationError) as caught:
        parse_answer(body)
    assert caught.value.errors[0].startswith("actions.0.confidence: ")
    if math.isnan(value):
        assert "finite" in caught.value.errors[0]


# --- tools, approval and extra fields -----------------------------------------


def test_an_undeclared_tool_is_rejected_and_named() -> None:
    error = rejected(encoded(answer(actions=[action(tool="delete_cluster")])))
    assert len(error.errors) == 1
    assert error.errors[0].startswith("actions.0.tool: Input should be ")
    assert "'delete_cluster'" in error.errors[0]


@pytest.mark.parametrize("tool", TOOLS)
def test_approval_is_forced_for_tools_that_change_things(tool: str) -> None:
    parsed = parse_answer(
        encoded(answer(actions=[action(tool=tool, requires_approval=False)]))
    )
    expected = tool in ("site_inject", "auto_fix")
    assert parsed.actions[0].requires_approval is expected
    assert [a.tool for a in parsed.actions_needing_approval] == (
        [tool] if expected else []
    )


def test_unknown_extra_fields_are_kept_but_never_trusted() -> None:
    body = encoded(
        answer(
            approved_by="agent",
            actions=[
                action(
                    tool="auto_fix",
                    requires_approval=False,
                    auto_execute=True,
                    input={"target": "deploy/orchestrator", "fix": "restart"},
                )
            ],
        )
    )
    parsed = parse_answer(body)
    assert parsed.model_extra == {"approved_by": "agent"}
    assert parsed.actions[0].model_extra == {"auto_execute": True}
    # The extra flag changes nothing: doctrine still asks a person first.
    assert parsed.actions[0].requires_approval is True


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "tool": st.sampled_from(TOOLS),
                "requires_approval": st.booleans(),
                "confidence": st.floats(0, 1),
            }
        ),
        max_size=5,
    )
)
def test_no_answer_ever_lets_a_change_skip_approval(
    actions: list[dict[str, Any]],
) -> None:
    body = encoded(
        answer(
            actions=[action(id=f"a{i}", **fields) for i, fields in enumerate(actions)]
        )
    )
    parsed = parse_answer(body)
    for given_action, kept in zip(actions, parsed.actions, strict=True):
        if given_action["tool"] in ("site_inject", "auto_fix"):
            assert kept.requires_approval is True
        else:
            assert kept.requires_approval is given_action["requires_approval"]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_validate_or_raise_the_validation_error(
    body: bytes,
) -> None:
    try:
        parse_answer(body)
    except AnswerValidationError as error:
        assert error.errors
        assert all(isinstance(item, str) and item for item in error.errors)


def test_a_rejected_body_is_redacted_for_review() -> None:
    body = (
        b'{"summary": null, "note": "contact ops@example.com, '
        b'Authorization: Bearer tok-ABCDEFGH12345678"}'
    )
    text = redact_body(body, Redactor.for_run(), ("tok-ABCDEFGH12345678",))
    assert "ops@example.com" not in text
    assert "tok-ABCDEFGH12345678" not in text
    assert "<email:" in text
    assert '"summary": null' in text
