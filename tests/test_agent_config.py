"""Agent API settings: URL, token sources, timeouts, retry policy and proxies."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from flows.agent_config import AgentApiConfig, load_agent_api_config
from flows.errors import ConfigurationError
from tests.test_agent_api import TOKEN


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AGENTAPI_BASE",
        "AGENTAPI_TOKEN",
        "AGENTAPI_TIMEOUT_MS",
        "AGENTAPI_ALLOW_INSECURE_HTTP",
        "AGENTAPI_MAX_ATTEMPTS",
        "AGENTAPI_DEADLINE_S",
        "AGENTAPI_RETRY_AFTER_CAP_S",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_base_url_means_no_agent_api(clean_env: pytest.MonkeyPatch) -> None:
    assert load_agent_api_config(None, None) is None


def test_config_from_env_strips_the_token_and_reads_the_timeout(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AGENTAPI_BASE", "https://agent-api.example.internal/")
    clean_env.setenv("AGENTAPI_TOKEN", f"  {TOKEN}\n")
    clean_env.setenv("AGENTAPI_TIMEOUT_MS", "2500")

    config = load_agent_api_config(None, None)

    assert config is not None
    assert config.base_url == "https://agent-api.example.internal"
    assert config.assist_url == "https://agent-api.example.internal/v1/assist"
    assert config.token.get_secret_value() == TOKEN
    assert config.read_timeout_s == 2.5
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    assert TOKEN not in config.model_dump_json()


def test_default_read_timeout_is_ten_seconds(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    config = load_agent_api_config("https://agent.example", None)
    assert config is not None and config.read_timeout_s == 10.0


@pytest.mark.parametrize("token", ["", "   ", "\n", " \t\n "])
def test_an_empty_token_is_refused(clean_env: pytest.MonkeyPatch, token: str) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", token)
    with pytest.raises(
        ConfigurationError, match=r"token from the AGENTAPI_TOKEN .* empty"
    ):
        load_agent_api_config("https://agent.example", None)


def test_a_missing_token_names_every_way_to_give_it(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_agent_api_config("https://agent.example", None)
    assert str(caught.value) == (
        "no Agent API token: set the AGENTAPI_TOKEN environment variable, or name a "
        "Prefect Secret block holding it (e.g. agentapi-cred) in the flow parameter "
        "agent_api_token_block or the CLI flag --token-block"
    )


def test_a_token_with_the_bearer_prefix_is_refused(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", f"Bearer {TOKEN}")
    with pytest.raises(ConfigurationError, match="without 'Bearer '") as caught:
        load_agent_api_config("https://agent.example", None)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("agent.example", "not an absolute http"),
        ("ftp://agent.example", "not an absolute http"),
        ("https://user:pw@agent.example", "must not carry credentials"),
        ("https://agent.example/?x=1", "query or fragment"),
        ("http://agent.example", "plain http to a remote host"),
        ("http://10.0.0.7:8080", "plain http to a remote host"),
    ],
)
def test_bad_base_urls_are_refused(
    clean_env: pytest.MonkeyPatch, base: str, message: str
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    with pytest.raises(ConfigurationError, match=message):
        load_agent_api_config(base, None)


@pytest.mark.parametrize(
    "base",
    [
        "ftp://user:s3cret-in-url@agent.example",
        "https://agent.example/?token=s3cret-in-url",
        "https://agent.example/#s3cret-in-url",
    ],
)
def test_a_refused_url_is_never_quoted_with_its_secret(
    clean_env: pytest.MonkeyPatch, base: str
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    with pytest.raises(ConfigurationError) as caught:
        load_agent_api_config(base, None)
    assert "s3cret-in-url" not in str(caught.value)


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"]
)
def test_plain_http_to_loopback_is_allowed(
    clean_env: pytest.MonkeyPatch, base: str
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    config = load_agent_api_config(base, None)
    assert config is not None and config.base_url == base


def test_plain_http_to_a_remote_host_when_explicitly_allowed(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("AGENTAPI_ALLOW_INSECURE_HTTP", "true")
    config = load_agent_api_config("http://agent-api.agents.svc:8080", None)
    assert config is not None and config.allow_insecure_http


@pytest.mark.parametrize("no_proxy", ["[::1]", "fd00::/8", "localhost,[fd00::1]"])
def test_ipv6_no_proxy_entries_are_a_configuration_error(
    clean_env: pytest.MonkeyPatch, no_proxy: str
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_env.setenv("NO_PROXY", no_proxy)
    with pytest.raises(ConfigurationError, match=r"NO_PROXY entry .* httpx cannot use"):
        load_agent_api_config("https://agent.example", None)


def test_a_cidr_no_proxy_entry_covering_the_agent_api_is_an_error(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_env.setenv("NO_PROXY", "10.0.0.0/8")
    with pytest.raises(ConfigurationError, match="CIDR range, which httpx ignores"):
        load_agent_api_config("https://10.1.2.3", None)


def test_a_bare_ipv6_no_proxy_entry_works(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    clean_env.setenv("NO_PROXY", "localhost,::1,.svc")
    assert load_agent_api_config("https://agent.example", None) is not None


def test_a_proxy_httpx_cannot_use_is_reported(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("HTTPS_PROXY", "socks5://user:s3cretpw@proxy.example:1080")
    with pytest.raises(
        ConfigurationError, match=r"HTTPS_PROXY.*cannot be used"
    ) as caught:
        load_agent_api_config("https://agent.example", None)
    assert "s3cretpw" not in str(caught.value)


def test_a_bad_timeout_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("AGENTAPI_TIMEOUT_MS", "ten seconds")
    with pytest.raises(ConfigurationError, match="AGENTAPI_TIMEOUT_MS='ten seconds'"):
        load_agent_api_config("https://agent.example", None)


def test_the_retry_policy_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv("AGENTAPI_MAX_ATTEMPTS", "3")
    clean_env.setenv("AGENTAPI_DEADLINE_S", "90")
    clean_env.setenv("AGENTAPI_RETRY_AFTER_CAP_S", "45")

    config = load_agent_api_config("https://agent.example", None)

    assert config is not None
    assert (config.max_attempts, config.deadline_s, config.retry_after_cap_s) == (
        3,
        90.0,
        45.0,
    )
    assert load_agent_api_config(
        "https://agent.example", None, max_attempts=7
    ) == config.model_copy(update={"max_attempts": 7})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AGENTAPI_MAX_ATTEMPTS", "0", "max_attempts: Input should be greater than"),
        ("AGENTAPI_MAX_ATTEMPTS", "2.5", "max_attempts"),
        ("AGENTAPI_DEADLINE_S", "soon", "AGENTAPI_DEADLINE_S='soon' is not a number"),
    ],
)
def test_a_bad_retry_policy_is_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_env.setenv("AGENTAPI_TOKEN", TOKEN)
    clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        load_agent_api_config("https://agent.example", None)


@pytest.mark.slow
def test_a_secret_block_loads_inside_an_async_flow(
    prefect_server: None, clean_env: pytest.MonkeyPatch
) -> None:
    """Secret.load would hand an async flow a coroutine; the config must not care."""
    from prefect import flow
    from prefect.blocks.system import Secret

    Secret(value=TOKEN).save("agentapi-cred-async", overwrite=True, _sync=True)  # type: ignore[call-arg]

    @flow
    async def check_config() -> str:
        config = load_agent_api_config("https://agent.example", "agentapi-cred-async")
        assert config is not None
        return config.token_source

    assert asyncio.run(check_config()) == (
        "the Prefect Secret block 'agentapi-cred-async'"
    )


@pytest.mark.slow
def test_token_from_a_secret_block_is_stripped(
    prefect_server: None, clean_env: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    Secret(value=f"{TOKEN}\n").save("agentapi-cred-test", overwrite=True, _sync=True)  # type: ignore[call-arg]

    config = load_agent_api_config("https://agent.example", "agentapi-cred-test")

    assert config is not None
    assert config.token.get_secret_value() == TOKEN
    assert config.token_source == "the Prefect Secret block 'agentapi-cred-test'"


@pytest.mark.slow
def test_a_missing_secret_block_is_a_configuration_error(
    prefect_server: None, clean_env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ConfigurationError, match="cannot load the Prefect Secret block"
    ):
        load_agent_api_config("https://agent.example", "no-such-block")


def test_a_blank_token_cannot_even_be_configured() -> None:
    with pytest.raises(ValueError, match="the Agent API token is empty"):
        AgentApiConfig(
            base_url="https://agent.example",
            token=SecretStr(" \n"),
            token_source="a test",
        )
