"""Agent API settings from parameters, env vars or a Prefect Secret, checked early."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import cast
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from flows.errors import ConfigurationError

logger = logging.getLogger(__name__)

BASE_ENV = "AGENTAPI_BASE"
TOKEN_ENV = "AGENTAPI_TOKEN"
TIMEOUT_ENV = "AGENTAPI_TIMEOUT_MS"
ALLOW_HTTP_ENV = "AGENTAPI_ALLOW_INSECURE_HTTP"
DEFAULT_TIMEOUT_MS = 10_000
#: Optional env vars for the retry policy, by `AgentApiConfig` field.
POLICY_ENVS = {
    "max_attempts": "AGENTAPI_MAX_ATTEMPTS",
    "deadline_s": "AGENTAPI_DEADLINE_S",
    "retry_after_cap_s": "AGENTAPI_RETRY_AFTER_CAP_S",
}

_PROXY_ENVS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class AgentApiConfig(BaseModel):
    """How to reach the Agent API. The token is a `SecretStr`: no repr shows it."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    token: SecretStr
    token_source: str = Field(
        description="Where the token came from, named in 401/403 errors."
    )
    read_timeout_s: float = Field(default=DEFAULT_TIMEOUT_MS / 1000, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    deadline_s: float = Field(
        default=300.0, gt=0, description="The whole post step, retries included."
    )
    max_attempts: int = Field(default=5, ge=1)
    retry_after_cap_s: float = Field(
        default=120.0,
        ge=0,
        description="A longer Retry-After fails the step instead of sleeping.",
    )
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    allow_insecure_http: bool = False

    @field_validator("token")
    @classmethod
    def _token_is_not_blank(cls, token: SecretStr) -> SecretStr:
        # Never send "Bearer " with nothing after it, however the config was built.
        if not token.get_secret_value().strip():
            raise ValueError("the Agent API token is empty")
        return token

    @property
    def assist_url(self) -> str:
        return f"{self.base_url}/v1/assist"


def resolve_base_url(base: str | None) -> str | None:
    """The base URL from the parameter, else `AGENTAPI_BASE`; None when neither."""
    value = (base or os.environ.get(BASE_ENV) or "").strip()
    return value or None


def load_agent_api_config(
    base: str | None,
    token_block: str | None,
    *,
    allow_insecure_http: bool | None = None,
    **overrides: float | int,
) -> AgentApiConfig | None:
    """Read and check the Agent API settings, before any log is read.

    Args:
        base: Base URL; default the `AGENTAPI_BASE` env var.
        token_block: Name of a Prefect `Secret` block holding the token; default
            the `AGENTAPI_TOKEN` env var.
        allow_insecure_http: Accept a plain `http://` URL to a non-loopback host;
            default the `AGENTAPI_ALLOW_INSECURE_HTTP` env var.
        **overrides: Other `AgentApiConfig` fields (attempts, caps, deadline).

    Returns:
        The checked settings, or None when no base URL is configured at all (the
        caller decides whether the built-in analyser may stand in).

    Raises:
        ConfigurationError: bad URL, plain http to a remote host, missing or empty
            token, unreadable Secret block, or proxy settings httpx cannot use.
    """
    base_url = resolve_base_url(base)
    if base_url is None:
        return None
    if allow_insecure_http is None:
        allow_insecure_http = insecure_http_allowed()
    base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
    token, source = _read_token(token_block)
    policy = {**_policy_from_env(), **overrides}
    try:
        config = AgentApiConfig(
            base_url=base_url,
            token=SecretStr(token),
            token_source=source,
            read_timeout_s=_timeout_ms() / 1000,
            allow_insecure_http=allow_insecure_http,
            **policy,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigurationError(
            f"invalid Agent API retry settings ({problems}); check "
            f"{', '.join(POLICY_ENVS.values())}"
        ) from None
    check_proxy_environment(base_url)
    return config


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """Check the URL's shape and scheme; return it without a trailing slash.

    Raises:
        ConfigurationError: not an absolute http(s) URL, or plain http to a host
            that is not loopback without `allow_insecure_http`.
    """
    parts = urlsplit(base_url)
    # First: the messages below quote the URL.
    if parts.username or parts.password:
        raise ConfigurationError(
            "the Agent API base URL must not carry credentials; put the token in "
            f"{TOKEN_ENV} or a Prefect Secret block"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"Agent API base URL {base_url!r} is not an absolute http(s) URL; "
            "expected e.g. https://agent-api.example.internal"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"Agent API base URL {parts.scheme}://{parts.netloc}{parts.path} has a "
            "query or fragment (not shown: it may hold a secret); give the base "
            "only, /v1/assist is appended"
        )
    if (
        parts.scheme == "http"
        and not allow_insecure_http
        and not is_loopback(parts.hostname)
    ):
        raise ConfigurationError(
            f"Agent API base URL {base_url!r} is plain http to a remote host: the "
            "token would cross the network in clear. Use https, or set "
            f"{ALLOW_HTTP_ENV}=true if the link is otherwise protected"
        )
    return base_url.rstrip("/")


def is_loopback(hostname: str) -> bool:
    """True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def check_proxy_environment(base_url: str) -> None:
    """Fail now if httpx cannot use the proxy settings, rather than at post time.

    httpx rejects some `NO_PROXY` entries that other tools accept (a bracketed
    IPv6 address, an IPv6 range) and silently ignores CIDR ranges, which it
    reads as host names.

    Raises:
        ConfigurationError: naming the entry or variable at fault.
    """
    no_proxy = _env_any("NO_PROXY")
    for entry in filter(None, (item.strip() for item in no_proxy.split(","))):
        if _is_unusable_ipv6(entry):
            raise ConfigurationError(
                f"NO_PROXY entry {entry!r} is a bracketed IPv6 address or an IPv6 "
                "range, which httpx cannot use; remove it (a bare single address "
                "such as ::1 is accepted)"
            )
        _check_cidr_entry(entry, base_url)
    try:
        httpx.Client(trust_env=True).close()
    except (httpx.InvalidURL, ValueError, ImportError) as error:
        names = [name for name in (*_PROXY_ENVS, "NO_PROXY") if _env_any(name)]
        raise ConfigurationError(
            f"the proxy settings ({', '.join(names) or 'none set'}) cannot be used "
            f"by httpx: {error}. Fix or unset them in the work pool's job variables"
        ) from None


def _is_unusable_ipv6(entry: str) -> bool:
    if entry.startswith("["):
        return True
    if "/" not in entry:
        return False
    try:
        return ipaddress.ip_network(entry, strict=False).version == 6
    except ValueError:
        return False


def _check_cidr_entry(entry: str, base_url: str) -> None:
    if "/" not in entry or not any(_env_any(name) for name in _PROXY_ENVS):
        return
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return
    host = urlsplit(base_url).hostname or ""
    try:
        inside = ipaddress.ip_address(host) in network
    except ValueError:
        inside = False
    if inside:
        raise ConfigurationError(
            f"NO_PROXY entry {entry!r} is a CIDR range, which httpx ignores, so the "
            f"Agent API at {host} would be reached through the proxy; list the "
            "host itself in NO_PROXY"
        )
    logger.warning("NO_PROXY entry %r is a CIDR range, which httpx ignores", entry)


def _read_token(token_block: str | None) -> tuple[str, str]:
    if token_block:
        source = f"the Prefect Secret block {token_block!r}"
        raw: str | None = _load_secret_block(token_block, source)
    else:
        source = f"the {TOKEN_ENV} environment variable"
        raw = os.environ.get(TOKEN_ENV)
        if raw is None:
            raise ConfigurationError(
                f"no Agent API token: set the {TOKEN_ENV} environment variable, or "
                "name a Prefect Secret block holding it (e.g. agentapi-cred) in the "
                "flow parameter agent_api_token_block or the CLI flag --token-block"
            )
    # A Secret pasted from a file often ends with a newline.
    token = (raw or "").strip()
    if not token:
        raise ConfigurationError(
            f"the Agent API token from {source} is empty; store the token itself"
        )
    if any(char.isspace() for char in token) or not token.isascii():
        raise ConfigurationError(
            f"the Agent API token from {source} contains spaces or non-ASCII "
            "characters; store the bare token, without 'Bearer '"
        )
    return token, source


def _load_secret_block(name: str, source: str) -> str:
    from prefect.blocks.system import Secret

    try:
        # _sync: this runs inside async flows too, where load() would return a
        # coroutine instead of the block.
        block = cast(Secret[str], Secret.load(name, _sync=True))  # type: ignore[call-arg]
    except ValueError as error:
        raise ConfigurationError(
            f"cannot load {source}: {error}. Create it in the Prefect UI "
            "(Blocks > Secret) or check its name"
        ) from None
    value = block.get()
    if not isinstance(value, str):
        raise ConfigurationError(f"{source} must hold a string token")
    return value


def _policy_from_env() -> dict[str, float]:
    policy = {}
    for name, env in POLICY_ENVS.items():
        raw = os.environ.get(env, "").strip()
        if raw:
            try:
                policy[name] = float(raw)
            except ValueError:
                raise ConfigurationError(f"{env}={raw!r} is not a number") from None
    return policy


def _timeout_ms() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_MS
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigurationError(
            f"{TIMEOUT_ENV}={raw!r} is not a positive number of milliseconds"
        )
    return value


def _env_any(name: str) -> str:
    return os.environ.get(name) or os.environ.get(name.lower()) or ""


def insecure_http_allowed() -> bool:
    """Whether `AGENTAPI_ALLOW_INSECURE_HTTP` accepts plain http to a remote host."""
    return os.environ.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "true", "yes")
