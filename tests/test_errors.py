"""The exception tree: every error survives Prefect's pickling with its message."""

import pickle

import pytest

from flows.errors import (
    AgentApiRejectedError,
    AnswerValidationError,
    DeploymentNotFound,
    PermissionDenied,
)


@pytest.mark.parametrize(
    "error",
    [
        PermissionDenied("cannot get pods/log", namespace="dealershipai", status=403),
        DeploymentNotFound("no orchestrator", namespace="dealershipai", status=404),
        AgentApiRejectedError("HTTP 401", url="https://a/v1/assist", status=401),
        AnswerValidationError("bad answer", errors=["summary: missing"]),
    ],
)
def test_errors_survive_pickling_with_their_message(error):
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
