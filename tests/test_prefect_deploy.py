"""`prefect deploy --all` of prefect.yaml against a local Prefect server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import PREFECT_API_URL

REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).parent / "prefect")
BASE_JOB_TEMPLATE = REPO / "deployments" / "base-job-template.json"


def prefect_cli(*args: str, api_url: str, home: Path) -> str:
    """Run the prefect CLI from the repository root, as the README tells users to."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_KEY", None)
    result = subprocess.run(
        [PREFECT, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"prefect {' '.join(args)} exited {result.returncode}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def deployed(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Create the pool from the shipped template, then deploy; return the output."""
    api_url = PREFECT_API_URL.value()
    home = tmp_path_factory.mktemp("prefect-cli-home")
    prefect_yaml_before = (REPO / "prefect.yaml").read_text()

    prefect_cli(
        "work-pool",
        "create",
        "kubernetes-pool",
        "--type",
        "kubernetes",
        "--base-job-template",
        str(BASE_JOB_TEMPLATE),
        "--overwrite",
        api_url=api_url,
        home=home,
    )
    output = prefect_cli("deploy", "--all", "--no-prompt", api_url=api_url, home=home)

    assert (REPO / "prefect.yaml").read_text() == prefect_yaml_before
    return output


@pytest.fixture(scope="module")
def declared() -> dict:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (weekly,) = config["deployments"]
    return weekly


@pytest.mark.slow
def test_deploy_reports_the_deployment(deployed: str) -> None:
    assert "orchestrator-completions-agent/weekly" in deployed


@pytest.mark.slow
def test_pool_holds_the_shipped_template(deployed: str) -> None:
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("kubernetes-pool")

    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(BASE_JOB_TEMPLATE.read_text())


@pytest.mark.slow
def test_stored_deployment_has_the_schedule(deployed: str) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(
            "orchestrator-completions-agent/weekly"
        )

    (schedule,) = deployment.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert schedule.schedule.cron == "0 9 * * 2"
    assert schedule.schedule.timezone == "America/New_York"
    assert schedule.active is True
    assert deployment.paused is False


@pytest.mark.slow
def test_stored_deployment_allows_one_run_and_cancels_the_next(
    deployed: str,
) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(
            "orchestrator-completions-agent/weekly"
        )

    assert deployment.global_concurrency_limit is not None
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options is not None
    assert (
        deployment.concurrency_options.collision_strategy
        == ConcurrencyLimitStrategy.CANCEL_NEW
    )


@pytest.mark.slow
def test_stored_deployment_has_parameters_and_job_variables(
    deployed: str, declared: dict
) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(
            "orchestrator-completions-agent/weekly"
        )

    assert deployment.parameters == declared["parameters"]
    assert deployment.parameters["include"] == ["POST https", "completions"]
    assert deployment.job_variables == declared["work_pool"]["job_variables"]
    assert deployment.job_variables["service_account_name"] == "log-reader"
    assert deployment.job_variables["namespace"] == "dealershipai"
    assert set(deployment.job_variables["env"]) == {
        "AGENTAPI_BASE",
        "AGENTAPI_TIMEOUT_MS",
        "PREFECT_LOGGING_EXTRA_LOGGERS",
    }
    assert deployment.work_pool_name == "kubernetes-pool"
    assert deployment.entrypoint == "flows/flow.py:orchestrator_completions_agent"
    assert deployment.pull_steps == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "/opt/prefect/app"
            }
        }
    ]
    assert sorted(deployment.tags) == ["agent-api", "completions", "orchestrator"]


@pytest.mark.slow
def test_stored_parameter_schema_is_the_flows(deployed: str) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(
            "orchestrator-completions-agent/weekly"
        )
    properties = deployment.parameter_openapi_schema["properties"]

    assert deployment.enforce_parameter_schema is True
    assert {
        "namespace",
        "deployment",
        "window_hours",
        "include",
        "rule",
        "top_n",
        "tenant",
        "doctrine",
        "agent_api_base",
        "agent_api_token_block",
    } <= properties.keys()


# --- the image the deployment runs -------------------------------------------


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return version


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_image_and_prefect_yaml_use_the_locked_prefect() -> None:
    prefect = locked_version("prefect")
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    bases = [args for op, args in dockerfile_instructions() if op == "FROM"]

    assert config["prefect-version"] == prefect
    assert bases[-1] == f"prefecthq/prefect:{prefect}-python3.11"


def test_image_installs_only_the_locked_runtime_dependencies() -> None:
    runs = " ".join(args for op, args in dockerfile_instructions() if op == "RUN")

    assert "uv export --frozen --no-default-groups --no-emit-project" in runs
    assert "uv pip install --require-hashes" in runs


def test_image_user_and_code_directory_match_the_job() -> None:
    instructions = dockerfile_instructions()
    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (pull_step,) = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    code_directory = pull_step["prefect.deployments.steps.set_working_directory"]

    (user,) = [args for op, args in instructions if op == "USER"]
    (workdir,) = [args for op, args in instructions if op == "WORKDIR"]
    run_as = pod["securityContext"]
    assert user == f"{run_as['runAsUser']}:{run_as['runAsGroup']}"
    assert workdir == code_directory["directory"]
    assert ("COPY", "flows/ ./flows/") in instructions


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert lines[0] == "*"
    assert {"!pyproject.toml", "!uv.lock", "!README.md", "!flows/"} <= set(lines)
