"""The flow-run Job the Kubernetes worker would submit, rendered by its own code."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import Flow, FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import (
    PREFECT_API_KEY,
    PREFECT_API_URL,
    PREFECT_HOME,
    temporary_settings,
)
from prefect_kubernetes.worker import (
    KubernetesWorker,
    KubernetesWorkerJobConfiguration,
)

REPO = Path(__file__).resolve().parent.parent
BASE_JOB_TEMPLATE = REPO / "deployments" / "base-job-template.json"
PREFECT_YAML = REPO / "prefect.yaml"
WORKER_DEPLOYMENT = REPO / "k8s" / "worker-deployment.yaml"

# Values that must never reach a manifest in clear text.
FAKE_PREFECT_API_KEY = "pnu_fake-prefect-api-key-7d3c1b"
FAKE_AGENTAPI_TOKEN = "agt_fake-agentapi-token-5e9a0f"
# Nothing listens here: rendering must not need the Prefect API.
UNREACHABLE_API = "http://127.0.0.1:9/api"


def weekly_deployment() -> dict[str, Any]:
    """The `weekly` deployment as prefect.yaml declares it (anchors resolved)."""
    config = yaml.safe_load(PREFECT_YAML.read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "weekly"]
    return deployment


def worker_env() -> dict[str, str]:
    """Plain environment values of the worker container in k8s/."""
    manifest = yaml.safe_load(WORKER_DEPLOYMENT.read_text())
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


async def _render(job_variables: dict[str, Any]) -> dict[str, Any]:
    base_job_template = json.loads(BASE_JOB_TEMPLATE.read_text())
    configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
        base_job_template, job_variables, client=PrefectClient(UNREACHABLE_API)
    )
    flow = Flow(id=uuid.uuid4(), name="orchestrator-completions-agent")
    deployment = DeploymentResponse(id=uuid.uuid4(), name="weekly", flow_id=flow.id)
    flow_run = FlowRun(
        id=uuid.uuid4(),
        name="quiet-heron",
        flow_id=flow.id,
        deployment_id=deployment.id,
    )
    configuration.prepare_for_flow_run(flow_run, deployment=deployment, flow=flow)

    # What KubernetesWorker._create_job does when the worker runs with the
    # PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_* settings of k8s/.
    env = worker_env()
    worker = KubernetesWorker(work_pool_name="kubernetes-pool")
    await worker._replace_api_key_with_secret(
        configuration=configuration,
        client=None,  # type: ignore[arg-type]  # unused with a named Secret
        secret_name=env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"],
        secret_key=env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY"],
    )
    return configuration.job_manifest


def render_flow_run_job(extra_job_variables: dict[str, Any] | None = None) -> dict:
    """Render the Job for a run of the `weekly` deployment, as the worker in k8s/ would.

    The worker's own settings (API URL and key, PREFECT_HOME) come from
    k8s/worker-deployment.yaml, with a fake key standing in for the Secret's value.
    """
    job_variables = {
        **weekly_deployment()["work_pool"]["job_variables"],
        **(extra_job_variables or {}),
    }
    updates = {
        PREFECT_API_URL: "https://prefect.example.com/api",
        PREFECT_API_KEY: FAKE_PREFECT_API_KEY,
        PREFECT_HOME: worker_env()["PREFECT_HOME"],
    }
    with temporary_settings(updates=updates):
        return asyncio.run(_render(job_variables))


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _env(job: dict) -> dict[str, dict]:
    entries = _container(job)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {sorted(names)}"
    return {e["name"]: e for e in entries}


@pytest.fixture(scope="module")
def job(monkeypatch_module: pytest.MonkeyPatch) -> dict:
    # A token in the worker's own environment must not leak into the Job either.
    monkeypatch_module.setenv("AGENTAPI_TOKEN", FAKE_AGENTAPI_TOKEN)
    return render_flow_run_job()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_job_runs_as_log_reader_in_the_namespace(job: dict) -> None:
    pod = job["spec"]["template"]["spec"]

    assert job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "dealershipai"
    assert job["metadata"]["generateName"] == "quiet-heron-"
    assert pod["serviceAccountName"] == "log-reader"
    assert pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "Never"


def test_job_runs_the_flow_image_and_the_prefect_engine(job: dict) -> None:
    container = _container(job)

    declared = weekly_deployment()["work_pool"]["job_variables"]

    assert container["image"] == declared["image"]
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == ["prefect", "flow-run", "execute"]


def test_job_has_deadline_ttl_and_no_retries(job: dict) -> None:
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0


def test_pod_and_container_are_locked_down(job: dict) -> None:
    pod = job["spec"]["template"]["spec"]

    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert _container(job)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_only_tmp_is_writable_and_it_is_bounded(job: dict) -> None:
    pod = job["spec"]["template"]["spec"]
    env = _env(job)

    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    assert _container(job)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert env["HOME"]["value"] == "/tmp"
    assert env["PREFECT_HOME"]["value"] == "/tmp/.prefect"


def test_container_has_requests_and_limits(job: dict) -> None:
    assert _container(job)["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_tokens_come_from_secrets_by_reference(job: dict) -> None:
    env = _env(job)

    assert env["AGENTAPI_TOKEN"] == {
        "name": "AGENTAPI_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": "agentapi-cred", "key": "AGENTAPI_TOKEN"}
        },
    }
    assert env["PREFECT_API_KEY"] == {
        "name": "PREFECT_API_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "prefect-api", "key": "PREFECT_API_KEY"}
        },
    }


def test_no_secret_value_appears_in_the_job(job: dict) -> None:
    rendered = json.dumps(job)

    assert FAKE_AGENTAPI_TOKEN not in rendered
    assert FAKE_PREFECT_API_KEY not in rendered


def test_plain_settings_come_from_prefect_yaml(job: dict) -> None:
    env = _env(job)
    declared = weekly_deployment()["work_pool"]["job_variables"]["env"]

    assert env["AGENTAPI_BASE"]["value"] == declared["AGENTAPI_BASE"]
    assert env["AGENTAPI_TIMEOUT_MS"]["value"] == "10000"
    assert env["PREFECT_API_URL"]["value"] == "https://prefect.example.com/api"
    flow_run_id = job["metadata"]["labels"]["prefect.io/flow-run-id"]
    assert env["PREFECT__FLOW_RUN_ID"]["value"] == flow_run_id


def test_pod_carries_the_network_policy_label(job: dict) -> None:
    labels = job["spec"]["template"]["metadata"]["labels"]

    assert labels["app.kubernetes.io/instance"] == "orchestrator-completions-agent"
    assert labels["app.kubernetes.io/component"] == "flow-run"
    assert labels["prefect.io/deployment-name"] == "weekly"


def test_a_run_can_add_plain_env_and_keep_the_secret_reference() -> None:
    job = render_flow_run_job(
        {"env": {"AGENTAPI_TIMEOUT_MS": "30000", "LOG_LEVEL": "DEBUG"}}
    )
    env = _env(job)

    assert env["AGENTAPI_TIMEOUT_MS"]["value"] == "30000"
    assert env["LOG_LEVEL"]["value"] == "DEBUG"
    assert env["AGENTAPI_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == (
        "agentapi-cred"
    )


def test_the_token_secret_name_is_a_job_variable() -> None:
    job = render_flow_run_job({"agentapi_token_secret": "agentapi-cred-staging"})

    assert _env(job)["AGENTAPI_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "agentapi-cred-staging",
        "key": "AGENTAPI_TOKEN",
    }
