"""Kubernetes API access: credentials, label selectors, and API errors in our terms."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from prefect_kubernetes.credentials import KubernetesCredentials

from flows.errors import (
    ConfigurationError,
    DeploymentNotFound,
    KubernetesError,
    NoPodsFound,
    PermissionDenied,
)

logger = logging.getLogger(__name__)

# Statuses a later attempt may not meet: the API server or kubelet was busy or down.
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# The API server's Forbidden message, e.g. `pods "x" is forbidden: User
# "system:serviceaccount:ns:sa" cannot get resource "pods/log" in API group ""`.
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]+)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
)


@asynccontextmanager
async def kubernetes_api_client(
    credentials: KubernetesCredentials | str | None = None,
) -> AsyncIterator[ApiClient]:
    """An API client for the cluster, closed on exit.

    Args:
        credentials: a prefect-kubernetes `KubernetesCredentials` block, or the name
            of a saved one. Without it (or when the block has no cluster config),
            the in-cluster service account is used when running in a pod, else the
            kubeconfig named by `KUBECONFIG` (default `~/.kube/config`).

    Raises:
        ConfigurationError: the block does not exist, or no credentials were found.
    """
    configuration = await _load_configuration(credentials)
    logger.info("Kubernetes API at %s", configuration.host)
    async with ApiClient(configuration=configuration) as api_client:
        yield api_client


async def _load_configuration(
    credentials: KubernetesCredentials | str | None,
) -> Configuration:
    block = (
        await _load_block(credentials) if isinstance(credentials, str) else credentials
    )
    configuration = Configuration()
    if block is not None and block.cluster_config is not None:
        cluster = block.cluster_config
        try:
            await config.load_kube_config_from_dict(
                config_dict=cluster.config,
                context=cluster.context_name,
                client_configuration=configuration,
            )
        except ConfigException as exc:
            raise ConfigurationError(
                f"the KubernetesCredentials block's cluster config (context "
                f"{cluster.context_name!r}) is not usable: {exc}"
            ) from exc
        return configuration

    try:
        config.load_incluster_config(client_configuration=configuration)
        return configuration
    except ConfigException:
        pass

    # Read at call time: the library's default path is fixed when it is imported.
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    advice = "set KUBECONFIG, or give a KubernetesCredentials block"
    paths = [Path(p).expanduser() for p in kubeconfig.split(os.pathsep) if p]
    if not any(path.is_file() for path in paths):
        raise ConfigurationError(
            "no Kubernetes credentials: not running in a pod (no service account) "
            f"and no kubeconfig file at {kubeconfig!r}; {advice}"
        )
    try:
        await config.load_kube_config(
            config_file=kubeconfig,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigurationError(
            f"the kubeconfig {kubeconfig!r} is not usable ({reason}); {advice}"
        ) from exc
    return configuration


async def _load_block(name: str) -> KubernetesCredentials:
    try:
        block = await KubernetesCredentials.aload(name)
    except ValueError as exc:
        raise ConfigurationError(
            f"no KubernetesCredentials block named {name!r}; create one in the "
            "Prefect UI (Blocks) or leave the parameter empty to use the in-cluster "
            "service account or the kubeconfig"
        ) from exc
    return block


def label_selector(selector: Any) -> str:
    """The label selector string of a `V1LabelSelector` (matchLabels and
    matchExpressions), in the syntax `kubectl -l` and `labelSelector=` accept.

    Raises:
        ConfigurationError: the selector is empty (it would select every pod).
    """
    terms = [
        f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())
    ]
    for expression in selector.match_expressions or []:
        key, operator = expression.key, expression.operator
        values = ",".join(expression.values or [])
        if operator == "In":
            terms.append(f"{key} in ({values})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise ConfigurationError(
                f"unknown label selector operator {operator!r} on key {key!r}; "
                "expected In, NotIn, Exists or DoesNotExist"
            )
    if not terms:
        raise ConfigurationError(
            "the Deployment has an empty spec.selector, which would select every "
            "pod of the namespace; give it matchLabels"
        )
    return ",".join(terms)


def status_message(body: bytes | str | None) -> str:
    """The `message` of a Kubernetes Status body, or the body itself, shortened."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message if message else text.strip())[:500]


def permission_denied(
    *, verb: str, resource: str, namespace: str, message: str
) -> PermissionDenied:
    """A `PermissionDenied` naming the refused permission, who lacks it, and the fix."""
    found = _FORBIDDEN.search(message)
    user = found["user"] if found else "the current credentials"
    if found:
        verb, resource = found["verb"], found["resource"]
    return PermissionDenied(
        f"Kubernetes RBAC refused `{verb} {resource}` in namespace {namespace!r} to "
        f"{user} (403: {message}). Grant it: apply the Role and RoleBinding of "
        f"k8s/log-reader-rbac.yaml (`kubectl apply -n {namespace} -f "
        "k8s/log-reader-rbac.yaml`), bound to that account, then run again; "
        "retrying without it cannot help",
        namespace=namespace,
        status=403,
    )


def api_error(
    exc: ApiException,
    *,
    verb: str,
    resource: str,
    namespace: str,
    name: str | None = None,
) -> KubernetesError:
    """Our error for a failed Deployment read or pod list."""
    status = int(exc.status or 0)
    message = status_message(exc.body) or str(exc.reason)
    if status == 403:
        return permission_denied(
            verb=verb, resource=resource, namespace=namespace, message=message
        )
    if status == 404 and resource == "deployments":
        return DeploymentNotFound(
            f"Deployment {name!r} not found in namespace {namespace!r}; check the "
            "namespace and deployment parameters (`kubectl get deployments -n "
            f"{namespace}`)",
            namespace=namespace,
            status=404,
        )
    if status == 401:
        return KubernetesError(
            f"the Kubernetes API refused the credentials (401: {message}) on "
            f"`{verb} {resource}` in namespace {namespace!r}; renew the token or "
            "kubeconfig",
            namespace=namespace,
            status=401,
        )
    return KubernetesError(
        f"`{verb} {resource}` in namespace {namespace!r} failed with HTTP {status}: "
        f"{message}",
        namespace=namespace,
        status=status or None,
    )


def is_transport_error(exc: BaseException) -> bool:
    """A connection refused, reset or cut short, or a timeout."""
    return isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError)


def unreachable(
    host: str, what: str, namespace: str, exc: BaseException
) -> KubernetesError:
    """Our error for an API server that could not be reached or did not answer.

    It names the server (the host only: a URL's user part is dropped), why it
    could not be reached, and where its address comes from. The original error
    stays the cause, so `is_retryable` still sees a transport failure.
    """
    return KubernetesError(
        f"cannot reach the Kubernetes API at {_without_userinfo(host)}: "
        f"{transport_reason(exc)} (on {what}); check the kubeconfig's current "
        "context (KUBECONFIG) or the KubernetesCredentials block, run inside the "
        "cluster with its service account, or check the network to the API server",
        namespace=namespace,
    )


def transport_reason(exc: BaseException) -> str:
    """A short, lowercase reason for a failed connection, e.g. `connection refused`."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"its TLS certificate is not trusted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        if code is not None:
            return os.strerror(code).lower()
        return str(exc.os_error) or type(exc.os_error).__name__
    if isinstance(exc, TimeoutError):
        return "no answer before the timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def is_retryable(exc: BaseException) -> bool:
    """Whether a later attempt of the scrape may succeed where this one failed.

    False for what only a person can fix (RBAC, a missing Deployment, no pods, bad
    configuration, other 4xx); True for 408/429/5xx and for connections refused,
    reset, cut mid-stream or timed out.
    """
    if isinstance(exc, PermissionDenied | DeploymentNotFound | NoPodsFound):
        return False
    if isinstance(exc, ConfigurationError):
        return False
    if isinstance(exc, KubernetesError):
        if exc.status is not None:
            return exc.status in _TRANSIENT_STATUSES
        return exc.__cause__ is not None and is_retryable(exc.__cause__)
    if isinstance(exc, ApiException):
        return exc.status in _TRANSIENT_STATUSES
    return is_transport_error(exc)
