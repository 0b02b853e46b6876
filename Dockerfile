# Image for the orchestrator-completions-agent flow runs and for the Prefect worker
# that submits them (k8s/worker-deployment.yaml runs `prefect worker start` in it).
#
# Build:  docker build -t <registry>/orchestrator-completions-agent:0.1.0 .
# The Prefect base image's version matches prefect in uv.lock, so the flow runs on
# the client it was tested with.
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

FROM prefecthq/prefect:3.9.1-python3.11

COPY --from=uv /uv /usr/local/bin/uv

# Bytecode is compiled at build time because the root filesystem is read-only at
# run time (see deployments/base-job-template.json).
ENV UV_SYSTEM_PYTHON=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/prefect/app

# Dependencies first, from the lock file only, so code changes reuse this layer.
# --no-default-groups leaves out the dev and examples groups (tests, openai).
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-default-groups --no-emit-project \
        --output-file /tmp/requirements.txt \
    && uv pip install --require-hashes --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The flow's entrypoint (flows/flow.py) is loaded from this directory by the
# deployment's pull step; installing the package as well gives the
# `completions-agent` command.
COPY README.md ./
COPY flows/ ./flows/
RUN uv pip install --no-deps . \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin app

# Numeric user so Kubernetes can verify runAsNonRoot; /tmp is the only writable
# path in the cluster (an emptyDir), so HOME and PREFECT_HOME live there.
USER 10001:10001
ENV HOME=/tmp \
    PREFECT_HOME=/tmp/.prefect \
    PYTHONDONTWRITEBYTECODE=1
