"""The one exception tree of the project.

    CompletionsAgentError
    ├── ConfigurationError          bad parameter, env var, URL, token or proxy setting
    ├── LogSourceError              the logs could not be read
    │   ├── LogFileError            a log file or stdin could not be opened
    │   └── KubernetesError         the Kubernetes API refused or failed
    │       ├── DeploymentNotFound  404 on the Deployment
    │       ├── PermissionDenied    403 on pods, pods/log or the Deployment (RBAC)
    │       └── NoPodsFound         no pod behind the Deployment could be read
    ├── NoLogLinesError             nothing at all was read: never report "no calls"
    ├── AgentApiError               the Agent API call failed
    │   ├── AgentApiTransientError  timeouts, connection errors, 408/425/429/5xx
    │   ├── AgentApiRejectedError   4xx that retrying cannot fix
    │   └── AnswerValidationError   the answer did not validate
    └── DeliveryError               a notification, tile or action was not delivered

Every message says what was expected and what to do next, and never contains a token.
"""

from __future__ import annotations


class CompletionsAgentError(Exception):
    """Base class: catch this to handle any failure of the agent."""


class ConfigurationError(CompletionsAgentError):
    """A parameter, environment variable or Prefect block is missing or invalid."""


class LogSourceError(CompletionsAgentError):
    """The logs could not be read."""


class LogFileError(LogSourceError):
    """A log file (or stdin) could not be opened or read."""


class KubernetesError(LogSourceError):
    """The Kubernetes API answered with an error."""

    # Keyword arguments have defaults so that Prefect can pickle and unpickle the
    # exception (pickle rebuilds it from the message alone).
    def __init__(
        self, message: str, *, namespace: str | None = None, status: int | None = None
    ):
        super().__init__(message)
        self.namespace = namespace
        self.status = status


class DeploymentNotFound(KubernetesError):
    """The Deployment does not exist in the namespace."""


class PermissionDenied(KubernetesError):
    """The service account lacks an RBAC permission. Retrying cannot fix this."""


class NoPodsFound(KubernetesError):
    """No pod matches the Deployment's selector, or none of them could be read."""


class NoLogLinesError(CompletionsAgentError):
    """No log line was read at all, so no honest analysis is possible."""


class AgentApiError(CompletionsAgentError):
    """The Agent API call failed."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None
    ):
        super().__init__(message)
        self.url = url
        self.status = status
        #: Set when the request is saved: `completions-agent resend --slot` sends it.
        self.slot: str | None = None


class AgentApiTransientError(AgentApiError):
    """A failure that a later attempt may not meet: timeouts, 429, 5xx."""


class AgentApiRejectedError(AgentApiError):
    """The Agent API refused the request; retrying the same request cannot help."""


class AnswerValidationError(AgentApiError):
    """The Agent API answered, but the answer is not a valid Assist answer."""

    def __init__(
        self,
        message: str,
        *,
        errors: list[str] | None = None,
        url: str | None = None,
        body: bytes | None = None,
    ):
        # `errors` has a default so the exception survives pickling (Prefect
        # persists failed states); `body` is the raw answer, kept for review.
        super().__init__(message, url=url)
        self.errors = list(errors) if errors is not None else [message]
        self.body = body


class DeliveryError(CompletionsAgentError):
    """A notification, a dashboard tile or an action could not be delivered."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None
    ):
        super().__init__(message)
        self.url = url
        self.status = status
