"""The permissions in k8s/: what the flow and the worker use, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
NAMESPACE = "dealershipai"

# Kubernetes API calls the flow may make, and the RBAC rule each one needs.
FLOW_API_CALLS: dict[str, tuple[str, str, str]] = {
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "list_namespaced_pod": ("", "pods", "list"),
    "read_namespaced_pod": ("", "pods", "get"),
    "read_namespaced_pod_log": ("", "pods/log", "get"),
}


def manifests() -> list[dict]:
    """Every Kubernetes object in k8s/ (the kustomization itself excluded)."""
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def find(kind: str, name: str) -> dict:
    (found,) = [
        o for o in manifests() if o["kind"] == kind and o["metadata"]["name"] == name
    ]
    return found


def as_grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    """Flatten RBAC rules into (apiGroup, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_log_reader_role_grants_exactly_what_the_flow_reads() -> None:
    role = find("Role", "log-reader")

    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]


def test_log_reader_role_covers_every_kubernetes_call_in_the_flow() -> None:
    granted = as_grants(find("Role", "log-reader")["rules"])
    calls = {
        match
        for path in sorted((REPO / "flows").glob("*.py"))
        for match in re.findall(r"\.(\w+_namespaced_\w+)\(", path.read_text())
    }

    assert calls, "found no Kubernetes API call in flows/"
    unknown = calls - FLOW_API_CALLS.keys()
    assert not unknown, (
        f"flows/ calls {sorted(unknown)}: add the permission it needs to the "
        "log-reader Role in k8s/log-reader-rbac.yaml and to FLOW_API_CALLS here"
    )
    for call in calls:
        assert FLOW_API_CALLS[call] in granted, f"{call} needs {FLOW_API_CALLS[call]}"


def test_log_reader_is_bound_to_its_service_account_only() -> None:
    binding = find("RoleBinding", "log-reader")

    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "log-reader",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "log-reader", "namespace": NAMESPACE}
    ]
    assert find("ServiceAccount", "log-reader")["metadata"]["namespace"] == NAMESPACE


def test_worker_role_manages_jobs_and_reads_their_pods() -> None:
    role = find("Role", "prefect-worker")

    assert as_grants(role["rules"]) == {
        ("batch", "jobs", "get"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "watch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods/log", "get"),
        ("", "events", "get"),
        ("", "events", "list"),
        ("", "events", "watch"),
        ("", "events", "create"),
    }


def test_worker_runs_as_its_bound_service_account() -> None:
    binding = find("RoleBinding", "prefect-worker")
    pod = find("Deployment", "prefect-worker")["spec"]["template"]["spec"]

    assert binding["roleRef"]["name"] == "prefect-worker"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prefect-worker", "namespace": NAMESPACE}
    ]
    assert pod["serviceAccountName"] == "prefect-worker"


@pytest.mark.parametrize("role", ["log-reader", "prefect-worker"])
def test_no_role_reads_secrets_or_uses_wildcards(role: str) -> None:
    grants = as_grants(find("Role", role)["rules"])

    assert not [g for g in grants if "*" in g], f"wildcard in Role {role}"
    assert not [g for g in grants if g[1] == "secrets"], f"Role {role} reads Secrets"


def test_nothing_is_cluster_wide() -> None:
    kinds = {o["kind"] for o in manifests()}
    namespaces = {o["metadata"].get("namespace") for o in manifests()}

    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    assert namespaces == {NAMESPACE}
