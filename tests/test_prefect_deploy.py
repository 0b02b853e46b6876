"""`prefect deploy --all` of prefect.yaml against a local Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
