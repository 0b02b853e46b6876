"""k8s/ and the flow-run Job: schema, kustomize build, security scan, Secret script."""

from __future__ import annotations

import base64
import copy
import json
import os
import pty
import re
import shutil
import subprocess
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.test_job_template import render_flow_run_job

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
CHECKOV_CONFIG = REPO / ".checkov.yaml"
CHECKOV = "checkov==3.3.30"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
KUBECTL = shutil.which("kubectl")
NO_KUBECTL = "kubectl is not installed; it is needed to build and dry-run manifests"


def k8s_manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[pytest.ParameterSet]:
    return [
        pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}")
        for path in k8s_manifest_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.fixture(scope="module")
def job() -> dict:
    return render_flow_run_job()


# --- schema -------------------------------------------------------------------


@pytest.mark.parametrize("manifest", k8s_objects())
def test_manifest_matches_the_kubernetes_schema(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_flow_run_job_matches_the_kubernetes_schema(job: dict) -> None:
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=False)

    # prefect-kubernetes insists on `parallelism: 1` and `completions: 1` inside the
    # pod spec (see _get_base_job_manifest in prefect_kubernetes/worker.py), where
    # Kubernetes has no such fields and drops them. Apart from those two, the Job
    # must pass the strict schema, which rejects any unknown field.
    pod = copy.deepcopy(job)["spec"]["template"]["spec"]
    assert (pod.pop("parallelism"), pod.pop("completions")) == (1, 1)
    strict_job = copy.deepcopy(job)
    strict_job["spec"]["template"]["spec"] = pod
    kubernetes_validate.validate(strict_job, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)
def test_kustomization_builds_every_manifest() -> None:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    (worker,) = [o for o in objects if o["kind"] == "Deployment"]

    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("Deployment", "prefect-worker"),
        ("NetworkPolicy", "orchestrator-completions-agent-deny-ingress"),
        ("Role", "log-reader"),
        ("Role", "prefect-worker"),
        ("RoleBinding", "log-reader"),
        ("RoleBinding", "prefect-worker"),
        ("ServiceAccount", "log-reader"),
        ("ServiceAccount", "prefect-worker"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"dealershipai"}
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{image['newName']}:{image['newTag']}"
    )


def test_network_policy_selects_the_worker_and_flow_run_pods(job: dict) -> None:
    (policy,) = [
        p.values[0] for p in k8s_objects() if p.values[0]["kind"] == "NetworkPolicy"
    ]
    (worker,) = [
        p.values[0] for p in k8s_objects() if p.values[0]["kind"] == "Deployment"
    ]
    selector = policy["spec"]["podSelector"]["matchLabels"].items()

    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in policy["spec"]
    assert selector <= worker["spec"]["template"]["metadata"]["labels"].items()
    assert selector <= job["spec"]["template"]["metadata"]["labels"].items()


# --- security scan --------------------------------------------------------------


def _uv() -> str:
    # scripts/bootstrap.sh puts uv on PATH or in .tools/ when it installs it.
    for candidate in (shutil.which("uv"), REPO / ".tools" / "bin" / "uv"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("uv not found: run ./scripts/check, which installs it")


def checkov_skips() -> dict[str, str]:
    """Skipped check ids in .checkov.yaml, each with the comment that justifies it."""
    skips: dict[str, str] = {}
    reason: list[str] = []
    for line in CHECKOV_CONFIG.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            reason.append(stripped.lstrip("# "))
        elif match := re.fullmatch(r"- (CKV2?_\w+)", stripped):
            skips[match[1]] = " ".join(reason)
            reason = []
        else:
            reason = []
    return skips


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = checkov_skips()
    config = yaml.safe_load(CHECKOV_CONFIG.read_text())

    assert sorted(skips) == sorted(config["skip-check"])
    assert sorted(skips) == ["CKV_K8S_35", "CKV_K8S_38", "CKV_K8S_43"]
    for check, reason in skips.items():
        assert len(reason) > 80, f"{check} needs a reason in .checkov.yaml"


@pytest.mark.slow
def test_checkov_finds_no_failed_check(job: dict, tmp_path: Path) -> None:
    uv = _uv()
    job_file = tmp_path / "flow-run-job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    files = [*k8s_manifest_files(), job_file]

    # checkov pins libraries that clash with Prefect's, so it runs in its own
    # environment. The first call may download it; the scan itself runs offline,
    # with any network call it might try sent to a closed port.
    subprocess.run(
        [uv, "tool", "run", "--from", CHECKOV, "python", "-c", "pass"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    offline = {
        **os.environ,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
    }
    scan = subprocess.run(
        [uv, "tool", "run", "--offline", "--from", CHECKOV, "checkov"]
        + ["--config-file", str(CHECKOV_CONFIG), "--output", "json"]
        + [arg for path in files for arg in ("--file", str(path))],
        capture_output=True,
        text=True,
        env=offline,
        cwd=REPO,
        timeout=300,
    )
    report = json.loads(scan.stdout)
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']})"
        for c in report["results"]["failed_checks"]
    ]

    assert failed == [], "\n".join(failed)
    assert scan.returncode == 0, scan.stderr[-2000:]
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 150
    # Every workload and RBAC object was scanned (checkov has no check for a
    # NetworkPolicy on its own; it counts pod templates as Pods).
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    scanned = {".".join(r.split(".")[:3]) for r in resources}
    # A Job with only a generateName is named after its labels.
    assert [r for r in resources if r.startswith("Job.dealershipai.")]
    assert {
        "Deployment.dealershipai.prefect-worker",
        "Role.dealershipai.log-reader",
        "Role.dealershipai.prefect-worker",
        "RoleBinding.dealershipai.log-reader",
        "RoleBinding.dealershipai.prefect-worker",
        "ServiceAccount.dealershipai.log-reader",
        "ServiceAccount.dealershipai.prefect-worker",
    } <= scanned


# --- create-secret.sh ---------------------------------------------------------

TOKEN = "agt_fake-token-for-create-secret-91f2"


@pytest.fixture
def fake_kubectl(tmp_path: Path) -> Path:
    """A kubectl that runs `create` for real and records what `apply` receives."""
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    record.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {record}/argv\n'
        'if [ "$1" = apply ]; then\n'
        f"  cat > {record}/applied.yaml\n"
        "  echo 'secret/applied serverside-applied'\n"
        "else\n"
        f'  exec {KUBECTL} "$@"\n'
        "fi\n"
    )
    script.chmod(0o755)
    return record


def _run_create_secret(
    record: Path, args: list[str], stdin: str | None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{record.parent / 'bin'}:{os.environ['PATH']}",
        "KUBECONFIG": os.devnull,
    }
    return subprocess.run(
        [str(K8S / "create-secret.sh"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _applied_secret(record: Path) -> dict:
    return yaml.safe_load((record / "applied.yaml").read_text())


def test_create_secret_reads_the_token_from_stdin(fake_kubectl: Path) -> None:
    result = _run_create_secret(fake_kubectl, ["-"], stdin=TOKEN + "\n")
    secret = _applied_secret(fake_kubectl)
    argv = (fake_kubectl / "argv").read_text()

    assert result.returncode == 0, result.stderr
    assert secret["kind"] == "Secret"
    assert secret["metadata"] == {
        "name": "agentapi-cred",
        "namespace": "dealershipai",
        "creationTimestamp": None,
    }
    # The newline that `echo` adds is not part of the token.
    assert base64.b64decode(secret["data"]["AGENTAPI_TOKEN"]).decode() == TOKEN
    assert TOKEN not in argv
    assert "apply --server-side --force-conflicts" in argv
    assert TOKEN not in result.stdout + result.stderr


def test_create_secret_takes_the_token_as_an_argument(fake_kubectl: Path) -> None:
    result = _run_create_secret(fake_kubectl, ["-n", "staging", TOKEN], stdin=None)
    secret = _applied_secret(fake_kubectl)

    assert result.returncode == 0, result.stderr
    assert secret["metadata"]["namespace"] == "staging"
    assert base64.b64decode(secret["data"]["AGENTAPI_TOKEN"]).decode() == TOKEN
    assert TOKEN not in (fake_kubectl / "argv").read_text()
    assert TOKEN not in result.stdout + result.stderr


def test_create_secret_stores_the_prefect_api_key_beside_its_url(
    fake_kubectl: Path,
) -> None:
    url = "https://api.prefect.cloud/api/accounts/a1/workspaces/w1"
    secret = ["-s", "prefect-api", "-k", "PREFECT_API_KEY"]
    url_literal = ["-l", f"PREFECT_API_URL={url}"]
    result = _run_create_secret(fake_kubectl, [*secret, *url_literal, "-"], stdin=TOKEN)
    data = _applied_secret(fake_kubectl)["data"]

    assert result.returncode == 0, result.stderr
    assert {k: base64.b64decode(v).decode() for k, v in data.items()} == {
        "PREFECT_API_KEY": TOKEN,
        "PREFECT_API_URL": url,
    }


def test_create_secret_refuses_an_empty_token(fake_kubectl: Path) -> None:
    result = _run_create_secret(fake_kubectl, ["-"], stdin="\n")

    assert result.returncode == 1
    assert "AGENTAPI_TOKEN is empty" in result.stderr
    assert not (fake_kubectl / "applied.yaml").exists()


def test_create_secret_without_a_terminal_asks_for_stdin(fake_kubectl: Path) -> None:
    result = _run_create_secret(fake_kubectl, [], stdin="")

    assert result.returncode == 2
    assert "pipe it in with '-'" in result.stderr
    assert not (fake_kubectl / "argv").exists()


def test_create_secret_prompt_does_not_echo_the_token(fake_kubectl: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{fake_kubectl.parent / 'bin'}:{os.environ['PATH']}",
        "KUBECONFIG": os.devnull,
    }
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the script, with the pseudo-terminal as its tty
        os.execve(str(K8S / "create-secret.sh"), [str(K8S / "create-secret.sh")], env)

    screen = _read_until(terminal, b"AGENTAPI_TOKEN for Secret dealershipai/")
    os.write(terminal, TOKEN.encode() + b"\n")
    screen += _read_until(terminal, b"")
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert TOKEN.encode() not in screen
    secret = _applied_secret(fake_kubectl)
    assert base64.b64decode(secret["data"]["AGENTAPI_TOKEN"]).decode() == TOKEN


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    """Read the terminal until `marker` shows (or, for b"", until it closes)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            return seen
        if not chunk:
            return seen
        seen += chunk
        if marker and marker in seen:
            return seen
    raise AssertionError(f"terminal never showed {marker!r}; saw {seen!r}")
